package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/server/config"
	"fyr/server/servertest"
	"fyr/storage"
)

const noticePath = "/_synapse/admin/v1/send_server_notice"

// registerAdmin registers a user and makes them a server admin.
func registerAdmin(t *testing.T, s *servertest.Server, localpart string) *mautrix.Client {
	t.Helper()
	c := s.Register(t, localpart, "correct horse battery")
	if err := s.DB.Write(context.Background(), func(tx *storage.Tx) error { return tx.SetAdmin(localpart, true) }); err != nil {
		t.Fatal(err)
	}
	return c
}

// sendNotice sends a notice through the admin API (PUT when txnID is set) and returns its
// event ID, failing the test on any other answer than 200.
func sendNotice(t *testing.T, s *servertest.Server, admin *mautrix.Client, body, txnID string) id.EventID {
	t.Helper()
	method, path := "POST", noticePath
	if txnID != "" {
		method, path = "PUT", noticePath+"/"+txnID
	}
	status, resp, _ := s.Do(t, method, path, admin.AccessToken, strings.NewReader(body))
	eventID := gjson.GetBytes(resp, "event_id").Str
	if status != 200 || !strings.HasPrefix(eventID, "$") {
		t.Fatalf("%s %s: %d %s", method, path, status, resp)
	}
	return id.EventID(eventID)
}

// noticeInvite syncs as c, as Complement's syncUntilInvite does, and returns the room of
// the invite whose stripped state starts with an event from sender ("" when there is none).
func noticeInvite(t *testing.T, s *servertest.Server, c *mautrix.Client, sender id.UserID) id.RoomID {
	t.Helper()
	status, body, _ := s.Do(t, "GET", "/_matrix/client/v3/sync", c.AccessToken, nil)
	if status != 200 {
		t.Fatalf("sync: %d %s", status, body)
	}
	invites := gjson.GetBytes(body, "rooms.invite")
	if invites.Get("*.invite_state.events.0.sender").Str != string(sender) {
		return ""
	}
	return id.RoomID(invites.Get("@keys.0").Str)
}

// TestServerNotices follows Complement's TestServerNotices step by step, with the notices
// account named as Complement expects it, and checks the room it leads to.
func TestServerNotices(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration, servertest.WithConfig(func(c *config.Config) {
		c.Notices.Localpart = "_server"
	}))
	admin := registerAdmin(t, s, "admin")
	alice := s.Register(t, "alice", "correct horse battery")
	system := s.UserID("_server")
	body := fmt.Sprintf(`{"user_id":%q,"content":{"msgtype":"m.text","body":"hello from server notices!"}}`, alice.UserID)
	var (
		eventID id.EventID
		roomID  id.RoomID
	)

	t.Run("not allowed as a normal user", func(t *testing.T) {
		status, resp, _ := s.Do(t, "POST", noticePath, alice.AccessToken, nil)
		wantStatus(t, "alice sends a notice without a body", status, resp, 403, "M_FORBIDDEN")
		status, resp, _ = s.Do(t, "POST", noticePath, alice.AccessToken, strings.NewReader(body))
		wantStatus(t, "alice sends a notice", status, resp, 403, "M_FORBIDDEN")
		status, resp, _ = s.Do(t, "PUT", noticePath+"/1", alice.AccessToken, strings.NewReader(body))
		wantStatus(t, "alice sends a notice with a transaction ID", status, resp, 403, "M_FORBIDDEN")
	})
	t.Run("allowed as an admin", func(t *testing.T) {
		eventID = sendNotice(t, s, admin, body, "")
	})
	t.Run("the invite comes from the notices account", func(t *testing.T) {
		if roomID = noticeInvite(t, s, alice, system); roomID == "" {
			t.Fatalf("alice has no invite from %s", system)
		}
	})
	t.Run("the invite cannot be rejected", func(t *testing.T) {
		_, err := alice.LeaveRoom(ctx, roomID)
		wantErr(t, "alice rejects the invite", err, "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM", 403)
		// Nor by the other ways of setting one's membership to leave.
		_, err = alice.KickUser(ctx, roomID, &mautrix.ReqKickUser{UserID: alice.UserID})
		wantErr(t, "alice kicks herself", err, "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM", 403)
		_, err = alice.SendStateEvent(ctx, roomID, event.StateMember, string(alice.UserID), map[string]any{"membership": "leave"})
		wantErr(t, "alice sets her membership to leave", err, "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM", 403)
		if got := noticeInvite(t, s, alice, system); got != roomID {
			t.Errorf("after the refusals alice's notices invite is %q, want %s", got, roomID)
		}
	})
	t.Run("alice can join and see the notice", func(t *testing.T) {
		if _, err := alice.JoinRoomByID(ctx, roomID); err != nil {
			t.Fatal(err)
		}
		resp, err := alice.FullSyncRequest(ctx, mautrix.ReqSync{})
		if err != nil {
			t.Fatal(err)
		}
		var notice *event.Event
		for _, ev := range resp.Rooms.Join[roomID].Timeline.Events {
			if ev.ID == eventID {
				notice = ev
			}
		}
		if notice == nil {
			t.Fatalf("the notice %s is not in alice's timeline of %s", eventID, roomID)
		}
		if notice.Sender != system || notice.Type != event.EventMessage || notice.Content.Raw["body"] != "hello from server notices!" {
			t.Errorf("notice = %s from %s with %v", notice.Type.Type, notice.Sender, notice.Content.Raw)
		}
	})
	t.Run("the room is tagged, named and read-only for alice", func(t *testing.T) {
		tags, err := alice.GetTags(ctx, roomID)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := tags.Tags["m.server_notice"]; !ok {
			t.Errorf("tags of the notices room = %v, want m.server_notice", tags.Tags)
		}
		var name event.RoomNameEventContent
		if err := alice.StateEvent(ctx, roomID, event.StateRoomName, "", &name); err != nil || name.Name != "Server notices" {
			t.Errorf("room name = %q, %v; want Server notices", name.Name, err)
		}
		var jr event.JoinRulesEventContent
		if err := alice.StateEvent(ctx, roomID, event.StateJoinRules, "", &jr); err != nil || jr.JoinRule != event.JoinRuleInvite {
			t.Errorf("join rule = %q, %v; want invite", jr.JoinRule, err)
		}
		var pl event.PowerLevelsEventContent
		if err := alice.StateEvent(ctx, roomID, event.StatePowerLevels, "", &pl); err != nil {
			t.Fatal(err)
		}
		if pl.GetUserLevel(alice.UserID) >= pl.GetEventLevel(event.EventMessage) {
			t.Errorf("power levels let alice send messages: users_default %d, events_default %d", pl.UsersDefault, pl.EventsDefault)
		}
		var member event.MemberEventContent
		if err := alice.StateEvent(ctx, roomID, event.StateMember, string(system), &member); err != nil || member.Displayname != "Server notices" {
			t.Errorf("the notices account's name in the room = %q, %v", member.Displayname, err)
		}
		_, err = alice.SendMessageEvent(ctx, roomID, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "thanks"})
		wantErr(t, "alice answers a notice", err, "M_FORBIDDEN", 403)
		_, err = alice.SendStateEvent(ctx, roomID, event.StateTopic, "", map[string]any{"topic": "mine"})
		wantErr(t, "alice sets the topic", err, "M_FORBIDDEN", 403)
		_, err = alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: admin.UserID})
		wantErr(t, "alice invites the admin", err, "M_FORBIDDEN", 403)
	})
	t.Run("alice can leave after joining", func(t *testing.T) {
		// She takes the tag off too; the next notice puts it back.
		if err := alice.RemoveTag(ctx, roomID, "m.server_notice"); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.LeaveRoom(ctx, roomID); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the next notice reinvites alice to the same room", func(t *testing.T) {
		again := sendNotice(t, s, admin, body, "")
		if got := noticeInvite(t, s, alice, system); got != roomID {
			t.Fatalf("after leaving, alice's notices invite is to %q, want %s", got, roomID)
		}
		// Joined again, she finds the notice that brought her back.
		if _, err := alice.JoinRoomByID(ctx, roomID); err != nil {
			t.Fatal(err)
		}
		tags, err := alice.GetTags(ctx, roomID)
		if _, ok := tags.Tags["m.server_notice"]; err != nil || !ok {
			t.Errorf("tags after the reinvite = %v, %v; want m.server_notice", tags.Tags, err)
		}
		resp, err := alice.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 5)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ev := range resp.Chunk {
			found = found || ev.ID == again
		}
		if !found {
			t.Errorf("the second notice %s is not among alice's latest events", again)
		}
	})
	t.Run("a transaction ID makes a notice idempotent", func(t *testing.T) {
		first := sendNotice(t, s, admin, body, "1")
		if second := sendNotice(t, s, admin, body, "1"); second != first {
			t.Errorf("the same transaction ID gave %s and %s", first, second)
		}
		if other := sendNotice(t, s, admin, body, "2"); other == first {
			t.Errorf("another transaction ID gave the same event %s", first)
		}
		// Transaction IDs belong to one device: the admin's other login sends anew.
		elsewhere := s.Login(t, "admin", "correct horse battery")
		if fromOther := sendNotice(t, s, elsewhere, body, "1"); fromOther == first {
			t.Errorf("transaction ID 1 from another device gave the first device's event %s", first)
		}
	})
}

func TestServerNoticeRefusals(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration, servertest.WithConfig(func(c *config.Config) {
		c.Client.MaxBodyBytes = 200_000
	}))
	admin := registerAdmin(t, s, "admin")
	alice := s.Register(t, "alice", "correct horse battery")
	gone := s.Register(t, "gone", "correct horse battery")
	if err := s.DB.Write(context.Background(), func(tx *storage.Tx) error { return tx.Deactivate("gone") }); err != nil {
		t.Fatal(err)
	}
	to := func(user id.UserID, rest string) string { return fmt.Sprintf(`{"user_id":%q%s}`, user, rest) }
	text := `,"content":{"msgtype":"m.text","body":"hi"}`
	for _, c := range []struct {
		name   string
		token  string
		body   string
		status int
		code   string
	}{
		{"no access token", "", to(alice.UserID, text), 401, "M_MISSING_TOKEN"},
		{"not an admin", alice.AccessToken, to(alice.UserID, text), 403, "M_FORBIDDEN"},
		{"empty body", admin.AccessToken, "", 400, "M_NOT_JSON"},
		{"malformed JSON", admin.AccessToken, `{"user_id":`, 400, "M_NOT_JSON"},
		{"not an object", admin.AccessToken, `["hi"]`, 400, "M_BAD_JSON"},
		{"user_id not a string", admin.AccessToken, `{"user_id":5` + text + `}`, 400, "M_BAD_JSON"},
		{"type not a string", admin.AccessToken, to(alice.UserID, text+`,"type":5`), 400, "M_BAD_JSON"},
		{"state_key not a string", admin.AccessToken, to(alice.UserID, text+`,"state_key":{}`), 400, "M_BAD_JSON"},
		{"no user_id", admin.AccessToken, `{"content":{"body":"hi"}}`, 400, "M_MISSING_PARAM"},
		{"no content", admin.AccessToken, to(alice.UserID, ""), 400, "M_MISSING_PARAM"},
		{"null content", admin.AccessToken, to(alice.UserID, `,"content":null`), 400, "M_MISSING_PARAM"},
		{"content not an object", admin.AccessToken, to(alice.UserID, `,"content":"hi"`), 400, "M_BAD_JSON"},
		{"empty type", admin.AccessToken, to(alice.UserID, text+`,"type":""`), 400, "M_INVALID_PARAM"},
		{"type too long", admin.AccessToken, to(alice.UserID, text+`,"type":"`+strings.Repeat("t", 256)+`"`), 400, "M_INVALID_PARAM"},
		{"membership as a notice", admin.AccessToken, to(alice.UserID, `,"type":"m.room.member","state_key":"@admin:localhost","content":{"membership":"join"}`), 400, "M_INVALID_PARAM"},
		{"state key too long", admin.AccessToken, to(alice.UserID, text+`,"state_key":"`+strings.Repeat("k", 256)+`"`), 400, "M_INVALID_PARAM"},
		{"not a user ID", admin.AccessToken, to("alice", text), 400, "M_INVALID_PARAM"},
		{"user of another server", admin.AccessToken, to("@alice:elsewhere.example", text), 400, "M_UNKNOWN"},
		{"unknown local user", admin.AccessToken, to(s.UserID("nobody"), text), 404, "M_NOT_FOUND"},
		{"deactivated user", admin.AccessToken, to(gone.UserID, text), 404, "M_NOT_FOUND"},
		{"the notices account itself", admin.AccessToken, to(s.UserID("notices"), text), 400, "M_INVALID_PARAM"},
		{"content over the event limit", admin.AccessToken, to(alice.UserID, `,"content":{"body":"`+strings.Repeat("x", 70_000)+`"}`), 413, "M_TOO_LARGE"},
		{"body over the request limit", admin.AccessToken, to(alice.UserID, `,"content":{"body":"`+strings.Repeat("x", 210_000)+`"}`), 413, "M_TOO_LARGE"},
	} {
		status, body, _ := s.Do(t, "POST", noticePath, c.token, strings.NewReader(c.body))
		wantStatus(t, c.name, status, body, c.status, c.code)
	}
	// A refused notice leaves nothing behind: no room, no invite, no notices account.
	if got := noticeInvite(t, s, alice, s.UserID("notices")); got != "" {
		t.Errorf("refused notices invited alice to %s", got)
	}
	if is, err := s.DB.IsSystemUser(context.Background(), "notices"); err != nil || is {
		t.Errorf("refused notices created the notices account: %v, %v", is, err)
	}

	// Content that fits the limit but makes too large an event is refused by the room.
	status, body, _ := s.Do(t, "POST", noticePath, admin.AccessToken,
		strings.NewReader(to(alice.UserID, `,"content":{"body":"`+strings.Repeat("x", 65_500)+`"}`)))
	wantStatus(t, "an event over the limit", status, body, 413, "M_TOO_LARGE")
}

// TestServerNoticesAccount checks the notices account: reserved before it exists, unable to
// log in, absent from the user directory, and one room per user.
func TestServerNoticesAccount(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration, servertest.WithConfig(func(c *config.Config) {
		c.Register.SharedSecret = "secret"
	}))
	system := s.UserID("notices")
	register := func(what string) {
		t.Helper()
		status, body, _ := s.Do(t, "POST", "/_matrix/client/v3/register", "",
			strings.NewReader(`{"username":"notices","password":"pw","auth":{"type":"m.login.dummy"}}`))
		wantStatus(t, what, status, body, 400, "M_USER_IN_USE")
		status, body, _ = s.Do(t, "GET", "/_matrix/client/v3/register/available?username=notices", "", nil)
		wantStatus(t, what+" (available?)", status, body, 400, "M_USER_IN_USE")
		_, body, _ = s.Do(t, "GET", "/_synapse/admin/v1/register", "", nil)
		nonce := gjson.GetBytes(body, "nonce").Str
		status, body, _ = s.Do(t, "POST", "/_synapse/admin/v1/register", "", strings.NewReader(fmt.Sprintf(
			`{"nonce":%q,"username":"notices","password":"pw","mac":%q}`, nonce, sharedMAC("secret", nonce, "notices", "pw", false))))
		wantStatus(t, what+" (shared secret)", status, body, 400, "M_USER_IN_USE")
	}
	register("registering the notices account before it exists")

	admin := registerAdmin(t, s, "admin")
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	notice := func(user id.UserID, content string) id.EventID {
		return sendNotice(t, s, admin, fmt.Sprintf(`{"user_id":%q,"content":%s}`, user, content), "")
	}
	notice(alice.UserID, `{"msgtype":"m.text","body":"one"}`)
	notice(alice.UserID, `{"msgtype":"m.text","body":"two"}`)
	notice(bob.UserID, `{"msgtype":"m.text","body":"one"}`)
	register("registering the notices account once it exists")

	status, body, _ := s.Do(t, "POST", "/_matrix/client/v3/login", "", strings.NewReader(
		`{"type":"m.login.password","identifier":{"type":"m.id.user","user":"notices"},"password":""}`))
	wantStatus(t, "logging in as the notices account", status, body, 403, "M_FORBIDDEN")

	// One room per user, however many notices; each user their own.
	aliceRoom := noticeInvite(t, s, alice, system)
	bobRoom := noticeInvite(t, s, bob, system)
	if aliceRoom == "" || bobRoom == "" || aliceRoom == bobRoom {
		t.Fatalf("notices rooms: alice %q, bob %q; want two different rooms", aliceRoom, bobRoom)
	}
	status, body, _ = s.Do(t, "GET", "/_matrix/client/v3/sync", alice.AccessToken, nil)
	if n := len(gjson.GetBytes(body, "rooms.invite").Map()); status != 200 || n != 1 {
		t.Errorf("alice has %d invites after two notices, want 1", n)
	}
	if _, err := alice.JoinRoomByID(ctx, aliceRoom); err != nil {
		t.Fatal(err)
	}
	resp, err := alice.Messages(ctx, aliceRoom, "", "", mautrix.DirectionBackward, nil, 20)
	if err != nil {
		t.Fatal(err)
	}
	if got := bodies(resp.Chunk); strings.Join(got, ",") != "two,one" {
		t.Errorf("alice's notices, newest first: %v, want [two one]", got)
	}

	// An active notice can be pinned: a state event through the same API.
	pinned, err := json.Marshal(map[string]any{"pinned": []id.EventID{resp.Chunk[0].ID}})
	if err != nil {
		t.Fatal(err)
	}
	pinID := sendNotice(t, s, admin, fmt.Sprintf(`{"user_id":%q,"type":"m.room.pinned_events","state_key":"","content":%s}`, alice.UserID, pinned), "")
	var pins event.PinnedEventsEventContent
	if err := alice.StateEvent(ctx, aliceRoom, event.StatePinnedEvents, "", &pins); err != nil || len(pins.Pinned) != 1 || pins.Pinned[0] != resp.Chunk[0].ID {
		t.Errorf("pinned events = %v, %v; want the newest notice", pins.Pinned, err)
	}
	if pinID == "" {
		t.Error("the pinning notice has no event ID")
	}

	// Alice shares a room with the notices account now, and still cannot find it.
	for _, term := range []string{"notices", "Server", string(system)} {
		found, err := alice.SearchUserDirectory(ctx, term, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range found.Results {
			if u.UserID == system {
				t.Errorf("searching %q finds the notices account", term)
			}
		}
	}
}
