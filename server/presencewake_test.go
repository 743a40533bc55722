package server_test

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/server/servertest"
)

// TestPresenceWakesRoomMates: a presence change wakes the waiting /sync of every local user
// who shares a room with its user, whether the user is local or on another server (an
// m.presence EDU), so that clients see it at once rather than at their long-poll's timeout.
func TestPresenceWakesRoomMates(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	hs1, hs2 := fed["hs1.test"], fed["hs2.test"]
	alice := hs1.Register(t, "alice", "correct horse battery")
	carol := hs1.Register(t, "carol", "correct horse battery")
	bob := hs2.Register(t, "bob", "correct horse battery")
	resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	room := resp.RoomID
	for _, c := range []*mautrix.Client{carol, bob} {
		if _, err := c.JoinRoom(ctx, string(room), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "three members on hs2", func() bool {
		m, err := bob.JoinedMembers(ctx, room)
		return err == nil && len(m.Joined) == 3
	})
	for i, tc := range []struct {
		name    string
		setter  *mautrix.Client
		watcher *servertest.Server
		user    id.UserID
	}{
		{"change on hs1, room-mate on hs1", alice, hs1, carol.UserID},
		{"change on hs1, room-mate on hs2", alice, hs2, bob.UserID},
		{"change on hs2, room-mate on hs1", bob, hs1, carol.UserID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			woken := tc.watcher.Sync.Notifier().Listen(tc.user)
			status := []string{"first", "second", "third"}[i]
			if err := tc.setter.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable, StatusMsg: status}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-woken:
			case <-time.After(20 * time.Second): // a hang guard, not a speed assertion
				t.Fatalf("%s's long-poll on %s was not woken", tc.user, tc.watcher.Config.ServerName)
			}
		})
	}
}
