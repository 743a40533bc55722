package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"fyr/server/config"
	"fyr/server/servertest"
)

// The server-default rules, in the order every user sees them.
var wantDefaultRules = map[string][]string{
	"override": {".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me", ".m.rule.member_event",
		".m.rule.is_user_mention", ".m.rule.contains_display_name", ".m.rule.is_room_mention", ".m.rule.roomnotif",
		".m.rule.tombstone", ".m.rule.reaction", ".m.rule.room.server_acl", ".m.rule.suppress_edits"},
	"content": {".m.rule.contains_user_name"},
	"room":    {},
	"sender":  {},
	"underride": {".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one",
		".m.rule.message", ".m.rule.encrypted"},
}

// pushRule is a rule as the API returns it.
type pushRule struct {
	RuleID     string            `json:"rule_id"`
	Default    bool              `json:"default"`
	Enabled    bool              `json:"enabled"`
	Actions    []json.RawMessage `json:"actions"`
	Conditions []map[string]any  `json:"conditions"`
	Pattern    *string           `json:"pattern"`
}

func getRuleset(t *testing.T, s *servertest.Server, c *mautrix.Client) map[string][]pushRule {
	t.Helper()
	status, body, _ := s.Do(t, "GET", "/_matrix/client/v3/pushrules/global/", c.AccessToken, nil)
	if status != 200 {
		t.Fatalf("GET /pushrules/global/: %d %s", status, body)
	}
	var rs map[string][]pushRule
	if err := json.Unmarshal(body, &rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

func ruleIDs(rules []pushRule) []string {
	ids := []string{}
	for _, r := range rules {
		ids = append(ids, r.RuleID)
	}
	return ids
}

// pushReq sends a raw request to a push rule path (escaped as given) with a JSON body.
func pushReq(t *testing.T, s *servertest.Server, c *mautrix.Client, method, path string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	status, resp, _ := s.Do(t, method, "/_matrix/client/v3/pushrules/"+path, c.AccessToken, r)
	return status, resp
}

func TestPushRulesDefaults(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")

	status, body, _ := s.Do(t, "GET", "/_matrix/client/v3/pushrules/", alice.AccessToken, nil)
	servertest.CheckShape(t, "pushrules.yaml", "GET", "/pushrules/", status, body)
	var all struct {
		Global map[string][]pushRule `json:"global"`
	}
	if err := json.Unmarshal(body, &all); err != nil {
		t.Fatal(err)
	}
	for kind, want := range wantDefaultRules {
		if got := ruleIDs(all.Global[kind]); !slices.Equal(got, want) {
			t.Errorf("%s rules = %v, want %v", kind, got, want)
		}
		for _, r := range all.Global[kind] {
			if !r.Default || r.Enabled != (r.RuleID != ".m.rule.master") {
				t.Errorf("%s: default %v enabled %v", r.RuleID, r.Default, r.Enabled)
			}
		}
	}
	status, body, _ = s.Do(t, "GET", "/_matrix/client/v3/pushrules/global/", alice.AccessToken, nil)
	servertest.CheckShape(t, "pushrules.yaml", "GET", "/pushrules/global/", status, body)

	// The rules that name the user name this user.
	rs := getRuleset(t, s, alice)
	find := func(kind, ruleID string) pushRule {
		for _, r := range rs[kind] {
			if r.RuleID == ruleID {
				return r
			}
		}
		t.Fatalf("no %s rule %s", kind, ruleID)
		return pushRule{}
	}
	if c := find("override", ".m.rule.invite_for_me").Conditions; c[2]["key"] != "state_key" || c[2]["pattern"] != string(alice.UserID) {
		t.Errorf("invite_for_me conditions = %v", c)
	}
	if c := find("override", ".m.rule.is_user_mention").Conditions; c[0]["value"] != string(alice.UserID) || c[0]["key"] != `content.m\.mentions.user_ids` {
		t.Errorf("is_user_mention conditions = %v", c)
	}
	if p := find("content", ".m.rule.contains_user_name").Pattern; p == nil || *p != "alice" {
		t.Errorf("contains_user_name pattern = %v", p)
	}
	if c := find("override", ".m.rule.master").Conditions; c == nil || len(c) != 0 {
		t.Errorf("master conditions = %v, want []", c)
	}

	// One rule, and its enabled and actions, by path.
	status, body = pushReq(t, s, alice, "GET", "global/override/.m.rule.master", nil)
	servertest.CheckShape(t, "pushrules.yaml", "GET", "/pushrules/global/{kind}/{ruleId}", status, body)
	status, body = pushReq(t, s, alice, "GET", "global/override/.m.rule.master/enabled", nil)
	servertest.CheckShape(t, "pushrules.yaml", "GET", "/pushrules/global/{kind}/{ruleId}/enabled", status, body)
	if string(body) != `{"enabled":false}` {
		t.Errorf("master enabled = %s", body)
	}
	status, body = pushReq(t, s, alice, "GET", "global/underride/.m.rule.message/actions", nil)
	servertest.CheckShape(t, "pushrules.yaml", "GET", "/pushrules/global/{kind}/{ruleId}/actions", status, body)
	if string(body) != `{"actions":["notify"]}` {
		t.Errorf(".m.rule.message actions = %s", body)
	}

	// mautrix-go's client reads them as a client would.
	got, err := alice.GetPushRules(context.Background())
	if err != nil || len(got.Override) != len(wantDefaultRules["override"]) || got.Underride[3].RuleID != ".m.rule.message" {
		t.Fatalf("mautrix GetPushRules = %+v, %v", got, err)
	}
}

func TestPushRulesEditing(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	notify := []*pushrules.PushAction{{Action: pushrules.ActionNotify}}
	put := func(ruleID, before, after string) {
		t.Helper()
		if err := alice.PutPushRule(ctx, "global", pushrules.RoomRule, ruleID,
			&mautrix.ReqPutPushRule{Actions: notify, Before: before, After: after}); err != nil {
			t.Fatalf("put %s: %v", ruleID, err)
		}
	}
	rooms := func() []string { return ruleIDs(getRuleset(t, s, alice)["room"]) }

	// Initial sync carries the rules as m.push_rules account data.
	st := newSyncStream(t, alice, "")
	resp := st.next(0)
	if !hasPushRules(resp.AccountData.Events) {
		t.Fatalf("initial sync account data = %v, want m.push_rules", resp.AccountData.Events)
	}

	put("!a:x", "", "")
	put("!b:x", "", "")
	if got := rooms(); !slices.Equal(got, []string{"!b:x", "!a:x"}) {
		t.Fatalf("new rules first: %v", got)
	}
	put("!c:x", "", "!a:x")
	put("!d:x", "!b:x", "")
	if got := rooms(); !slices.Equal(got, []string{"!d:x", "!b:x", "!a:x", "!c:x"}) {
		t.Fatalf("after before/after: %v", got)
	}
	put("!c:x", "!d:x", "") // moves an existing rule
	if got := rooms(); !slices.Equal(got, []string{"!c:x", "!d:x", "!b:x", "!a:x"}) {
		t.Fatalf("after moving !c:x: %v", got)
	}

	// Disable, then replace without moving: the rule keeps its place and stays disabled.
	if err := alice.SetPushRuleEnabled(ctx, "global", pushrules.RoomRule, "!b:x", false); err != nil {
		t.Fatal(err)
	}
	if err := alice.PutPushRule(ctx, "global", pushrules.RoomRule, "!b:x", &mautrix.ReqPutPushRule{Actions: []*pushrules.PushAction{}}); err != nil {
		t.Fatal(err)
	}
	rule, err := alice.GetPushRule(ctx, "global", pushrules.RoomRule, "!b:x")
	if err != nil || rule.Enabled || len(rule.Actions) != 0 || rule.Default {
		t.Fatalf("!b:x = %+v, %v", rule, err)
	}
	if got := rooms(); !slices.Equal(got, []string{"!c:x", "!d:x", "!b:x", "!a:x"}) {
		t.Fatalf("after replacing !b:x: %v", got)
	}
	status, body := pushReq(t, s, alice, "PUT", "global/room/!a:x/actions",
		map[string]any{"actions": []any{"notify", map[string]any{"set_tweak": "sound", "value": "bing"}}})
	if status != 200 {
		t.Fatalf("set actions: %d %s", status, body)
	}
	if _, body = pushReq(t, s, alice, "GET", "global/room/!a:x/actions", nil); string(body) != `{"actions":["notify",{"set_tweak":"sound","value":"bing"}]}` {
		t.Errorf("actions = %s", body)
	}

	// Delete.
	if err := alice.DeletePushRule(ctx, "global", pushrules.RoomRule, "!d:x"); err != nil {
		t.Fatal(err)
	}
	_, err = alice.GetPushRule(ctx, "global", pushrules.RoomRule, "!d:x")
	wantErr(t, "get a deleted rule", err, "M_NOT_FOUND", 404)
	if got := rooms(); !slices.Equal(got, []string{"!c:x", "!b:x", "!a:x"}) {
		t.Fatalf("after delete: %v", got)
	}

	// Override and content rules keep their conditions and pattern, unknown fields included.
	status, body = pushReq(t, s, alice, "PUT", "global/override/beer", map[string]any{
		"actions": []any{"notify"},
		"conditions": []any{
			map[string]any{"kind": "event_match", "key": "content.body", "pattern": "beer"},
			map[string]any{"kind": "room_member_count", "is": "<=10"},
			map[string]any{"kind": "org.example.future", "extra": map[string]any{"a": 1}},
		}})
	if status != 200 {
		t.Fatalf("put override: %d %s", status, body)
	}
	status, body = pushReq(t, s, alice, "PUT", "global/content/cake", map[string]any{"actions": []any{"notify"}, "pattern": "cake*lie"})
	if status != 200 {
		t.Fatalf("put content: %d %s", status, body)
	}
	status, body = pushReq(t, s, alice, "GET", "global/override/beer", nil)
	servertest.CheckShape(t, "pushrules.yaml", "GET", "/pushrules/global/{kind}/{ruleId}", status, body)
	if !strings.Contains(string(body), `{"extra":{"a":1},"kind":"org.example.future"}`) {
		t.Errorf("override rule = %s", body)
	}
	rs := getRuleset(t, s, alice)
	if got := ruleIDs(rs["override"])[:2]; !slices.Equal(got, []string{".m.rule.master", "beer"}) {
		t.Errorf("override rules start %v, want the master rule, then the user's", got)
	}
	if got := ruleIDs(rs["content"]); !slices.Equal(got, []string{"cake", ".m.rule.contains_user_name"}) {
		t.Errorf("content rules = %v", got)
	}

	// Default rules can be enabled, disabled and given other actions, and stay defaults.
	if err := alice.SetPushRuleEnabled(ctx, "global", pushrules.OverrideRule, ".m.rule.master", true); err != nil {
		t.Fatal(err)
	}
	if err := alice.PutPushRuleActions(ctx, "global", pushrules.UnderrideRule, ".m.rule.message", []*pushrules.PushAction{}); err != nil {
		t.Fatal(err)
	}
	if r, err := alice.GetPushRule(ctx, "global", pushrules.OverrideRule, ".m.rule.master"); err != nil || !r.Enabled || !r.Default {
		t.Errorf("master = %+v, %v", r, err)
	}
	if _, body = pushReq(t, s, alice, "GET", "global/underride/.m.rule.message", nil); !strings.Contains(string(body), `"actions":[]`) ||
		!strings.Contains(string(body), `"default":true`) {
		t.Errorf(".m.rule.message = %s", body)
	}

	// Each change reached the incremental sync as m.push_rules, with the newest rules.
	var content map[string]any
	waitFor(t, "m.push_rules with the master rule enabled", func() bool {
		for _, ev := range st.next(0).AccountData.Events {
			if ev.Type.Type == "m.push_rules" {
				content = ev.Content.Raw
			}
		}
		master := content["global"].(map[string]any)["override"].([]any)[0].(map[string]any)
		return master["enabled"] == true
	})
	// And a change wakes a waiting sync.
	st.next(0)
	woke := make(chan *mautrix.RespSync, 1)
	go func() {
		r, err := st.try(30000)
		if err != nil {
			t.Error(err)
		}
		woke <- r
	}()
	waitFor(t, "the sync to wait", func() bool { return s.Sync.Waiting() > 0 })
	put("!e:x", "", "")
	if r := <-woke; r == nil || !hasPushRules(r.AccountData.Events) {
		t.Errorf("the woken sync has no m.push_rules")
	}
	// Account data GET sees the rules too.
	var ad map[string]any
	if err := alice.GetAccountData(ctx, "m.push_rules", &ad); err != nil || ad["global"] == nil {
		t.Errorf("m.push_rules account data = %v, %v", ad, err)
	}
}

func hasPushRules(evs []*event.Event) bool {
	for _, ev := range evs {
		if ev.Type.Type == "m.push_rules" && ev.Content.Raw["global"] != nil {
			return true
		}
	}
	return false
}

func TestPushRulesRefusals(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	notify := map[string]any{"actions": []any{"notify"}}
	pushReq(t, s, alice, "PUT", "global/room/!mine:x", notify)
	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"put a server-default rule", "PUT", "global/override/.m.rule.master", map[string]any{"actions": []any{}, "conditions": []any{}}, 400, "M_INVALID_PARAM"},
		{"put a new dot rule", "PUT", "global/room/.mine", notify, 400, "M_INVALID_PARAM"},
		{"delete a server-default rule", "DELETE", "global/override/.m.rule.master", nil, 400, "M_INVALID_PARAM"},
		{"unknown kind", "PUT", "global/nonsense/x", notify, 400, "M_INVALID_PARAM"},
		{"unknown kind on GET", "GET", "global/nonsense/x", nil, 400, "M_INVALID_PARAM"},
		{"unknown scope", "GET", "device/", nil, 400, "M_INVALID_PARAM"},
		{"scope without slash", "GET", "global", nil, 400, "M_INVALID_PARAM"},
		{"kind without rule", "GET", "global/room", nil, 400, "M_INVALID_PARAM"},
		{"empty rule ID", "PUT", "global/room/", notify, 400, "M_INVALID_PARAM"},
		{"rule ID with a slash", "PUT", "global/room/a%2Fb", notify, 400, "M_INVALID_PARAM"},
		{"rule ID with a backslash", "PUT", "global/room/a%5Cb", notify, 400, "M_INVALID_PARAM"},
		{"unknown attribute", "GET", "global/override/.m.rule.master/colour", nil, 400, "M_INVALID_PARAM"},
		{"put the ruleset", "PUT", "global/", notify, 400, "M_INVALID_PARAM"},
		{"delete an attribute", "DELETE", "global/room/!mine:x/enabled", nil, 400, "M_INVALID_PARAM"},
		{"no actions", "PUT", "global/room/!x:x", map[string]any{}, 400, "M_MISSING_PARAM"},
		{"actions not a list", "PUT", "global/room/!x:x", map[string]any{"actions": "notify"}, 400, "M_BAD_JSON"},
		{"unknown action", "PUT", "global/room/!x:x", map[string]any{"actions": []any{"not_an_action"}}, 400, "M_BAD_JSON"},
		{"action object without set_tweak", "PUT", "global/room/!x:x", map[string]any{"actions": []any{map[string]any{"a": 1}}}, 400, "M_BAD_JSON"},
		{"override without conditions", "PUT", "global/override/x", notify, 400, "M_MISSING_PARAM"},
		{"condition without kind", "PUT", "global/underride/x", map[string]any{"actions": []any{}, "conditions": []any{map[string]any{}}}, 400, "M_BAD_JSON"},
		{"content rule without pattern", "PUT", "global/content/x", notify, 400, "M_MISSING_PARAM"},
		{"before an unknown rule", "PUT", "global/room/!x:x?before=nope", notify, 400, "M_UNKNOWN"},
		{"after a server-default rule", "PUT", "global/underride/x?after=.m.rule.message", map[string]any{"actions": []any{}, "conditions": []any{}}, 400, "M_UNKNOWN"},
		{"get an unknown rule", "GET", "global/override/not_a_rule", nil, 404, "M_NOT_FOUND"},
		{"get an unknown rule's enabled", "GET", "global/room/!nope:x/enabled", nil, 404, "M_NOT_FOUND"},
		{"enable an unknown rule", "PUT", "global/room/!nope:x/enabled", map[string]any{"enabled": true}, 404, "M_NOT_FOUND"},
		{"actions of an unknown rule", "PUT", "global/room/!nope:x/actions", notify, 404, "M_NOT_FOUND"},
		{"delete an unknown rule", "DELETE", "global/room/!nope:x", nil, 404, "M_NOT_FOUND"},
		{"a default rule of another kind", "GET", "global/underride/.m.rule.master", nil, 404, "M_NOT_FOUND"},
		{"enabled not a boolean", "PUT", "global/override/.m.rule.master/enabled", map[string]any{"enabled": "yes"}, 400, "M_BAD_JSON"},
		{"enabled missing", "PUT", "global/override/.m.rule.master/enabled", map[string]any{}, 400, "M_MISSING_PARAM"},
		{"bad actions", "PUT", "global/room/!mine:x/actions", map[string]any{"actions": []any{"loud"}}, 400, "M_BAD_JSON"},
	} {
		status, body := pushReq(t, s, alice, tc.method, tc.path, tc.body)
		wantStatus(t, tc.name, status, body, tc.status, tc.code)
	}
	status, body, _ := s.Do(t, "PUT", "/_matrix/client/v3/pushrules/global/room/!x:x", alice.AccessToken, strings.NewReader("{nope"))
	wantStatus(t, "not JSON", status, body, 400, "M_NOT_JSON")
	status, body, _ = s.Do(t, "GET", "/_matrix/client/v3/pushrules/", "", nil)
	wantStatus(t, "no access token", status, body, 401, "M_MISSING_TOKEN")
	// Nothing refused changed the rules.
	if got := ruleIDs(getRuleset(t, s, alice)["room"]); !slices.Equal(got, []string{"!mine:x"}) {
		t.Errorf("room rules after refusals = %v", got)
	}
}

// roomSync syncs until the room's timeline holds eventID and returns that room's section:
// the counts an event raised must come in the same response as the event.
func roomSync(t *testing.T, st *syncStream, room id.RoomID, eventID id.EventID) *mautrix.SyncJoinedRoom {
	t.Helper()
	for range 20 {
		resp := st.next(10000)
		jr := resp.Rooms.Join[room]
		if jr == nil {
			continue
		}
		for _, ev := range jr.Timeline.Events {
			if ev.ID == eventID {
				return jr
			}
		}
	}
	t.Fatalf("%s never saw %s", st.c.UserID, eventID)
	return nil
}

// syncCounts syncs until the room's counts are present and returns them.
func syncCounts(t *testing.T, st *syncStream, room id.RoomID) mautrix.UnreadNotificationCounts {
	t.Helper()
	for range 20 {
		if jr := st.next(10000).Rooms.Join[room]; jr != nil && jr.UnreadNotifications != nil {
			return *jr.UnreadNotifications
		}
	}
	t.Fatalf("%s never got counts for %s", st.c.UserID, room)
	return mautrix.UnreadNotificationCounts{}
}

func wantCounts(t *testing.T, what string, jr *mautrix.SyncJoinedRoom, notifications, highlights int) {
	t.Helper()
	if jr.UnreadNotifications == nil {
		t.Errorf("%s: no unread_notifications", what)
		return
	}
	if got := *jr.UnreadNotifications; got.NotificationCount != notifications || got.HighlightCount != highlights {
		t.Errorf("%s: counts %+v, want %d notifications, %d highlights", what, got, notifications, highlights)
	}
}

func TestUnreadCounts(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	carol := s.Register(t, "carol", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	for _, c := range []*mautrix.Client{bob, carol} {
		if _, err := c.JoinRoomByID(ctx, room); err != nil {
			t.Fatal(err)
		}
	}
	bobSync, carolSync, aliceSync := newSyncStream(t, bob, ""), newSyncStream(t, carol, ""), newSyncStream(t, alice, "")
	bobSync.next(0)
	carolSync.next(0)
	aliceSync.next(0)

	// A plain message in a group room notifies the others, without a highlight.
	m1 := sendText(t, alice, room, map[string]any{"body": "hello"})
	wantCounts(t, "bob after a message", roomSync(t, bobSync, room, m1), 1, 0)
	// A mention of bob highlights for bob alone.
	m2 := sendText(t, alice, room, map[string]any{"body": "bob, look", "m.mentions": map[string]any{"user_ids": []string{string(bob.UserID)}}})
	wantCounts(t, "bob after a mention", roomSync(t, bobSync, room, m2), 2, 1)
	wantCounts(t, "carol after the mention", roomSync(t, carolSync, room, m2), 2, 0)
	// The sender's own events never count for them.
	wantCounts(t, "alice", roomSync(t, aliceSync, room, m2), 0, 0)
	// Notices, reactions and edits do not notify.
	notice := sendText(t, alice, room, map[string]any{"msgtype": "m.notice", "body": "bot says hi"})
	if _, err := alice.SendMessageEvent(ctx, room, event.EventReaction, map[string]any{
		"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": m1, "key": "👍"}}); err != nil {
		t.Fatal(err)
	}
	edit := sendText(t, alice, room, map[string]any{"body": "* hello!", "m.new_content": map[string]any{"msgtype": "m.text", "body": "hello!"},
		"m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": m1}})
	_ = notice
	wantCounts(t, "bob after a notice, a reaction and an edit", roomSync(t, bobSync, room, edit), 2, 1)

	// A read receipt at the mention clears both counts.
	if err := bob.MarkRead(ctx, room, m2); err != nil {
		t.Fatal(err)
	}
	if c := syncCounts(t, bobSync, room); c.NotificationCount != 0 || c.HighlightCount != 0 {
		t.Errorf("bob after reading: %+v", c)
	}
	// A private receipt counts as well; and a receipt before an event leaves it unread.
	m3 := sendText(t, alice, room, map[string]any{"body": "one"})
	m4 := sendText(t, alice, room, map[string]any{"body": "two"})
	wantCounts(t, "bob after two more", roomSync(t, bobSync, room, m4), 2, 0)
	if err := bob.SendReceipt(ctx, room, m3, event.ReceiptTypeReadPrivate, nil); err != nil {
		t.Fatal(err)
	}
	if c := syncCounts(t, bobSync, room); c.NotificationCount != 1 {
		t.Errorf("bob after a private receipt on the first of two: %+v", c)
	}
	// Sending an event reads everything before it.
	mine := sendText(t, bob, room, map[string]any{"body": "read it all"})
	wantCounts(t, "bob after sending", roomSync(t, bobSync, room, mine), 0, 0)
	wantCounts(t, "carol, who never read", roomSync(t, carolSync, room, mine), 5, 0)

	// An @room from someone with the power to send one highlights everyone.
	all := sendText(t, alice, room, map[string]any{"body": "everyone!", "m.mentions": map[string]any{"room": true}})
	wantCounts(t, "bob after @room", roomSync(t, bobSync, room, all), 1, 1)
	// From someone without it, it is a plain message.
	weak := sendText(t, carol, room, map[string]any{"body": "everyone?", "m.mentions": map[string]any{"room": true}})
	wantCounts(t, "bob after carol's @room", roomSync(t, bobSync, room, weak), 2, 1)
	// The legacy display name rule, for a client that sends no m.mentions.
	if err := bob.SetDisplayName(ctx, "Bobby Tables"); err != nil {
		t.Fatal(err)
	}
	// The new name reaches the room's member event in the background.
	waitFor(t, "bob's new name in the room", func() bool {
		var m event.MemberEventContent
		return alice.StateEvent(ctx, room, event.StateMember, string(bob.UserID), &m) == nil && m.Displayname == "Bobby Tables"
	})
	legacy := sendText(t, alice, room, map[string]any{"body": "ask bobby tables"})
	wantCounts(t, "bob after his name", roomSync(t, bobSync, room, legacy), 3, 2)

	// Muting the room with a room rule stops its notifications.
	if err := bob.PutPushRule(ctx, "global", pushrules.RoomRule, string(room), &mautrix.ReqPutPushRule{Actions: []*pushrules.PushAction{}}); err != nil {
		t.Fatal(err)
	}
	muted := sendText(t, alice, room, map[string]any{"body": "nobody hears", "m.mentions": map[string]any{"user_ids": []string{string(bob.UserID)}}})
	jr := roomSync(t, bobSync, room, muted)
	// The mention still highlights: override rules come before room rules.
	wantCounts(t, "bob in a muted room after a mention", jr, 4, 3)
	quiet := sendText(t, alice, room, map[string]any{"body": "plain"})
	wantCounts(t, "bob in a muted room after a message", roomSync(t, bobSync, room, quiet), 4, 3)

	// The counts are there in an initial sync too.
	initialCounts := func(c *mautrix.Client) map[string]any {
		_, raw := rawSync(t, s, c, "")
		return raw["rooms"].(map[string]any)["join"].(map[string]any)[string(room)].(map[string]any)["unread_notifications"].(map[string]any)
	}
	if un := initialCounts(bob); un["notification_count"] != 4.0 || un["highlight_count"] != 3.0 {
		t.Errorf("initial sync counts = %v", un)
	}

	// Events of a user one ignores notify nothing.
	before := initialCounts(carol)["notification_count"].(float64)
	if err := carol.SetAccountData(ctx, "m.ignored_user_list", map[string]any{"ignored_users": map[string]any{string(alice.UserID): map[string]any{}}}); err != nil {
		t.Fatal(err)
	}
	sendText(t, alice, room, map[string]any{"body": "carol cannot hear me", "m.mentions": map[string]any{"user_ids": []string{string(carol.UserID)}}})
	fromBob := sendText(t, bob, room, map[string]any{"body": "not ignored"})
	jr = roomSync(t, carolSync, room, fromBob)
	if got := jr.UnreadNotifications; got == nil || float64(got.NotificationCount) != before+1 || got.HighlightCount != 0 {
		t.Errorf("carol, ignoring alice, after alice's mention and bob's message: %+v, want %v notifications", got, before+1)
	}
}

func TestUnreadCountsEncryptedOneToOne(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	carol := s.Register(t, "carol", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", Invite: []id.UserID{bob.UserID, carol.UserID},
		InitialState: []*event.Event{{Type: event.StateEncryption, Content: event.Content{Raw: map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}}}})
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	// Bob turns off the group rule for encrypted events: what still notifies in a room of
	// two is .m.rule.encrypted_room_one_to_one.
	if err := bob.SetPushRuleEnabled(ctx, "global", pushrules.UnderrideRule, ".m.rule.encrypted", false); err != nil {
		t.Fatal(err)
	}
	st := newSyncStream(t, bob, "")
	st.next(0)
	encrypted := func() id.EventID {
		resp, err := alice.SendMessageEvent(ctx, room, event.EventEncrypted, map[string]any{
			"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEnA", "sender_key": "abc", "session_id": "s1", "device_id": "DEV"})
		if err != nil {
			t.Fatal(err)
		}
		return resp.EventID
	}
	e1 := encrypted()
	wantCounts(t, "bob after an encrypted message in a room of two", roomSync(t, st, room, e1), 1, 0)
	e2 := encrypted()
	wantCounts(t, "bob after another", roomSync(t, st, room, e2), 2, 0)

	// With a third member the one-to-one rule no longer applies.
	if _, err := carol.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	e3 := encrypted()
	wantCounts(t, "bob after an encrypted message in a room of three", roomSync(t, st, room, e3), 2, 0)
	// With the group rule back on, it notifies again.
	if err := bob.SetPushRuleEnabled(ctx, "global", pushrules.UnderrideRule, ".m.rule.encrypted", true); err != nil {
		t.Fatal(err)
	}
	e4 := encrypted()
	wantCounts(t, "bob with .m.rule.encrypted on", roomSync(t, st, room, e4), 3, 0)
	if err := bob.MarkRead(ctx, room, e4); err != nil {
		t.Fatal(err)
	}
	if c := syncCounts(t, st, room); c.NotificationCount != 0 {
		t.Errorf("bob after reading: %+v", c)
	}
}

func TestUnreadThreadCounts(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	carol := s.Register(t, "carol", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	for _, c := range []*mautrix.Client{bob, carol} {
		if _, err := c.JoinRoomByID(ctx, room); err != nil {
			t.Fatal(err)
		}
	}
	root := sendText(t, alice, room, map[string]any{"body": "root"})
	inThread := func(body string, mention bool) id.EventID {
		c := map[string]any{"body": body, "m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root}}
		if mention {
			c["m.mentions"] = map[string]any{"user_ids": []string{string(bob.UserID)}}
		}
		return sendText(t, alice, room, c)
	}
	r1 := inThread("first reply", false)
	r2 := inThread("bob?", true)
	// An edit of a thread reply is in the thread too (and does not notify).
	sendText(t, alice, room, map[string]any{"body": "* bob!", "m.mentions": map[string]any{},
		"m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": r2}})

	threads := `filter=` + url.QueryEscape(`{"room":{"timeline":{"unread_thread_notifications":true}}}`)
	type counts struct {
		Notifications int `json:"notification_count"`
		Highlights    int `json:"highlight_count"`
	}
	roomCounts := func(query string) (counts, map[string]counts) {
		_, raw := rawSync(t, s, bob, query)
		b, _ := json.Marshal(raw["rooms"].(map[string]any)["join"].(map[string]any)[string(room)])
		var jr struct {
			Unread  counts            `json:"unread_notifications"`
			Threads map[string]counts `json:"unread_thread_notifications"`
		}
		json.Unmarshal(b, &jr)
		return jr.Unread, jr.Threads
	}
	main, th := roomCounts(threads)
	if main != (counts{1, 0}) || len(th) != 1 || th[string(root)] != (counts{2, 1}) {
		t.Fatalf("with thread counts: main %+v, threads %+v", main, th)
	}
	total, th := roomCounts("")
	if total != (counts{3, 1}) || th != nil {
		t.Fatalf("without thread counts: %+v, threads %+v", total, th)
	}

	// A threaded receipt clears its thread only; one for the main timeline clears that.
	receipt := func(evID id.EventID, thread string) {
		t.Helper()
		if err := bob.SendReceipt(ctx, room, evID, event.ReceiptTypeRead, map[string]any{"thread_id": thread}); err != nil {
			t.Fatalf("receipt on %s in %s: %v", evID, thread, err)
		}
	}
	receipt(r1, string(root))
	if main, th = roomCounts(threads); main != (counts{1, 0}) || th[string(root)] != (counts{1, 1}) {
		t.Errorf("after reading the thread to r1: main %+v, threads %+v", main, th)
	}
	receipt(root, "main")
	if main, th = roomCounts(threads); main != (counts{0, 0}) || th[string(root)] != (counts{1, 1}) {
		t.Errorf("after reading the main timeline: main %+v, threads %+v", main, th)
	}
	// An unthreaded receipt reads everything before it, threads included.
	if err := bob.MarkRead(ctx, room, r2); err != nil {
		t.Fatal(err)
	}
	if main, th = roomCounts(threads); main != (counts{0, 0}) || len(th) != 0 {
		t.Errorf("after an unthreaded receipt: main %+v, threads %+v", main, th)
	}
}

// gateway is an httptest push gateway that records the notifications it gets.
type gateway struct {
	*httptest.Server
	mu       sync.Mutex
	got      []mautrixNotification
	rejected []string
	notify   chan struct{}
}

// mautrixNotification is the body a push gateway receives.
type mautrixNotification struct {
	Notification struct {
		EventID           id.EventID      `json:"event_id"`
		RoomID            id.RoomID       `json:"room_id"`
		Type              string          `json:"type"`
		Sender            id.UserID       `json:"sender"`
		SenderDisplayName string          `json:"sender_display_name"`
		RoomName          string          `json:"room_name"`
		Prio              string          `json:"prio"`
		Content           map[string]any  `json:"content"`
		UserIsTarget      bool            `json:"user_is_target"`
		Counts            map[string]int  `json:"counts"`
		Devices           []pushedDevice  `json:"devices"`
		Raw               json.RawMessage `json:"-"`
	} `json:"notification"`
}

type pushedDevice struct {
	AppID     string         `json:"app_id"`
	PushKey   string         `json:"pushkey"`
	PushKeyTS int64          `json:"pushkey_ts"`
	Data      map[string]any `json:"data"`
	Tweaks    map[string]any `json:"tweaks"`
}

func newGateway(t *testing.T) *gateway {
	g := &gateway{notify: make(chan struct{}, 100)}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_matrix/push/v1/notify" || r.Method != "POST" {
			http.NotFound(w, r)
			return
		}
		var n mautrixNotification
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &n); err != nil {
			t.Errorf("gateway got %s: %v", b, err)
		}
		n.Notification.Raw = b
		g.mu.Lock()
		g.got = append(g.got, n)
		rejected := g.rejected
		g.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"rejected": rejected})
		g.notify <- struct{}{}
	}))
	t.Cleanup(g.Close)
	return g
}

// wait returns the first notification that satisfies match once the gateway has it.
func (g *gateway) wait(t *testing.T, what string, match func(n *mautrixNotification) bool) *mautrixNotification {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		g.mu.Lock()
		for i := range g.got {
			if match(&g.got[i]) {
				n := g.got[i]
				g.mu.Unlock()
				return &n
			}
		}
		g.mu.Unlock()
		select {
		case <-g.notify:
		case <-deadline:
			t.Fatalf("the gateway got no notification of %s", what)
		}
	}
}

// of matches the notification of an event for a pushkey.
func of(eventID id.EventID, pushKey string) func(n *mautrixNotification) bool {
	return func(n *mautrixNotification) bool {
		return n.Notification.EventID == eventID && n.Notification.Devices[0].PushKey == pushKey
	}
}

func (g *gateway) pushedFor(eventID id.EventID) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, x := range g.got {
		if x.Notification.EventID == eventID {
			n++
		}
	}
	return n
}

func httpPusher(url, pushKey string, data map[string]any) *mautrix.Pusher {
	kind := mautrix.PusherKindHTTP
	d := mautrix.PusherData{"url": url}
	for k, v := range data {
		d[k] = v
	}
	return &mautrix.Pusher{Kind: &kind, AppID: "org.example.fyr", PushKey: pushKey, AppDisplayName: "Fyr test",
		DeviceDisplayName: "Phone", Language: "en", Data: d, ProfileTag: "tag"}
}

func allowPrivateGateways(c *config.Config) { c.Push.AllowPrivate = true }

func TestPushers(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	const gw = "https://push.example.org/_matrix/push/v1/notify"

	status, body, _ := s.Do(t, "GET", "/_matrix/client/v3/pushers", alice.AccessToken, nil)
	servertest.CheckShape(t, "pusher.yaml", "GET", "/pushers", status, body)
	if string(body) != `{"pushers":[]}` {
		t.Errorf("no pushers = %s", body)
	}
	if err := alice.SetPusher(ctx, httpPusher(gw, "k1", map[string]any{"format": "event_id_only", "custom": "x"})); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetPusher(ctx, httpPusher("http://gw.example.org/prefix/_matrix/push/v1/notify", "k2", nil)); err != nil {
		t.Fatal(err)
	}
	status, body, _ = s.Do(t, "GET", "/_matrix/client/v3/pushers", alice.AccessToken, nil)
	servertest.CheckShape(t, "pusher.yaml", "GET", "/pushers", status, body)
	ps, err := alice.GetPushers(ctx)
	if err != nil || len(ps.Pushers) != 2 {
		t.Fatalf("pushers = %+v, %v", ps, err)
	}
	p := ps.Pushers[0]
	if p.PushKey != "k1" || *p.Kind != mautrix.PusherKindHTTP || p.AppDisplayName != "Fyr test" || p.DeviceDisplayName != "Phone" ||
		p.Language != "en" || p.ProfileTag != "tag" || p.Data.URL() != gw || p.Data["custom"] != "x" || p.Data.Format() != "event_id_only" {
		t.Errorf("pusher = %+v", p)
	}
	// Setting it again changes it in place.
	changed := httpPusher(gw, "k1", nil)
	changed.DeviceDisplayName = "New phone"
	if err := alice.SetPusher(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if ps, _ := alice.GetPushers(ctx); len(ps.Pushers) != 2 || ps.Pushers[0].DeviceDisplayName != "New phone" {
		t.Errorf("after a change: %+v", ps.Pushers)
	}
	// Without append, another user's pusher with the same app ID and pushkey takes it over;
	// with append, both keep it.
	if err := bob.SetPusher(ctx, httpPusher(gw, "k2", nil)); err != nil {
		t.Fatal(err)
	}
	if ps, _ := alice.GetPushers(ctx); len(ps.Pushers) != 1 || ps.Pushers[0].PushKey != "k1" {
		t.Errorf("alice after bob took k2: %+v", ps.Pushers)
	}
	shared := httpPusher(gw, "k1", nil)
	shared.Append = true
	if err := bob.SetPusher(ctx, shared); err != nil {
		t.Fatal(err)
	}
	if ps, _ := alice.GetPushers(ctx); len(ps.Pushers) != 1 {
		t.Errorf("alice after bob appended k1: %+v", ps.Pushers)
	}
	// Kind null deletes.
	status, body, _ = s.Do(t, "POST", "/_matrix/client/v3/pushers/set", alice.AccessToken,
		strings.NewReader(`{"kind":null,"app_id":"org.example.fyr","pushkey":"k1"}`))
	if status != 200 {
		t.Fatalf("delete: %d %s", status, body)
	}
	if ps, _ := alice.GetPushers(ctx); len(ps.Pushers) != 0 {
		t.Errorf("after delete: %+v", ps.Pushers)
	}
	if ps, _ := bob.GetPushers(ctx); len(ps.Pushers) != 2 {
		t.Errorf("bob's pushers after alice deleted hers: %+v", ps.Pushers)
	}

	// A pusher goes with the device that set it.
	phone := s.Login(t, "alice", "correct horse battery")
	if err := phone.SetPusher(ctx, httpPusher(gw, "phone", nil)); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetPusher(ctx, httpPusher(gw, "laptop", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := phone.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if ps, _ := alice.GetPushers(ctx); len(ps.Pushers) != 1 || ps.Pushers[0].PushKey != "laptop" {
		t.Errorf("after the phone logged out: %+v", ps.Pushers)
	}

	full := func(change map[string]any) string {
		m := map[string]any{"kind": "http", "app_id": "a", "pushkey": "k", "app_display_name": "A", "device_display_name": "D",
			"lang": "en", "data": map[string]any{"url": gw}}
		for k, v := range change {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	for _, tc := range []struct {
		name, body string
		code       string
	}{
		{"no kind", full(map[string]any{"kind": nil}), "M_MISSING_PARAM"},
		{"no app_id", full(map[string]any{"app_id": nil}), "M_MISSING_PARAM"},
		{"no pushkey", full(map[string]any{"pushkey": nil}), "M_MISSING_PARAM"},
		{"no lang", full(map[string]any{"lang": nil}), "M_MISSING_PARAM"},
		{"no data", full(map[string]any{"data": nil}), "M_MISSING_PARAM"},
		{"no device_display_name", full(map[string]any{"device_display_name": nil}), "M_MISSING_PARAM"},
		{"no url", full(map[string]any{"data": map[string]any{}}), "M_MISSING_PARAM"},
		{"url with another path", full(map[string]any{"data": map[string]any{"url": "https://push.example.org/notify"}}), "M_INVALID_PARAM"},
		{"url not http", full(map[string]any{"data": map[string]any{"url": "ftp://push.example.org/_matrix/push/v1/notify"}}), "M_INVALID_PARAM"},
		{"url not a URL", full(map[string]any{"data": map[string]any{"url": "push gateway"}}), "M_INVALID_PARAM"},
		{"loopback gateway", full(map[string]any{"data": map[string]any{"url": "http://127.0.0.1:5000/_matrix/push/v1/notify"}}), "M_INVALID_PARAM"},
		{"private gateway", full(map[string]any{"data": map[string]any{"url": "http://[fd00::1]/_matrix/push/v1/notify"}}), "M_INVALID_PARAM"},
		{"localhost gateway", full(map[string]any{"data": map[string]any{"url": "http://localhost/_matrix/push/v1/notify"}}), "M_INVALID_PARAM"},
		{"email kind", full(map[string]any{"kind": "email", "app_id": "m.email"}), "M_INVALID_PARAM"},
		{"unknown kind", full(map[string]any{"kind": "carrier-pigeon"}), "M_INVALID_PARAM"},
		{"app_id too long", full(map[string]any{"app_id": strings.Repeat("a", 65)}), "M_INVALID_PARAM"},
		{"pushkey too long", full(map[string]any{"pushkey": strings.Repeat("k", 513)}), "M_INVALID_PARAM"},
		{"data not an object", full(map[string]any{"data": "x"}), "M_BAD_JSON"},
		{"kind not a string", full(map[string]any{"kind": 1}), "M_BAD_JSON"},
		{"append not a boolean", full(map[string]any{"append": "yes"}), "M_BAD_JSON"},
	} {
		status, body, _ := s.Do(t, "POST", "/_matrix/client/v3/pushers/set", bob.AccessToken, strings.NewReader(tc.body))
		wantStatus(t, tc.name, status, body, 400, tc.code)
	}
	if ps, _ := bob.GetPushers(ctx); len(ps.Pushers) != 2 {
		t.Errorf("bob's pushers after refusals: %d", len(ps.Pushers))
	}
	// 64 characters (not bytes) and 512 bytes are within the limits.
	status, body, _ = s.Do(t, "POST", "/_matrix/client/v3/pushers/set", bob.AccessToken,
		strings.NewReader(full(map[string]any{"app_id": strings.Repeat("ä", 64), "pushkey": strings.Repeat("k", 512)})))
	if status != 200 {
		t.Errorf("at the limits: %d %s", status, body)
	}
}

func TestPushGateway(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration, servertest.WithConfig(allowPrivateGateways))
	g := newGateway(t)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	if err := alice.SetDisplayName(ctx, "Alice"); err != nil {
		t.Fatal(err)
	}
	url := g.URL + "/_matrix/push/v1/notify"
	if err := bob.SetPusher(ctx, httpPusher(url, "full", map[string]any{"custom": "kept"})); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetPusher(ctx, httpPusher(url, "short", map[string]any{"format": "event_id_only"})); err != nil {
		t.Fatal(err)
	}
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Crisis team", Invite: []id.UserID{bob.UserID}})

	// The invite notifies bob (.m.rule.invite_for_me).
	n := g.wait(t, "bob's invite", func(n *mautrixNotification) bool {
		return n.Notification.Type == "m.room.member" && n.Notification.Devices[0].PushKey == "full"
	}).Notification
	if n.RoomID != room || !n.UserIsTarget || n.Prio != "high" || n.Devices[0].Tweaks["sound"] != "default" ||
		n.Content["membership"] != "invite" || n.RoomName != "Crisis team" {
		t.Errorf("invite notification = %s", n.Raw)
	}
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}

	// A message in a room of two.
	m1 := sendText(t, alice, room, map[string]any{"body": "hello bob"})
	n = g.wait(t, "the message", of(m1, "full")).Notification
	if n.Type != "m.room.message" || n.Sender != alice.UserID || n.SenderDisplayName != "Alice" || n.RoomName != "Crisis team" ||
		n.Content["body"] != "hello bob" || n.Prio != "high" || n.UserIsTarget {
		t.Errorf("message notification = %s", n.Raw)
	}
	if n.Counts["unread"] != 1 {
		t.Errorf("counts = %v, want unread 1 (the invite was read by joining)", n.Counts)
	}
	d := n.Devices[0]
	if len(n.Devices) != 1 || d.AppID != "org.example.fyr" || d.PushKeyTS <= 0 || d.Data["url"] != nil || d.Data["custom"] != "kept" ||
		d.Tweaks["sound"] != "default" {
		t.Errorf("device = %+v", d)
	}
	// event_id_only sends the IDs, counts and devices, and nothing of the event.
	short := g.wait(t, "the short form", of(m1, "short")).Notification
	var fields map[string]map[string]any
	json.Unmarshal(short.Raw, &fields)
	for k := range fields["notification"] {
		if !slices.Contains([]string{"event_id", "room_id", "counts", "prio", "devices"}, k) {
			t.Errorf("event_id_only notification has %s: %s", k, short.Raw)
		}
	}
	if short.Devices[0].Data["format"] != "event_id_only" {
		t.Errorf("event_id_only device data = %v", short.Devices[0].Data)
	}

	// Bob's own messages are not pushed to him; events that do not notify are not pushed.
	own := sendText(t, bob, room, map[string]any{"body": "hi alice"})
	notice := sendText(t, alice, room, map[string]any{"msgtype": "m.notice", "body": "bot"})
	m2 := sendText(t, alice, room, map[string]any{"body": "after the notice"})
	g.wait(t, "the second message", of(m2, "full"))
	g.wait(t, "the second message, short", of(m2, "short"))
	if g.pushedFor(own) != 0 || g.pushedFor(notice) != 0 {
		t.Errorf("pushed bob's own message %d times, the notice %d times", g.pushedFor(own), g.pushedFor(notice))
	}

	// A pushkey the gateway rejects loses its pusher.
	g.mu.Lock()
	g.rejected = []string{"short"}
	g.mu.Unlock()
	m3 := sendText(t, alice, room, map[string]any{"body": "once more"})
	g.wait(t, "the third message", of(m3, "short"))
	waitFor(t, "the rejected pusher to go", func() bool {
		ps, err := bob.GetPushers(ctx)
		return err == nil && len(ps.Pushers) == 1 && ps.Pushers[0].PushKey == "full"
	})
}

func TestPushGatewayOnPrivateAddressNeedsConfig(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	g := newGateway(t)
	bob := s.Register(t, "bob", "correct horse battery")
	err := bob.SetPusher(ctx, httpPusher(g.URL+"/_matrix/push/v1/notify", "k", nil))
	wantErr(t, "a loopback gateway without push.allow_private_gateways", err, "M_INVALID_PARAM", 400)
	// Switched on by a reload, it is allowed.
	next := *s.Config
	next.Push.AllowPrivate = true
	s.Reload(&next)
	if err := bob.SetPusher(ctx, httpPusher(g.URL+"/_matrix/push/v1/notify", "k", nil)); err != nil {
		t.Fatalf("after the reload: %v", err)
	}
}

func TestNotificationsList(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	carol := s.Register(t, "carol", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	for _, c := range []*mautrix.Client{bob, carol} {
		if _, err := c.JoinRoomByID(ctx, room); err != nil {
			t.Fatal(err)
		}
	}
	var sent []id.EventID
	for i := range 5 {
		c := map[string]any{"body": fmt.Sprintf("message %d", i)}
		if i%2 == 1 {
			c["m.mentions"] = map[string]any{"user_ids": []string{string(bob.UserID)}}
		}
		sent = append(sent, sendText(t, alice, room, c))
	}
	type entry struct {
		Actions []any          `json:"actions"`
		Event   map[string]any `json:"event"`
		Read    bool           `json:"read"`
		RoomID  id.RoomID      `json:"room_id"`
		TS      int64          `json:"ts"`
	}
	list := func(query string) ([]entry, string) {
		t.Helper()
		status, body, _ := s.Do(t, "GET", "/_matrix/client/v3/notifications?"+query, bob.AccessToken, nil)
		servertest.CheckShape(t, "notifications.yaml", "GET", "/notifications", status, body)
		var page struct {
			Notifications []entry `json:"notifications"`
			NextToken     string  `json:"next_token"`
		}
		json.Unmarshal(body, &page)
		return page.Notifications, page.NextToken
	}
	ids := func(es []entry) []id.EventID {
		var out []id.EventID
		for _, e := range es {
			out = append(out, id.EventID(e.Event["event_id"].(string)))
		}
		return out
	}
	all, next := list("")
	if got := ids(all); !slices.Equal(got, []id.EventID{sent[4], sent[3], sent[2], sent[1], sent[0]}) || next != "" {
		t.Fatalf("notifications = %v (next %q), want the five messages newest first", got, next)
	}
	e := all[1]
	if e.RoomID != room || e.Read || e.TS <= 0 || e.Event["room_id"] != nil || e.Event["type"] != "m.room.message" ||
		len(e.Actions) != 3 || e.Actions[0] != "notify" {
		t.Errorf("notification = %+v", e)
	}
	if hl, _ := list("only=highlight"); !slices.Equal(ids(hl), []id.EventID{sent[3], sent[1]}) {
		t.Errorf("highlights = %v", ids(hl))
	}
	// Paging.
	var paged []id.EventID
	from := ""
	for range 10 {
		page, next := list("limit=2&from=" + from)
		paged = append(paged, ids(page)...)
		if next == "" {
			break
		}
		from = next
	}
	if !slices.Equal(paged, ids(all)) {
		t.Errorf("paged = %v, want %v", paged, ids(all))
	}
	// A receipt marks what it covers as read.
	if err := bob.MarkRead(ctx, room, sent[2]); err != nil {
		t.Fatal(err)
	}
	all, _ = list("")
	var read []bool
	for _, e := range all {
		read = append(read, e.Read)
	}
	if !slices.Equal(read, []bool{false, false, true, true, true}) {
		t.Errorf("read = %v", read)
	}
	for _, q := range []string{"from=nope", "from=-3", "limit=x", "limit=-1"} {
		status, body, _ := s.Do(t, "GET", "/_matrix/client/v3/notifications?"+q, bob.AccessToken, nil)
		wantStatus(t, q, status, body, 400, "M_INVALID_PARAM")
	}
	// Carol was notified too; alice, who sent them, was not.
	if c, _ := list(""); len(c) != 5 {
		t.Errorf("bob's list changed: %d", len(c))
	}
	status, body, _ := s.Do(t, "GET", "/_matrix/client/v3/notifications", alice.AccessToken, nil)
	if status != 200 || string(body) != `{"notifications":[]}` {
		t.Errorf("alice's notifications = %d %s", status, body)
	}
}
