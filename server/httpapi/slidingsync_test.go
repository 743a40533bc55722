package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/server/servertest"
)

const slidingPath = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

// elementXState is the required_state Element X's room list asks for (matrix-rust-sdk).
var elementXState = [][2]string{
	{"m.room.name", ""}, {"m.room.encryption", ""}, {"m.room.member", "$LAZY"}, {"m.room.member", "$ME"},
	{"m.room.topic", ""}, {"m.room.canonical_alias", ""}, {"m.room.power_levels", ""}, {"m.call.member", "*"},
	{"m.room.join_rules", ""}, {"m.room.tombstone", ""}, {"m.room.create", ""}, {"m.room.history_visibility", ""},
	{"m.space.parent", "*"}, {"m.space.child", "*"},
}

// elementXBody is the request Element X starts with: one list of the top 20 rooms with one
// timeline event each, and every extension on.
func elementXBody() map[string]any {
	return map[string]any{
		"conn_id": "room-list",
		"lists": map[string]any{"all_rooms": map[string]any{
			"ranges": [][2]int{{0, 19}}, "timeline_limit": 1, "required_state": elementXState,
			"filters": map[string]any{"not_room_types": []string{"m.space"}},
		}},
		"extensions": map[string]any{
			"to_device":    map[string]any{"enabled": true},
			"e2ee":         map[string]any{"enabled": true},
			"account_data": map[string]any{"enabled": true},
			"receipts":     map[string]any{"enabled": true, "rooms": []string{"*"}, "lists": []string{"all_rooms"}},
			"typing":       map[string]any{"enabled": true},
		},
	}
}

// ssResp is a sliding sync response as a test reads it.
type ssResp struct {
	Pos   string `json:"pos"`
	TxnID string `json:"txn_id"`
	Lists map[string]struct {
		Count int `json:"count"`
	} `json:"lists"`
	Rooms      map[id.RoomID]*ssRoom `json:"rooms"`
	Extensions struct {
		ToDevice *struct {
			NextBatch string            `json:"next_batch"`
			Events    []json.RawMessage `json:"events"`
		} `json:"to_device"`
		E2EE *struct {
			DeviceLists *struct {
				Changed []id.UserID `json:"changed"`
			} `json:"device_lists"`
			Counts map[string]int `json:"device_one_time_keys_count"`
		} `json:"e2ee"`
		AccountData *struct {
			Global []struct {
				Type string `json:"type"`
			} `json:"global"`
			Rooms map[id.RoomID][]struct {
				Type    string          `json:"type"`
				Content json.RawMessage `json:"content"`
			} `json:"rooms"`
		} `json:"account_data"`
		Receipts *struct {
			Rooms map[id.RoomID]json.RawMessage `json:"rooms"`
		} `json:"receipts"`
		Typing *struct {
			Rooms map[id.RoomID]struct {
				Content struct {
					UserIDs []id.UserID `json:"user_ids"`
				} `json:"content"`
			} `json:"rooms"`
		} `json:"typing"`
	} `json:"extensions"`
}

type ssRoom struct {
	Name   *string `json:"name"`
	Avatar *string `json:"avatar"`
	Heroes []struct {
		UserID      id.UserID `json:"user_id"`
		DisplayName string    `json:"displayname"`
	} `json:"heroes"`
	Initial          bool              `json:"initial"`
	IsDM             *bool             `json:"is_dm"`
	Membership       string            `json:"membership"`
	ExpandedTimeline bool              `json:"expanded_timeline"`
	RequiredState    []*event.Event    `json:"required_state"`
	Timeline         []*event.Event    `json:"timeline"`
	PrevBatch        string            `json:"prev_batch"`
	Limited          *bool             `json:"limited"`
	NumLive          *int              `json:"num_live"`
	BumpStamp        int64             `json:"bump_stamp"`
	JoinedCount      *int              `json:"joined_count"`
	InvitedCount     *int              `json:"invited_count"`
	InviteState      []json.RawMessage `json:"invite_state"`
	Notifications    *int              `json:"notification_count"`
}

// ssConn is one sliding sync connection of one client: each sync continues from the pos of
// the last, and the to-device extension from its next_batch.
type ssConn struct {
	t      *testing.T
	s      *servertest.Server
	c      *mautrix.Client
	body   map[string]any
	pos    string
	client http.Client
}

func newSSConn(t *testing.T, s *servertest.Server, c *mautrix.Client, body map[string]any) *ssConn {
	return &ssConn{t: t, s: s, c: c, body: body}
}

// post sends one request with a raw body and query, and returns status and body; it may
// run on another goroutine.
func (c *ssConn) post(query string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest("POST", c.s.URL+slidingPath+query, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.c.AccessToken)
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// try syncs once from the connection's pos, waiting up to timeout milliseconds.
func (c *ssConn) try(timeout int) (*ssResp, error) {
	q := url.Values{}
	if c.pos != "" {
		q.Set("pos", c.pos)
		q.Set("timeout", fmt.Sprint(timeout))
	}
	body, _ := json.Marshal(c.body)
	status, b, err := c.post("?"+q.Encode(), body)
	if err != nil {
		return nil, err
	}
	if status != 200 {
		return nil, fmt.Errorf("sliding sync: %d %s", status, b)
	}
	var r ssResp
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	c.pos = r.Pos
	if td := r.Extensions.ToDevice; td != nil {
		c.body["extensions"].(map[string]any)["to_device"].(map[string]any)["since"] = td.NextBatch
	}
	return &r, nil
}

func (c *ssConn) next(timeout int) *ssResp {
	c.t.Helper()
	r, err := c.try(timeout)
	if err != nil {
		c.t.Fatalf("%s: %v", c.c.UserID, err)
	}
	return r
}

// wait starts a long-poll and returns its answer's channel once the server has parked it.
func (c *ssConn) wait() <-chan *ssResp {
	c.t.Helper()
	before := c.s.Sync.Waiting()
	ch := make(chan *ssResp, 1)
	go func() {
		r, err := c.try(30000)
		if err != nil {
			c.t.Errorf("long-poll: %v", err)
		}
		ch <- r
	}()
	waitFor(c.t, "the long-poll to wait", func() bool { return c.s.Sync.Waiting() > before })
	return ch
}

func stateOf(evs []*event.Event, typ, key string) *event.Event {
	for _, ev := range evs {
		if ev.Type.Type == typ && ev.StateKey != nil && *ev.StateKey == key {
			return ev
		}
	}
	return nil
}

func roomIDs(m map[id.RoomID]*ssRoom) []id.RoomID {
	var out []id.RoomID
	for r := range m {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

func TestSlidingSyncElementXFlow(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	named := mustCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Crisis team", Topic: "floods", Preset: "public_chat"})
	unnamed := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	space := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", CreationContent: map[string]any{"type": "m.space"}})
	for _, r := range []id.RoomID{named, unnamed, space} {
		if _, err := bob.JoinRoomByID(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if _, err := alice.SendText(ctx, named, fmt.Sprintf("named %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	last, err := alice.SendText(ctx, unnamed, "unnamed 0")
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.SetAccountData(ctx, "m.direct", map[string][]id.RoomID{string(alice.UserID): {unnamed}}); err != nil {
		t.Fatal(err)
	}

	conn := newSSConn(t, s, bob, elementXBody())
	conn.body["txn_id"] = "t1"
	r := conn.next(0)
	if r.TxnID != "t1" {
		t.Errorf("txn_id = %q, want the request's", r.TxnID)
	}
	delete(conn.body, "txn_id")
	if r.Lists["all_rooms"].Count != 2 {
		t.Errorf("all_rooms counts %d rooms, want 2 (the space is filtered out)", r.Lists["all_rooms"].Count)
	}
	if got := roomIDs(r.Rooms); !slices.Equal(got, roomIDs(map[id.RoomID]*ssRoom{named: nil, unnamed: nil})) {
		t.Fatalf("rooms = %v, want the two rooms", got)
	}
	nr, ur := r.Rooms[named], r.Rooms[unnamed]
	if !nr.Initial || nr.Name == nil || *nr.Name != "Crisis team" || len(nr.Heroes) != 0 {
		t.Errorf("named room: initial %v, name %v, heroes %v", nr.Initial, nr.Name, nr.Heroes)
	}
	if len(nr.Timeline) != 1 || nr.Timeline[0].Content.Raw["body"] != "named 2" || nr.Limited == nil || !*nr.Limited || nr.PrevBatch == "" {
		t.Errorf("named room's timeline = %v (limited %v), want the newest message, limited", nr.Timeline, nr.Limited)
	}
	for _, k := range [][2]string{{"m.room.create", ""}, {"m.room.name", ""}, {"m.room.topic", ""}, {"m.room.power_levels", ""},
		{"m.room.join_rules", ""}, {"m.room.history_visibility", ""}, {"m.room.member", string(bob.UserID)}, {"m.room.member", string(alice.UserID)}} {
		if stateOf(nr.RequiredState, k[0], k[1]) == nil {
			t.Errorf("named room's required_state lacks %s/%s", k[0], k[1])
		}
	}
	if len(nr.RequiredState) != 8 {
		t.Errorf("named room's required_state has %d events, want 8", len(nr.RequiredState))
	}
	if nr.JoinedCount == nil || *nr.JoinedCount != 2 || nr.InvitedCount == nil || *nr.InvitedCount != 0 || nr.IsDM != nil {
		t.Errorf("named room: joined %v, invited %v, is_dm %v", nr.JoinedCount, nr.InvitedCount, nr.IsDM)
	}
	if ur.Name != nil || len(ur.Heroes) != 1 || ur.Heroes[0].UserID != alice.UserID || ur.IsDM == nil || !*ur.IsDM {
		t.Errorf("unnamed room: name %v, heroes %+v, is_dm %v; want alice as hero, a DM", ur.Name, ur.Heroes, ur.IsDM)
	}
	if ur.Timeline[0].ID != last.EventID || ur.BumpStamp <= nr.BumpStamp {
		t.Errorf("unnamed room's bump_stamp %d is not after the named room's %d", ur.BumpStamp, nr.BumpStamp)
	}
	x := r.Extensions
	if x.ToDevice == nil || x.ToDevice.NextBatch == "" || x.E2EE == nil || x.E2EE.Counts == nil || x.AccountData == nil ||
		x.Receipts == nil || x.Typing == nil {
		t.Fatalf("extensions = %+v, want every one answered", x)
	}
	if !slices.ContainsFunc(x.AccountData.Global, func(g struct {
		Type string `json:"type"`
	}) bool {
		return g.Type == "m.direct"
	}) {
		t.Errorf("global account data %v lacks m.direct", x.AccountData.Global)
	}

	// Nothing new: a zero timeout answers at once with no rooms.
	if r := conn.next(0); len(r.Rooms) != 0 {
		t.Errorf("an incremental sync with nothing new has rooms %v", roomIDs(r.Rooms))
	}

	// A message wakes the long-poll with just that room, as a delta.
	ch := conn.wait()
	sent, err := alice.SendText(ctx, named, "wake up")
	if err != nil {
		t.Fatal(err)
	}
	r = <-ch
	if got := roomIDs(r.Rooms); len(got) != 1 || got[0] != named {
		t.Fatalf("woke with rooms %v, want the named room", got)
	}
	nr = r.Rooms[named]
	if nr.Initial || len(nr.Timeline) != 1 || nr.Timeline[0].ID != sent.EventID || nr.NumLive == nil || *nr.NumLive != 1 ||
		nr.Name != nil || nr.JoinedCount != nil || nr.BumpStamp <= ur.BumpStamp {
		t.Errorf("delta: initial %v, timeline %v, num_live %v, name %v, joined %v, bump %d", nr.Initial, nr.Timeline, nr.NumLive,
			nr.Name, nr.JoinedCount, nr.BumpStamp)
	}
	if len(nr.RequiredState) != 0 {
		t.Errorf("delta resends state: %v (alice's member event was sent already)", nr.RequiredState)
	}

	// Typing wakes it with the typing extension alone.
	ch = conn.wait()
	if _, err := alice.UserTyping(ctx, named, true, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	r = <-ch
	if len(r.Rooms) != 0 || r.Extensions.Typing == nil || !slices.Equal(r.Extensions.Typing.Rooms[named].Content.UserIDs, []id.UserID{alice.UserID}) {
		t.Errorf("typing wake: rooms %v, typing %+v", roomIDs(r.Rooms), r.Extensions.Typing)
	}

	// A read receipt.
	ch = conn.wait()
	if err := alice.SendReceipt(ctx, named, sent.EventID, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	r = <-ch
	if rc := r.Extensions.Receipts; rc == nil || !strings.Contains(string(rc.Rooms[named]), string(alice.UserID)) ||
		!strings.Contains(string(rc.Rooms[named]), string(sent.EventID)) {
		t.Errorf("receipt wake: %+v", r.Extensions.Receipts)
	}

	// A to-device message, once: the next request acknowledges it with since.
	ch = conn.wait()
	_, err = alice.SendToDevice(ctx, event.Type{Type: "m.test", Class: event.ToDeviceEventType}, &mautrix.ReqSendToDevice{Messages: map[id.UserID]map[id.DeviceID]*event.Content{
		bob.UserID: {bob.DeviceID: {Raw: map[string]any{"n": 1}}}}})
	if err != nil {
		t.Fatal(err)
	}
	r = <-ch
	if td := r.Extensions.ToDevice; td == nil || len(td.Events) != 1 || !strings.Contains(string(td.Events[0]), `"m.test"`) {
		t.Fatalf("to-device wake: %+v", r.Extensions.ToDevice)
	}
	if r := conn.next(0); len(r.Extensions.ToDevice.Events) != 0 {
		t.Errorf("the to-device message came again: %s", r.Extensions.ToDevice.Events)
	}

	// Account data.
	ch = conn.wait()
	if err := bob.SetRoomAccountData(ctx, named, "m.tag", map[string]any{"tags": map[string]any{"m.favourite": map[string]any{}}}); err != nil {
		t.Fatal(err)
	}
	r = <-ch
	if ad := r.Extensions.AccountData; ad == nil || len(ad.Rooms[named]) != 1 || ad.Rooms[named][0].Type != "m.tag" {
		t.Errorf("account data wake: %+v", r.Extensions.AccountData)
	}
}

// listBody is a request with one list of the given range, timeline limit and state.
func listBody(from, to, limit int, state ...[2]string) map[string]any {
	if state == nil {
		state = [][2]string{}
	}
	return map[string]any{"lists": map[string]any{"all": map[string]any{
		"ranges": [][2]int{{from, to}}, "timeline_limit": limit, "required_state": state}}}
}

func TestSlidingSyncInvitesAndJoins(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	body := listBody(0, 19, 1, elementXState...)
	body["lists"].(map[string]any)["invites"] = map[string]any{"ranges": [][2]int{{0, 19}}, "timeline_limit": 0,
		"required_state": [][2]string{}, "filters": map[string]any{"is_invite": true}}
	conn := newSSConn(t, s, bob, body)
	if r := conn.next(0); len(r.Rooms) != 0 || r.Lists["all"].Count != 0 {
		t.Fatalf("bob has rooms before any: %v", r.Rooms)
	}

	ch := conn.wait()
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Invited", Invite: []id.UserID{bob.UserID}})
	r := <-ch
	ir := r.Rooms[room]
	if ir == nil || !ir.Initial || ir.Membership != "invite" || ir.BumpStamp == 0 || len(ir.Timeline) != 0 || len(ir.RequiredState) != 0 {
		t.Fatalf("the invite arrived as %+v", ir)
	}
	if r.Lists["invites"].Count != 1 || r.Lists["all"].Count != 1 {
		t.Errorf("list counts = %+v, want the invite in both", r.Lists)
	}
	var sawName, sawInvite bool
	for _, raw := range ir.InviteState {
		var ev event.Event
		json.Unmarshal(raw, &ev)
		sawName = sawName || (ev.Type.Type == "m.room.name" && ev.Content.Raw["name"] == "Invited")
		sawInvite = sawInvite || (ev.Type.Type == "m.room.member" && ev.Content.Raw["membership"] == "invite" && ev.Sender == alice.UserID)
	}
	if !sawName || !sawInvite {
		t.Errorf("invite_state (name %v, invite event %v): %s", sawName, sawInvite, ir.InviteState)
	}
	// Events bob cannot see yet do not send the invite again.
	if _, err := alice.SendText(ctx, room, "before bob joins"); err != nil {
		t.Fatal(err)
	}
	if r := conn.next(0); len(r.Rooms) != 0 {
		t.Errorf("the invite came again: %v", roomIDs(r.Rooms))
	}

	ch = conn.wait()
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	r = <-ch
	jr := r.Rooms[room]
	if jr == nil || !jr.Initial || jr.Membership != "join" || len(jr.InviteState) != 0 || jr.Name == nil || *jr.Name != "Invited" {
		t.Fatalf("the joined room arrived as %+v", jr)
	}
	if len(jr.Timeline) != 1 || jr.Timeline[0].Sender != bob.UserID || jr.Timeline[0].Type.Type != "m.room.member" {
		t.Errorf("timeline after joining = %v, want bob's join", jr.Timeline)
	}
	if stateOf(jr.RequiredState, "m.room.create", "") == nil || stateOf(jr.RequiredState, "m.room.member", string(bob.UserID)) == nil {
		t.Errorf("required_state after joining lacks the create event or bob's member event")
	}
	if jr.JoinedCount == nil || *jr.JoinedCount != 2 {
		t.Errorf("joined_count = %v, want 2", jr.JoinedCount)
	}
	if r.Lists["invites"].Count != 0 {
		t.Errorf("the invites list still counts %d", r.Lists["invites"].Count)
	}
}

func TestSlidingSyncLazyMembersOnce(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	carol := s.Register(t, "carol", "correct horse battery")
	dave := s.Register(t, "dave", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Lazy"})
	for _, c := range []*mautrix.Client{bob, carol, dave} {
		if _, err := c.JoinRoomByID(ctx, room); err != nil {
			t.Fatal(err)
		}
	}
	send := func(c *mautrix.Client, text string) {
		t.Helper()
		if _, err := c.SendText(ctx, room, text); err != nil {
			t.Fatal(err)
		}
	}
	send(carol, "c1")
	send(dave, "d1")
	members := func(rr *ssRoom) []string {
		var out []string
		for _, ev := range rr.RequiredState {
			if ev.Type.Type == "m.room.member" {
				out = append(out, *ev.StateKey)
			}
		}
		slices.Sort(out)
		return out
	}
	conn := newSSConn(t, s, bob, listBody(0, 9, 1, [2]string{"m.room.member", "$LAZY"}, [2]string{"m.room.member", "$ME"}, [2]string{"m.room.create", ""}))
	r := conn.next(0)
	if got := members(r.Rooms[room]); !slices.Equal(got, []string{string(bob.UserID), string(dave.UserID)}) {
		t.Errorf("initial members = %v, want bob ($ME) and dave (the timeline's sender)", got)
	}

	ch := conn.wait()
	send(dave, "d2")
	if got := members((<-ch).Rooms[room]); len(got) != 0 {
		t.Errorf("dave's member event was sent again: %v", got)
	}
	ch = conn.wait()
	send(carol, "c2")
	if got := members((<-ch).Rooms[room]); !slices.Equal(got, []string{string(carol.UserID)}) {
		t.Errorf("members for carol's first message = %v, want carol", got)
	}
	ch = conn.wait()
	send(carol, "c3")
	if got := members((<-ch).Rooms[room]); len(got) != 0 {
		t.Errorf("carol's member event was sent again: %v", got)
	}

	// A new connection knows nothing: the members come again.
	fresh := newSSConn(t, s, bob, listBody(0, 9, 1, [2]string{"m.room.member", "$LAZY"}))
	if got := members(fresh.next(0).Rooms[room]); !slices.Equal(got, []string{string(carol.UserID)}) {
		t.Errorf("a new connection's members = %v, want carol", got)
	}
}

func TestSlidingSyncRetrySamePos(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	a := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	b := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	for _, r := range []id.RoomID{a, b} {
		if _, err := bob.JoinRoomByID(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	conn := newSSConn(t, s, bob, listBody(0, 9, 3, [2]string{"m.room.name", ""}))
	first := conn.next(0)
	if len(first.Rooms) != 2 {
		t.Fatalf("initial rooms = %v", roomIDs(first.Rooms))
	}
	pos0 := conn.pos
	msg, err := alice.SendText(ctx, a, "once")
	if err != nil {
		t.Fatal(err)
	}
	r1 := conn.next(0)
	pos1 := conn.pos
	// The client lost that answer and asks again with the same pos: the same room and event.
	conn.pos = pos0
	r2 := conn.next(0)
	for i, r := range []*ssResp{r1, r2} {
		if got := roomIDs(r.Rooms); len(got) != 1 || got[0] != a || len(r.Rooms[a].Timeline) != 1 || r.Rooms[a].Timeline[0].ID != msg.EventID {
			t.Errorf("answer %d to pos %s: rooms %v", i+1, pos0, got)
		}
	}
	// The same goes for a new connection's first pos: the whole rooms again.
	conn.pos = ""
	initial := conn.next(0)
	conn.pos = ""
	again := conn.next(0)
	if len(initial.Rooms) != 2 || len(again.Rooms) != 2 || !again.Rooms[a].Initial {
		t.Errorf("repeated initial requests: %v then %v", roomIDs(initial.Rooms), roomIDs(again.Rooms))
	}
	// pos1 answered a request the client has since given up on.
	status, body, err := conn.post("?pos="+url.QueryEscape(pos1), []byte(`{"lists":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "a pos the client gave up on", status, body, 400, "M_UNKNOWN_POS")
	if r := conn.next(0); len(r.Rooms) != 0 {
		t.Errorf("the latest pos still works, with nothing new: %v", roomIDs(r.Rooms))
	}
}

func TestSlidingSyncRefusals(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	bob := s.Register(t, "bob", "correct horse battery")
	conn := newSSConn(t, s, bob, map[string]any{"conn_id": "a", "lists": map[string]any{}})
	conn.next(0)
	goodPos := conn.pos
	post := func(query, body string) (int, []byte) {
		t.Helper()
		status, b, err := conn.post(query, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return status, b
	}
	list := func(l string) string { return `{"lists":{"l":` + l + `}}` }
	cases := []struct {
		what, query, body string
		status            int
		code              string
	}{
		{"a body that is not JSON", "", `{"lists":`, 400, "M_NOT_JSON"},
		{"an empty body", "", ``, 400, "M_NOT_JSON"},
		{"a body that is not an object", "", `[]`, 400, "M_BAD_JSON"},
		{"lists that are not an object", "", `{"lists":[]}`, 400, "M_BAD_JSON"},
		{"a range backwards", "", list(`{"ranges":[[3,1]],"timeline_limit":1,"required_state":[]}`), 400, "M_INVALID_PARAM"},
		{"a range of one number", "", list(`{"ranges":[[1]],"timeline_limit":1,"required_state":[]}`), 400, "M_INVALID_PARAM"},
		{"a negative range", "", list(`{"ranges":[[-1,2]],"timeline_limit":1,"required_state":[]}`), 400, "M_INVALID_PARAM"},
		{"a range of strings", "", list(`{"ranges":[["0","2"]],"timeline_limit":1,"required_state":[]}`), 400, "M_BAD_JSON"},
		{"no timeline_limit", "", list(`{"ranges":[[0,1]],"required_state":[]}`), 400, "M_INVALID_PARAM"},
		{"a negative timeline_limit", "", list(`{"ranges":[[0,1]],"timeline_limit":-1,"required_state":[]}`), 400, "M_INVALID_PARAM"},
		{"required_state of single strings", "", list(`{"ranges":[[0,1]],"timeline_limit":1,"required_state":[["m.room.name"]]}`), 400, "M_BAD_JSON"},
		{"required_state a number", "", list(`{"ranges":[[0,1]],"timeline_limit":1,"required_state":5}`), 400, "M_BAD_JSON"},
		{"a subscription to something not a room ID", "", `{"room_subscriptions":{"#alias:x":{"timeline_limit":1}}}`, 400, "M_INVALID_PARAM"},
		{"a to-device since that is not ours", "", `{"extensions":{"to_device":{"enabled":true,"since":"abc"}}}`, 400, "M_INVALID_PARAM"},
		{"a malformed pos", "?pos=garbage", `{}`, 400, "M_INVALID_PARAM"},
		{"a pos without its connection part", "?pos=s5", `{}`, 400, "M_INVALID_PARAM"},
		{"a pos this server never gave", "?pos=s1_c7", `{}`, 400, "M_UNKNOWN_POS"},
		{"a pos of another connection", "?pos=" + url.QueryEscape(goodPos), `{"conn_id":"b"}`, 400, "M_UNKNOWN_POS"},
		{"a pos with a forged stream position", "?pos=" + url.QueryEscape(strings.Replace(goodPos, "s", "s9", 1)), `{"conn_id":"a"}`, 400, "M_UNKNOWN_POS"},
		{"a timeout that is not a number", "?timeout=soon", `{}`, 400, "M_INVALID_PARAM"},
		{"a negative timeout", "?timeout=-5", `{}`, 400, "M_INVALID_PARAM"},
		{"an unknown set_presence", "?set_presence=busy", `{}`, 400, "M_INVALID_PARAM"},
	}
	for _, c := range cases {
		status, body := post(c.query, c.body)
		wantStatus(t, c.what, status, body, c.status, c.code)
	}
	var many strings.Builder
	many.WriteString(`{"lists":{`)
	for i := range 101 {
		if i > 0 {
			many.WriteString(",")
		}
		fmt.Fprintf(&many, `"l%d":{"timeline_limit":1}`, i)
	}
	many.WriteString(`}}`)
	status, body := post("", many.String())
	wantStatus(t, "101 lists", status, body, 400, "M_INVALID_PARAM")

	req, _ := http.NewRequest("POST", s.URL+slidingPath, strings.NewReader(`{}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantStatus(t, "no access token", resp.StatusCode, b, 401, "M_MISSING_TOKEN")

	// The connection still works after every refusal; pos and timeout may come in the body
	// too (the MSC's newer text); a new start of the connection ends the old pos.
	status, body = post("?pos="+url.QueryEscape(goodPos), `{"conn_id":"a"}`)
	wantStatus(t, "the good pos", status, body, 200, "")
	status, body = post("", `{"conn_id":"a","pos":"`+goodPos+`","timeout":0}`)
	wantStatus(t, "the good pos in the body", status, body, 200, "")
	status, body = post("", `{"conn_id":"a","pos":"`+goodPos+`","timeout":-1}`)
	wantStatus(t, "a negative timeout in the body", status, body, 400, "M_INVALID_PARAM")
	status, body = post("", `{"conn_id":"a"}`)
	wantStatus(t, "starting connection a again", status, body, 200, "")
	status, body = post("?pos="+url.QueryEscape(goodPos), `{"conn_id":"a"}`)
	wantStatus(t, "a pos of the connection before it started again", status, body, 400, "M_UNKNOWN_POS")
}

func TestSlidingSyncRangesFollowActivity(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	var rooms []id.RoomID
	for i := range 5 {
		r := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: fmt.Sprintf("r%d", i)})
		if _, err := bob.JoinRoomByID(ctx, r); err != nil {
			t.Fatal(err)
		}
		rooms = append(rooms, r)
	}
	for _, r := range rooms {
		if _, err := alice.SendText(ctx, r, "hello"); err != nil {
			t.Fatal(err)
		}
	}
	conn := newSSConn(t, s, bob, listBody(0, 1, 1))
	r := conn.next(0)
	if got := roomIDs(r.Rooms); !slices.Equal(got, roomIDs(map[id.RoomID]*ssRoom{rooms[4]: nil, rooms[3]: nil})) || r.Lists["all"].Count != 5 {
		t.Fatalf("top two rooms = %v (count %d), want r4 and r3 of 5", got, r.Lists["all"].Count)
	}
	// A message moves r0 to the top: it is new to the client, so it comes whole.
	ch := conn.wait()
	if _, err := alice.SendText(ctx, rooms[0], "bump"); err != nil {
		t.Fatal(err)
	}
	r = <-ch
	if got := roomIDs(r.Rooms); len(got) != 1 || got[0] != rooms[0] || !r.Rooms[rooms[0]].Initial {
		t.Fatalf("after the bump: %v", got)
	}
	// A state event is not activity: r1 stays out of the window.
	if _, err := alice.SendStateEvent(ctx, rooms[1], event.StateTopic, "", map[string]any{"topic": "quiet"}); err != nil {
		t.Fatal(err)
	}
	if r := conn.next(0); len(r.Rooms) != 0 {
		t.Errorf("a topic change brought %v into the window", roomIDs(r.Rooms))
	}
	// Growing the range sends the rooms the client has not got, and only those.
	conn.body = listBody(0, 4, 1)
	r = conn.next(0)
	if got := roomIDs(r.Rooms); !slices.Equal(got, roomIDs(map[id.RoomID]*ssRoom{rooms[1]: nil, rooms[2]: nil})) {
		t.Errorf("growing the range sent %v, want r1 and r2", got)
	}
	// r3 got a message while out of the window: when it comes back, the client gets it.
	conn.body = listBody(0, 0, 1)
	conn.next(0)
	if _, err := alice.SendText(ctx, rooms[3], "while away"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, rooms[0], "keep r0 on top"); err != nil {
		t.Fatal(err)
	}
	conn.next(0)
	conn.body = listBody(0, 4, 1)
	r = conn.next(0)
	if rr := r.Rooms[rooms[3]]; rr == nil || rr.Initial || len(rr.Timeline) != 1 || rr.Timeline[0].Content.Raw["body"] != "while away" {
		t.Errorf("r3 back in the window: %+v", rr)
	}
	if _, ok := r.Rooms[rooms[4]]; ok {
		t.Error("r4, unchanged, was sent again")
	}
}

func TestSlidingSyncLeaveAndKick(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	left := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	kicked := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	for _, r := range []id.RoomID{left, kicked} {
		if _, err := bob.JoinRoomByID(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	conn := newSSConn(t, s, bob, listBody(0, 9, 2, [2]string{"m.room.member", "$ME"}))
	if r := conn.next(0); len(r.Rooms) != 2 {
		t.Fatalf("initial rooms = %v", roomIDs(r.Rooms))
	}
	ch := conn.wait()
	if _, err := bob.LeaveRoom(ctx, left); err != nil {
		t.Fatal(err)
	}
	r := <-ch
	lr := r.Rooms[left]
	if lr == nil || lr.Membership != "leave" || len(lr.Timeline) == 0 || lr.Timeline[len(lr.Timeline)-1].Content.Raw["membership"] != "leave" {
		t.Fatalf("the left room: %+v", lr)
	}
	if me := stateOf(lr.RequiredState, "m.room.member", string(bob.UserID)); me == nil || me.Content.Raw["membership"] != "leave" {
		t.Errorf("required_state of the left room: %v", lr.RequiredState)
	}
	// What happens after the leave is not bob's to see.
	if _, err := alice.SendText(ctx, left, "after bob left"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.KickUser(ctx, kicked, &mautrix.ReqKickUser{UserID: bob.UserID, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	r = conn.next(0)
	if _, ok := r.Rooms[left]; ok {
		t.Errorf("the left room came again: %+v", r.Rooms[left])
	}
	if kr := r.Rooms[kicked]; kr == nil || kr.Membership != "leave" {
		t.Errorf("the room bob was kicked from: %+v", kr)
	}
	// A new connection lists the room bob was kicked from, not the one he left.
	fresh := newSSConn(t, s, bob, listBody(0, 9, 1))
	r = fresh.next(0)
	if got := roomIDs(r.Rooms); len(got) != 1 || got[0] != kicked || r.Lists["all"].Count != 1 {
		t.Errorf("a new connection's rooms = %v, want the one bob was kicked from", got)
	}
}

func TestSlidingSyncSubscriptionsAndWiderConfig(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Topic: "the topic"})
	private := mustCreate(t, alice, &mautrix.ReqCreateRoom{})
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if _, err := alice.SendText(ctx, room, fmt.Sprintf("m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	conn := newSSConn(t, s, bob, listBody(0, 9, 1, [2]string{"m.room.name", ""}))
	r := conn.next(0)
	if len(r.Rooms[room].Timeline) != 1 {
		t.Fatalf("timeline = %v", r.Rooms[room].Timeline)
	}
	// Subscribing with a larger timeline and more state sends the room at once, expanded.
	conn.body["room_subscriptions"] = map[string]any{
		string(room):    map[string]any{"timeline_limit": 5, "required_state": [][2]string{{"m.room.topic", ""}}},
		string(private): map[string]any{"timeline_limit": 5, "required_state": [][2]string{{"*", "*"}}},
	}
	r = conn.next(0)
	rr := r.Rooms[room]
	if rr == nil || !rr.ExpandedTimeline || rr.Initial || len(rr.Timeline) != 5 || rr.Timeline[4].Content.Raw["body"] != "m5" {
		t.Fatalf("expanded room: %+v", rr)
	}
	if len(rr.RequiredState) != 1 || stateOf(rr.RequiredState, "m.room.topic", "") == nil {
		t.Errorf("widened required_state sent %v, want just the topic", rr.RequiredState)
	}
	if _, ok := r.Rooms[private]; ok {
		t.Error("a subscription to a room bob is not in was answered")
	}
	// Nothing more to send with the same config.
	if r := conn.next(0); len(r.Rooms) != 0 {
		t.Errorf("the same config again sent %v", roomIDs(r.Rooms))
	}
}

func TestSlidingSyncFilters(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	plain := mustCreate(t, bob, &mautrix.ReqCreateRoom{})
	encrypted := mustCreate(t, bob, &mautrix.ReqCreateRoom{InitialState: []*event.Event{{Type: event.StateEncryption,
		Content: event.Content{Raw: map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}}}})
	dm := mustCreate(t, bob, &mautrix.ReqCreateRoom{IsDirect: true, Invite: []id.UserID{alice.UserID}})
	space := mustCreate(t, bob, &mautrix.ReqCreateRoom{CreationContent: map[string]any{"type": "m.space"}})
	if _, err := bob.SendStateEvent(ctx, space, event.StateSpaceChild, string(plain), map[string]any{"via": []string{"localhost"}}); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetAccountData(ctx, "m.direct", map[string][]id.RoomID{string(alice.UserID): {dm}}); err != nil {
		t.Fatal(err)
	}
	if err := bob.AddTag(ctx, encrypted, event.RoomTagFavourite, 0.5); err != nil {
		t.Fatal(err)
	}
	lists := map[string]any{}
	for name, f := range map[string]map[string]any{
		"dms":       {"is_dm": true},
		"not_dms":   {"is_dm": false},
		"encrypted": {"is_encrypted": true},
		"spaces":    {"room_types": []any{"m.space"}},
		"untyped":   {"room_types": []any{nil}},
		"no_spaces": {"not_room_types": []any{"m.space"}},
		"children":  {"spaces": []id.RoomID{space}},
		"favs":      {"tags": []string{"m.favourite"}},
		"not_favs":  {"not_tags": []string{"m.favourite"}},
		"invites":   {"is_invite": true},
	} {
		lists[name] = map[string]any{"ranges": [][2]int{{0, 9}}, "timeline_limit": 0, "required_state": [][2]string{}, "filters": f}
	}
	r := newSSConn(t, s, bob, map[string]any{"lists": lists}).next(0)
	for name, want := range map[string]int{"dms": 1, "not_dms": 3, "encrypted": 1, "spaces": 1, "untyped": 3, "no_spaces": 3,
		"children": 1, "favs": 1, "not_favs": 3, "invites": 0} {
		if got := r.Lists[name].Count; got != want {
			t.Errorf("list %s counts %d rooms, want %d", name, got, want)
		}
	}
	if rr := r.Rooms[dm]; rr == nil || rr.IsDM == nil || !*rr.IsDM {
		t.Errorf("the DM room: %+v", rr)
	}
}

func TestSlidingSyncAdvertised(t *testing.T) {
	s := servertest.Start(t)
	status, body, _ := s.Do(t, "GET", "/_matrix/client/versions", "", nil)
	var v struct {
		Unstable map[string]bool `json:"unstable_features"`
	}
	if err := json.Unmarshal(body, &v); err != nil || status != 200 || !v.Unstable["org.matrix.simplified_msc3575"] {
		t.Errorf("/versions = %d %s, want org.matrix.simplified_msc3575", status, body)
	}
}

// Element X keeps a second connection for end-to-end encryption: no lists, only the
// to-device and e2ee extensions.
func TestSlidingSyncEncryptionConnection(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	conn := newSSConn(t, s, bob, map[string]any{"conn_id": "encryption", "extensions": map[string]any{
		"to_device": map[string]any{"enabled": true}, "e2ee": map[string]any{"enabled": true}}})
	r := conn.next(0)
	if len(r.Rooms) != 0 || r.Lists != nil || r.Extensions.E2EE == nil || r.Extensions.E2EE.DeviceLists != nil || r.Extensions.AccountData != nil {
		t.Fatalf("initial encryption connection: %+v", r)
	}

	// Alice's new device keys wake it with alice in device_lists.changed.
	ch := conn.wait()
	pub, priv := e2eeKeyPair()
	st, body := e2eeCall(t, s, alice, "POST", "/keys/upload", map[string]any{"device_keys": e2eeDeviceKeys(t, alice, pub, priv)})
	e2eeWant(t, "alice's key upload", st, body, 200, "")
	r = <-ch
	if e := r.Extensions.E2EE; e == nil || e.DeviceLists == nil || !slices.Contains(e.DeviceLists.Changed, alice.UserID) {
		t.Errorf("after alice's key upload: %+v", r.Extensions.E2EE)
	}
	// Bob's one-time keys count.
	st, body = e2eeCall(t, s, bob, "POST", "/keys/upload", map[string]any{"one_time_keys": map[string]any{
		"signed_curve25519:AAAAAQ": map[string]any{"key": e2eeCurve25519(t)}}})
	e2eeWant(t, "bob's one-time key", st, body, 200, "")
	if r := conn.next(0); r.Extensions.E2EE.Counts["signed_curve25519"] != 1 {
		t.Errorf("one-time key counts = %v", r.Extensions.E2EE.Counts)
	}
	// A message in the room does not answer a connection that asks for no rooms.
	ch = conn.wait()
	if _, err := alice.SendText(ctx, room, "not for this connection"); err != nil {
		t.Fatal(err)
	}
	_, err := alice.SendToDevice(ctx, event.Type{Type: "m.test", Class: event.ToDeviceEventType}, &mautrix.ReqSendToDevice{
		Messages: map[id.UserID]map[id.DeviceID]*event.Content{bob.UserID: {"*": {Raw: map[string]any{"n": 2}}}}})
	if err != nil {
		t.Fatal(err)
	}
	r = <-ch
	if len(r.Rooms) != 0 || len(r.Extensions.ToDevice.Events) != 1 {
		t.Errorf("woke with rooms %v and to-device %s", roomIDs(r.Rooms), r.Extensions.ToDevice.Events)
	}
}

// A connection ends when the server restarts, and when the device opens more connections
// than it may keep: its pos answers M_UNKNOWN_POS, and the client starts again without one.
func TestSlidingSyncConnectionsEnd(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Kept"})
	conn := newSSConn(t, s, alice, listBody(0, 9, 1, [2]string{"m.room.name", ""}))
	conn.next(0)
	unknown := func(what string) {
		t.Helper()
		status, body, err := conn.post("?pos="+url.QueryEscape(conn.pos), []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, what, status, body, 400, "M_UNKNOWN_POS")
	}

	var others []*ssConn
	for i := range 10 {
		o := newSSConn(t, s, alice, map[string]any{"conn_id": fmt.Sprintf("c%d", i)})
		o.next(0)
		others = append(others, o)
	}
	unknown("the pos of the device's least recently used connection, after ten more")
	if r := others[9].next(0); len(r.Rooms) != 0 {
		t.Errorf("the newest connection: %v", roomIDs(r.Rooms))
	}

	conn.pos = ""
	conn.next(0)
	s.Restart(t)
	alice.HomeserverURL, _ = url.Parse(s.URL)
	unknown("a pos from before a restart")
	conn.pos = ""
	if r := conn.next(0); r.Rooms[room] == nil || !r.Rooms[room].Initial {
		t.Errorf("starting again after the restart: %v", roomIDs(r.Rooms))
	}
	if _, err := alice.SendText(ctx, room, "after"); err != nil {
		t.Fatal(err)
	}
	if r := conn.next(0); r.Rooms[room] == nil || len(r.Rooms[room].Timeline) != 1 {
		t.Errorf("the new connection goes on: %v", roomIDs(r.Rooms))
	}
}

// A room the client was sent stays listed until the client is told it was left, even when
// the leave happened while the room was out of the client's window.
func TestSlidingSyncLeaveOutOfWindow(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	left := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	busy := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	for _, r := range []id.RoomID{left, busy} {
		if _, err := bob.JoinRoomByID(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	conn := newSSConn(t, s, bob, listBody(0, 1, 1))
	if r := conn.next(0); len(r.Rooms) != 2 {
		t.Fatalf("initial rooms = %v", roomIDs(r.Rooms))
	}
	if _, err := bob.LeaveRoom(ctx, left); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, busy, "on top"); err != nil {
		t.Fatal(err)
	}
	conn.body = listBody(0, 0, 1)
	if r := conn.next(0); r.Rooms[left] != nil || r.Lists["all"].Count != 2 {
		t.Fatalf("with a window of one: rooms %v, count %d", roomIDs(r.Rooms), r.Lists["all"].Count)
	}
	conn.body = listBody(0, 1, 1)
	r := conn.next(0)
	if lr := r.Rooms[left]; lr == nil || lr.Membership != "leave" {
		t.Fatalf("the room left out of the window: %+v", lr)
	}
	if r := conn.next(0); r.Lists["all"].Count != 1 {
		t.Errorf("once told, the left room still counts: %d", r.Lists["all"].Count)
	}
}

// Extensions about rooms cover the lists and subscriptions they name.
func TestSlidingSyncExtensionScope(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	dm := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	group := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	for _, r := range []id.RoomID{dm, group} {
		if _, err := bob.JoinRoomByID(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := bob.SetAccountData(ctx, "m.direct", map[string][]id.RoomID{string(alice.UserID): {dm}}); err != nil {
		t.Fatal(err)
	}
	list := func(isDM bool) map[string]any {
		return map[string]any{"ranges": [][2]int{{0, 9}}, "timeline_limit": 1, "required_state": [][2]string{},
			"filters": map[string]any{"is_dm": isDM}}
	}
	conn := newSSConn(t, s, bob, map[string]any{
		"lists":      map[string]any{"dms": list(true), "groups": list(false)},
		"extensions": map[string]any{"typing": map[string]any{"enabled": true, "lists": []string{"dms"}, "rooms": []string{}}},
	})
	conn.next(0)
	for _, r := range []id.RoomID{group, dm} {
		if _, err := alice.UserTyping(ctx, r, true, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	r := conn.next(0)
	if ty := r.Extensions.Typing; ty == nil || len(ty.Rooms) != 1 || len(ty.Rooms[dm].Content.UserIDs) != 1 {
		t.Errorf("typing with the dms list only: %+v", r.Extensions.Typing)
	}
}
