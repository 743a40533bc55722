package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/server/servertest"
)

// waitFor polls cond until it holds or the deadline passes (federation delivery is
// asynchronous; the deadline is a hang guard, not a speed assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func bodies(t *testing.T, c *mautrix.Client, room id.RoomID) []string {
	t.Helper()
	resp, err := c.Messages(context.Background(), room, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		t.Fatalf("messages: %v", err)
	}
	var out []string
	for i := len(resp.Chunk) - 1; i >= 0; i-- {
		if ev := resp.Chunk[i]; ev.Type == event.EventMessage {
			out = append(out, fmt.Sprint(ev.Content.Raw["body"]))
		}
	}
	return out
}

func TestRoomAcrossTwoServers(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	hs1, hs2 := fed["hs1.test"], fed["hs2.test"]
	alice := hs1.Register(t, "alice", "correct horse battery")
	bob := hs2.Register(t, "bob", "correct horse battery")
	for _, v := range []id.RoomVersion{"1", "2", "10", "12"} {
		t.Run("v"+string(v), func(t *testing.T) {
			resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomVersion: v,
				RoomAliasName: "field" + string(v), Name: "Field team"})
			if err != nil {
				t.Fatal(err)
			}
			room := resp.RoomID
			for i := range 30 {
				alice.SendText(ctx, room, fmt.Sprint("history ", i))
			}
			alice.SendText(ctx, room, "before bob")
			joined, err := bob.JoinRoom(ctx, "#field"+string(v)+":hs1.test", nil)
			if err != nil {
				t.Fatalf("bob joins over federation: %v", err)
			}
			if joined.RoomID != room {
				t.Fatalf("joined %s, want %s", joined.RoomID, room)
			}
			var name event.RoomNameEventContent
			if err := bob.StateEvent(ctx, room, event.StateRoomName, "", &name); err != nil || name.Name != "Field team" {
				t.Fatalf("bob reads the room name on hs2: %q %v", name.Name, err)
			}
			// Bob reads the history from before he joined: hs2 backfills it from hs1.
			var history []string
			from := ""
			for range 20 {
				resp, err := bob.Messages(ctx, room, from, "", mautrix.DirectionBackward, nil, 8)
				if err != nil {
					t.Fatalf("bob pages back: %v", err)
				}
				for _, ev := range resp.Chunk {
					if ev.Type == event.EventMessage {
						history = append(history, fmt.Sprint(ev.Content.Raw["body"]))
					}
				}
				if resp.End == "" {
					break
				}
				from = resp.End
			}
			if len(history) != 31 || history[0] != "before bob" || history[30] != "history 0" {
				t.Fatalf("bob's backfilled history: %d messages %q", len(history), history)
			}
			alice.SendText(ctx, room, "hello bob")
			waitFor(t, "alice's message on hs2", func() bool {
				b := bodies(t, bob, room)
				return len(b) > 0 && b[len(b)-1] == "hello bob"
			})
			if _, err := bob.SendText(ctx, room, "hello alice"); err != nil {
				t.Fatalf("bob sends: %v", err)
			}
			waitFor(t, "bob's message on hs1", func() bool {
				b := bodies(t, alice, room)
				return len(b) > 0 && b[len(b)-1] == "hello alice"
			})
			members, err := alice.JoinedMembers(ctx, room)
			if err != nil || len(members.Joined) != 2 {
				t.Fatalf("hs1 sees members %v, %v", members, err)
			}
		})
	}
}

// memberEvent returns a user's member event as c sees it in the room's state.
func memberEvent(t *testing.T, c *mautrix.Client, room id.RoomID, user id.UserID) *event.Event {
	t.Helper()
	evs, err := c.State(context.Background(), room)
	if err != nil {
		t.Fatalf("state: %v", err)
	}
	ev := evs[event.StateMember][string(user)]
	if ev == nil {
		t.Fatalf("no member event for %s", user)
	}
	return ev
}

func TestInviteAcrossServers(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	hs1, hs2 := fed["hs1.test"], fed["hs2.test"]
	alice := hs1.Register(t, "alice", "correct horse battery")
	carol := hs2.Register(t, "carol", "correct horse battery")
	dave := hs2.Register(t, "dave", "correct horse battery")
	resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Private"})
	if err != nil {
		t.Fatal(err)
	}
	room := resp.RoomID
	for _, u := range []id.UserID{carol.UserID, dave.UserID} {
		if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: u}); err != nil {
			t.Fatalf("invite %s: %v", u, err)
		}
	}
	membership := func(c *mautrix.Client, u id.UserID) string {
		var m event.MemberEventContent
		if err := c.StateEvent(ctx, room, event.StateMember, string(u), &m); err != nil {
			return "error: " + err.Error()
		}
		return string(m.Membership)
	}
	if m := membership(carol, carol.UserID); m != "invite" {
		t.Fatalf("carol's membership on hs2 = %s", m)
	}
	if _, err := carol.JoinRoomByID(ctx, room); err != nil {
		t.Fatalf("carol accepts: %v", err)
	}
	carol.SendText(ctx, room, "carol is here")
	waitFor(t, "carol's message on hs1", func() bool {
		b := bodies(t, alice, room)
		return len(b) > 0 && b[len(b)-1] == "carol is here"
	})
	// Dave declines; hs1 learns of it.
	if _, err := dave.LeaveRoom(ctx, room); err != nil {
		t.Fatalf("dave declines: %v", err)
	}
	waitFor(t, "dave's rejection on hs1", func() bool { return membership(alice, dave.UserID) == "leave" })
	// Carol's join on hs2 carries her invite as prev_content, is_direct included.
	joinEv := memberEvent(t, carol, room, carol.UserID)
	if pc := joinEv.Unsigned.PrevContent; pc == nil || pc.Raw["membership"] != "invite" || joinEv.Unsigned.PrevSender != alice.UserID {
		t.Errorf("carol's join on hs2 lacks her invite as prev_content: %+v", joinEv.Unsigned)
	}
	// The inviter rescinds an invite: the invitee's server learns of it though it is not in
	// the room. Another member cannot rescind it for them.
	erin := hs2.Register(t, "erin", "correct horse battery")
	frank := hs2.Register(t, "frank", "correct horse battery")
	alice2 := hs1.Register(t, "alice2", "correct horse battery")
	// A room hs2 has no member in.
	resp, err = alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{alice2.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	room = resp.RoomID
	if _, err := alice2.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	for _, inv := range []struct {
		by *mautrix.Client
		to id.UserID
	}{{alice, erin.UserID}, {alice2, frank.UserID}} {
		if _, err := inv.by.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: inv.to}); err != nil {
			t.Fatalf("invite %s: %v", inv.to, err)
		}
	}
	waitFor(t, "the invites on hs2", func() bool {
		return membership(erin, erin.UserID) == "invite" && membership(frank, frank.UserID) == "invite"
	})
	// Frank's first: events to hs2 go in order, so once erin's withdrawal arrived, the
	// attempt on frank's invite had too.
	for _, u := range []id.UserID{frank.UserID, erin.UserID} {
		if _, err := alice.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: u, Reason: "rescinded"}); err != nil {
			t.Fatalf("kick %s: %v", u, err)
		}
	}
	waitFor(t, "erin's rescinded invite on hs2", func() bool { return membership(erin, erin.UserID) == "leave" })
	marker, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{frank.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "frank's second invite", func() bool {
		var m event.MemberEventContent
		return frank.StateEvent(ctx, marker.RoomID, event.StateMember, string(frank.UserID), &m) == nil && m.Membership == "invite"
	})
	if m := membership(frank, frank.UserID); m != "invite" {
		t.Errorf("a member who did not invite frank rescinded his invite: %s", m)
	}
	// An invite to a room everyone has since left can still be declined: the inviting
	// server will not take the leave, so it is recorded on hs2 alone.
	gina := hs2.Register(t, "gina", "correct horse battery")
	empty, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{gina.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "gina's invite", func() bool {
		var m event.MemberEventContent
		return gina.StateEvent(ctx, empty.RoomID, event.StateMember, string(gina.UserID), &m) == nil && m.Membership == "invite"
	})
	if _, err := alice.LeaveRoom(ctx, empty.RoomID); err != nil {
		t.Fatal(err)
	}
	if _, err := gina.LeaveRoom(ctx, empty.RoomID); err != nil {
		t.Fatalf("gina declines the invite to an empty room: %v", err)
	}
	resp2, err := gina.FullSyncRequest(ctx, mautrix.ReqSync{FilterID: `{"room":{"include_leave":true}}`})
	if err != nil {
		t.Fatal(err)
	}
	if lr := resp2.Rooms.Leave[empty.RoomID]; lr == nil || len(lr.Timeline.Events) == 0 {
		t.Errorf("gina's declined invite is not in the leave section: %+v", lr)
	}
	// Inviting a user who does not exist is refused by their server.
	// Inviting a user on a server that cannot be reached is a bad gateway, not a 500.
	_, err = alice.InviteUser(ctx, marker.RoomID, &mautrix.ReqInviteUser{UserID: "@nobody:unreachable.invalid"})
	if code, status := servertest.ErrCode(err); status != 502 {
		t.Errorf("invite to an unreachable server: %s %d, want 502", code, status)
	}
	_, err = alice.InviteUser(ctx, marker.RoomID, &mautrix.ReqInviteUser{UserID: "@nobody:hs2.test"})
	if code, _ := servertest.ErrCode(err); code == "" {
		t.Fatal("inviting an unknown remote user succeeded")
	}
}

func TestPresenceAcrossServers(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	hs1, hs2 := fed["hs1.test"], fed["hs2.test"]
	alice := hs1.Register(t, "alice", "correct horse battery")
	bob := hs2.Register(t, "bob", "correct horse battery")
	resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoom(ctx, string(resp.RoomID), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable, StatusMsg: "in the field"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's presence on hs2", func() bool {
		p, err := bob.GetPresence(ctx, alice.UserID)
		return err == nil && p.Presence == event.PresenceUnavailable && p.StatusMsg == "in the field"
	})
}

// TestConcurrentChangesConverge sends messages and state changes from three servers at once,
// so each receives events that fork from its own, and checks that all three end with every
// message and the same state, in room versions with each state resolution algorithm.
func TestConcurrentChangesConverge(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test", "hs3.test")
	var clients []*mautrix.Client
	for _, n := range []string{"hs1.test", "hs2.test", "hs3.test"} {
		clients = append(clients, fed[n].Register(t, "u", "correct horse battery"))
	}
	// Room version 1 resolves forks with the original algorithm, 2 to 11 with v2.
	for _, v := range []id.RoomVersion{"11", "1", "2"} {
		t.Run("v"+string(v), func(t *testing.T) {
			resp, err := clients[0].CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat",
				RoomVersion:        v,
				PowerLevelOverride: &event.PowerLevelsEventContent{StateDefaultPtr: new(0), Users: map[id.UserID]int{clients[0].UserID: 100}}})
			if err != nil {
				t.Fatal(err)
			}
			room := resp.RoomID
			for _, c := range clients[1:] {
				if _, err := c.JoinRoom(ctx, string(room), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range clients {
				waitFor(t, "three members on "+c.UserID.Homeserver(), func() bool {
					m, err := c.JoinedMembers(ctx, room)
					return err == nil && len(m.Joined) == 3
				})
			}
			const each = 15
			done := make(chan error, len(clients))
			for i, c := range clients {
				go func() {
					for j := range each {
						if _, err := c.SendText(ctx, room, fmt.Sprintf("%d-%d", i, j)); err != nil {
							done <- err
							return
						}
						if j%5 == 0 {
							if _, err := c.SendStateEvent(ctx, room, event.StateTopic, "", map[string]any{"topic": fmt.Sprintf("topic %d-%d", i, j)}); err != nil {
								done <- err
								return
							}
						}
					}
					done <- nil
				}()
			}
			for range clients {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			// A final message from each server merges the forks it knows about.
			for _, c := range clients {
				waitFor(t, "all messages everywhere", func() bool { return len(bodies(t, c, room)) >= len(clients)*each })
			}
			clients[0].SendText(ctx, room, "merge")
			for _, c := range clients {
				waitFor(t, "the merge message everywhere", func() bool {
					b := bodies(t, c, room)
					return len(b) > 0 && b[len(b)-1] == "merge"
				})
			}
			topic := func(c *mautrix.Client) string {
				var tc event.TopicEventContent
				if err := c.StateEvent(ctx, room, event.StateTopic, "", &tc); err != nil {
					return "error: " + err.Error()
				}
				return tc.Topic
			}
			want := topic(clients[0])
			for _, c := range clients[1:] {
				waitFor(t, "the same topic everywhere", func() bool { return topic(c) == want })
			}
		})
	}
}

func TestSearchFindsRemoteMessages(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	alice := fed["hs1.test"].Register(t, "alice", "correct horse battery")
	bob := fed["hs2.test"].Register(t, "bob", "correct horse battery")
	resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoom(ctx, string(resp.RoomID), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
		t.Fatal(err)
	}
	alice.SendText(ctx, resp.RoomID, "översvämning vid älven")
	waitFor(t, "the message on hs2", func() bool { return len(bodies(t, bob, resp.RoomID)) == 1 })
	var res struct {
		SearchCategories struct {
			RoomEvents struct {
				Count int `json:"count"`
			} `json:"room_events"`
		} `json:"search_categories"`
	}
	_, err = bob.MakeRequest(ctx, "POST", bob.BuildClientURL("v3", "search"),
		map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "älven"}}}, &res)
	if err != nil || res.SearchCategories.RoomEvents.Count != 1 {
		t.Fatalf("bob searches for a message from hs1: %d results, %v", res.SearchCategories.RoomEvents.Count, err)
	}
}

// Another server reads history as its users may: under "joined" visibility the messages from
// before its first user joined reach it redacted (the graph stays whole), under "shared" whole.
func TestHistoryVisibilityForServers(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	hs1, hs2 := fed["hs1.test"], fed["hs2.test"]
	alice := hs1.Register(t, "alice", "correct horse battery")
	bob := hs2.Register(t, "bob", "correct horse battery")
	for _, history := range []string{"joined", "shared"} {
		t.Run(history, func(t *testing.T) {
			resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat",
				InitialState: []*event.Event{{Type: event.StateHistoryVisibility, Content: event.Content{Raw: map[string]any{"history_visibility": history}}}}})
			if err != nil {
				t.Fatal(err)
			}
			room := resp.RoomID
			secret, err := alice.SendText(ctx, room, "before bob")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bob.JoinRoom(ctx, string(room), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
				t.Fatal(err)
			}
			join := memberEvent(t, alice, room, bob.UserID).ID
			create := func() id.EventID {
				evs, err := alice.State(ctx, room)
				if err != nil {
					t.Fatal(err)
				}
				return evs[event.StateCreate][""].ID
			}()
			evs, err := hs1.Rooms.MissingEvents(ctx, "hs2.test", room, []id.EventID{create}, []id.EventID{join}, 10, 0)
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, raw := range evs {
				var ev struct {
					Type    string         `json:"type"`
					Content map[string]any `json:"content"`
				}
				json.Unmarshal(raw, &ev)
				if ev.Type != "m.room.message" {
					continue
				}
				found = true
				if _, whole := ev.Content["body"]; whole != (history == "shared") {
					t.Errorf("history %s: hs2 got the message before bob joined as %v", history, ev.Content)
				}
			}
			if !found {
				t.Fatalf("get_missing_events lacks %s: %d events", secret.EventID, len(evs))
			}
		})
	}
}

// Jumping to a date before this server joined asks the room's other servers, backfills down
// to the answer, and lets the client page on from it.
func TestTimestampToEventAcrossServers(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	hs1, hs2 := fed["hs1.test"], fed["hs2.test"]
	alice := hs1.Register(t, "alice", "correct horse battery")
	bob := hs2.Register(t, "bob", "correct horse battery")
	resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	room := resp.RoomID
	a, _ := alice.SendText(ctx, room, "A")
	time.Sleep(5 * time.Millisecond) // distinct timestamps for A and B
	b, _ := alice.SendText(ctx, room, "B")
	time.Sleep(5 * time.Millisecond)
	afterB := time.Now()
	time.Sleep(5 * time.Millisecond)
	if _, err := bob.JoinRoom(ctx, string(room), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
		t.Fatal(err)
	}
	got, err := bob.TimestampToEvent(ctx, room, afterB, mautrix.DirectionBackward)
	if err != nil {
		t.Fatalf("bob jumps to before his join: %v", err)
	}
	if got.EventID != b.EventID {
		t.Fatalf("timestamp_to_event backwards from after B = %s, want B %s", got.EventID, b.EventID)
	}
	// /context with limit 0: "start" is the position just before B.
	status, body, _ := hs2.Do(t, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(string(room))+"/context/"+url.PathEscape(string(b.EventID))+"?limit=0", bob.AccessToken, nil)
	var c struct{ Start string }
	if err := json.Unmarshal(body, &c); status != 200 || err != nil {
		t.Fatalf("context of B on hs2: %d %s", status, body)
	}
	page, err := bob.Messages(ctx, room, c.Start, "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	var sawA bool
	for _, ev := range page.Chunk {
		sawA = sawA || ev.ID == a.EventID
	}
	if !sawA {
		t.Errorf("paging back from B on hs2 does not reach A: %d events", len(page.Chunk))
	}
	// Forwards from before the room existed finds its first event, on hs1's word.
	first, err := bob.TimestampToEvent(ctx, room, afterB.Add(-time.Hour), mautrix.DirectionForward)
	if err != nil || first.EventID == "" {
		t.Fatalf("forwards from an hour before: %v %v", first, err)
	}
	if fresh, err := alice.TimestampToEvent(ctx, room, afterB.Add(-time.Hour), mautrix.DirectionForward); err != nil || fresh.EventID != first.EventID {
		t.Errorf("hs2 found %s, hs1 %v (%v)", first.EventID, fresh, err)
	}
}
