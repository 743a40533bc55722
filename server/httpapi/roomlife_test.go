package httpapi_test

import (
	"context"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/server/servertest"
)

// TestRoomWholeLife takes three users through a room's whole life with a real client:
// create, invite, join, talk, edit, react, thread, redact, change power, kick, ban, upgrade
// and leave.
func TestRoomWholeLife(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	carol := s.Register(t, "carol", "correct horse battery")
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Kris", Preset: "private_chat",
		Invite: []id.UserID{bob.UserID, carol.UserID}})
	_, err := bob.JoinRoomByID(ctx, room)
	must("bob joins", err)
	_, err = carol.JoinRoomByID(ctx, room)
	must("carol joins", err)

	root, err := alice.SendText(ctx, room, "Vattnet stiger")
	must("alice talks", err)
	_, err = bob.SendMessageEvent(ctx, room, event.EventMessage, map[string]any{
		"msgtype": "m.text", "body": "* Vattnet stiger snabbt",
		"m.new_content": map[string]any{"msgtype": "m.text", "body": "Vattnet stiger snabbt"},
		"m.relates_to":  map[string]any{"rel_type": "m.replace", "event_id": root.EventID}})
	must("bob's edit of alice's message is stored", err)
	edit, err := alice.SendMessageEvent(ctx, room, event.EventMessage, map[string]any{
		"msgtype": "m.text", "body": "* Vattnet stiger snabbt!",
		"m.new_content": map[string]any{"msgtype": "m.text", "body": "Vattnet stiger snabbt!"},
		"m.relates_to":  map[string]any{"rel_type": "m.replace", "event_id": root.EventID}})
	must("alice edits", err)
	_, err = carol.SendReaction(ctx, room, root.EventID, "👍")
	must("carol reacts", err)
	_, err = carol.SendReaction(ctx, room, root.EventID, "👍")
	if code, _ := servertest.ErrCode(err); code != "M_DUPLICATE_ANNOTATION" {
		t.Fatalf("the same reaction twice: %v", err)
	}
	reply, err := bob.SendMessageEvent(ctx, room, event.EventMessage, map[string]any{
		"msgtype": "m.text", "body": "Jag kommer",
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root.EventID}})
	must("bob replies in a thread", err)

	// Carol sees alice's edit (not bob's) and the thread bundled on the root.
	ev, err := carol.GetEvent(ctx, room, root.EventID)
	must("carol reads the root", err)
	rel := ev.Unsigned.Relations
	if rel == nil || rel.LatestEdit == nil || rel.LatestEdit.ID != edit.EventID {
		t.Fatalf("bundled edit: %+v", rel)
	}
	if rel.Thread == nil || rel.Thread.Count != 1 || rel.Thread.LatestEvent.ID != reply.EventID {
		t.Fatalf("bundled thread: %+v", rel.Thread)
	}

	// Bob may not redact alice's message; alice may.
	_, err = bob.RedactEvent(ctx, room, root.EventID)
	if code, status := servertest.ErrCode(err); code != "M_FORBIDDEN" || status != 403 {
		t.Fatalf("bob redacts alice's message: %s %d", code, status)
	}
	_, err = alice.RedactEvent(ctx, room, reply.EventID)
	must("alice redacts bob's reply", err)

	// Power: alice makes bob a moderator; bob kicks carol, carol rejoins (invite-only: she
	// cannot), alice re-invites, bob bans carol.
	var pl event.PowerLevelsEventContent
	must("read power levels", alice.StateEvent(ctx, room, event.StatePowerLevels, "", &pl))
	pl.SetUserLevel(bob.UserID, 50)
	_, err = alice.SendStateEvent(ctx, room, event.StatePowerLevels, "", &pl)
	must("alice promotes bob", err)
	_, err = bob.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: carol.UserID, Reason: "test"})
	must("bob kicks carol", err)
	if _, err = carol.JoinRoomByID(ctx, room); err == nil {
		t.Fatal("carol rejoins an invite-only room after a kick")
	}
	_, err = bob.BanUser(ctx, room, &mautrix.ReqBanUser{UserID: carol.UserID})
	must("bob bans carol", err)
	_, err = alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: carol.UserID})
	if code, _ := servertest.ErrCode(err); code != "M_FORBIDDEN" {
		t.Fatalf("inviting a banned user: %v", err)
	}

	// Upgrade: the old room points at the new one.
	var up struct {
		ReplacementRoom id.RoomID `json:"replacement_room"`
	}
	_, err = alice.MakeRequest(ctx, "POST", alice.BuildClientURL("v3", "rooms", room, "upgrade"), map[string]any{"new_version": "12"}, &up)
	must("alice upgrades the room", err)
	var tomb event.TombstoneEventContent
	must("read the tombstone", bob.StateEvent(ctx, room, event.StateTombstone, "", &tomb))
	if tomb.ReplacementRoom != up.ReplacementRoom {
		t.Fatalf("tombstone points at %s, want %s", tomb.ReplacementRoom, up.ReplacementRoom)
	}
	// The new room keeps the join rule (invite): as Element does, alice invites the members.
	_, err = alice.InviteUser(ctx, up.ReplacementRoom, &mautrix.ReqInviteUser{UserID: bob.UserID})
	must("alice invites bob to the new room", err)
	_, err = bob.JoinRoomByID(ctx, up.ReplacementRoom)
	must("bob follows the upgrade", err)
	_, err = bob.SendText(ctx, up.ReplacementRoom, "här")
	must("bob talks in the new room", err)

	// Everyone leaves the old room; bob forgets it.
	_, err = bob.LeaveRoom(ctx, room)
	must("bob leaves", err)
	_, err = bob.ForgetRoom(ctx, room)
	must("bob forgets", err)
	rooms, err := bob.JoinedRooms(ctx)
	must("bob's rooms", err)
	if len(rooms.JoinedRooms) != 1 || rooms.JoinedRooms[0] != up.ReplacementRoom {
		t.Fatalf("bob's joined rooms: %v", rooms.JoinedRooms)
	}
}
