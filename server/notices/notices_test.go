package notices_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/server/notices"
	"fyr/server/rooms"
	"fyr/server/servertest"
)

var text = json.RawMessage(`{"msgtype":"m.text","body":"an update was installed"}`)

// invites lists the rooms user is invited to.
func invites(t *testing.T, s *servertest.Server, user id.UserID) []string {
	t.Helper()
	rs, err := s.DB.UserRooms(context.Background(), string(user), "invite")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.RoomID)
	}
	return out
}

func TestSendConcurrently(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	const n = 8
	ids := make([]id.EventID, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ids[i], errs[i] = s.Notices.Send(ctx, alice.UserID, "m.room.message", text, nil, notices.TxnKey{})
		})
	}
	wg.Wait()
	seen := map[id.EventID]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Send #%d: %v", i, errs[i])
		}
		seen[ids[i]] = true
	}
	if len(seen) != n {
		t.Errorf("%d notices made %d events, want %d", n, len(seen), n)
	}
	if got := invites(t, s, alice.UserID); len(got) != 1 {
		t.Errorf("concurrent notices invited alice to %v, want one room", got)
	}
}

func TestSendTxn(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	key := notices.TxnKey{Admin: "@admin:localhost", Device: "DEV", ID: "1"}
	first, err := s.Notices.Send(ctx, alice.UserID, "m.room.message", text, nil, key)
	if err != nil {
		t.Fatal(err)
	}
	// The key decides, not the notice: the same key to someone else is the same notice.
	for _, to := range []id.UserID{alice.UserID, bob.UserID} {
		if again, err := s.Notices.Send(ctx, to, "m.room.message", text, nil, key); err != nil || again != first {
			t.Errorf("Send with the same key to %s = %s, %v; want %s", to, again, err, first)
		}
	}
	if got := invites(t, s, bob.UserID); len(got) != 0 {
		t.Errorf("a repeated key invited bob to %v", got)
	}
	for _, other := range []notices.TxnKey{
		{Admin: "@admin:localhost", Device: "OTHER", ID: "1"},
		{Admin: "@root:localhost", Device: "DEV", ID: "1"},
		{Admin: "@admin:localhost", Device: "DEV", ID: "2"},
		{},
	} {
		if got, err := s.Notices.Send(ctx, alice.UserID, "m.room.message", text, nil, other); err != nil || got == first {
			t.Errorf("Send with key %+v = %s, %v; want a new event", other, got, err)
		}
	}
	// A refused notice records no key: the same key later sends.
	bad := notices.TxnKey{Admin: "@admin:localhost", Device: "DEV", ID: "3"}
	if _, err := s.Notices.Send(ctx, "@nobody:localhost", "m.room.message", text, nil, bad); !errors.Is(err, notices.ErrUnknownUser) {
		t.Fatalf("Send to nobody = %v, want ErrUnknownUser", err)
	}
	if got, err := s.Notices.Send(ctx, alice.UserID, "m.room.message", text, nil, bad); err != nil || got == "" {
		t.Errorf("Send after a refusal with the same key = %q, %v", got, err)
	}
}

// TestConfigChanges restarts with a new display name, then a new localpart: the account is
// renamed in its rooms, and a new account starts new rooms while the old name stays taken.
func TestConfigChanges(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	if _, err := s.Notices.Send(ctx, alice.UserID, "m.room.message", text, nil, notices.TxnKey{}); err != nil {
		t.Fatal(err)
	}
	room := invites(t, s, alice.UserID)[0]

	s.Config.Notices.DisplayName = "Fyr"
	s.Restart(t)
	if _, err := s.Notices.Send(ctx, alice.UserID, "m.room.message", text, nil, notices.TxnKey{}); err != nil {
		t.Fatal(err)
	}
	// The room hears of the new name from a goroutine: wait for its membership event.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var member struct {
			Displayname string `json:"displayname"`
		}
		ev, err := s.Rooms.StateEvent(ctx, rooms.Viewer{User: "@notices:localhost"}, id.RoomID(room), "m.room.member", "@notices:localhost")
		if err == nil {
			json.Unmarshal(ev.Content, &member)
		}
		if member.Displayname == "Fyr" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the notices account is still called %q in its room (%v)", member.Displayname, err)
		}
		time.Sleep(5 * time.Millisecond)
	}

	s.Config.Notices.Localpart = "fyr"
	s.Restart(t)
	if got := s.Notices.UserID(); got != "@fyr:localhost" {
		t.Errorf("UserID() = %s, want @fyr:localhost", got)
	}
	if _, err := s.Notices.Send(ctx, alice.UserID, "m.room.message", text, nil, notices.TxnKey{}); err != nil {
		t.Fatal(err)
	}
	if got := invites(t, s, alice.UserID); len(got) != 2 {
		t.Errorf("after the new localpart alice is invited to %v, want the old and a new room", got)
	}
	if err := s.Accounts.Available(ctx, "notices"); err == nil {
		t.Error("the old notices localpart became available")
	}
}
