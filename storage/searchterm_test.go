package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"fyr/storage"
)

func TestParseSearchTerm(t *testing.T) {
	cases := []struct {
		in, want string
	}{
		{"flood", `"flood"*`},
		{"Flood MAP", `"flood"* AND "map"*`},
		{"är", `"är"`},
		{"får", `"får"*`},
		{"Möte i Göteborg", `"möte"* AND "i" AND "göteborg"*`},
		{"ÅÄÖ", `"åäö"*`},
		{"flood OR storm", `("flood"* OR "storm"*)`},
		{"a b OR c d", `"a" AND ("b" OR "c") AND "d"`},
		{"OR flood OR", `"flood"*`},
		{"flood or storm", `"flood"* AND "or" AND "storm"*`},
		{`"crisis team" meeting`, `"crisis team" AND "meeting"*`},
		{`"unterminated phrase`, `"unterminated phrase"`},
		{`flood -drill`, `("flood"*) NOT "drill"`},
		{`flood -"fire drill" -x`, `("flood"*) NOT "fire drill" NOT "x"`},
		{"e-post", `"e post"*`},
		{"10:30", `"10 30"`},
		{"user@example.org", `"user example org"*`},
		{"flood-", `"flood"*`},
		{"- flood", `"flood"*`},
		// FTS5 syntax is plain text.
		{`flood*`, `"flood"*`},
		{`body:flood`, `"body flood"*`},
		{`{body name}:x`, `"body"* AND "name x"`},
		{`^flood`, `"flood"*`},
		{`NEAR(a b)`, `"near a" AND "b"`},
		{`a AND b NOT c`, `"a" AND "and"* AND "b" AND "not"* AND "c"`},
		{`(a OR b)`, `("a" OR "b")`},
		{`"" x`, `"x"`},
		{`a"b"c`, `"a" AND "b" AND "c"`},
		{`he said "hi""there"`, `"he" AND "said"* AND "hi" AND "there"`},
		{"日本語", `"日本語"*`},
		{"naïve café", `"naïve"* AND "café"*`},
		{"mo\u0308te", "\"mo\u0308te\"*"},
	}
	for _, c := range cases {
		x, err := storage.ParseSearchTerm(c.in)
		if err != nil {
			t.Errorf("ParseSearchTerm(%q) error %v", c.in, err)
			continue
		}
		if x.Match != c.want {
			t.Errorf("ParseSearchTerm(%q) = %s, want %s", c.in, x.Match, c.want)
		}
	}
}

func TestParseSearchTermRefuses(t *testing.T) {
	cases := []struct {
		in   string
		want error
	}{
		{"", storage.ErrSearchTermEmpty},
		{"   \t\n", storage.ErrSearchTermEmpty},
		{`"" !!! ??? -- *`, storage.ErrSearchTermEmpty},
		{"OR", storage.ErrSearchTermEmpty},
		{"-flood", storage.ErrSearchTermOnlyNots},
		{strings.Repeat("a", storage.MaxSearchTermBytes+1), storage.ErrSearchTermTooLong},
		{strings.Repeat("a ", storage.MaxSearchWords+1), storage.ErrSearchTermTooMany},
	}
	for _, c := range cases {
		x, err := storage.ParseSearchTerm(c.in)
		if !errors.Is(err, c.want) {
			t.Errorf("ParseSearchTerm(%.40q) = %v, %v; want %v", c.in, x, err, c.want)
		}
	}
}

func TestSearchWordsAndHighlights(t *testing.T) {
	x, err := storage.ParseSearchTerm(`Möte "crisis team" -drill OR`)
	if err != nil {
		t.Fatal(err)
	}
	want := []storage.SearchWord{{Text: "möte", Prefix: true}, {Text: "crisis"}, {Text: "team"}}
	if !slices.Equal(x.Words, want) {
		t.Errorf("words = %v, want %v", x.Words, want)
	}
	got := x.Highlights("Mötet med Crisis-teamet och TEAM, inte drill; Mote")
	if w := []string{"Mötet", "Crisis", "TEAM"}; !slices.Equal(got, w) {
		t.Errorf("highlights = %q, want %q", got, w)
	}
}

// FuzzSearchTermIsSafe: whatever a user types, the query ParseSearchTerm builds is valid
// FTS5 that cannot fail, so no input reaches FTS5 as syntax.
func FuzzSearchTermIsSafe(f *testing.F) {
	for _, s := range []string{"flood", `"a b" OR c -d`, `{body}:x`, `a* NEAR(b c, 2) ^d`, `"`, `-"`, `x OR -y`,
		"\x00null", `a "b ""c"" d" e`, "år är ö", "-\"x\" OR", "a AND OR NOT b", "(((", ")", "\"\"\"\"", "\u0301x"} {
		f.Add(s)
	}
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		f.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	f.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE VIRTUAL TABLE t USING fts5(body, name, topic, room_nid UNINDEXED, stream_pos UNINDEXED,
		state_before UNINDEXED, type UNINDEXED, sender UNINDEXED, content='', contentless_delete=1, contentless_unindexed=1,
		tokenize='unicode61 remove_diacritics 0');
		INSERT INTO t (rowid, body) VALUES (1, 'a b c d flood år är')`); err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, term string) {
		x, err := storage.ParseSearchTerm(term)
		if err != nil {
			return
		}
		for _, m := range []string{x.Match, "{body topic} : (" + x.Match + ")"} {
			rows, err := db.QueryContext(ctx, `SELECT rowid FROM t WHERE t MATCH ?`, m)
			if err != nil {
				t.Fatalf("ParseSearchTerm(%q) = %s: FTS5 says %v", term, m, err)
			}
			for rows.Next() {
			}
			if err := rows.Err(); err != nil {
				t.Fatalf("ParseSearchTerm(%q) = %s: FTS5 says %v", term, m, err)
			}
			rows.Close()
		}
	})
}
