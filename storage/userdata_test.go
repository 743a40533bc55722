package storage_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

func TestAccountDataUpsertAndSince(t *testing.T) {
	db := MustOpen(t, storage.Options{})
	ctx := context.Background()
	const alice, bob = id.UserID("@alice:example.org"), id.UserID("@bob:example.org")
	const room = id.RoomID("!r:example.org")
	set := func(user id.UserID, room id.RoomID, typ, content string) int64 {
		t.Helper()
		var pos int64
		if err := db.Write(ctx, func(tx *storage.Tx) error {
			var err error
			pos, err = tx.SetAccountData(user, room, typ, json.RawMessage(content))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return pos
	}
	p1 := set(alice, "", "org.example.a", `{"v":1}`)
	p2 := set(alice, room, "m.tag", `{"tags":{}}`)
	p3 := set(bob, "", "org.example.a", `{"v":"bob"}`)
	p4 := set(alice, "", "org.example.a", `{"v":2}`)
	if !(p1 < p2 && p2 < p3 && p3 < p4) {
		t.Fatalf("positions %d, %d, %d, %d do not increase", p1, p2, p3, p4)
	}

	d, err := db.AccountData(ctx, alice, "", "org.example.a")
	if err != nil || string(d.Content) != `{"v":2}` || d.StreamPos != p4 {
		t.Fatalf("AccountData = %+v, %v; want the second write at %d", d, err, p4)
	}
	if _, err := db.AccountData(ctx, alice, room, "org.example.a"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("room entry of a global-only type: %v, want ErrNotFound (no fallback to global)", err)
	}

	global, rooms, err := db.AccountDataSince(ctx, alice, 0, p4)
	if err != nil {
		t.Fatal(err)
	}
	if len(global) != 1 || string(global[0].Content) != `{"v":2}` {
		t.Errorf("global since 0 = %+v, want one updated entry (rows are replaced, not appended)", global)
	}
	if got := rooms[room]; len(got) != 1 || got[0].Type != "m.tag" || got[0].RoomID != room {
		t.Errorf("rooms since 0 = %+v, want m.tag in %s", rooms, room)
	}
	// The entry rewritten at p4 lies outside (0, p3]; it is reported by the range covering p4.
	global, rooms, err = db.AccountDataSince(ctx, alice, 0, p3)
	if err != nil || len(global) != 0 || len(rooms[room]) != 1 {
		t.Errorf("since 0 upto %d = %+v, %+v, %v; want only the room entry", p3, global, rooms, err)
	}
	global, rooms, err = db.AccountDataSince(ctx, alice, p2, p4)
	if err != nil || len(global) != 1 || len(rooms) != 0 {
		t.Errorf("since %d = %+v, %+v, %v; want only the global entry", p2, global, rooms, err)
	}
}

func TestFiltersAreNumberedPerUserAndDeduplicated(t *testing.T) {
	db := MustOpen(t, storage.Options{})
	ctx := context.Background()
	add := func(user id.UserID, f string) int64 {
		t.Helper()
		var fid int64
		if err := db.Write(ctx, func(tx *storage.Tx) error {
			var err error
			fid, err = tx.AddFilter(user, json.RawMessage(f))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return fid
	}
	for _, tc := range []struct {
		user   id.UserID
		filter string
		want   int64
	}{
		{"@a:x", `{"room":{}}`, 1},
		{"@a:x", `{"presence":{}}`, 2},
		{"@b:x", `{"room":{}}`, 1},
		{"@a:x", `{"room":{}}`, 1},
		{"@a:x", `{}`, 3},
	} {
		if got := add(tc.user, tc.filter); got != tc.want {
			t.Errorf("AddFilter(%s, %s) = %d, want %d", tc.user, tc.filter, got, tc.want)
		}
	}
	if f, err := db.Filter(ctx, "@a:x", 2); err != nil || string(f) != `{"presence":{}}` {
		t.Errorf("Filter(@a:x, 2) = %s, %v", f, err)
	}
	if _, err := db.Filter(ctx, "@b:x", 2); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Filter(@b:x, 2) = %v, want ErrNotFound", err)
	}
}

func TestPresenceSince(t *testing.T) {
	db := MustOpen(t, storage.Options{})
	ctx := context.Background()
	set := func(p storage.Presence) int64 {
		t.Helper()
		var pos int64
		if err := db.Write(ctx, func(tx *storage.Tx) error {
			var err error
			pos, err = tx.SetPresence(p)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return pos
	}
	pa := set(storage.Presence{UserID: "@a:x", State: "online", LastActiveTS: 100})
	pb := set(storage.Presence{UserID: "@b:x", State: "unavailable", StatusMsg: "lunch"})
	pa2 := set(storage.Presence{UserID: "@a:x", State: "offline", LastActiveTS: 100})
	if !(pa < pb && pb < pa2) {
		t.Fatalf("positions %d, %d, %d do not increase", pa, pb, pa2)
	}
	got, err := db.PresenceSince(ctx, []id.UserID{"@a:x", "@b:x", "@c:x"}, 0, pa2)
	if err != nil || len(got) != 2 || got[0].UserID != "@b:x" || got[1].State != "offline" || got[1].StreamPos != pa2 {
		t.Fatalf("PresenceSince = %+v, %v; want b, then a offline at %d", got, err, pa2)
	}
	if got, _ := db.PresenceSince(ctx, []id.UserID{"@b:x"}, pb, pa2); len(got) != 0 {
		t.Errorf("since %d = %+v, want nothing for b", pb, got)
	}
	if got, _ := db.PresenceSince(ctx, nil, 0, pa2); len(got) != 0 {
		t.Errorf("no users = %+v", got)
	}
	p, err := db.Presence(ctx, "@b:x")
	if err != nil || p.StatusMsg != "lunch" || p.State != "unavailable" {
		t.Errorf("Presence(@b:x) = %+v, %v", p, err)
	}
	if _, err := db.Presence(ctx, "@c:x"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Presence(@c:x) = %v, want ErrNotFound", err)
	}
}
