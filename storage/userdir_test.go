package storage_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"fyr/storage"
)

func TestUserDirectorySearch(t *testing.T) {
	db := MustOpen(t, storage.Options{})
	ctx := context.Background()
	if err := db.BindServerName(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	err := db.Write(ctx, func(tx *storage.Tx) error {
		for _, lp := range []string{"alice", "bob", "eve", "asa", "gone", "loner", "reader", "pa", "pb"} {
			if err := tx.CreateUser(storage.User{Localpart: lp, CreatedTS: 1}); err != nil {
				return err
			}
		}
		for lp, name := range map[string]string{"alice": "Alice Cooper", "asa": "Åsa Öberg", "gone": "Gone Girl", "bob": "Bob"} {
			if err := tx.SetProfileField(lp, "displayname", []byte(fmt.Sprintf("%q", name))); err != nil {
				return err
			}
		}
		if err := tx.SetProfileField("alice", "avatar_url", []byte(`"mxc://x/a"`)); err != nil {
			return err
		}
		if err := tx.SetProfileField("pb", "avatar_url", []byte(`"mxc://x/pb"`)); err != nil {
			return err
		}
		// Bob renames himself and then drops the name.
		if err := tx.SetProfileField("bob", "displayname", []byte(`"Robert"`)); err != nil {
			return err
		}
		if err := tx.DeleteProfileField("bob", "displayname"); err != nil {
			return err
		}
		return tx.Deactivate("gone")
	})
	if err != nil {
		t.Fatal(err)
	}
	// A public room with alice, asa and gone; a private room shared by bob and eve; a
	// world-readable room with reader; loner alone in a private room.
	testRoom(t, db, "!pub:x", "public", "shared", map[string]string{"@alice:x": "join", "@asa:x": "join", "@gone:x": "join", "@eve:x": "invite"})
	testRoom(t, db, "!priv:x", "invite", "shared", map[string]string{"@bob:x": "join", "@eve:x": "join", "@alice:x": "leave"})
	testRoom(t, db, "!wr:x", "invite", "world_readable", map[string]string{"@reader:x": "join"})
	testRoom(t, db, "!alone:x", "invite", "shared", map[string]string{"@loner:x": "join"})
	testRoom(t, db, "!p:x", "public", "shared", map[string]string{"@pa:x": "join", "@pb:x": "join"})

	for _, c := range []struct {
		searcher string
		terms    []string
		limit    int
		want     string
	}{
		{"@eve:x", []string{"alice", "coop"}, 10, "[{@alice:x Alice Cooper mxc://x/a}]"},
		{"@eve:x", []string{"ALI"}, 10, "[{@alice:x Alice Cooper mxc://x/a}]"},
		{"@eve:x", []string{"@alice:x"}, 10, "[{@alice:x Alice Cooper mxc://x/a}]"},
		{"@eve:x", []string{"lice"}, 10, "[]"},
		{"@eve:x", []string{"asa"}, 10, "[{@asa:x Åsa Öberg }]"},
		{"@eve:x", []string{"öberg"}, 10, "[{@asa:x Åsa Öberg }]"},
		// Eve shares a room with Bob; his old name is gone from the index.
		{"@eve:x", []string{"bob"}, 10, "[{@bob:x  }]"},
		{"@eve:x", []string{"robert"}, 10, "[]"},
		{"@alice:x", []string{"bob"}, 10, "[]"},
		{"@alice:x", []string{"reader"}, 10, "[{@reader:x  }]"},
		// Deactivated users, users alone in private rooms and the searcher in a private room
		// are not found.
		{"@eve:x", []string{"gone"}, 10, "[]"},
		{"@eve:x", []string{"loner"}, 10, "[]"},
		{"@loner:x", []string{"loner"}, 10, "[]"},
		{"@eve:x", []string{"eve"}, 10, "[]"},
		{"@alice:x", []string{"alice"}, 10, "[{@alice:x Alice Cooper mxc://x/a}]"},
		{"@eve:x", []string{"@", ":"}, 10, "[]"},
		{"@eve:x", []string{`"al`}, 10, "[{@alice:x Alice Cooper mxc://x/a}]"},
		// Equally good matches: the one with an avatar first.
		{"@eve:x", []string{"p"}, 10, "[{@pb:x  mxc://x/pb} {@pa:x  }]"},
	} {
		got, err := db.SearchUserDirectory(ctx, c.searcher, c.terms, c.limit)
		if err != nil {
			t.Fatalf("SearchUserDirectory(%s, %q): %v", c.searcher, c.terms, err)
		}
		if s := fmt.Sprint(got); s != c.want && !(s == "[]" && c.want == "[]") {
			t.Errorf("SearchUserDirectory(%s, %q) = %s, want %s", c.searcher, c.terms, s, c.want)
		}
	}
	// The server name is part of every user ID: it finds everyone Eve may see, best first.
	got, err := db.SearchUserDirectory(ctx, "@eve:x", []string{"x"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, u := range got {
		ids = append(ids, u.UserID)
	}
	slices.Sort(ids)
	if want := []string{"@alice:x", "@asa:x", "@bob:x", "@pa:x", "@pb:x", "@reader:x"}; !slices.Equal(ids, want) {
		t.Errorf("search for the server name found %q, want %q", ids, want)
	}
	if two, err := db.SearchUserDirectory(ctx, "@eve:x", []string{"x"}, 2); err != nil || !slices.Equal(two, got[:2]) {
		t.Errorf("with limit 2: %v, %v; want the first two of %v", two, err, got)
	}
}

// BenchmarkUserDirectorySearch searches 5,000 users who share one public room, for a prefix
// that many names share and for one that few do.
func BenchmarkUserDirectorySearch(b *testing.B) {
	db := MustOpen(b, storage.Options{})
	ctx := context.Background()
	if err := db.BindServerName(ctx, "x"); err != nil {
		b.Fatal(err)
	}
	const n = 5000
	members := map[string]string{}
	err := db.Write(ctx, func(tx *storage.Tx) error {
		for i := range n {
			lp := fmt.Sprintf("user%d", i)
			if err := tx.CreateUser(storage.User{Localpart: lp, CreatedTS: 1}); err != nil {
				return err
			}
			name := fmt.Sprintf(`"%s Person%d"`, []string{"Anna", "Erik", "Maria", "Lars", "Karin"}[i%5], i)
			if err := tx.SetProfileField(lp, "displayname", []byte(name)); err != nil {
				return err
			}
			members["@"+lp+":x"] = "join"
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	testRoom(b, db, "!pub:x", "public", "shared", members)
	for _, term := range []string{"anna", "person4999"} {
		b.Run(term, func(b *testing.B) {
			for b.Loop() {
				if _, err := db.SearchUserDirectory(ctx, "@user1:x", []string{term}, 11); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
