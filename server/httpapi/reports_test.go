package httpapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/server/servertest"
	"fyr/storage"
)

func TestReports(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	charlie := s.Register(t, "charlie", "correct horse battery")
	// History is visible from joining on, so Charlie, joining late, cannot see the first message.
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat",
		InitialState: []*event.Event{{Type: event.StateHistoryVisibility, Content: event.Content{Raw: map[string]any{"history_visibility": "joined"}}}}})
	other := mustCreate(t, alice, &mautrix.ReqCreateRoom{})
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	early := sendText(t, bob, room, map[string]any{"body": "offensive"})
	if _, err := charlie.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	late := sendText(t, bob, room, map[string]any{"body": "also offensive"})
	elsewhere := sendText(t, alice, other, map[string]any{"body": "private"})

	if err := alice.ReportEvent(ctx, room, early, "spam"); err != nil {
		t.Fatalf("alice reports: %v", err)
	}
	report := func(c *mautrix.Client, path, body string) (int, []byte) {
		status, b, _ := s.Do(t, "POST", "/_matrix/client/v3"+path, c.AccessToken, strings.NewReader(body))
		return status, b
	}
	if status, body := report(charlie, "/rooms/"+string(room)+"/report/"+string(late), `{"reason":"rude","score":-100}`); status != 200 || string(body) != "{}" {
		t.Fatalf("charlie reports with a score: %d %s", status, body)
	}
	if status, body := report(alice, "/rooms/"+string(room)+"/report/"+string(late), `{}`); status != 200 {
		t.Fatalf("a report without reason: %d %s", status, body)
	}
	if _, err := bob.LeaveRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		client *mautrix.Client
		path   string
		body   string
		status int
		code   string
	}{
		{"event before the reporter could see", charlie, "/rooms/" + string(room) + "/report/" + string(early), `{"reason":"x"}`, 404, "M_NOT_FOUND"},
		{"reporter left the room", bob, "/rooms/" + string(room) + "/report/" + string(late), `{"reason":"x"}`, 404, "M_NOT_FOUND"},
		{"reporter never in the room", charlie, "/rooms/" + string(other) + "/report/" + string(elsewhere), `{"reason":"x"}`, 404, "M_NOT_FOUND"},
		{"event of another room", alice, "/rooms/" + string(room) + "/report/" + string(elsewhere), `{"reason":"x"}`, 404, "M_NOT_FOUND"},
		{"unknown event", alice, "/rooms/" + string(room) + "/report/$nope", `{"reason":"x"}`, 404, "M_NOT_FOUND"},
		{"unknown room", alice, "/rooms/!nope:localhost/report/" + string(late), `{"reason":"x"}`, 404, "M_NOT_FOUND"},
		{"score out of range", alice, "/rooms/" + string(room) + "/report/" + string(late), `{"reason":"x","score":10}`, 400, "M_INVALID_PARAM"},
		{"score not an integer", alice, "/rooms/" + string(room) + "/report/" + string(late), `{"reason":"x","score":"bad"}`, 400, "M_BAD_JSON"},
		{"reason not a string", alice, "/rooms/" + string(room) + "/report/" + string(late), `{"reason":5}`, 400, "M_BAD_JSON"},
		{"not an event ID", alice, "/rooms/" + string(room) + "/report/late", `{"reason":"x"}`, 400, "M_INVALID_PARAM"},

		{"room report without reason", charlie, "/rooms/" + string(other) + "/report", `{}`, 400, "M_MISSING_PARAM"},
		{"report of an unknown room", charlie, "/rooms/!nope:localhost/report", `{"reason":"x"}`, 404, "M_NOT_FOUND"},
		{"user report without reason", alice, "/users/" + string(bob.UserID) + "/report", `{}`, 400, "M_MISSING_PARAM"},
		{"report of an unknown local user", alice, "/users/@nobody:localhost/report", `{"reason":"x"}`, 404, "M_NOT_FOUND"},
		{"report of something not a user", alice, "/users/nobody/report", `{"reason":"x"}`, 400, "M_INVALID_PARAM"},
	} {
		status, body := report(c.client, c.path, c.body)
		wantStatus(t, c.name, status, body, c.status, c.code)
	}
	// Rooms may be reported by anyone, with a blank reason too; users likewise, remote ones
	// on trust.
	if status, body := report(charlie, "/rooms/"+string(other)+"/report", `{"reason":""}`); status != 200 || string(body) != "{}" {
		t.Errorf("charlie reports a room he is not in: %d %s", status, body)
	}
	if err := alice.ReportUser(ctx, bob.UserID, "harassment"); err != nil {
		t.Errorf("report a local user: %v", err)
	}
	if err := alice.ReportUser(ctx, "@troll:elsewhere.test", "spam"); err != nil {
		t.Errorf("report a remote user: %v", err)
	}

	// Admins read event reports through Synapse's admin API, newest first.
	code, body, _ := s.Do(t, "GET", "/_synapse/admin/v1/event_reports", alice.AccessToken, nil)
	wantStatus(t, "non-admin lists reports", code, body, 403, "M_FORBIDDEN")
	if err := s.DB.Write(ctx, func(tx *storage.Tx) error { return tx.SetAdmin("alice", true) }); err != nil {
		t.Fatal(err)
	}
	code, body, _ = s.Do(t, "GET", "/_synapse/admin/v1/event_reports?limit=2", alice.AccessToken, nil)
	if code != 200 {
		t.Fatalf("admin lists reports: %d %s", code, body)
	}
	var page struct {
		Reports []struct {
			ID      int64      `json:"id"`
			RoomID  id.RoomID  `json:"room_id"`
			EventID id.EventID `json:"event_id"`
			UserID  id.UserID  `json:"user_id"`
			Sender  id.UserID  `json:"sender"`
			Reason  string     `json:"reason"`
			Score   *int       `json:"score"`
		} `json:"event_reports"`
		Total     int  `json:"total"`
		NextToken *int `json:"next_token"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	if page.Total != 3 || len(page.Reports) != 2 || page.NextToken == nil || *page.NextToken != 2 {
		t.Fatalf("first page: %s", body)
	}
	r := page.Reports[1]
	if r.UserID != charlie.UserID || r.Sender != bob.UserID || r.EventID != late || r.RoomID != room ||
		r.Reason != "rude" || r.Score == nil || *r.Score != -100 {
		t.Errorf("charlie's report: %+v", r)
	}
	code, body, _ = s.Do(t, "GET", "/_synapse/admin/v1/event_reports?from=2", alice.AccessToken, nil)
	page.NextToken = nil
	if err := json.Unmarshal(body, &page); code != 200 || err != nil || len(page.Reports) != 1 || page.NextToken != nil ||
		page.Reports[0].UserID != alice.UserID || page.Reports[0].EventID != early || page.Reports[0].Reason != "spam" {
		t.Errorf("last page: %d %s", code, body)
	}
	// The room and user reports are kept too.
	for kind, want := range map[string]int{"room": 1, "user": 2} {
		if rs, total, err := s.Reports.List(ctx, kind, 0, 10); err != nil || total != want || len(rs) != want {
			t.Errorf("%s reports: %d of %d, %v; want %d", kind, len(rs), total, err, want)
		}
	}
}
