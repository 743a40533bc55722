package storage_test

import (
	"context"
	"fmt"
	"testing"

	"fyr/storage"
)

// testRoom creates a room whose current state is a join rule, a history visibility and the
// given members (user ID → membership), and returns its NID.
func testRoom(t testing.TB, db *storage.DB, roomID, joinRule, history string, members map[string]string) int64 {
	t.Helper()
	ctx := context.Background()
	var nid int64
	seq := 0
	state := func(tx *storage.Tx, typ, key, content, membership string) error {
		seq++
		_, err := tx.PersistEvent(&storage.NewEvent{
			ID: fmt.Sprintf("$%s-%d", roomID, seq), RoomNID: nid, Type: typ, StateKey: &key, Sender: "@creator:x",
			Depth: int64(seq), OriginTS: int64(seq), Membership: membership, Timeline: true,
			JSON: []byte(fmt.Sprintf(`{"type":%q,"state_key":%q,"content":%s}`, typ, key, content)),
		})
		return err
	}
	err := db.Write(ctx, func(tx *storage.Tx) error {
		var err error
		if nid, err = tx.InsertRoom(roomID, "12", 1); err != nil {
			return err
		}
		if err := state(tx, "m.room.join_rules", "", fmt.Sprintf(`{"join_rule":%q}`, joinRule), ""); err != nil {
			return err
		}
		if err := state(tx, "m.room.history_visibility", "", fmt.Sprintf(`{"history_visibility":%q}`, history), ""); err != nil {
			return err
		}
		for u, m := range members {
			if err := state(tx, "m.room.member", u, fmt.Sprintf(`{"membership":%q}`, m), m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return nid
}

func putReceipt(t *testing.T, db *storage.DB, r storage.Receipt) (bool, int64) {
	t.Helper()
	var stored bool
	var pos int64
	err := db.Write(context.Background(), func(tx *storage.Tx) error {
		var err error
		stored, pos, err = tx.PutReceipt(r)
		return err
	})
	if err != nil {
		t.Fatalf("PutReceipt: %v", err)
	}
	return stored, pos
}

func TestReceiptsMoveOnlyForwards(t *testing.T) {
	db := MustOpen(t, storage.Options{})
	ctx := context.Background()
	room := testRoom(t, db, "!r:x", "invite", "shared", map[string]string{"@a:x": "join"})
	r := storage.Receipt{RoomNID: room, UserID: "@a:x", Type: storage.ReceiptRead, EventID: "$e5", EventPos: 5, TS: 100}
	if stored, pos := putReceipt(t, db, r); !stored || pos == 0 {
		t.Fatalf("first receipt: stored %v at %d", stored, pos)
	}
	older := r
	older.EventID, older.EventPos, older.TS = "$e3", 3, 200
	if stored, _ := putReceipt(t, db, older); stored {
		t.Fatal("a receipt for an older event replaced a newer one")
	}
	if stored, _ := putReceipt(t, db, r); stored {
		t.Fatal("a repeated receipt for the same event was stored again")
	}
	// Other threads and types are separate receipts.
	threaded := older
	threaded.ThreadID = "main"
	if stored, _ := putReceipt(t, db, threaded); !stored {
		t.Fatal("a threaded receipt was refused because of an unthreaded one")
	}
	newer := r
	newer.EventID, newer.EventPos, newer.TS = "$e9", 9, 300
	_, pos := putReceipt(t, db, newer)
	got, err := db.UserReceipt(ctx, room, "@a:x", storage.ReceiptRead, "")
	if err != nil {
		t.Fatal(err)
	}
	if got.EventID != "$e9" || got.TS != 300 || got.StreamPos != pos || got.RoomID != "!r:x" {
		t.Fatalf("UserReceipt = %+v, want $e9 at ts 300, pos %d", got, pos)
	}
	if _, err := db.UserReceipt(ctx, room, "@a:x", storage.ReceiptReadPrivate, ""); err != storage.ErrNotFound {
		t.Fatalf("missing receipt: err = %v, want ErrNotFound", err)
	}
}

func TestReceiptsSinceHidesOthersPrivateReceipts(t *testing.T) {
	db := MustOpen(t, storage.Options{})
	ctx := context.Background()
	room := testRoom(t, db, "!r:x", "invite", "shared", map[string]string{"@a:x": "join", "@b:x": "join"})
	other := testRoom(t, db, "!o:x", "invite", "shared", map[string]string{"@a:x": "join"})
	start, _ := db.StreamPos(ctx)
	putReceipt(t, db, storage.Receipt{RoomNID: room, UserID: "@a:x", Type: storage.ReceiptRead, EventID: "$1", EventPos: 1, TS: 1})
	putReceipt(t, db, storage.Receipt{RoomNID: room, UserID: "@a:x", Type: storage.ReceiptReadPrivate, EventID: "$2", EventPos: 2, TS: 2})
	_, mid := putReceipt(t, db, storage.Receipt{RoomNID: room, UserID: "@b:x", Type: storage.ReceiptReadPrivate, EventID: "$3", EventPos: 3, TS: 3})
	putReceipt(t, db, storage.Receipt{RoomNID: room, UserID: "@b:x", Type: storage.ReceiptFullyRead, EventID: "$3", EventPos: 3, TS: 3})
	putReceipt(t, db, storage.Receipt{RoomNID: other, UserID: "@a:x", Type: storage.ReceiptRead, EventID: "$4", EventPos: 4, TS: 4})
	_, last := putReceipt(t, db, storage.Receipt{RoomNID: room, UserID: "@b:x", Type: storage.ReceiptRead, EventID: "$5", EventPos: 5, TS: 5})

	describe := func(rs []storage.Receipt) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.RoomID+" "+r.UserID+" "+r.Type+" "+r.EventID)
		}
		return out
	}
	for _, c := range []struct {
		name        string
		rooms       []string
		since, upto int64
		viewer      string
		want        []string
	}{
		{"a sees b's public receipts and her own private one", []string{"!r:x"}, start, 0, "@a:x",
			[]string{"!r:x @a:x m.read $1", "!r:x @a:x m.read.private $2", "!r:x @b:x m.read $5"}},
		{"b sees his own private receipt, never m.fully_read", []string{"!r:x"}, start, 0, "@b:x",
			[]string{"!r:x @a:x m.read $1", "!r:x @b:x m.read.private $3", "!r:x @b:x m.read $5"}},
		{"since and upto bound the positions", []string{"!r:x", "!o:x"}, mid, last - 1, "@a:x",
			[]string{"!o:x @a:x m.read $4"}},
		{"initial sync gets every room's current receipts", []string{"!o:x", "!r:x"}, 0, 0, "@c:x",
			[]string{"!r:x @a:x m.read $1", "!o:x @a:x m.read $4", "!r:x @b:x m.read $5"}},
	} {
		got, err := db.ReceiptsSince(ctx, c.rooms, c.since, c.upto, c.viewer)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(describe(got)) != fmt.Sprint(c.want) {
			t.Errorf("%s: ReceiptsSince = %q, want %q", c.name, describe(got), c.want)
		}
	}

	for _, c := range []struct {
		user, thread string
		want         int64
	}{
		{"@a:x", "", 2}, {"@b:x", "", 5}, {"@c:x", "", 0}, {"@b:x", "main", 5},
	} {
		if got, err := db.ReadUpTo(ctx, room, c.user, c.thread); err != nil || got != c.want {
			t.Errorf("ReadUpTo(%s, %q) = %d, %v; want %d", c.user, c.thread, got, err, c.want)
		}
	}
}
