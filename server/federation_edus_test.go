package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/server/servertest"
	"fyr/storage"
)

// sharedRoom creates a public room on hs1.test as alice, joins bob from hs2.test and waits
// until hs1 sees him joined, so that hs1 sends the room's EDUs to hs2.
func sharedRoom(t *testing.T, alice, bob *mautrix.Client) id.RoomID {
	t.Helper()
	ctx := context.Background()
	resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoom(ctx, string(resp.RoomID), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob joined on hs1", func() bool {
		m, err := alice.JoinedMembers(ctx, resp.RoomID)
		return err == nil && len(m.Joined) == 2
	})
	return resp.RoomID
}

func typingEDU(room id.RoomID, user id.UserID, typing bool) map[string]any {
	return map[string]any{"edu_type": "m.typing", "content": map[string]any{"room_id": room, "user_id": user, "typing": typing}}
}

func TestTypingAcrossServers(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	hs1, hs2 := fed["hs1.test"], fed["hs2.test"]
	alice := hs1.Register(t, "alice", "correct horse battery")
	bob := hs2.Register(t, "bob", "correct horse battery")
	hs1.Register(t, "carol", "correct horse battery")
	room := sharedRoom(t, alice, bob)
	typing := func() []id.UserID {
		users, _ := hs2.Ephemeral.Typing(room)
		return users
	}

	if _, err := alice.UserTyping(ctx, room, true, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice typing on hs2", func() bool { return slices.Equal(typing(), []id.UserID{alice.UserID}) })
	if _, err := alice.UserTyping(ctx, room, false, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice stopped typing on hs2", func() bool { return len(typing()) == 0 })

	// hs1 may speak only for its own users, and only for those in the room.
	sendEDUs(t, hs1, "hs2.test", "typing-refusals",
		typingEDU(room, bob.UserID, true),        // a user of hs2, joined, but not hs1's to announce
		typingEDU(room, "@carol:hs1.test", true), // hs1's user, not in the room
		typingEDU(room, alice.UserID, true))
	if got := typing(); !slices.Equal(got, []id.UserID{alice.UserID}) {
		t.Fatalf("typing on hs2 after the transaction = %v, want only alice", got)
	}

	// A room whose server ACL shuts hs1 out ignores hs1's typing notifications.
	resp, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	acl := resp.RoomID
	if _, err := alice.JoinRoom(ctx, string(acl), &mautrix.ReqJoinRoom{Via: []string{"hs2.test"}}); err != nil {
		t.Fatal(err)
	}
	sendEDUs(t, hs1, "hs2.test", "acl-before", typingEDU(acl, alice.UserID, true))
	if users, _ := hs2.Ephemeral.Typing(acl); !slices.Equal(users, []id.UserID{alice.UserID}) {
		t.Fatalf("typing before the ACL = %v, want alice", users)
	}
	sendEDUs(t, hs1, "hs2.test", "acl-stop", typingEDU(acl, alice.UserID, false))
	if _, err := bob.SendStateEvent(ctx, acl, event.StateServerACL, "", map[string]any{"allow": []string{"*"}, "deny": []string{"hs1.test"}}); err != nil {
		t.Fatal(err)
	}
	sendEDUs(t, hs1, "hs2.test", "acl-after", typingEDU(acl, alice.UserID, true))
	if users, _ := hs2.Ephemeral.Typing(acl); len(users) != 0 {
		t.Fatalf("typing in a room whose ACL bans hs1 = %v, want nobody", users)
	}
}

func receiptEDU(room id.RoomID, receipts map[id.UserID]id.EventID) map[string]any {
	users := map[id.UserID]any{}
	for u, ev := range receipts {
		users[u] = map[string]any{"event_ids": []id.EventID{ev}, "data": map[string]any{"ts": 1}}
	}
	return map[string]any{"edu_type": "m.receipt", "content": map[id.RoomID]any{room: map[string]any{"m.read": users}}}
}

func TestReceiptsAcrossServers(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	hs1, hs2 := fed["hs1.test"], fed["hs2.test"]
	alice := hs1.Register(t, "alice", "correct horse battery")
	bob := hs2.Register(t, "bob", "correct horse battery")
	hs1.Register(t, "carol", "correct horse battery")
	room := sharedRoom(t, alice, bob)
	var evs []id.EventID
	for _, text := range []string{"one", "two", "three"} {
		resp, err := alice.SendText(ctx, room, text)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, resp.EventID)
	}
	waitFor(t, "alice's messages on hs2", func() bool { return len(bodies(t, bob, room)) == 3 })
	// read is each user's public read receipt in the room, as hs2 holds it.
	read := func() map[id.UserID]id.EventID {
		rs, err := hs2.DB.ReceiptsSince(ctx, []string{string(room)}, 0, 0, "")
		if err != nil {
			t.Fatal(err)
		}
		out := map[id.UserID]id.EventID{}
		for _, r := range rs {
			if r.Type == storage.ReceiptRead {
				out[id.UserID(r.UserID)] = id.EventID(r.EventID)
			}
		}
		return out
	}

	// A private receipt stays on hs1: had it gone out as m.read, hs2 would hold alice at
	// "two" and refuse the older public receipt that follows.
	if err := alice.SendReceipt(ctx, room, evs[1], event.ReceiptTypeReadPrivate, nil); err != nil {
		t.Fatal(err)
	}
	if err := alice.SendReceipt(ctx, room, evs[0], event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's receipt on hs2", func() bool { return read()[alice.UserID] == evs[0] })

	// hs1 may speak only for its own joined users, about events in the room, and receipts
	// never move backwards.
	sendEDUs(t, hs1, "hs2.test", "receipt-refusals",
		receiptEDU(room, map[id.UserID]id.EventID{
			alice.UserID:      evs[2],
			bob.UserID:        evs[2], // a user of hs2
			"@carol:hs1.test": evs[2], // not in the room
		}),
		receiptEDU(room, map[id.UserID]id.EventID{alice.UserID: evs[1]}), // backwards
		receiptEDU("!unknown:hs1.test", map[id.UserID]id.EventID{alice.UserID: evs[2]}))
	got := read()
	if want := map[id.UserID]id.EventID{alice.UserID: evs[2]}; len(got) != 1 || got[alice.UserID] != evs[2] {
		t.Fatalf("receipts on hs2 = %v, want %v", got, want)
	}
	// Receipts name events of their own room, which hs2 must hold.
	other, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, err := bob.SendText(ctx, other.RoomID, "in another room")
	if err != nil {
		t.Fatal(err)
	}
	for name, ev := range map[string]id.EventID{"an unknown event": "$nowhere", "another room's event": elsewhere.EventID} {
		sendEDUs(t, hs1, "hs2.test", "receipt-"+string(ev), receiptEDU(room, map[id.UserID]id.EventID{alice.UserID: ev}))
		if got := read()[alice.UserID]; got != evs[2] {
			t.Fatalf("a receipt for %s moved alice to %s", name, got)
		}
	}
}
