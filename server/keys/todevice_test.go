package keys_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"maunium.net/go/mautrix/id"

	e2ee "fyr/server/keys"
	"fyr/storage"
)

type toDevice struct {
	Sender  id.UserID
	Type    string
	Content struct{ N int }
}

func inbox(t *testing.T, v *env, d *device, since int64, limit int) ([]toDevice, int64) {
	t.Helper()
	evs, next, err := v.e.ToDevice(context.Background(), d.user, d.id, since, pos(t, v), limit)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]toDevice, len(evs))
	for i, ev := range evs {
		if err := json.Unmarshal(ev, &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out, next
}

func msg(n int) json.RawMessage { return json.RawMessage(fmt.Sprintf(`{"n":%d}`, n)) }

func TestSendToDevice(t *testing.T) {
	ctx := context.Background()
	v := newEnv(t)
	rec := &recorder{}
	v.e.SetListener(rec)
	alice := v.newDevice(t, user("alice"), "ALICE1")
	bob1 := v.newDevice(t, user("bob"), "BOB1")
	bob2 := v.newDevice(t, user("bob"), "BOB2")
	send := func(txn string, msgs map[id.UserID]map[id.DeviceID]json.RawMessage) {
		t.Helper()
		if err := v.e.SendToDevice(ctx, alice.user, alice.id, "m.test", txn, msgs); err != nil {
			t.Fatal(err)
		}
	}
	// "*" reaches every device; a named device gets its own message instead.
	send("t1", map[id.UserID]map[id.DeviceID]json.RawMessage{bob1.user: {"*": msg(1), bob2.id: msg(2), "GONE": msg(3)},
		"@carol:elsewhere.example": {"X": msg(4)}})
	if got := rec.take(); fmt.Sprint(got) != fmt.Sprint([]id.UserID{bob1.user}) {
		t.Errorf("notified %v, want bob", got)
	}
	// The same transaction again delivers nothing new.
	send("t1", map[id.UserID]map[id.DeviceID]json.RawMessage{bob1.user: {"*": msg(9)}})
	send("t2", map[id.UserID]map[id.DeviceID]json.RawMessage{bob1.user: {bob1.id: msg(5)}})

	got1, next := inbox(t, v, bob1, 0, 0)
	if fmt.Sprint(got1) != fmt.Sprintf("[{%s m.test {1}} {%s m.test {5}}]", alice.user, alice.user) {
		t.Errorf("bob1's inbox: %v", got1)
	}
	if next != pos(t, v) {
		t.Errorf("next = %d with everything served, want upto %d", next, pos(t, v))
	}
	got2, _ := inbox(t, v, bob2, 0, 0)
	if fmt.Sprint(got2) != fmt.Sprintf("[{%s m.test {2}}]", alice.user) {
		t.Errorf("bob2's inbox: %v", got2)
	}
	// A limited read says where it stopped; acknowledging removes only what was served.
	first, next := inbox(t, v, bob1, 0, 1)
	if len(first) != 1 || first[0].Content.N != 1 {
		t.Fatalf("first of bob1's inbox: %v", first)
	}
	if err := v.e.AckToDevice(ctx, bob1.user, bob1.id, next); err != nil {
		t.Fatal(err)
	}
	rest, _ := inbox(t, v, bob1, 0, 0)
	if len(rest) != 1 || rest[0].Content.N != 5 {
		t.Errorf("after acknowledging the first: %v", rest)
	}
	if err := v.e.AckToDevice(ctx, bob1.user, bob1.id, pos(t, v)); err != nil {
		t.Fatal(err)
	}
	if rest, _ := inbox(t, v, bob1, 0, 0); len(rest) != 0 {
		t.Errorf("after acknowledging all: %v", rest)
	}
	// An empty inbox acknowledges without writing.
	if err := v.e.AckToDevice(ctx, bob1.user, bob1.id, pos(t, v)); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, typ string
		msgs      map[id.UserID]map[id.DeviceID]json.RawMessage
		want      error
	}{
		{"empty type", "", nil, e2ee.ErrInvalidParam},
		{"content not an object", "m.test", map[id.UserID]map[id.DeviceID]json.RawMessage{bob1.user: {bob1.id: json.RawMessage(`[1]`)}}, e2ee.ErrBadJSON},
	} {
		if err := v.e.SendToDevice(ctx, alice.user, alice.id, tc.typ, "bad-"+tc.name, tc.msgs); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// outbox records the EDUs it is handed.
type outbox struct{ edus map[string][]string }

func (o *outbox) EnqueueEDU(_ *storage.Tx, destination string, edu []byte) error {
	if o.edus == nil {
		o.edus = map[string][]string{}
	}
	o.edus[destination] = append(o.edus[destination], string(edu))
	return nil
}

func (o *outbox) Notify([]string) {}

func TestSendToDeviceRemoteGoesToOutbox(t *testing.T) {
	v := newEnv(t)
	alice := v.newDevice(t, user("alice"), "ALICE1")
	ob := &outbox{}
	v.e.SetOutbox(ob)
	err := v.e.SendToDevice(context.Background(), alice.user, alice.id, "m.room_key_request", "t1",
		map[id.UserID]map[id.DeviceID]json.RawMessage{"@carol:elsewhere.example": {"X": msg(4)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ob.edus["elsewhere.example"]) != 1 {
		t.Fatalf("EDUs queued: %v", ob.edus)
	}
	var edu struct {
		EDUType string `json:"edu_type"`
		Content struct {
			Sender    id.UserID
			Type      string
			MessageID string `json:"message_id"`
			Messages  map[id.UserID]map[id.DeviceID]struct{ N int }
		}
	}
	json.Unmarshal([]byte(ob.edus["elsewhere.example"][0]), &edu)
	if edu.EDUType != "m.direct_to_device" || edu.Content.Sender != alice.user || edu.Content.MessageID == "" ||
		edu.Content.Messages["@carol:elsewhere.example"]["X"].N != 4 {
		t.Errorf("EDU = %+v", edu)
	}
}

func TestToDeviceInboxIsBounded(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := storage.Open(ctx, filepath.Join(dir, "fyr.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v := &env{db: db, e: e2ee.New(db, e2ee.Options{ServerName: server, MaxInbox: 3})}
	alice := v.newDevice(t, user("alice"), "ALICE1")
	bob := v.newDevice(t, user("bob"), "BOB1")
	for i := range 5 {
		if err := v.e.SendToDevice(ctx, alice.user, alice.id, "m.test", fmt.Sprint(i),
			map[id.UserID]map[id.DeviceID]json.RawMessage{bob.user: {bob.id: msg(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := inbox(t, v, bob, 0, 0)
	if len(got) != 3 || got[0].Content.N != 2 || got[2].Content.N != 4 {
		t.Errorf("bounded inbox holds %v, want the newest 3 (2, 3, 4)", got)
	}
}
