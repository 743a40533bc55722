package server_test

import (
	"context"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"fyr/server/servertest"
)

// TestKnockAcrossServers: a user knocks on another server's room by its alias, which their
// server asks the alias's server about (as join does); the room's admin lets them in with an
// invite and they join.
func TestKnockAcrossServers(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	hs1, hs2 := fed["hs1.test"], fed["hs2.test"]
	alice := hs1.Register(t, "alice", "correct horse battery")
	bob := hs2.Register(t, "bob", "correct horse battery")
	resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomAliasName: "door",
		InitialState: []*event.Event{{Type: event.StateJoinRules, Content: event.Content{Raw: map[string]any{"join_rule": "knock"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	room := resp.RoomID
	membership := func(c *mautrix.Client) event.Membership {
		var m event.MemberEventContent
		if err := c.StateEvent(ctx, room, event.StateMember, string(bob.UserID), &m); err != nil {
			return ""
		}
		return m.Membership
	}
	knocked, err := bob.KnockRoom(ctx, "#door:hs1.test", &mautrix.ReqKnockRoom{Reason: "let me in"})
	if err != nil {
		t.Fatalf("bob knocks by alias: %v", err)
	}
	if knocked.RoomID != room {
		t.Fatalf("bob knocked on %s, want %s", knocked.RoomID, room)
	}
	waitFor(t, "bob's knock on hs1", func() bool { return membership(alice) == event.MembershipKnock })
	if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatalf("alice lets bob in: %v", err)
	}
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatalf("bob joins: %v", err)
	}
	waitFor(t, "bob's join on hs1", func() bool { return membership(alice) == event.MembershipJoin })
	// An alias no server knows is refused as not found.
	_, err = bob.KnockRoom(ctx, "#nowhere:hs1.test", nil)
	if code, status := servertest.ErrCode(err); status != 404 || code != "M_NOT_FOUND" {
		t.Errorf("knock on an unknown remote alias: %d %s (%v), want 404 M_NOT_FOUND", status, code, err)
	}
}
