package httpapi_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/server/config"
	"fyr/server/servertest"
)

// refusal is a request that must fail with a spec error.
type refusal struct {
	name, method, path, token, body string
	status                          int
	code                            string
}

// checkRefusals sends each request and checks its status and errcode, and that the stream
// did not move: a refused write changes nothing sync could see.
func checkRefusals(t *testing.T, srv *servertest.Server, cases []refusal) {
	t.Helper()
	before, err := srv.DB.StreamPos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := srv.Do(t, tc.method, tc.path, tc.token, strings.NewReader(tc.body))
			var e struct {
				Errcode string `json:"errcode"`
				Error   string `json:"error"`
			}
			json.Unmarshal(body, &e)
			if status != tc.status || e.Errcode != tc.code {
				t.Errorf("%s %s = %d %s (%s), want %d %s", tc.method, tc.path, status, e.Errcode, e.Error, tc.status, tc.code)
			}
			if e.Error == "" {
				t.Errorf("%s %s: empty error message", tc.method, tc.path)
			}
		})
	}
	if after, _ := srv.DB.StreamPos(ctx); after != before {
		t.Errorf("refused requests moved the stream from %d to %d", before, after)
	}
}

// streamAdvances runs f and checks that it took at least one new stream position.
func streamAdvances(t *testing.T, srv *servertest.Server, what string, f func() error) {
	t.Helper()
	before, _ := srv.DB.StreamPos(ctx)
	if err := f(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if after, _ := srv.DB.StreamPos(ctx); after <= before {
		t.Errorf("%s: stream position %d -> %d, want it to increase", what, before, after)
	}
}

func clientPath(parts ...string) string {
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return "/_matrix/client/v3/" + strings.Join(parts, "/")
}

func TestAccountDataEndpoints(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration)
	alice := srv.Register(t, "alice", "pw")
	bob := srv.Register(t, "bob", "pw")
	const room = id.RoomID("!room:localhost")
	type config struct {
		Theme string `json:"theme"`
	}

	streamAdvances(t, srv, "set global account data", func() error {
		return alice.SetAccountData(ctx, "org.example.config", config{Theme: "dark"})
	})
	streamAdvances(t, srv, "set room account data", func() error {
		return alice.SetRoomAccountData(ctx, room, "org.example.config", config{Theme: "light"})
	})
	var got config
	if err := alice.GetAccountData(ctx, "org.example.config", &got); err != nil || got.Theme != "dark" {
		t.Errorf("global = %+v, %v", got, err)
	}
	if err := alice.GetRoomAccountData(ctx, room, "org.example.config", &got); err != nil || got.Theme != "light" {
		t.Errorf("room = %+v, %v", got, err)
	}
	streamAdvances(t, srv, "overwrite global account data", func() error {
		return alice.SetAccountData(ctx, "org.example.config", config{Theme: "solarized"})
	})
	if err := alice.GetAccountData(ctx, "org.example.config", &got); err != nil || got.Theme != "solarized" {
		t.Errorf("global after overwrite = %+v, %v", got, err)
	}
	// r0 paths serve the same data.
	status, body, _ := srv.Do(t, "GET", "/_matrix/client/r0/user/"+url.PathEscape(string(alice.UserID))+"/account_data/org.example.config", alice.AccessToken, nil)
	if status != 200 || string(body) != `{"theme":"solarized"}` {
		t.Errorf("r0 GET = %d %s", status, body)
	}
	// What sync will ask for: one global and one room entry, newest content only.
	pos, _ := srv.DB.StreamPos(ctx)
	global, rooms, err := srv.DB.AccountDataSince(ctx, alice.UserID, 0, pos)
	if err != nil || len(global) != 1 || len(rooms[room]) != 1 || string(global[0].Content) != `{"theme":"solarized"}` {
		t.Errorf("AccountDataSince = %+v, %+v, %v", global, rooms, err)
	}

	a, b := string(alice.UserID), string(bob.UserID)
	tok := alice.AccessToken
	checkRefusals(t, srv, []refusal{
		{"missing", "GET", clientPath("user", a, "account_data", "org.example.none"), tok, "", 404, "M_NOT_FOUND"},
		{"missing in room", "GET", clientPath("user", a, "rooms", "!other:localhost", "account_data", "org.example.config"), tok, "", 404, "M_NOT_FOUND"},
		{"read another user's", "GET", clientPath("user", a, "account_data", "org.example.config"), bob.AccessToken, "", 403, "M_FORBIDDEN"},
		{"write another user's", "PUT", clientPath("user", b, "account_data", "org.example.config"), tok, `{}`, 403, "M_FORBIDDEN"},
		{"write another user's room data", "PUT", clientPath("user", b, "rooms", string(room), "account_data", "x.y"), tok, `{}`, 403, "M_FORBIDDEN"},
		{"no token", "GET", clientPath("user", a, "account_data", "org.example.config"), "", "", 401, "M_MISSING_TOKEN"},
		{"m.fully_read", "PUT", clientPath("user", a, "account_data", "m.fully_read"), tok, `{"event_id":"$x"}`, 405, "M_BAD_JSON"},
		{"m.push_rules", "PUT", clientPath("user", a, "account_data", "m.push_rules"), tok, `{}`, 405, "M_BAD_JSON"},
		{"m.fully_read in a room", "PUT", clientPath("user", a, "rooms", string(room), "account_data", "m.fully_read"), tok, `{"event_id":"$x"}`, 405, "M_BAD_JSON"},
		{"not JSON", "PUT", clientPath("user", a, "account_data", "x.y"), tok, `{"a":`, 400, "M_NOT_JSON"},
		{"empty body", "PUT", clientPath("user", a, "account_data", "x.y"), tok, ``, 400, "M_NOT_JSON"},
		{"array", "PUT", clientPath("user", a, "account_data", "x.y"), tok, `[1,2]`, 400, "M_BAD_JSON"},
		{"string", "PUT", clientPath("user", a, "rooms", string(room), "account_data", "x.y"), tok, `"x"`, 400, "M_BAD_JSON"},
		{"too large", "PUT", clientPath("user", a, "account_data", "x.y"), tok, `{"a":"` + strings.Repeat("x", 70_000) + `"}`, 413, "M_TOO_LARGE"},
		{"alias for a room", "PUT", clientPath("user", a, "rooms", "#alias:localhost", "account_data", "x.y"), tok, `{}`, 400, "M_INVALID_PARAM"},
		{"read with a bad room ID", "GET", clientPath("user", a, "rooms", "@alice:localhost", "account_data", "x.y"), tok, ``, 400, "M_INVALID_PARAM"},
		{"type too long", "PUT", clientPath("user", a, "account_data", strings.Repeat("t", 256)), tok, `{}`, 400, "M_INVALID_PARAM"},
	})
	// The server-managed types stay readable; nothing was stored by the refusals.
	if err := alice.GetAccountData(ctx, "m.fully_read", &got); !isErr(err, "M_NOT_FOUND", 404) {
		t.Errorf("m.fully_read after a refused PUT: %v, want 404", err)
	}
}

func TestTagEndpoints(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration)
	alice := srv.Register(t, "alice", "pw")
	bob := srv.Register(t, "bob", "pw")
	const room = id.RoomID("!room:localhost")

	streamAdvances(t, srv, "add m.favourite", func() error { return alice.AddTag(ctx, room, event.RoomTagFavourite, 0.5) })
	streamAdvances(t, srv, "add u.work", func() error {
		return alice.AddTagWithCustomData(ctx, room, "u.work", map[string]any{})
	})
	tags, err := alice.GetTags(ctx, room)
	if err != nil || len(tags.Tags) != 2 {
		t.Fatalf("tags = %+v, %v", tags, err)
	}
	if order, err := tags.Tags[event.RoomTagFavourite].Order.Float64(); err != nil || order != 0.5 {
		t.Errorf("m.favourite order = %q, want 0.5", tags.Tags[event.RoomTagFavourite].Order)
	}
	// Tags are the room's m.tag account data, one event for sync.
	var content map[string]map[string]map[string]any
	if err := alice.GetRoomAccountData(ctx, room, "m.tag", &content); err != nil || len(content["tags"]) != 2 {
		t.Errorf("m.tag = %v, %v", content, err)
	}
	pos, _ := srv.DB.StreamPos(ctx)
	if _, rooms, _ := srv.DB.AccountDataSince(ctx, alice.UserID, 0, pos); len(rooms[room]) != 1 || rooms[room][0].Type != "m.tag" {
		t.Errorf("AccountDataSince rooms = %+v, want one m.tag", rooms)
	}
	streamAdvances(t, srv, "remove u.work", func() error { return alice.RemoveTag(ctx, room, "u.work") })
	if tags, _ := alice.GetTags(ctx, room); len(tags.Tags) != 1 {
		t.Errorf("tags after removal = %+v", tags)
	}
	if err := alice.RemoveTag(ctx, room, "u.never"); err != nil {
		t.Errorf("removing a missing tag: %v, want 200", err)
	}
	status, body, _ := srv.Do(t, "GET", clientPath("user", string(alice.UserID), "rooms", "!untagged:localhost", "tags"), alice.AccessToken, nil)
	if status != 200 || string(body) != `{"tags":{}}` {
		t.Errorf("untagged room = %d %s, want {\"tags\":{}}", status, body)
	}

	a, tok := string(alice.UserID), alice.AccessToken
	tagPath := clientPath("user", a, "rooms", string(room), "tags", "u.new")
	checkRefusals(t, srv, []refusal{
		{"another user's tags", "GET", clientPath("user", a, "rooms", string(room), "tags"), bob.AccessToken, "", 403, "M_FORBIDDEN"},
		{"tag for another user", "PUT", tagPath, bob.AccessToken, `{}`, 403, "M_FORBIDDEN"},
		{"untag for another user", "DELETE", clientPath("user", a, "rooms", string(room), "tags", "m.favourite"), bob.AccessToken, "", 403, "M_FORBIDDEN"},
		{"order above 1", "PUT", tagPath, tok, `{"order":1.5}`, 400, "M_INVALID_PARAM"},
		{"order below 0", "PUT", tagPath, tok, `{"order":-1}`, 400, "M_INVALID_PARAM"},
		{"order a string", "PUT", tagPath, tok, `{"order":"0.5"}`, 400, "M_BAD_JSON"},
		{"not an object", "PUT", tagPath, tok, `0.5`, 400, "M_BAD_JSON"},
		{"not JSON", "PUT", tagPath, tok, `{`, 400, "M_NOT_JSON"},
		{"no body", "PUT", tagPath, tok, ``, 400, "M_NOT_JSON"},
		{"tag too long", "PUT", clientPath("user", a, "rooms", string(room), "tags", strings.Repeat("t", 256)), tok, `{}`, 400, "M_INVALID_PARAM"},
		{"bad room ID", "PUT", clientPath("user", a, "rooms", "room", "tags", "u.x"), tok, `{}`, 400, "M_INVALID_PARAM"},
		{"tags of a bad room ID", "GET", clientPath("user", a, "rooms", "#room:localhost", "tags"), tok, ``, 400, "M_INVALID_PARAM"},
	})
}

func TestFilterEndpoints(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration)
	alice := srv.Register(t, "alice", "pw")
	bob := srv.Register(t, "bob", "pw")

	resp, err := alice.CreateFilter(ctx, &mautrix.Filter{
		Room: &mautrix.RoomFilter{Timeline: &mautrix.FilterPart{Limit: 20, Types: []event.Type{event.EventMessage}, LazyLoadMembers: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.FilterID == "" || strings.HasPrefix(resp.FilterID, "{") {
		t.Fatalf("filter_id = %q", resp.FilterID)
	}
	var f mautrix.Filter
	if _, err := alice.MakeRequest(ctx, "GET", alice.BuildClientURL("v3", "user", alice.UserID, "filter", resp.FilterID), nil, &f); err != nil {
		t.Fatal(err)
	}
	if f.Room == nil || f.Room.Timeline == nil || f.Room.Timeline.Limit != 20 || !f.Room.Timeline.LazyLoadMembers {
		t.Errorf("downloaded filter = %+v", f)
	}
	// Unknown fields survive the round trip; the same filter again keeps its ID.
	status, body, _ := srv.Do(t, "POST", clientPath("user", string(alice.UserID), "filter"), alice.AccessToken, strings.NewReader(`{"org.example.x": 1}`))
	var created struct {
		FilterID string `json:"filter_id"`
	}
	if json.Unmarshal(body, &created); status != 200 || created.FilterID == resp.FilterID {
		t.Fatalf("second filter = %d %s", status, body)
	}
	if status, body, _ := srv.Do(t, "GET", clientPath("user", string(alice.UserID), "filter", created.FilterID), alice.AccessToken, nil); status != 200 || string(body) != `{"org.example.x":1}` {
		t.Errorf("GET second filter = %d %s", status, body)
	}
	if again, _ := alice.CreateFilter(ctx, &mautrix.Filter{
		Room: &mautrix.RoomFilter{Timeline: &mautrix.FilterPart{Limit: 20, Types: []event.Type{event.EventMessage}, LazyLoadMembers: true}},
	}); again == nil || again.FilterID != resp.FilterID {
		t.Errorf("re-uploading the same filter gave %+v, want ID %q", again, resp.FilterID)
	}
	// Bob's filters are numbered on their own.
	bobResp, err := bob.CreateFilter(ctx, &mautrix.Filter{})
	if err != nil || bobResp.FilterID != resp.FilterID {
		t.Errorf("bob's first filter = %+v, %v; want the same small ID as alice's first", bobResp, err)
	}

	a, tok := string(alice.UserID), alice.AccessToken
	fpath := clientPath("user", a, "filter")
	checkRefusals(t, srv, []refusal{
		{"another user's filter", "GET", clientPath("user", a, "filter", resp.FilterID), bob.AccessToken, "", 403, "M_FORBIDDEN"},
		{"upload for another user", "POST", fpath, bob.AccessToken, `{}`, 403, "M_FORBIDDEN"},
		{"unknown filter", "GET", clientPath("user", a, "filter", "999"), tok, "", 404, "M_NOT_FOUND"},
		{"non-numeric filter", "GET", clientPath("user", a, "filter", "abc"), tok, "", 404, "M_NOT_FOUND"},
		{"not JSON", "POST", fpath, tok, `{"room":`, 400, "M_NOT_JSON"},
		{"not an object", "POST", fpath, tok, `[]`, 400, "M_BAD_JSON"},
		{"limit negative", "POST", fpath, tok, `{"room":{"timeline":{"limit":-1}}}`, 400, "M_BAD_JSON"},
		{"limit not a number", "POST", fpath, tok, `{"room":{"timeline":{"limit":"10"}}}`, 400, "M_BAD_JSON"},
		{"limit fractional", "POST", fpath, tok, `{"presence":{"limit":2.5}}`, 400, "M_BAD_JSON"},
		{"types not a list", "POST", fpath, tok, `{"account_data":{"types":"m.direct"}}`, 400, "M_BAD_JSON"},
		{"room not an object", "POST", fpath, tok, `{"room":true}`, 400, "M_BAD_JSON"},
		{"bad event_format", "POST", fpath, tok, `{"event_format":"json"}`, 400, "M_BAD_JSON"},
		{"sender not a user ID", "POST", fpath, tok, `{"room":{"timeline":{"senders":["bob"]}}}`, 400, "M_BAD_JSON"},
		{"too large", "POST", fpath, tok, `{"event_fields":["` + strings.Repeat("x", 70_000) + `"]}`, 413, "M_TOO_LARGE"},
	})
}

func TestPresenceEndpoints(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration)
	alice := srv.Register(t, "alice", "pw")
	bob := srv.Register(t, "bob", "pw")

	p, err := bob.GetPresence(ctx, alice.UserID)
	if err != nil || p.Presence != event.PresenceOffline {
		t.Errorf("presence never set = %+v, %v; want offline", p, err)
	}
	streamAdvances(t, srv, "go online", func() error {
		return alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "writing tests"})
	})
	status, body, _ := srv.Do(t, "GET", clientPath("presence", string(alice.UserID), "status"), bob.AccessToken, nil)
	var got map[string]any
	json.Unmarshal(body, &got)
	if status != 200 || got["presence"] != "online" || got["status_msg"] != "writing tests" || got["currently_active"] != true {
		t.Errorf("GET presence = %d %s", status, body)
	}
	if ago, ok := got["last_active_ago"].(float64); !ok || ago < 0 || ago > 60_000 {
		t.Errorf("last_active_ago = %v, want a small number", got["last_active_ago"])
	}
	streamAdvances(t, srv, "go unavailable", func() error {
		return alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable})
	})
	if p, err := alice.GetOwnPresence(ctx); err != nil || p.Presence != event.PresenceUnavailable || p.StatusMsg != "" {
		t.Errorf("own presence = %+v, %v; want unavailable without the message", p, err)
	}
	pos, _ := srv.DB.StreamPos(ctx)
	if ps, err := srv.DB.PresenceSince(ctx, []id.UserID{alice.UserID, bob.UserID}, 0, pos); err != nil || len(ps) != 1 || ps[0].StreamPos != pos {
		t.Errorf("PresenceSince = %+v, %v", ps, err)
	}

	a, tok := string(alice.UserID), alice.AccessToken
	ppath := clientPath("presence", a, "status")
	checkRefusals(t, srv, []refusal{
		{"set another user's", "PUT", ppath, bob.AccessToken, `{"presence":"online"}`, 403, "M_FORBIDDEN"},
		{"unknown state", "PUT", ppath, tok, `{"presence":"busy"}`, 400, "M_INVALID_PARAM"},
		{"missing state", "PUT", ppath, tok, `{"status_msg":"hi"}`, 400, "M_MISSING_PARAM"},
		{"state not a string", "PUT", ppath, tok, `{"presence":1}`, 400, "M_BAD_JSON"},
		{"status_msg not a string", "PUT", ppath, tok, `{"presence":"online","status_msg":{}}`, 400, "M_BAD_JSON"},
		{"not JSON", "PUT", ppath, tok, `presence`, 400, "M_NOT_JSON"},
		{"unknown local user", "GET", clientPath("presence", "@nobody:localhost", "status"), tok, "", 404, "M_NOT_FOUND"},
		{"unknown remote user", "GET", clientPath("presence", "@somebody:elsewhere.test", "status"), tok, "", 404, "M_NOT_FOUND"},
		{"not a user ID", "GET", clientPath("presence", "alice", "status"), tok, "", 400, "M_INVALID_PARAM"},
		{"no token", "GET", ppath, "", "", 401, "M_MISSING_TOKEN"},
	})

	// With presence turned off by a reload, updates are accepted and dropped, and everyone
	// is offline.
	next := *srv.Config
	next.Presence.Enabled = false
	srv.Reload(&next)
	before, _ := srv.DB.StreamPos(ctx)
	if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline}); err != nil {
		t.Errorf("PUT presence while off: %v, want 200", err)
	}
	if after, _ := srv.DB.StreamPos(ctx); after != before {
		t.Error("a dropped presence update took a stream position")
	}
	status, body, _ = srv.Do(t, "GET", ppath, bob.AccessToken, nil)
	if status != 200 || string(body) != `{"presence":"offline"}` {
		t.Errorf("GET presence while off = %d %s", status, body)
	}
	if err := bob.SetPresence(ctx, mautrix.ReqPresence{Presence: "busy"}); !isErr(err, "M_INVALID_PARAM", 400) {
		t.Errorf("invalid presence while off: %v, want still refused", err)
	}
}

func TestPresenceDisabledAtStart(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration, servertest.WithConfig(func(c *config.Config) {
		c.Presence.Enabled = false
	}))
	alice := srv.Register(t, "alice", "pw")
	if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "hi"}); err != nil {
		t.Fatal(err)
	}
	if p, err := alice.GetOwnPresence(ctx); err != nil || p.Presence != event.PresenceOffline || p.StatusMsg != "" {
		t.Errorf("presence with presence.enabled=false = %+v, %v; want offline", p, err)
	}
}
