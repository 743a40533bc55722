package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
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

// syncStream follows one client's /sync: each next call continues from the last token.
type syncStream struct {
	t      *testing.T
	c      *mautrix.Client
	filter string
	since  string
}

func newSyncStream(t *testing.T, c *mautrix.Client, filter string) *syncStream {
	return &syncStream{t: t, c: c, filter: filter}
}

// try syncs once, waiting up to timeout milliseconds; it may run on another goroutine.
func (s *syncStream) try(timeout int) (*mautrix.RespSync, error) {
	resp, err := s.c.FullSyncRequest(context.Background(), mautrix.ReqSync{Timeout: timeout, Since: s.since, FilterID: s.filter})
	if err != nil {
		return nil, err
	}
	s.since = resp.NextBatch
	return resp, nil
}

func (s *syncStream) next(timeout int) *mautrix.RespSync {
	s.t.Helper()
	resp, err := s.try(timeout)
	if err != nil {
		s.t.Fatalf("sync as %s since %q: %v", s.c.UserID, s.since, err)
	}
	return resp
}

// waitFor polls cond until it holds, failing the test after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// rawSync is a /sync through the raw HTTP client, for checks of exact JSON.
func rawSync(t *testing.T, s *servertest.Server, c *mautrix.Client, query string) (int, map[string]any) {
	t.Helper()
	status, body, _ := s.Do(t, "GET", "/_matrix/client/v3/sync?"+query, c.AccessToken, nil)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("sync answered %d with %s", status, body)
	}
	return status, m
}

func bodies(evs []*event.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type == event.EventMessage {
			out = append(out, fmt.Sprint(ev.Content.Raw["body"]))
		}
	}
	return out
}

func hasState(evs []*event.Event, typ event.Type, stateKey string) bool {
	for _, ev := range evs {
		if ev.Type == typ && ev.StateKey != nil && *ev.StateKey == stateKey {
			return true
		}
	}
	return false
}

func TestSyncInitial(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Crisis team", Invite: []id.UserID{bob.UserID}})
	for i := range 12 {
		if _, err := alice.SendText(ctx, room, fmt.Sprintf("m%d", i)); err != nil {
			t.Fatal(err)
		}
	}

	resp := newSyncStream(t, alice, "").next(0)
	if !strings.HasPrefix(resp.NextBatch, "s") {
		t.Errorf("next_batch = %q, want a token starting with s", resp.NextBatch)
	}
	jr := resp.Rooms.Join[room]
	if jr == nil || len(resp.Rooms.Invite) != 0 || len(resp.Rooms.Leave) != 0 || len(resp.Rooms.Knock) != 0 {
		t.Fatalf("alice's rooms = %+v, want just the joined room", resp.Rooms)
	}
	// The default limit is 10: the newest ten messages, and the room's state before them.
	if got := bodies(jr.Timeline.Events); !slices.Equal(got, []string{"m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9", "m10", "m11"}) {
		t.Errorf("timeline = %v", got)
	}
	if !jr.Timeline.Limited || jr.Timeline.PrevBatch == "" {
		t.Errorf("limited = %v, prev_batch = %q; want a limited timeline with a prev_batch", jr.Timeline.Limited, jr.Timeline.PrevBatch)
	}
	for _, k := range []struct {
		typ event.Type
		key string
	}{{event.StateCreate, ""}, {event.StateRoomName, ""}, {event.StatePowerLevels, ""}, {event.StateMember, string(alice.UserID)}, {event.StateMember, string(bob.UserID)}} {
		if !hasState(jr.State.Events, k.typ, k.key) {
			t.Errorf("state lacks %s/%s", k.typ.Type, k.key)
		}
	}
	if s := jr.Summary; len(s.Heroes) != 1 || s.Heroes[0] != bob.UserID || s.JoinedMemberCount == nil || *s.JoinedMemberCount != 1 ||
		s.InvitedMemberCount == nil || *s.InvitedMemberCount != 1 {
		t.Errorf("summary = %+v, want heroes [bob], 1 joined, 1 invited", s)
	}
	// prev_batch continues with /messages exactly where the timeline starts.
	msgs, err := alice.Messages(ctx, room, jr.Timeline.PrevBatch, "", mautrix.DirectionBackward, nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := bodies(msgs.Chunk); !slices.Equal(got, []string{"m1", "m0"}) {
		t.Errorf("messages before the timeline = %v, want [m1 m0]", got)
	}

	// Bob is invited: an invite with stripped state, nothing else.
	resp = newSyncStream(t, bob, "").next(0)
	inv := resp.Rooms.Invite[room]
	if inv == nil || len(resp.Rooms.Join) != 0 {
		t.Fatalf("bob's rooms = %+v, want one invite", resp.Rooms)
	}
	var sawName, sawCreate, sawInvite bool
	for _, ev := range inv.State.Events {
		switch {
		case ev.Type == event.StateRoomName:
			sawName = ev.Content.Raw["name"] == "Crisis team"
		case ev.Type == event.StateCreate:
			sawCreate = true
		case ev.Type == event.StateMember && ev.GetStateKey() == string(bob.UserID):
			sawInvite = ev.Content.Raw["membership"] == "invite" && ev.Sender == alice.UserID
		case ev.Type == event.EventMessage || ev.Type == event.StatePowerLevels:
			t.Errorf("invite state carries %s", ev.Type.Type)
		}
	}
	if !sawName || !sawCreate || !sawInvite {
		t.Errorf("invite state: name %v, create %v, invite event %v", sawName, sawCreate, sawInvite)
	}

	// Fields that are always present, and those that must not be invented.
	_, raw := rawSync(t, s, alice, "")
	for _, k := range []string{"device_one_time_keys_count", "device_unused_fallback_key_types", "presence"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("%s is missing", k)
		}
	}
	// Sections with nothing in them are left out.
	for _, k := range []string{"to_device", "device_lists"} {
		if _, ok := raw[k]; ok {
			t.Errorf("%s is present though empty", k)
		}
	}
	// Account data always has the push rules, as clients expect them in an initial sync.
	if ad, _ := raw["account_data"].(map[string]any); ad == nil || len(ad["events"].([]any)) != 1 ||
		ad["events"].([]any)[0].(map[string]any)["type"] != "m.push_rules" {
		t.Errorf("account_data = %v, want only m.push_rules", raw["account_data"])
	}
	jraw := raw["rooms"].(map[string]any)["join"].(map[string]any)[string(room)].(map[string]any)
	if un, ok := jraw["unread_notifications"].(map[string]any); !ok || un["notification_count"] != 0.0 || un["highlight_count"] != 0.0 {
		t.Errorf("unread_notifications = %v, want zero counts", jraw["unread_notifications"])
	}
}

func TestSyncLongPollWakes(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	carol := s.Register(t, "carol", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	other := mustCreate(t, carol, &mautrix.ReqCreateRoom{})
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	bs := newSyncStream(t, bob, "")
	bs.next(0)

	type result struct {
		resp *mautrix.RespSync
		err  error
	}
	done := make(chan result, 1)
	go func() {
		r, err := bs.try(30000)
		done <- result{r, err}
	}()
	waitFor(t, "bob's sync to wait", func() bool { return s.Sync.Waiting() == 1 })
	// A write in a room bob is not in does not answer his long-poll.
	if _, err := carol.SendText(ctx, other, "elsewhere"); err != nil {
		t.Fatal(err)
	}
	sent, err := alice.SendText(ctx, room, "wake up")
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	jr := r.resp.Rooms.Join[room]
	if jr == nil || len(jr.Timeline.Events) != 1 || jr.Timeline.Events[0].ID != sent.EventID || jr.Timeline.Limited {
		t.Fatalf("bob's long-poll answered %+v, want alice's message", r.resp.Rooms)
	}
	if _, ok := r.resp.Rooms.Join[other]; ok {
		t.Error("bob sees carol's room")
	}
	// Nothing new: a sync with a zero timeout answers at once, empty, at the same position.
	empty := bs.next(0)
	if !empty.Rooms.IsZero() {
		t.Errorf("empty sync = %+v", empty.Rooms)
	}
}

func TestSyncTwoClientsInOrder(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	const n = 40
	// Timelines hold up to 100 events, so a gap can only come from the server.
	streams := []*syncStream{newSyncStream(t, alice, `{"room":{"timeline":{"limit":100}}}`), newSyncStream(t, bob, `{"room":{"timeline":{"limit":100}}}`)}
	var sent []string
	for i := range n {
		sent = append(sent, fmt.Sprintf("%s %d", []id.UserID{alice.UserID, bob.UserID}[i%2], i))
	}
	for _, st := range streams {
		st.next(0)
	}
	// Both follow the room while both send in turns.
	results := make(chan error, len(streams))
	for _, st := range streams {
		go func() {
			var got []string
			for len(got) < n {
				resp, err := st.try(30000)
				if err != nil {
					results <- err
					return
				}
				if jr := resp.Rooms.Join[room]; jr != nil {
					if jr.Timeline.Limited {
						results <- fmt.Errorf("%s: an incremental sync is limited", st.c.UserID)
						return
					}
					got = append(got, bodies(jr.Timeline.Events)...)
				}
			}
			if !slices.Equal(got, sent) {
				results <- fmt.Errorf("%s saw %v\nwant %v", st.c.UserID, got, sent)
				return
			}
			results <- nil
		}()
	}
	for i := range n {
		c := []*mautrix.Client{alice, bob}[i%2]
		if _, err := c.SendText(ctx, room, sent[i]); err != nil {
			t.Fatal(err)
		}
	}
	for range streams {
		if err := <-results; err != nil {
			t.Error(err)
		}
	}
}

func TestSyncCatchUpAfterThousandEvents(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "before"})
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	bs := newSyncStream(t, bob, "")
	bs.next(0)
	since := bs.since

	const n = 1000
	var sent []string
	for i := range n {
		body := fmt.Sprintf("m%d", i)
		if _, err := alice.SendText(ctx, room, body); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, body)
		if i == n/2 {
			if _, err := alice.SendStateEvent(ctx, room, event.StateRoomName, "", map[string]any{"name": "after"}); err != nil {
				t.Fatal(err)
			}
		}
	}

	resp := bs.next(0)
	jr := resp.Rooms.Join[room]
	if jr == nil || !jr.Timeline.Limited || len(jr.Timeline.Events) != 10 {
		t.Fatalf("catch-up sync: %+v, want a limited timeline of 10", jr)
	}
	// The rename happened in the gap: the state delta carries it.
	var renamed bool
	for _, ev := range jr.State.Events {
		renamed = renamed || (ev.Type == event.StateRoomName && ev.Content.Raw["name"] == "after")
	}
	if !renamed {
		t.Error("the state delta lacks the rename that happened in the gap")
	}
	// Fill the gap with /messages from prev_batch back to the old token.
	got := bodies(jr.Timeline.Events)
	from := jr.Timeline.PrevBatch
	for from != "" {
		page, err := bob.Messages(ctx, room, from, since, mautrix.DirectionBackward, nil, 100)
		if err != nil {
			t.Fatal(err)
		}
		b := bodies(page.Chunk)
		slices.Reverse(b)
		got = append(b, got...)
		from = page.End
	}
	if !slices.Equal(got, sent) {
		t.Fatalf("timeline and backfill hold %d messages (first %v), want the %d sent in order without gaps or duplicates",
			len(got), got[:min(3, len(got))], len(sent))
	}
	// Caught up: the next sync has nothing.
	if again := bs.next(0); !again.Rooms.IsZero() {
		t.Errorf("sync after catching up = %+v", again.Rooms)
	}
}

func TestSyncTokenSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{})
	as := newSyncStream(t, alice, "")
	as.next(0)
	s.Restart(t)
	alice.HomeserverURL, _ = url.Parse(s.URL)
	sent, err := alice.SendText(ctx, room, "after the restart")
	if err != nil {
		t.Fatal(err)
	}
	jr := as.next(0).Rooms.Join[room]
	if jr == nil || jr.Timeline.Limited || len(jr.Timeline.Events) != 1 || jr.Timeline.Events[0].ID != sent.EventID {
		t.Fatalf("sync with a token from before the restart: %+v", jr)
	}
}

func TestSyncMembershipSections(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Secret plans", Preset: "private_chat"})
	alice.SendText(ctx, room, "before bob")
	bs := newSyncStream(t, bob, "")
	if r := bs.next(0); !r.Rooms.IsZero() {
		t.Fatalf("bob's first sync has rooms: %+v", r.Rooms)
	}

	// Invited: the invite section only.
	if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	r := bs.next(0)
	if r.Rooms.Invite[room] == nil || len(r.Rooms.Join) != 0 || len(r.Rooms.Leave) != 0 {
		t.Fatalf("after the invite bob sees %+v", r.Rooms)
	}
	alice.SendText(ctx, room, "while bob is invited")
	if r := bs.next(0); !r.Rooms.IsZero() {
		t.Errorf("a message while invited shows bob %+v", r.Rooms)
	}

	// Joined: the room arrives whole, as in an initial sync, and the invite is gone.
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	r = bs.next(0)
	jr := r.Rooms.Join[room]
	if jr == nil || len(r.Rooms.Invite) != 0 {
		t.Fatalf("after joining bob sees %+v", r.Rooms)
	}
	if !hasState(jr.State.Events, event.StateRoomName, "") && !hasState(jr.Timeline.Events, event.StateRoomName, "") {
		t.Error("the newly joined room comes without its name")
	}
	if jr.Summary.JoinedMemberCount == nil || *jr.Summary.JoinedMemberCount != 2 {
		t.Errorf("summary = %+v, want 2 joined", jr.Summary)
	}

	// Left: the leave section, ending with the leave; then nothing more of the room.
	if _, err := bob.LeaveRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	alice.SendText(ctx, room, "after bob left")
	r = bs.next(0)
	lr := r.Rooms.Leave[room]
	if lr == nil || len(r.Rooms.Join) != 0 {
		t.Fatalf("after leaving bob sees %+v", r.Rooms)
	}
	last := lr.Timeline.Events[len(lr.Timeline.Events)-1]
	if last.Type != event.StateMember || last.GetStateKey() != string(bob.UserID) || last.Content.Raw["membership"] != "leave" {
		t.Errorf("the left room's timeline ends with %s, want bob's leave", last.Type.Type)
	}
	alice.SendText(ctx, room, "much later")
	if r := bs.next(0); !r.Rooms.IsZero() {
		t.Errorf("after leaving, bob still gets %+v", r.Rooms)
	}

	// An initial sync shows the left room only with include_leave, and never what came after.
	if r := newSyncStream(t, bob, "").next(0); !r.Rooms.IsZero() {
		t.Errorf("initial sync without include_leave: %+v", r.Rooms)
	}
	lr = newSyncStream(t, bob, `{"room":{"include_leave":true}}`).next(0).Rooms.Leave[room]
	if lr == nil {
		t.Fatal("initial sync with include_leave lacks the left room")
	}
	for _, b := range bodies(lr.Timeline.Events) {
		if b == "after bob left" || b == "much later" {
			t.Errorf("the left room's timeline leaks %q", b)
		}
	}

	// A rejected invite shows the leave, but none of a room bob never joined.
	carol := s.Register(t, "carol", "correct horse battery")
	cs := newSyncStream(t, carol, "")
	cs.next(0)
	if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	cs.next(0)
	if _, err := carol.LeaveRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	lr = cs.next(0).Rooms.Leave[room]
	if lr == nil {
		t.Fatal("carol's rejected invite is not in the leave section")
	}
	if len(lr.State.Events) != 0 || len(bodies(lr.Timeline.Events)) != 0 {
		t.Errorf("carol, who never joined, sees state %d events and messages %v", len(lr.State.Events), bodies(lr.Timeline.Events))
	}
}

func TestSyncKnockSection(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Knock here", InitialState: []*event.Event{{
		Type: event.StateJoinRules, Content: event.Content{Raw: map[string]any{"join_rule": "knock"}}}}})
	bs := newSyncStream(t, bob, "")
	bs.next(0)
	if _, err := bob.KnockRoom(ctx, room.String(), &mautrix.ReqKnockRoom{Reason: "let me in"}); err != nil {
		t.Fatal(err)
	}
	r := bs.next(0)
	kr := r.Rooms.Knock[room]
	if kr == nil || len(r.Rooms.Join) != 0 || len(r.Rooms.Invite) != 0 || len(r.Rooms.Leave) != 0 {
		t.Fatalf("after knocking bob sees %+v", r.Rooms)
	}
	var sawName, sawKnock bool
	for _, ev := range kr.State.Events {
		sawName = sawName || (ev.Type == event.StateRoomName && ev.Content.Raw["name"] == "Knock here")
		sawKnock = sawKnock || (ev.Type == event.StateMember && ev.GetStateKey() == string(bob.UserID) && ev.Content.Raw["membership"] == "knock")
	}
	if !sawName || !sawKnock {
		t.Errorf("knock state: name %v, knock event %v", sawName, sawKnock)
	}
	alice.SendText(ctx, room, "inside")
	if r := bs.next(0); !r.Rooms.IsZero() {
		t.Errorf("a message while knocking shows bob %+v", r.Rooms)
	}
}

func TestSyncLazyLoadingSendsEachMemberOnce(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	owner := s.Register(t, "owner", "correct horse battery")
	room := mustCreate(t, owner, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Big room"})
	var users []*mautrix.Client
	for i := range 8 {
		u := s.Register(t, fmt.Sprintf("u%d", i), "correct horse battery")
		if _, err := u.JoinRoomByID(ctx, room); err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	reader := s.Register(t, "reader", "correct horse battery")
	if _, err := reader.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	say := func(u *mautrix.Client) {
		t.Helper()
		if _, err := u.SendText(ctx, room, "hi from "+u.UserID.String()); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		say(users[7])
	}

	const lazy = `{"room":{"state":{"lazy_load_members":true},"timeline":{"limit":3}}}`
	rs := newSyncStream(t, reader, lazy)
	sentMembers := map[id.UserID]int{}
	count := func(r *mautrix.RespSync) *mautrix.SyncJoinedRoom {
		jr := r.Rooms.Join[room]
		if jr == nil {
			return nil
		}
		for _, ev := range append(append([]*event.Event{}, jr.State.Events...), jr.Timeline.Events...) {
			if ev.Type == event.StateMember {
				sentMembers[id.UserID(ev.GetStateKey())]++
			}
		}
		return jr
	}
	jr := count(rs.next(0))
	// Heroes are the first five others to join: owner, u0..u3. With the sender u7 and the
	// reader themself, that is every member event the initial sync sends.
	want := []id.UserID{owner.UserID, users[0].UserID, users[1].UserID, users[2].UserID, users[3].UserID, users[7].UserID, reader.UserID}
	for _, u := range want {
		if sentMembers[u] != 1 {
			t.Errorf("initial sync sent %s's member event %d times, want once", u, sentMembers[u])
		}
	}
	for _, u := range []*mautrix.Client{users[4], users[5], users[6]} {
		if sentMembers[u.UserID] != 0 {
			t.Errorf("initial sync sent the member event of %s, who neither spoke nor is a hero", u.UserID)
		}
	}
	if len(jr.Summary.Heroes) != 5 {
		t.Errorf("heroes = %v", jr.Summary.Heroes)
	}

	// New senders bring their member event once; known ones never again.
	for _, u := range []*mautrix.Client{users[7], users[5], users[5], users[0], users[6], users[5]} {
		say(u)
		count(rs.next(0))
	}
	for _, u := range append(want, users[5].UserID, users[6].UserID) {
		if sentMembers[u] != 1 {
			t.Errorf("%s's member event was sent %d times, want once", u, sentMembers[u])
		}
	}
	if sentMembers[users[4].UserID] != 0 {
		t.Errorf("u4's member event was sent, but u4 never spoke")
	}

	// Without lazy loading an initial sync carries every member.
	full := newSyncStream(t, reader, "").next(0).Rooms.Join[room]
	n := 0
	for _, ev := range append(full.State.Events, full.Timeline.Events...) {
		if ev.Type == event.StateMember {
			n++
		}
	}
	if n != 10 {
		t.Errorf("a sync without lazy loading sent %d member events, want all 10", n)
	}
}

func TestSyncFilter(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	a := mustCreate(t, alice, &mautrix.ReqCreateRoom{})
	b := mustCreate(t, alice, &mautrix.ReqCreateRoom{})
	alice.SendText(ctx, a, "text in a")
	alice.SendMessageEvent(ctx, a, event.Type{Type: "org.example.custom", Class: event.MessageEventType}, map[string]any{"x": 1})

	r := newSyncStream(t, alice, `{"room":{"not_rooms":["`+string(b)+`"],"timeline":{"types":["m.room.*"],"not_types":["m.room.member"],"limit":50}}}`).next(0)
	if r.Rooms.Join[b] != nil || r.Rooms.Join[a] == nil {
		t.Fatalf("not_rooms: rooms = %v", r.Rooms.Join)
	}
	for _, ev := range r.Rooms.Join[a].Timeline.Events {
		if !strings.HasPrefix(ev.Type.Type, "m.room.") || ev.Type == event.StateMember {
			t.Errorf("the timeline filter let %s through", ev.Type.Type)
		}
	}
	if got := bodies(r.Rooms.Join[a].Timeline.Events); !slices.Equal(got, []string{"text in a"}) {
		t.Errorf("filtered timeline messages = %v", got)
	}
	r = newSyncStream(t, alice, `{"room":{"rooms":["`+string(b)+`"],"state":{"types":["m.room.create"]},"timeline":{"limit":1}}}`).next(0)
	jr := r.Rooms.Join[b]
	if len(r.Rooms.Join) != 1 || jr == nil {
		t.Fatalf("rooms filter: rooms = %v", r.Rooms.Join)
	}
	for _, ev := range jr.State.Events {
		if ev.Type != event.StateCreate {
			t.Errorf("the state filter let %s through", ev.Type.Type)
		}
	}
}

// A timeline limit of 0 sends a room's state and no events, and says the timeline was
// limited; a later message still comes down an incremental sync with the same filter.
func TestSyncTimelineLimitZero(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Name: "zero"})
	alice.SendText(ctx, room, "before")
	st := newSyncStream(t, alice, `{"room":{"timeline":{"limit":0}}}`)
	jr := st.next(0).Rooms.Join[room]
	if jr == nil {
		t.Fatal("the room is missing from the sync")
	}
	if len(jr.Timeline.Events) != 0 || !jr.Timeline.Limited {
		t.Errorf("timeline = %d events, limited %v; want none, limited", len(jr.Timeline.Events), jr.Timeline.Limited)
	}
	var name bool
	for _, ev := range jr.State.Events {
		name = name || ev.Type == event.StateRoomName
	}
	if !name {
		t.Errorf("the state lacks m.room.name: %d events", len(jr.State.Events))
	}
	// Incrementally, a state change comes down as state; a message alone leaves the room
	// out, as Synapse does, since there is nothing to send for it.
	alice.SendText(ctx, room, "after")
	if _, err := alice.SendStateEvent(ctx, room, event.StateTopic, "", map[string]any{"topic": "t"}); err != nil {
		t.Fatal(err)
	}
	jr = st.next(0).Rooms.Join[room]
	if jr == nil || len(jr.Timeline.Events) != 0 || !jr.Timeline.Limited {
		t.Fatalf("incremental with limit 0: %+v", jr)
	}
	if len(jr.State.Events) != 1 || jr.State.Events[0].Type != event.StateTopic {
		t.Errorf("incremental state = %v, want the topic", jr.State.Events)
	}
	// A left room with no timeline still shows the state as the user left it, the leave
	// included.
	if _, err := alice.LeaveRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	lr := newSyncStream(t, alice, `{"room":{"timeline":{"limit":0},"include_leave":true}}`).next(0).Rooms.Leave[room]
	if lr == nil {
		t.Fatal("the left room is missing")
	}
	var left bool
	for _, ev := range lr.State.Events {
		left = left || (ev.Type == event.StateMember && ev.Content.Raw["membership"] == "leave")
	}
	if !left || len(lr.Timeline.Events) != 0 {
		t.Errorf("left room with limit 0: %d state events (leave %v), %d timeline events", len(lr.State.Events), left, len(lr.Timeline.Events))
	}
}

func TestSyncRefusals(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	cases := []struct {
		query, code string
	}{
		{"since=", "M_INVALID_PARAM"},
		{"since=nonsense", "M_INVALID_PARAM"},
		{"since=s", "M_INVALID_PARAM"},
		{"since=sabc", "M_INVALID_PARAM"},
		{"since=s-1", "M_INVALID_PARAM"},
		{"since=s12_", "M_INVALID_PARAM"},
		{"since=s12_t", "M_INVALID_PARAM"},
		{"since=s12_7", "M_INVALID_PARAM"},
		{"since=s12_d13", "M_INVALID_PARAM"},
		{"since=t12-34", "M_INVALID_PARAM"},
		{"since=s99999999999999999999", "M_INVALID_PARAM"},
		{"timeout=soon", "M_INVALID_PARAM"},
		{"full_state=yes", "M_INVALID_PARAM"},
		{"set_presence=busy", "M_INVALID_PARAM"},
		{"filter=" + url.QueryEscape(`{"room":`), "M_NOT_JSON"},
		{"filter=" + url.QueryEscape(`{"room":{"timeline":{"limit":-1}}}`), "M_BAD_JSON"},
		{"filter=" + url.QueryEscape(`{"room":{"rooms":["nope"]}}`), "M_BAD_JSON"},
		{"filter=" + url.QueryEscape(`{"room":{"timeline":{"types":"m.room.message"}}}`), "M_BAD_JSON"},
		{"filter=" + url.QueryEscape(`{"event_format":"xml"}`), "M_BAD_JSON"},
		{"filter=12345", "M_INVALID_PARAM"},
	}
	for _, c := range cases {
		status, body := rawSync(t, s, alice, c.query)
		if status != 400 || body["errcode"] != c.code {
			t.Errorf("sync?%s = %d %v, want 400 %s", c.query, status, body["errcode"], c.code)
		}
	}
	if status, _, _ := s.Do(t, "GET", "/_matrix/client/v3/sync", "", nil); status != 401 {
		t.Errorf("sync without a token = %d, want 401", status)
	}
	// Well-formed tokens are accepted, including parts of streams this server does not know,
	// and a token from beyond the stream's end (a restored backup) gets an initial sync.
	for _, q := range []string{"since=s0", "since=s1_t5_x9", "since=s999999999"} {
		if status, body := rawSync(t, s, alice, q+"&timeout=0"); status != 200 || body["next_batch"] == nil {
			t.Errorf("sync?%s = %d %v", q, status, body)
		}
	}
}

func TestSyncHistoryVisibility(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	for _, c := range []struct {
		history    string
		seesBefore bool
	}{{"joined", false}, {"shared", true}, {"invited", false}} {
		t.Run(c.history, func(t *testing.T) {
			room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", InitialState: []*event.Event{{
				Type: event.StateHistoryVisibility, Content: event.Content{Raw: map[string]any{"history_visibility": c.history}}}}})
			alice.SendText(ctx, room, "before bob")
			if _, err := bob.JoinRoomByID(ctx, room); err != nil {
				t.Fatal(err)
			}
			alice.SendText(ctx, room, "after bob joined")
			jr := newSyncStream(t, bob, "").next(0).Rooms.Join[room]
			got := bodies(jr.Timeline.Events)
			if want := c.seesBefore; slices.Contains(got, "before bob") != want || !slices.Contains(got, "after bob joined") {
				t.Errorf("bob's timeline = %v; want the message before his join: %v", got, want)
			}
			// State is the room's state either way: he is a member now.
			if !hasState(append(jr.State.Events, jr.Timeline.Events...), event.StateCreate, "") {
				t.Error("bob's sync lacks the room's create event")
			}
		})
	}

	// Leaving and coming back within one sync: under joined history, what was said while
	// bob was away stays hidden, and the room comes whole, as newly joined.
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", InitialState: []*event.Event{{
		Type: event.StateHistoryVisibility, Content: event.Content{Raw: map[string]any{"history_visibility": "joined"}}}}})
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	bs := newSyncStream(t, bob, "")
	bs.next(0)
	bob.LeaveRoom(ctx, room)
	alice.SendText(ctx, room, "while bob is away")
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	alice.SendText(ctx, room, "welcome back")
	r := bs.next(0)
	jr := r.Rooms.Join[room]
	if jr == nil || len(r.Rooms.Leave) != 0 {
		t.Fatalf("after leaving and rejoining bob sees %+v", r.Rooms)
	}
	if got := bodies(jr.Timeline.Events); slices.Contains(got, "while bob is away") || !slices.Contains(got, "welcome back") {
		t.Errorf("timeline after rejoining = %v", got)
	}
	if !hasState(append(jr.State.Events, jr.Timeline.Events...), event.StateCreate, "") {
		t.Error("the rejoined room does not come whole")
	}
}

func TestSyncFullStateAndForgotten(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	quiet := mustCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Quiet"})
	busy := mustCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Busy"})
	as := newSyncStream(t, alice, "")
	as.next(0)
	alice.SendText(ctx, busy, "news")
	resp, err := alice.FullSyncRequest(ctx, mautrix.ReqSync{Since: as.since, FullState: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []id.RoomID{quiet, busy} {
		jr := resp.Rooms.Join[r]
		if jr == nil || !hasState(jr.State.Events, event.StateCreate, "") {
			t.Errorf("full_state: room %s missing or without its whole state", r)
		}
	}
	if got := bodies(resp.Rooms.Join[busy].Timeline.Events); !slices.Equal(got, []string{"news"}) {
		t.Errorf("full_state timeline = %v, want only what is new since the token", got)
	}
	// A left room that was forgotten no longer shows with include_leave in an initial sync;
	// an incremental sync across the leave still shows it, so other devices learn of it.
	withLeave := `{"room":{"include_leave":true}}`
	other := newSyncStream(t, alice, withLeave)
	other.next(0)
	if _, err := alice.LeaveRoom(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	if newSyncStream(t, alice, withLeave).next(0).Rooms.Leave[quiet] == nil {
		t.Fatal("the left room is missing with include_leave")
	}
	if _, err := alice.ForgetRoom(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	if r := newSyncStream(t, alice, withLeave).next(0); r.Rooms.Leave[quiet] != nil {
		t.Error("a forgotten room still shows in the leave section")
	}
	if r := other.next(0); r.Rooms.Leave[quiet] == nil {
		t.Error("an incremental sync across the leave lacks the forgotten room")
	}
	if r := other.next(0); r.Rooms.Leave[quiet] != nil {
		t.Error("the forgotten room shows again in the next incremental sync")
	}
}

func TestSyncOwnEchoAndGapMembers(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	carol := s.Register(t, "carol", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	// The sender's own device gets its transaction ID back (local echo).
	as := newSyncStream(t, alice, "")
	as.next(0)
	sent, err := alice.SendMessageEvent(ctx, room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "echo"},
		mautrix.ReqSendEvent{TransactionID: "txn-echo"})
	if err != nil {
		t.Fatal(err)
	}
	evs := as.next(0).Rooms.Join[room].Timeline.Events
	if len(evs) != 1 || evs[0].ID != sent.EventID || evs[0].Unsigned.TransactionID != "txn-echo" {
		t.Errorf("own echo = %+v", evs)
	}

	// Under lazy loading, a member who joined in a gap arrives in the state even though no
	// message of theirs is in the timeline.
	bs := newSyncStream(t, bob, `{"room":{"state":{"lazy_load_members":true},"timeline":{"limit":2}}}`)
	bs.next(0)
	if _, err := carol.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		alice.SendText(ctx, room, fmt.Sprint(i))
	}
	jr := bs.next(0).Rooms.Join[room]
	if !jr.Timeline.Limited || !hasState(jr.State.Events, event.StateMember, string(carol.UserID)) {
		t.Errorf("limited %v; state %d events, carol's join among them: %v", jr.Timeline.Limited, len(jr.State.Events),
			hasState(jr.State.Events, event.StateMember, string(carol.UserID)))
	}
	if jr.Summary.JoinedMemberCount == nil || *jr.Summary.JoinedMemberCount != 3 {
		t.Errorf("summary after the gap = %+v, want 3 joined", jr.Summary)
	}
}

func TestSyncLongPollEndsOnShutdown(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	as := newSyncStream(t, alice, "")
	as.next(0)
	done := make(chan error, 1)
	go func() {
		_, err := as.try(60000)
		done <- err
	}()
	waitFor(t, "the sync to wait", func() bool { return s.Sync.Waiting() == 1 })
	s.Stop(t)
	// Answered, not cut off when the shutdown timeout ran out.
	if err := <-done; err != nil {
		t.Errorf("a long-poll during shutdown failed: %v", err)
	}
}

func TestSyncUseStateAfter(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Old name"})
	for i := range 12 {
		alice.SendText(ctx, room, fmt.Sprint(i))
	}
	alice.SendStateEvent(ctx, room, event.StateRoomName, "", map[string]any{"name": "New name"})
	alice.SendText(ctx, room, "last")

	// The initial sync's state_after is the state at the timeline's end: the new name,
	// though its event is in the timeline too, and no "state" beside it.
	resp, err := alice.FullSyncRequest(ctx, mautrix.ReqSync{UseStateAfter: true})
	if err != nil {
		t.Fatal(err)
	}
	jr := resp.Rooms.Join[room]
	if jr.StateAfter == nil || len(jr.State.Events) != 0 {
		t.Fatalf("state_after = %v, state = %d events", jr.StateAfter, len(jr.State.Events))
	}
	name := func(evs []*event.Event) any {
		for _, ev := range evs {
			if ev.Type == event.StateRoomName {
				return ev.Content.Raw["name"]
			}
		}
		return nil
	}
	if got := name(jr.StateAfter.Events); got != "New name" {
		t.Errorf("state_after names the room %v, want New name", got)
	}
	if !hasState(jr.StateAfter.Events, event.StateCreate, "") {
		t.Error("state_after lacks the create event")
	}
	// Incremental: a state change in the timeline shows in state_after as well.
	since := resp.NextBatch
	alice.SendStateEvent(ctx, room, event.StateTopic, "", map[string]any{"topic": "Floods"})
	resp, err = alice.FullSyncRequest(ctx, mautrix.ReqSync{Since: since, UseStateAfter: true})
	if err != nil {
		t.Fatal(err)
	}
	jr = resp.Rooms.Join[room]
	if jr.StateAfter == nil || !hasState(jr.StateAfter.Events, event.StateTopic, "") || len(jr.StateAfter.Events) != 1 {
		t.Errorf("incremental state_after = %+v, want just the topic", jr.StateAfter)
	}
	// Without the parameter: state, never state_after.
	_, raw := rawSync(t, s, alice, "since="+url.QueryEscape(since))
	jraw := raw["rooms"].(map[string]any)["join"].(map[string]any)[string(room)].(map[string]any)
	if _, ok := jraw["state_after"]; ok {
		t.Error("state_after sent without use_state_after")
	}
	if _, ok := jraw["state"]; !ok {
		t.Error("state missing without use_state_after")
	}
	if status, body := rawSync(t, s, alice, "use_state_after=yes"); status != 400 || body["errcode"] != "M_INVALID_PARAM" {
		t.Errorf("use_state_after=yes: %d %v", status, body)
	}
}

// A user who comes to share a room brings their presence into the other members'
// incremental syncs, though it did not change in the range; it is not sent again after.
func TestSyncPresenceOfNewlyJoinedMembers(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	if err := bob.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "here"}); err != nil {
		t.Fatal(err)
	}
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	st := newSyncStream(t, alice, "")
	st.next(0)
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	saw := func(r *mautrix.RespSync) bool {
		for _, ev := range r.Presence.Events {
			if ev.Sender == bob.UserID {
				return true
			}
		}
		return false
	}
	if r := st.next(0); !saw(r) {
		t.Fatalf("alice's sync after bob joined lacks his presence: %+v", r.Presence.Events)
	}
	alice.SendText(ctx, room, "hello")
	if r := st.next(0); saw(r) {
		t.Error("bob's unchanged presence was sent again")
	}
}

func TestSyncHidesIgnoredUsers(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetAccountData(ctx, "m.ignored_user_list", map[string]any{"ignored_users": map[string]any{string(bob.UserID): map[string]any{}}}); err != nil {
		t.Fatal(err)
	}
	bob.SendText(ctx, room, "spam")
	alice.SendText(ctx, room, "hello")
	resp, err := alice.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	var sawHello bool
	for _, ev := range resp.Rooms.Join[room].Timeline.Events {
		if ev.Sender == bob.UserID && ev.Type == event.EventMessage {
			t.Fatal("alice's sync shows a message from bob, whom she ignores")
		}
		sawHello = sawHello || ev.Content.Raw["body"] == "hello"
	}
	if !sawHello {
		t.Fatal("alice's own message is missing")
	}
}
