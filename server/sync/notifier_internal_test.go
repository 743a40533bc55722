package sync

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"maunium.net/go/mautrix/id"

	"fyr/federation/keys"
	"fyr/server/rooms"
	"fyr/storage"
)

// With room for one room's members only, every event evicts the other room: wake-ups must
// stay exact through the reloads.
func TestNotifierEviction(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := storage.Open(ctx, filepath.Join(dir, "fyr.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, _, err := keys.LoadOrCreate(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	re := rooms.New(db, rooms.Options{ServerName: "localhost", Key: key})
	n := NewNotifier(db, "localhost", nil)
	n.maxRooms = 1
	re.SetListener(n)

	alice, bob, carol := id.UserID("@alice:localhost"), id.UserID("@bob:localhost"), id.UserID("@carol:localhost")
	r1, err := re.CreateRoom(ctx, alice, &rooms.CreateRequest{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := re.CreateRoom(ctx, carol, &rooms.CreateRequest{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := re.Join(ctx, bob, r1, "", nil); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		room, sender := r1, alice
		want := map[id.UserID]bool{alice: true, bob: true, carol: false}
		if i%2 == 1 {
			room, sender = r2, carol
			want = map[id.UserID]bool{alice: false, bob: false, carol: true}
		}
		chans := map[id.UserID]<-chan struct{}{alice: n.Listen(alice), bob: n.Listen(bob), carol: n.Listen(carol)}
		if _, err := re.Send(ctx, rooms.Sender{User: sender}, room, "m.room.message", "", json.RawMessage(`{"body":"x"}`)); err != nil {
			t.Fatal(err)
		}
		for u, ch := range chans {
			select {
			case <-ch:
				if !want[u] {
					t.Errorf("event %d in %s woke %s", i, room, u)
				}
			default:
				if want[u] {
					t.Errorf("event %d in %s did not wake %s", i, room, u)
				}
			}
		}
		if len(n.rooms) > 1 {
			t.Fatalf("the notifier keeps %d rooms, more than its limit", len(n.rooms))
		}
	}
}
