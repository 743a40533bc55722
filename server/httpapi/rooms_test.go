package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/server/servertest"
)

func mustCreate(t *testing.T, c *mautrix.Client, req *mautrix.ReqCreateRoom) id.RoomID {
	t.Helper()
	resp, err := c.CreateRoom(context.Background(), req)
	if err != nil {
		t.Fatalf("createRoom: %v", err)
	}
	return resp.RoomID
}

func TestRoomLifeBetweenTwoUsers(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	for _, v := range []id.RoomVersion{"10", "11", "12"} {
		t.Run("v"+string(v), func(t *testing.T) {
			room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Crisis team", Topic: "Flood", RoomVersion: v,
				Invite: []id.UserID{bob.UserID}, Preset: "private_chat"})
			if _, err := bob.JoinRoomByID(ctx, room); err != nil {
				t.Fatalf("bob joins: %v", err)
			}
			var sent []id.EventID
			for i := range 25 {
				resp, err := alice.SendText(ctx, room, fmt.Sprintf("message %d", i))
				if err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				sent = append(sent, resp.EventID)
			}
			// Bob pages back through everything, in order, without gaps or duplicates.
			var got []id.EventID
			from := ""
			for range 20 {
				resp, err := bob.Messages(ctx, room, from, "", mautrix.DirectionBackward, nil, 7)
				if err != nil {
					t.Fatalf("messages: %v", err)
				}
				for _, ev := range resp.Chunk {
					if ev.Type == event.EventMessage {
						got = append(got, ev.ID)
					}
				}
				if resp.End == "" {
					break
				}
				from = resp.End
			}
			if len(got) != len(sent) {
				t.Fatalf("paged %d messages, sent %d", len(got), len(sent))
			}
			for i := range sent {
				if got[len(got)-1-i] != sent[i] {
					t.Fatalf("message %d out of order", i)
				}
			}
			// State as both see it.
			var name event.RoomNameEventContent
			if err := bob.StateEvent(ctx, room, event.StateRoomName, "", &name); err != nil || name.Name != "Crisis team" {
				t.Fatalf("room name = %q, %v", name.Name, err)
			}
			members, err := alice.JoinedMembers(ctx, room)
			if err != nil || len(members.Joined) != 2 {
				t.Fatalf("joined members = %v, %v", members, err)
			}
			// Bob may not change the name (state_default 50), and leaves.
			_, err = bob.SendStateEvent(ctx, room, event.StateRoomName, "", map[string]any{"name": "mine"})
			if code, status := servertest.ErrCode(err); code != "M_FORBIDDEN" || status != 403 {
				t.Fatalf("bob renames: %s %d", code, status)
			}
			// Redaction prunes content.
			if _, err := alice.RedactEvent(ctx, room, sent[0]); err != nil {
				t.Fatalf("redact: %v", err)
			}
			ev, err := bob.GetEvent(ctx, room, sent[0])
			if err != nil {
				t.Fatalf("get redacted event: %v", err)
			}
			if len(ev.Content.Raw) != 0 || ev.Unsigned.RedactedBecause == nil {
				t.Fatalf("redacted event content %v, redacted_because %v", ev.Content.Raw, ev.Unsigned.RedactedBecause)
			}
			if _, err := bob.LeaveRoom(ctx, room); err != nil {
				t.Fatalf("leave: %v", err)
			}
			// After leaving, Bob still reads what he saw, and nothing new.
			alice.SendText(ctx, room, "after bob left")
			resp, err := bob.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 5)
			if err != nil {
				t.Fatalf("messages after leaving: %v", err)
			}
			for _, ev := range resp.Chunk {
				if ev.Type == event.EventMessage && ev.Content.Raw["body"] == "after bob left" {
					t.Fatal("bob sees a message sent after he left")
				}
			}
			rooms, err := bob.JoinedRooms(ctx)
			if err != nil || len(rooms.JoinedRooms) != 0 {
				t.Fatalf("bob's joined rooms = %v, %v", rooms, err)
			}
		})
	}
}

func TestSendIsIdempotentPerTransaction(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{})
	first, err := alice.SendMessageEvent(ctx, room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "hi"}, mautrix.ReqSendEvent{TransactionID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := alice.SendMessageEvent(ctx, room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "hi"}, mautrix.ReqSendEvent{TransactionID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if first.EventID != again.EventID {
		t.Fatalf("same transaction gave %s then %s", first.EventID, again.EventID)
	}
	// The scope is one device and one endpoint path: another room or event type is a new
	// request, as is the same ID after logging in again (a new device).
	other := mustCreate(t, alice, &mautrix.ReqCreateRoom{})
	inOther, err := alice.SendMessageEvent(ctx, other, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "hi"}, mautrix.ReqSendEvent{TransactionID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	otherType, err := alice.SendMessageEvent(ctx, room, event.EventSticker, map[string]any{"body": "hi", "url": "mxc://x/y", "info": map[string]any{}}, mautrix.ReqSendEvent{TransactionID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	redacted, err := alice.RedactEvent(ctx, room, first.EventID, mautrix.ReqRedact{TxnID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[id.EventID]bool{}
	for _, e := range []id.EventID{first.EventID, inOther.EventID, otherType.EventID, redacted.EventID} {
		if seen[e] {
			t.Fatalf("transaction t1 on different endpoints gave the same event %s", e)
		}
		seen[e] = true
	}
}

func TestRoomRefusals(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	eve := s.Register(t, "eve", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{})
	v11 := mustCreate(t, alice, &mautrix.ReqCreateRoom{RoomVersion: "11"})
	cases := []struct {
		name   string
		err    error
		code   string
		status int
	}{
		{"unknown room", func() error {
			_, err := alice.SendText(ctx, id.RoomID("!nope:"+s.UserID("x").Homeserver()), "x")
			return err
		}(), "M_NOT_FOUND", 404},
		{"not a member", func() error { _, err := eve.SendText(ctx, room, "x"); return err }(), "M_FORBIDDEN", 403},
		{"join invite-only", func() error { _, err := eve.JoinRoomByID(ctx, room); return err }(), "M_FORBIDDEN", 403},
		{"creator listed in a v12 override", func() error {
			_, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{RoomVersion: "12",
				PowerLevelOverride: &event.PowerLevelsEventContent{Users: map[id.UserID]int{alice.UserID: 100}}})
			return err
		}(), "M_BAD_JSON", 400},
		{"bad version", func() error {
			_, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{RoomVersion: "99"})
			return err
		}(), "M_UNSUPPORTED_ROOM_VERSION", 400},
		{"too large", func() error {
			big := make([]byte, 70000)
			for i := range big {
				big[i] = 'a'
			}
			_, err := alice.SendText(ctx, room, string(big))
			return err
		}(), "M_TOO_LARGE", 413},
		{"lock out power", func() error {
			_, err := alice.SendStateEvent(ctx, v11, event.StatePowerLevels, "", map[string]any{"users": map[string]int{}})
			return err
		}(), "M_FORBIDDEN", 403},
		{"creator in v12 power levels", func() error {
			_, err := alice.SendStateEvent(ctx, room, event.StatePowerLevels, "", map[string]any{"users": map[string]int{string(alice.UserID): 100}})
			return err
		}(), "M_BAD_JSON", 400},
		{"power level beyond canonical JSON", func() error {
			_, err := alice.SendStateEvent(ctx, room, event.StatePowerLevels, "", map[string]any{"users_default": float64(1 << 60)})
			return err
		}(), "M_BAD_JSON", 400},
		{"invalid additional creator", func() error {
			_, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{CreationContent: map[string]any{"additional_creators": []string{"@bob:bad domain!"}}})
			return err
		}(), "M_BAD_JSON", 400},
		{"unknown event", func() error { _, err := alice.GetEvent(ctx, room, "$nope"); return err }(), "M_NOT_FOUND", 404},
		{"bad dir", func() error {
			_, err := alice.Messages(ctx, room, "", "", mautrix.Direction('x'), nil, 5)
			return err
		}(), "M_INVALID_PARAM", 400},
		{"read as stranger", func() error { _, err := eve.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 5); return err }(), "M_FORBIDDEN", 403},
	}
	for _, c := range cases {
		code, status := servertest.ErrCode(c.err)
		if code != c.code || status != c.status {
			t.Errorf("%s: got %s %d (%v), want %s %d", c.name, code, status, c.err, c.code, c.status)
		}
	}
}

// TestRoomResponsesMatchSpec checks the bodies of the room endpoints against the spec's
// OpenAPI schemas.
func TestRoomResponsesMatchSpec(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	tok := alice.AccessToken
	do := func(method, path, body string) []byte {
		t.Helper()
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		status, b, _ := s.Do(t, method, "/_matrix/client/v3"+path, tok, r)
		if status != 200 {
			t.Fatalf("%s %s: %d %s", method, path, status, b)
		}
		return b
	}
	b := do("POST", "/createRoom", `{"name":"Spec","topic":"shapes","preset":"public_chat","room_alias_name":"spec"}`)
	servertest.CheckShape(t, "create_room.yaml", "POST", "/createRoom", 200, b)
	var created struct {
		RoomID id.RoomID `json:"room_id"`
	}
	json.Unmarshal(b, &created)
	room := url.PathEscape(string(created.RoomID))
	b = do("PUT", "/rooms/"+room+"/send/m.room.message/t1", `{"msgtype":"m.text","body":"hello"}`)
	servertest.CheckShape(t, "room_send.yaml", "PUT", "/rooms/{roomId}/send/{eventType}/{txnId}", 200, b)
	var sent struct {
		EventID id.EventID `json:"event_id"`
	}
	json.Unmarshal(b, &sent)
	ev := url.PathEscape(string(sent.EventID))
	b = do("PUT", "/rooms/"+room+"/state/m.room.topic", `{"topic":"new"}`)
	servertest.CheckShape(t, "room_state.yaml", "PUT", "/rooms/{roomId}/state/{eventType}/{stateKey}", 200, b)
	servertest.CheckShape(t, "message_pagination.yaml", "GET", "/rooms/{roomId}/messages", 200,
		do("GET", "/rooms/"+room+"/messages?dir=b&limit=5", ""))
	servertest.CheckShape(t, "rooms.yaml", "GET", "/rooms/{roomId}/event/{eventId}", 200, do("GET", "/rooms/"+room+"/event/"+ev, ""))
	servertest.CheckShape(t, "rooms.yaml", "GET", "/rooms/{roomId}/state", 200, do("GET", "/rooms/"+room+"/state", ""))
	servertest.CheckShape(t, "rooms.yaml", "GET", "/rooms/{roomId}/state/{eventType}/{stateKey}", 200,
		do("GET", "/rooms/"+room+"/state/m.room.name/", ""))
	servertest.CheckShape(t, "rooms.yaml", "GET", "/rooms/{roomId}/members", 200, do("GET", "/rooms/"+room+"/members", ""))
	servertest.CheckShape(t, "rooms.yaml", "GET", "/rooms/{roomId}/joined_members", 200, do("GET", "/rooms/"+room+"/joined_members", ""))
	servertest.CheckShape(t, "list_joined_rooms.yaml", "GET", "/joined_rooms", 200, do("GET", "/joined_rooms", ""))
	servertest.CheckShape(t, "event_context.yaml", "GET", "/rooms/{roomId}/context/{eventId}", 200,
		do("GET", "/rooms/"+room+"/context/"+ev+"?limit=4", ""))
	b = do("PUT", "/rooms/"+room+"/redact/"+ev+"/r1", `{"reason":"oops"}`)
	servertest.CheckShape(t, "redaction.yaml", "PUT", "/rooms/{roomId}/redact/{eventId}/{txnId}", 200, b)
	b = do("POST", "/join/"+url.PathEscape("#spec:"+alice.UserID.Homeserver()), `{}`)
	servertest.CheckShape(t, "joining.yaml", "POST", "/join/{roomIdOrAlias}", 200, b)
	_ = ctx
}
