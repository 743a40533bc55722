package sync_test

import (
	"context"
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
	"fyr/server/servertest"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// The rooms engine calls the listener before Send returns, so the channels' state right
// after a write is the notifier's decision, not a race.
func TestNotifierWakesExactlyThoseConcerned(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice, bob, carol := s.UserID("alice"), s.UserID("bob"), s.UserID("carol")
	n := s.Sync.Notifier()
	room, err := s.Rooms.CreateRoom(ctx, alice, &rooms.CreateRequest{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rooms.Join(ctx, bob, room, "", nil); err != nil {
		t.Fatal(err)
	}
	send := func() {
		t.Helper()
		if _, err := s.Rooms.Send(ctx, rooms.Sender{User: alice}, room, "m.room.message", "", json.RawMessage(`{"body":"hi"}`)); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, want map[id.UserID]bool, chans map[id.UserID]<-chan struct{}) {
		t.Helper()
		for u, ch := range chans {
			if got := closed(ch); got != want[u] {
				t.Errorf("%s: %s woken = %v, want %v", what, u, got, want[u])
			}
		}
	}
	listen := func(users ...id.UserID) map[id.UserID]<-chan struct{} {
		m := map[id.UserID]<-chan struct{}{}
		for _, u := range users {
			m[u] = n.Listen(u)
		}
		return m
	}

	chans := listen(alice, bob, carol)
	send()
	check("message", map[id.UserID]bool{alice: true, bob: true}, chans)

	chans = listen(alice, bob, carol)
	if err := s.Rooms.Invite(ctx, alice, room, rooms.MemberChange{Target: carol}); err != nil {
		t.Fatal(err)
	}
	check("invite", map[id.UserID]bool{alice: true, bob: true, carol: true}, chans)

	chans = listen(carol)
	send()
	check("message while invited", map[id.UserID]bool{carol: true}, chans)

	chans = listen(bob, carol)
	if err := s.Rooms.Leave(ctx, carol, room, ""); err != nil {
		t.Fatal(err)
	}
	check("rejected invite", map[id.UserID]bool{bob: true, carol: true}, chans)

	chans = listen(bob, carol)
	send()
	check("message after rejecting", map[id.UserID]bool{bob: true}, chans)

	chans = listen(alice, bob, carol)
	n.Notify(carol)
	check("Notify", map[id.UserID]bool{carol: true}, chans)

	chans = listen(alice, bob, carol)
	n.NotifyRoom(room)
	check("NotifyRoom", map[id.UserID]bool{alice: true, bob: true}, chans)

	chans = listen(alice, bob, carol)
	n.NotifyAll()
	check("NotifyAll", map[id.UserID]bool{alice: true, bob: true, carol: true}, chans)

	n.NotifyRoom("!unknown:localhost") // neither panics nor wakes anyone
	n.Close()
	if !closed(n.Listen(alice)) {
		t.Error("Listen after Close blocks")
	}
}
