package server_test

import (
	"context"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/server/servertest"
)

// TestOldRoomVersionsAcrossServers runs rooms of versions 1 and 2, whose events servers name
// themselves, across two servers: a room on hs2 that a user of hs1 joins, messages both
// ways, state changes from both sides, a redaction, a leave, and invites accepted and
// declined.
func TestOldRoomVersionsAcrossServers(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	hs1, hs2 := fed["hs1.test"], fed["hs2.test"]
	alice := hs1.Register(t, "alice", "correct horse battery")
	bob := hs2.Register(t, "bob", "correct horse battery")
	for _, v := range []id.RoomVersion{id.RoomV1, id.RoomV2} {
		t.Run("v"+string(v), func(t *testing.T) {
			carol := hs1.Register(t, "carol"+string(v), "correct horse battery")
			dave := hs1.Register(t, "dave"+string(v), "correct horse battery")
			resp, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomVersion: v,
				RoomAliasName: "old" + string(v), Name: "Old room"})
			if err != nil {
				t.Fatal(err)
			}
			room := resp.RoomID
			bob.SendText(ctx, room, "before alice")
			joined, err := alice.JoinRoom(ctx, "#old"+string(v)+":hs2.test", nil)
			if err != nil {
				t.Fatalf("alice joins a version %s room on hs2: %v", v, err)
			}
			if joined.RoomID != room {
				t.Fatalf("joined %s, want %s", joined.RoomID, room)
			}
			var create event.CreateEventContent
			if err := alice.StateEvent(ctx, room, event.StateCreate, "", &create); err != nil || create.RoomVersion != v {
				t.Fatalf("hs1 reads the create event: %q %v", create.RoomVersion, err)
			}
			waitFor(t, "alice's join on hs2", func() bool {
				m, err := bob.JoinedMembers(ctx, room)
				return err == nil && len(m.Joined) == 2
			})

			// Messages both ways.
			hello, err := alice.SendText(ctx, room, "hello bob")
			if err != nil {
				t.Fatalf("alice sends: %v", err)
			}
			waitFor(t, "alice's message on hs2", func() bool {
				b := bodies(t, bob, room)
				return len(b) > 0 && b[len(b)-1] == "hello bob"
			})
			bob.SendText(ctx, room, "hello alice")
			waitFor(t, "bob's message on hs1", func() bool {
				b := bodies(t, alice, room)
				return len(b) > 0 && b[len(b)-1] == "hello alice"
			})

			// State from both sides: bob renames the room and lets alice set the topic.
			if _, err := bob.SendStateEvent(ctx, room, event.StateRoomName, "", map[string]any{"name": "Renamed"}); err != nil {
				t.Fatalf("bob renames: %v", err)
			}
			var pl event.PowerLevelsEventContent
			if err := bob.StateEvent(ctx, room, event.StatePowerLevels, "", &pl); err != nil {
				t.Fatal(err)
			}
			pl.Users[alice.UserID] = 50
			if _, err := bob.SendStateEvent(ctx, room, event.StatePowerLevels, "", &pl); err != nil {
				t.Fatalf("bob raises alice: %v", err)
			}
			waitFor(t, "the new name and power on hs1", func() bool {
				var name event.RoomNameEventContent
				var got event.PowerLevelsEventContent
				return alice.StateEvent(ctx, room, event.StateRoomName, "", &name) == nil && name.Name == "Renamed" &&
					alice.StateEvent(ctx, room, event.StatePowerLevels, "", &got) == nil && got.Users[alice.UserID] == 50
			})
			if _, err := alice.SendStateEvent(ctx, room, event.StateTopic, "", map[string]any{"topic": "from hs1"}); err != nil {
				t.Fatalf("alice sets the topic: %v", err)
			}
			waitFor(t, "alice's topic on hs2", func() bool {
				var topic event.TopicEventContent
				return bob.StateEvent(ctx, room, event.StateTopic, "", &topic) == nil && topic.Topic == "from hs1"
			})

			// Alice redacts her own message (an event her server named): hs2 applies it.
			if _, err := alice.RedactEvent(ctx, room, hello.EventID); err != nil {
				t.Fatalf("alice redacts: %v", err)
			}
			waitFor(t, "the redaction on hs2", func() bool {
				ev, err := bob.GetEvent(ctx, room, hello.EventID)
				return err == nil && len(ev.Content.Raw) == 0
			})

			// Alice leaves; hs2 sees it.
			if _, err := alice.LeaveRoom(ctx, room); err != nil {
				t.Fatalf("alice leaves: %v", err)
			}
			waitFor(t, "alice's leave on hs2", func() bool {
				m, err := bob.JoinedMembers(ctx, room)
				return err == nil && len(m.Joined) == 1
			})
			rooms, err := alice.JoinedRooms(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rooms.JoinedRooms {
				if r == room {
					t.Fatal("hs1 still lists the room as joined")
				}
			}

			// Invites into the room, which hs1 has left: hs1 countersigns them; carol
			// accepts (make_join and send_join again), dave declines (make_leave, send_leave).
			for _, u := range []id.UserID{carol.UserID, dave.UserID} {
				if _, err := bob.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: u}); err != nil {
					t.Fatalf("bob invites %s: %v", u, err)
				}
			}
			if _, err := carol.JoinRoomByID(ctx, room); err != nil {
				t.Fatalf("carol accepts: %v", err)
			}
			if _, err := dave.LeaveRoom(ctx, room); err != nil {
				t.Fatalf("dave declines: %v", err)
			}
			membership := func(u id.UserID) string {
				var m event.MemberEventContent
				if err := bob.StateEvent(ctx, room, event.StateMember, string(u), &m); err != nil {
					return "error: " + err.Error()
				}
				return string(m.Membership)
			}
			waitFor(t, "carol's join and dave's leave on hs2", func() bool {
				return membership(carol.UserID) == "join" && membership(dave.UserID) == "leave"
			})
			carol.SendText(ctx, room, "carol is here")
			waitFor(t, "carol's message on hs2", func() bool {
				b := bodies(t, bob, room)
				return len(b) > 0 && b[len(b)-1] == "carol is here"
			})
		})
	}
}
