package storage_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"fyr/storage"
)

// searchRoom makes a room and returns a function that persists one event into it.
func searchRoom(t testing.TB, db *storage.DB, roomID string) (int64, func(ev storage.NewEvent) *storage.Persisted) {
	t.Helper()
	ctx := context.Background()
	var nid int64
	if err := db.Write(ctx, func(tx *storage.Tx) (err error) {
		nid, err = tx.InsertRoom(roomID, "12", 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	n := 0
	return nid, func(ev storage.NewEvent) *storage.Persisted {
		t.Helper()
		n++
		if ev.ID == "" {
			ev.ID = fmt.Sprintf("$%s-%d", roomID, n)
		}
		ev.RoomNID, ev.Timeline, ev.Depth = nid, true, int64(n)
		if ev.Sender == "" {
			ev.Sender = "@alice:x"
		}
		var p *storage.Persisted
		if err := db.Write(ctx, func(tx *storage.Tx) (err error) {
			p, err = tx.PersistEvent(&ev)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return p
	}
}

func content(typ string, c map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "content": c})
	return b
}

func message(body string) storage.NewEvent {
	return storage.NewEvent{Type: "m.room.message", JSON: content("m.room.message", map[string]any{"msgtype": "m.text", "body": body})}
}

func searchIDs(t *testing.T, db *storage.DB, q storage.SearchQuery, term string) []string {
	t.Helper()
	x, err := storage.ParseSearchTerm(term)
	if err != nil {
		t.Fatal(err)
	}
	q.Expr = x
	if q.Limit == 0 {
		q.Limit = 100
	}
	hits, err := db.Search(context.Background(), q)
	if err != nil {
		t.Fatalf("Search(%q): %v", term, err)
	}
	var ids []string
	for _, h := range hits {
		ids = append(ids, h.Event.ID)
	}
	return ids
}

func TestSearchIndexFollowsEvents(t *testing.T) {
	db := MustOpen(t, storage.Options{})
	room, put := searchRoom(t, db, "!a:x")
	other, putOther := searchRoom(t, db, "!b:x")
	empty := ""
	put(storage.NewEvent{ID: "$name", Type: "m.room.name", StateKey: &empty, JSON: content("m.room.name", map[string]any{"name": "Krisgrupp Malmö"})})
	put(storage.NewEvent{ID: "$topic", Type: "m.room.topic", StateKey: &empty, JSON: content("m.room.topic", map[string]any{
		"topic": "Översvämning",
		"m.topic": map[string]any{"m.text": []any{
			map[string]any{"mimetype": "text/html", "body": "<b>html</b>"},
			map[string]any{"body": "Översvämning"},
			map[string]any{"mimetype": "text/plain", "body": "plain vattennivå"},
		}},
	})})
	put(storage.NewEvent{ID: "$m1", Sender: "@bob:x", JSON: message("Vattnet stiger i Malmö").JSON, Type: "m.room.message"})
	put(storage.NewEvent{ID: "$m2", JSON: message("mötet börjar nu").JSON, Type: "m.room.message"})
	put(storage.NewEvent{ID: "$m3", JSON: message("min far är här").JSON, Type: "m.room.message"})
	put(storage.NewEvent{ID: "$notext", Type: "m.room.message", JSON: content("m.room.message", map[string]any{"body": 42})})
	put(storage.NewEvent{ID: "$enc", Type: "m.room.encrypted", JSON: content("m.room.encrypted", map[string]any{"body": "malmö"})})
	putOther(storage.NewEvent{ID: "$o1", JSON: message("Malmö again").JSON, Type: "m.room.message"})
	putOther(storage.NewEvent{ID: "$img", Type: "m.room.message", JSON: content("m.room.message", map[string]any{
		"msgtype": "m.image", "body": "bilder.jpg", "url": "mxc://x/abc"})})
	both := storage.SearchQuery{Rooms: []int64{room, other}}

	for _, c := range []struct {
		term string
		q    storage.SearchQuery
		want []string
	}{
		{"malmö", both, []string{"$o1", "$m1", "$name"}},
		{"MALMÖ", storage.SearchQuery{Rooms: []int64{room}}, []string{"$m1", "$name"}},
		{"malmo", both, nil},
		{"möte", both, []string{"$m2"}},
		{"får", both, nil},
		{"far", both, []string{"$m3"}},
		{"vattennivå", both, []string{"$topic"}},
		{"html", both, nil},
		{"översvämning", both, []string{"$topic"}},
		{"malmö", storage.SearchQuery{Rooms: []int64{room}, Keys: []string{"content.body"}}, []string{"$m1"}},
		{"malmö", storage.SearchQuery{Rooms: []int64{room}, Keys: []string{"content.name", "content.topic"}}, []string{"$name"}},
		{"malmö", storage.SearchQuery{Rooms: []int64{room}, Senders: []string{"@bob:x"}}, []string{"$m1"}},
		{"malmö", storage.SearchQuery{Rooms: []int64{room}, NotSenders: []string{"@bob:x"}}, []string{"$name"}},
		{"malmö", storage.SearchQuery{Rooms: []int64{room}, Types: []string{"m.room.n*"}}, []string{"$name"}},
		{"malmö", storage.SearchQuery{Rooms: []int64{room}, NotTypes: []string{"m.room.n*"}}, []string{"$m1"}},
		{"malmö", storage.SearchQuery{Rooms: []int64{room}, Types: []string{"m.room.?ame"}}, nil},
		{"malmö", storage.SearchQuery{}, nil},
		{"malmö OR bilder", storage.SearchQuery{Rooms: []int64{other}, ContainsURL: new(true)}, []string{"$img"}},
		{"malmö OR bilder", storage.SearchQuery{Rooms: []int64{other}, ContainsURL: new(false)}, []string{"$o1"}},
	} {
		c.q.Recent = true
		if got := searchIDs(t, db, c.q, c.term); !slices.Equal(got, c.want) {
			t.Errorf("search %q %+v = %v, want %v", c.term, c.q, got, c.want)
		}
	}

	// Redaction drops the event from the index in the same write.
	m1, err := db.EventByID(context.Background(), "$m1")
	if err != nil {
		t.Fatal(err)
	}
	if has, err := storage.SearchIndexHas(db, m1.NID); !has || err != nil {
		t.Fatalf("$m1 not in the index: %v", err)
	}
	put(storage.NewEvent{ID: "$redact", Type: "m.room.redaction", Redacts: "$m1", JSON: content("m.room.redaction", map[string]any{})})
	if has, err := storage.SearchIndexHas(db, m1.NID); has || err != nil {
		t.Errorf("redacted $m1 still in the index (%v)", err)
	}
	if got := searchIDs(t, db, both, "stiger"); len(got) != 0 {
		t.Errorf("redacted event still found: %v", got)
	}
	if got := searchIDs(t, db, storage.SearchQuery{Rooms: []int64{room}, Recent: true}, "malmö"); !slices.Equal(got, []string{"$name"}) {
		t.Errorf("after redaction: %v", got)
	}
	// A redaction of an event in another room leaves it alone.
	put(storage.NewEvent{ID: "$redact2", Type: "m.room.redaction", Redacts: "$o1", JSON: content("m.room.redaction", map[string]any{})})
	if got := searchIDs(t, db, both, "again"); !slices.Equal(got, []string{"$o1"}) {
		t.Errorf("cross-room redaction unindexed: %v", got)
	}
}

func TestSearchOrderAndCursor(t *testing.T) {
	db := MustOpen(t, storage.Options{})
	ctx := context.Background()
	room, put := searchRoom(t, db, "!a:x")
	// Relevance grows with how often the word occurs in a short text.
	bodies := []string{"flood", "flood flood flood", "a flood among many other words here", "flood flood", "nothing"}
	for i, b := range bodies {
		put(storage.NewEvent{ID: fmt.Sprintf("$%d", i), Type: "m.room.message", JSON: message(b).JSON})
	}
	q := storage.SearchQuery{Rooms: []int64{room}}
	if got, want := searchIDs(t, db, q, "flood"), []string{"$1", "$3", "$0", "$2"}; !slices.Equal(got, want) {
		t.Errorf("by rank = %v, want %v", got, want)
	}
	q.Recent = true
	if got, want := searchIDs(t, db, q, "flood"), []string{"$3", "$2", "$1", "$0"}; !slices.Equal(got, want) {
		t.Errorf("by recent = %v, want %v", got, want)
	}
	// Search's newest-first order is NID order; it is stream order only while timeline
	// events take their NID and stream position together, in insertion order.
	var nids, positions []int64
	for i := range bodies {
		ev, err := db.EventByID(ctx, fmt.Sprintf("$%d", i))
		if err != nil {
			t.Fatal(err)
		}
		nids, positions = append(nids, ev.NID), append(positions, ev.StreamPos)
	}
	if !slices.IsSorted(nids) || !slices.IsSorted(positions) {
		t.Errorf("NIDs %v and stream positions %v of events stored in order are not both ascending", nids, positions)
	}
	// Paging one hit at a time walks the same order without gaps or repeats.
	x, _ := storage.ParseSearchTerm("flood")
	for _, recent := range []bool{false, true} {
		q := storage.SearchQuery{Expr: x, Rooms: []int64{room}, Recent: recent, Limit: 100}
		all, err := db.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		q.Limit = 1
		for i := range all {
			page, err := db.Search(ctx, q)
			if err != nil || len(page) != 1 || page[0].Event.ID != all[i].Event.ID {
				t.Fatalf("recent=%v page %d = %v, %v; want %s", recent, i, page, err, all[i].Event.ID)
			}
			q.After = page[0].Cursor()
		}
		if page, err := db.Search(ctx, q); err != nil || len(page) != 0 {
			t.Fatalf("recent=%v after the last: %v, %v", recent, page, err)
		}
	}
	// Recent order reports the same ranks as rank order.
	byRank, _ := db.Search(ctx, storage.SearchQuery{Expr: x, Rooms: []int64{room}, Limit: 100})
	byRecent, _ := db.Search(ctx, storage.SearchQuery{Expr: x, Rooms: []int64{room}, Recent: true, Limit: 100})
	ranks := map[string]float64{}
	for _, h := range byRank {
		ranks[h.Event.ID] = h.Rank
	}
	for _, h := range byRecent {
		if h.Rank != ranks[h.Event.ID] || h.Rank <= 0 {
			t.Errorf("%s ranks %v by recency, %v by rank", h.Event.ID, h.Rank, ranks[h.Event.ID])
		}
	}
	buckets, err := db.SearchBuckets(ctx, storage.SearchQuery{Expr: x, Rooms: []int64{room}})
	if err != nil || len(buckets) != 1 || buckets[0].Count != 4 || buckets[0].RoomNID != room {
		t.Fatalf("buckets = %+v, %v", buckets, err)
	}
}

// TestSearchMigrationIndexesOldEvents: a database from before the search index gains an
// index of the events it already holds when it is opened by this binary.
func TestSearchMigrationIndexesOldEvents(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fyr.db")
	db, err := storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	room, put := searchRoom(t, db, "!a:x")
	empty := ""
	put(storage.NewEvent{ID: "$old", Type: "m.room.message", JSON: message("old flood report").JSON})
	put(storage.NewEvent{ID: "$gone", Type: "m.room.message", JSON: message("redacted flood").JSON})
	put(storage.NewEvent{ID: "$r", Type: "m.room.redaction", Redacts: "$gone", JSON: content("m.room.redaction", map[string]any{})})
	put(storage.NewEvent{ID: "$topic", Type: "m.room.topic", StateKey: &empty, JSON: content("m.room.topic", map[string]any{"topic": "flood topic"})})
	put(storage.NewEvent{ID: "$num", Type: "m.room.message", JSON: content("m.room.message", map[string]any{"body": 7})})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Turn the file back into a schema-11 database: no index, nor the later migrations'
	// tables and columns, user_version 11.
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`DROP TABLE event_search; DROP TABLE event_search_content;
		DROP TABLE e2ee_device_list_stream; DROP TABLE e2ee_inbound_to_device;
		DROP TABLE push_rules; DROP TABLE push_notifications; DROP TABLE push_read; DROP TABLE pushers;
		DROP TABLE system_users; DROP TABLE server_notice_rooms; DROP TABLE server_notice_txns;
		DROP TABLE refresh_tokens; DROP INDEX access_tokens_by_refresh;
		ALTER TABLE access_tokens DROP COLUMN expires_ts; ALTER TABLE access_tokens DROP COLUMN refresh_hash;
		PRAGMA user_version = 11`); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	db = mustReopen(t, path)
	if got := searchIDs(t, db, storage.SearchQuery{Rooms: []int64{room}, Recent: true}, "flood"); !slices.Equal(got, []string{"$topic", "$old"}) {
		t.Errorf("after migration: %v", got)
	}
	gone, _ := db.EventByID(ctx, "$gone")
	if has, err := storage.SearchIndexHas(db, gone.NID); has || err != nil {
		t.Errorf("migration indexed a redacted event (%v)", err)
	}
}

// mustReopen opens an existing database file and closes it when the test ends.
func mustReopen(tb testing.TB, path string) *storage.DB {
	tb.Helper()
	db, err := storage.Open(context.Background(), path, storage.Options{})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}
