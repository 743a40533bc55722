package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/server/servertest"
)

func mustSearch(t *testing.T, c *mautrix.Client, req *mautrix.ReqSearch) *mautrix.RespSearch {
	t.Helper()
	resp, err := c.Search(context.Background(), req)
	if err != nil {
		t.Fatalf("search %q: %v", req.SearchTerm, err)
	}
	return resp
}

func mustJoin(t *testing.T, c *mautrix.Client, room id.RoomID) {
	t.Helper()
	if _, err := c.JoinRoomByID(context.Background(), room); err != nil {
		t.Fatalf("%s joins %s: %v", c.UserID, room, err)
	}
}

func resultIDs(resp *mautrix.RespSearch) []id.EventID {
	var out []id.EventID
	for _, r := range resp.Results {
		out = append(out, r.Event.ID)
	}
	return out
}

// searchAll pages through a search with next_batch and returns every result's ID.
func searchAll(t *testing.T, c *mautrix.Client, req mautrix.ReqSearch) []id.EventID {
	t.Helper()
	var out []id.EventID
	for range 100 {
		resp := mustSearch(t, c, &req)
		out = append(out, resultIDs(resp)...)
		if resp.NextBatch == "" {
			return out
		}
		req.NextBatch = resp.NextBatch
	}
	t.Fatal("search never ran out of next_batch")
	return nil
}

// TestSearchOnlyJoinedRooms: a user finds messages in the rooms they are joined to, and
// nothing from rooms they left or never joined.
func TestSearchOnlyJoinedRooms(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	shared := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	private := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	left := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	mustJoin(t, bob, shared)
	mustJoin(t, bob, left)
	inShared := mustSend(t, alice, shared, "the flood reached the bridge")
	mustSend(t, alice, private, "flood in the private room")
	mustSend(t, alice, left, "flood before bob left")
	if _, err := bob.LeaveRoom(ctx, left); err != nil {
		t.Fatal(err)
	}
	mustSend(t, alice, left, "flood after bob left")

	resp := mustSearch(t, bob, &mautrix.ReqSearch{SearchTerm: "flood"})
	if got := resultIDs(resp); !slices.Equal(got, []id.EventID{inShared}) || resp.Count != 1 {
		t.Errorf("bob finds %v (count %d), want only %s", got, resp.Count, inShared)
	}
	if r := resp.Results[0].Event; r.RoomID != shared || r.Sender != alice.UserID || r.Content.Raw["body"] != "the flood reached the bridge" {
		t.Errorf("result event = %+v", r)
	}
	// Alice finds all four, and filters by room.
	if resp := mustSearch(t, alice, &mautrix.ReqSearch{SearchTerm: "flood"}); len(resp.Results) != 4 || resp.Count != 4 {
		t.Errorf("alice finds %d (count %d), want 4", len(resp.Results), resp.Count)
	}
	resp = mustSearch(t, alice, &mautrix.ReqSearch{SearchTerm: "flood", Filter: &mautrix.FilterPart{Rooms: []id.RoomID{private, left}, NotRooms: []id.RoomID{left}}})
	if len(resp.Results) != 1 || resp.Results[0].Event.RoomID != private {
		t.Errorf("rooms filter: %v", resultIDs(resp))
	}
	// A filter naming a room bob is not in does not let him search it.
	resp = mustSearch(t, bob, &mautrix.ReqSearch{SearchTerm: "flood", Filter: &mautrix.FilterPart{Rooms: []id.RoomID{private}}})
	if len(resp.Results) != 0 || resp.Count != 0 || resp.NextBatch != "" {
		t.Errorf("bob searched a room he is not in: %+v", resp)
	}
	// A stranger finds nothing at all.
	eve := s.Register(t, "eve", "correct horse battery")
	if resp := mustSearch(t, eve, &mautrix.ReqSearch{SearchTerm: "flood"}); len(resp.Results) != 0 || resp.Count != 0 {
		t.Errorf("eve finds %v", resultIDs(resp))
	}
}

// TestSearchHistoryVisibility: with history_visibility joined, a user does not find what
// was said before they joined; with shared, they do.
func TestSearchHistoryVisibility(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	for _, c := range []struct {
		visibility string
		seesBefore bool
	}{{"joined", false}, {"invited", false}, {"shared", true}, {"world_readable", true}} {
		t.Run(c.visibility, func(t *testing.T) {
			room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", InitialState: []*event.Event{{
				Type: event.StateHistoryVisibility, StateKey: new(""),
				Content: event.Content{Raw: map[string]any{"history_visibility": c.visibility}},
			}}})
			before := mustSend(t, alice, room, "evacuation plan "+c.visibility+" before")
			mustJoin(t, bob, room)
			after := mustSend(t, alice, room, "evacuation plan "+c.visibility+" after")
			want := []id.EventID{after}
			if c.seesBefore {
				want = append(want, before)
			}
			resp := mustSearch(t, bob, &mautrix.ReqSearch{SearchTerm: "evacuation " + c.visibility, OrderBy: "recent"})
			if got := resultIDs(resp); !slices.Equal(got, want) || resp.Count != len(want) {
				t.Errorf("bob finds %v (count %d), want %v", got, resp.Count, want)
			}
			// Context never shows him the hidden history either.
			resp = mustSearch(t, bob, &mautrix.ReqSearch{SearchTerm: "evacuation " + c.visibility + " after",
				EventContext: mautrix.SearchEventContext{BeforeLimit: 10, AfterLimit: 10}})
			if len(resp.Results) != 1 {
				t.Fatalf("results %v", resultIDs(resp))
			}
			for _, ev := range resp.Results[0].Context.EventsBefore {
				if ev.ID == before && !c.seesBefore {
					t.Error("context shows a message from before bob joined")
				}
			}
		})
	}
}

// TestSearchOrderAndPagination: rank puts the best match first, recent the newest; both
// page through 60 results with next_batch without gaps or duplicates.
func TestSearchOrderAndPagination(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{})
	other := mustCreate(t, alice, &mautrix.ReqCreateRoom{})
	var sent []id.EventID
	for i := range 60 {
		r := room
		if i%3 == 0 {
			r = other
		}
		body := fmt.Sprintf("status report %d from the field team, nothing unusual to add today", i)
		if i == 17 {
			body = "report report report"
		}
		sent = append(sent, mustSend(t, alice, r, body))
		mustSend(t, alice, r, fmt.Sprintf("unrelated chatter %d", i))
	}
	newestFirst := slices.Clone(sent)
	slices.Reverse(newestFirst)

	rank := mustSearch(t, alice, &mautrix.ReqSearch{SearchTerm: "report"})
	if rank.Count != 60 || len(rank.Results) != 10 || rank.NextBatch == "" {
		t.Fatalf("rank: count %d, %d results, next_batch %q", rank.Count, len(rank.Results), rank.NextBatch)
	}
	if rank.Results[0].Event.ID != sent[17] {
		t.Errorf("best match %s, want the message saying report three times (%s)", rank.Results[0].Event.ID, sent[17])
	}
	for i := 1; i < len(rank.Results); i++ {
		if rank.Results[i].Rank > rank.Results[i-1].Rank {
			t.Errorf("rank %d (%v) above rank %d (%v)", i, rank.Results[i].Rank, i-1, rank.Results[i-1].Rank)
		}
	}
	recent := mustSearch(t, alice, &mautrix.ReqSearch{SearchTerm: "report", OrderBy: "recent"})
	if got := resultIDs(recent); !slices.Equal(got, newestFirst[:10]) {
		t.Errorf("recent = %v, want %v", got, newestFirst[:10])
	}

	for _, order := range []string{"rank", "recent"} {
		got := searchAll(t, alice, mautrix.ReqSearch{SearchTerm: "report", OrderBy: order, Filter: &mautrix.FilterPart{Limit: 7}})
		if order == "recent" && !slices.Equal(got, newestFirst) {
			t.Errorf("recent pages = %v, want %v", got, newestFirst)
		}
		if len(got) != 60 || !sameSet(got, sent) {
			t.Errorf("%s pages: %d results, want each of the 60 once", order, len(got))
		}
	}
	// A token from one order is refused by the other.
	_, err := alice.Search(context.Background(), &mautrix.ReqSearch{SearchTerm: "report", OrderBy: "recent", NextBatch: rank.NextBatch})
	if code, status := servertest.ErrCode(err); code != "M_INVALID_PARAM" || status != 400 {
		t.Errorf("rank token with recent order: %s %d", code, status)
	}
}

func sameSet(a, b []id.EventID) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestSearchContextAndProfiles: event_context returns the events around each result and
// the senders' profiles as the room had them.
func TestSearchContextAndProfiles(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	if err := alice.SetDisplayName(ctx, "Alice Andersson"); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetDisplayName(ctx, "Bob Berg"); err != nil {
		t.Fatal(err)
	}
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	mustJoin(t, bob, room)
	b1 := mustSend(t, bob, room, "one")
	b2 := mustSend(t, alice, room, "two")
	hit := mustSend(t, bob, room, "the pumps have arrived")
	a1 := mustSend(t, alice, room, "three")
	mustSend(t, alice, room, "four")

	req := map[string]any{"search_categories": map[string]any{"room_events": map[string]any{
		"search_term":   "pumps",
		"event_context": map[string]any{"before_limit": 2, "after_limit": 1, "include_profile": true},
	}}}
	var resp struct {
		SearchCategories struct {
			RoomEvents struct {
				Results []struct {
					Result  event.Event `json:"result"`
					Context struct {
						Start        string                       `json:"start"`
						End          string                       `json:"end"`
						EventsBefore []event.Event                `json:"events_before"`
						EventsAfter  []event.Event                `json:"events_after"`
						ProfileInfo  map[id.UserID]map[string]any `json:"profile_info"`
					} `json:"context"`
				} `json:"results"`
			} `json:"room_events"`
		} `json:"search_categories"`
	}
	if _, err := alice.MakeRequest(ctx, "POST", alice.BuildClientURL("v3", "search"), req, &resp); err != nil {
		t.Fatal(err)
	}
	results := resp.SearchCategories.RoomEvents.Results
	if len(results) != 1 || results[0].Result.ID != hit {
		t.Fatalf("results = %+v", results)
	}
	c := results[0].Context
	var before, after []id.EventID
	for _, ev := range c.EventsBefore {
		before = append(before, ev.ID)
	}
	for _, ev := range c.EventsAfter {
		after = append(after, ev.ID)
	}
	if !slices.Equal(before, []id.EventID{b2, b1}) || !slices.Equal(after, []id.EventID{a1}) {
		t.Errorf("context before %v after %v, want [%s %s] and [%s]", before, after, b2, b1, a1)
	}
	if c.Start == "" || c.End == "" {
		t.Errorf("context tokens %q %q", c.Start, c.End)
	}
	// The context's end token continues the timeline right after it.
	msgs, err := alice.Messages(ctx, room, c.End, "", mautrix.DirectionForward, nil, 1)
	if err != nil || len(msgs.Chunk) != 1 || msgs.Chunk[0].Content.Raw["body"] != "four" {
		t.Errorf("messages from the context's end = %+v, %v", msgs, err)
	}
	want := map[id.UserID]string{alice.UserID: "Alice Andersson", bob.UserID: "Bob Berg"}
	if len(c.ProfileInfo) != 2 {
		t.Errorf("profile_info = %v", c.ProfileInfo)
	}
	for u, name := range want {
		if got := c.ProfileInfo[u]["displayname"]; got != name {
			t.Errorf("profile of %s = %v, want %s", u, c.ProfileInfo[u], name)
		}
	}
	// Without event_context, no context.
	if r := mustSearch(t, alice, &mautrix.ReqSearch{SearchTerm: "pumps"}); r.Results[0].Context != nil {
		t.Errorf("context without asking: %+v", r.Results[0].Context)
	}
}

// TestSearchGroupsAndState: group_by room_id and sender partitions a page, a group's
// next_batch pages within its group, and include_state returns each room's state.
func TestSearchGroupsAndState(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	r1 := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Flood depot"})
	r2 := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	mustJoin(t, bob, r1)
	inR1 := map[id.EventID]bool{}
	for i := range 6 {
		inR1[mustSend(t, alice, r1, fmt.Sprintf("sandbag delivery %d", i))] = true
		inR1[mustSend(t, bob, r1, fmt.Sprintf("sandbag received %d", i))] = true
		mustSend(t, alice, r2, fmt.Sprintf("sandbag stock %d", i))
	}
	req := mautrix.ReqSearch{SearchTerm: "sandbag", OrderBy: "recent", IncludeState: true, Filter: &mautrix.FilterPart{Limit: 6},
		Groupings: mautrix.SearchGroupings{GroupBy: []mautrix.SearchGroup{{Key: "room_id"}, {Key: "sender"}}}}
	resp := mustSearch(t, alice, &req)
	rooms, senders := resp.Groups["room_id"], resp.Groups["sender"]
	if len(rooms) != 2 || len(senders) != 2 {
		t.Fatalf("groups = %+v", resp.Groups)
	}
	total := 0
	for key, g := range rooms {
		total += len(g.Results)
		for _, ev := range g.Results {
			if (key == string(r1)) != inR1[id.EventID(ev)] {
				t.Errorf("event %s grouped under room %s", ev, key)
			}
		}
		if g.NextBatch == "" {
			t.Errorf("room group %s has no next_batch", key)
		}
	}
	if total != 6 || rooms[string(resp.Results[0].Event.RoomID)].Order != 1 {
		t.Errorf("room groups hold %d results; first result's group order %d", total, rooms[string(resp.Results[0].Event.RoomID)].Order)
	}
	if g := senders[string(bob.UserID)]; len(g.Results) == 0 {
		t.Errorf("no group for bob: %+v", senders)
	}
	for _, rid := range []id.RoomID{r1, r2} {
		st := resp.State[rid]
		if len(st) == 0 {
			t.Errorf("no state for %s", rid)
		}
		if rid == r1 && !slices.ContainsFunc(st, func(ev *event.Event) bool { return ev.Type == event.StateRoomName }) {
			t.Errorf("state of %s lacks its name", rid)
		}
	}
	// Paging within the r1 group finds the rest of r1, and only r1.
	seen := map[id.EventID]bool{}
	for _, ev := range rooms[string(r1)].Results {
		seen[id.EventID(ev)] = true
	}
	req.NextBatch = rooms[string(r1)].NextBatch
	req.Groupings = mautrix.SearchGroupings{}
	for range 10 {
		page := mustSearch(t, alice, &req)
		for _, r := range page.Results {
			if r.Event.RoomID != r1 || seen[r.Event.ID] {
				t.Fatalf("group page returned %s in %s (seen %v)", r.Event.ID, r.Event.RoomID, seen[r.Event.ID])
			}
			seen[r.Event.ID] = true
		}
		if page.NextBatch == "" {
			break
		}
		req.NextBatch = page.NextBatch
	}
	if len(seen) != len(inR1) {
		t.Errorf("paging the r1 group found %d of %d", len(seen), len(inR1))
	}
}

// TestSearchRedactedAndKeys: a redacted message is no longer found, and keys choose which
// texts are searched.
func TestSearchRedactedAndKeys(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Dike watch", Topic: "Dike levels at Ystad"})
	msg := mustSend(t, alice, room, "the dike at Ystad holds")
	other := mustSend(t, alice, room, "the dike at Lund holds")

	byKeys := func(keys ...string) []string {
		resp := mustSearch(t, alice, &mautrix.ReqSearch{SearchTerm: "dike", Keys: keys, OrderBy: "recent"})
		var types []string
		for _, r := range resp.Results {
			types = append(types, r.Event.Type.Type)
		}
		return types
	}
	for _, c := range []struct {
		keys []string
		want []string
	}{
		{nil, []string{"m.room.message", "m.room.message", "m.room.topic", "m.room.name"}},
		{[]string{"content.body"}, []string{"m.room.message", "m.room.message"}},
		{[]string{"content.name"}, []string{"m.room.name"}},
		{[]string{"content.topic", "content.name"}, []string{"m.room.topic", "m.room.name"}},
	} {
		if got := byKeys(c.keys...); !slices.Equal(got, c.want) {
			t.Errorf("keys %v: %v, want %v", c.keys, got, c.want)
		}
	}

	if _, err := alice.RedactEvent(ctx, room, msg); err != nil {
		t.Fatal(err)
	}
	resp := mustSearch(t, alice, &mautrix.ReqSearch{SearchTerm: "dike holds"})
	if got := resultIDs(resp); !slices.Equal(got, []id.EventID{other}) || resp.Count != 1 {
		t.Errorf("after redaction: %v (count %d), want [%s]", got, resp.Count, other)
	}
	if resp := mustSearch(t, alice, &mautrix.ReqSearch{SearchTerm: "ystad", Keys: []string{"content.body"}}); len(resp.Results) != 0 {
		t.Errorf("redacted text still found: %v", resultIDs(resp))
	}
}

// TestSearchSwedishAndHighlights: words are matched case-insensitively and by prefix,
// å/ä/ö are letters of their own, and highlights name the words as written.
func TestSearchSwedishAndHighlights(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{})
	meeting := mustSend(t, alice, room, "Mötet om översvämningen börjar klockan 10:30")
	sheep := mustSend(t, alice, room, "Fåren är i säkerhet")
	father := mustSend(t, alice, room, "Min far är i Malmö")
	for _, c := range []struct {
		term string
		want []id.EventID
	}{
		{"möte", []id.EventID{meeting}},
		{"MÖTET översvämning", []id.EventID{meeting}},
		{"mote", nil},
		{"får", []id.EventID{sheep}},
		{"far", []id.EventID{father}},
		{"malmo", nil},
		{"är -malmö", []id.EventID{sheep}},
		{`"10:30"`, []id.EventID{meeting}},
		{"fåren OR malmö", []id.EventID{father, sheep}},
	} {
		resp := mustSearch(t, alice, &mautrix.ReqSearch{SearchTerm: c.term, OrderBy: "recent"})
		if got := resultIDs(resp); !slices.Equal(got, c.want) {
			t.Errorf("search %q = %v, want %v", c.term, got, c.want)
		}
	}
	resp := mustSearch(t, alice, &mautrix.ReqSearch{SearchTerm: "möte översvämning"})
	for _, w := range []string{"Mötet", "översvämningen", "möte"} {
		if !slices.Contains(resp.Highlights, w) {
			t.Errorf("highlights %q lack %q", resp.Highlights, w)
		}
	}
}

// TestSearchRefusals: every malformed search is refused with the spec's error.
func TestSearchRefusals(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{})
	mustSend(t, alice, room, "anything")
	tok := alice.AccessToken
	body := func(crit string) string { return `{"search_categories":{"room_events":` + crit + `}}` }
	cases := []struct {
		name, query, body, code string
		status                  int
	}{
		{"empty term", "", body(`{"search_term":""}`), "M_INVALID_PARAM", 400},
		{"blank term", "", body(`{"search_term":"  \t "}`), "M_INVALID_PARAM", 400},
		{"punctuation only", "", body(`{"search_term":"*:()\"\""}`), "M_INVALID_PARAM", 400},
		{"only exclusions", "", body(`{"search_term":"-flood"}`), "M_INVALID_PARAM", 400},
		{"term too long", "", body(`{"search_term":"` + strings.Repeat("a", 2000) + `"}`), "M_INVALID_PARAM", 400},
		{"missing term", "", body(`{}`), "M_MISSING_PARAM", 400},
		{"missing categories", "", `{}`, "M_MISSING_PARAM", 400},
		{"term not a string", "", body(`{"search_term":5}`), "M_BAD_JSON", 400},
		{"not JSON", "", `{"search_categories":`, "M_NOT_JSON", 400},
		{"bad order", "", body(`{"search_term":"x","order_by":"newest"}`), "M_INVALID_PARAM", 400},
		{"bad key", "", body(`{"search_term":"x","keys":["content.url"]}`), "M_INVALID_PARAM", 400},
		{"bad group", "", body(`{"search_term":"x","groupings":{"group_by":[{"key":"type"}]}}`), "M_INVALID_PARAM", 400},
		{"negative limit", "", body(`{"search_term":"x","filter":{"limit":-1}}`), "M_INVALID_PARAM", 400},
		{"negative context", "", body(`{"search_term":"x","event_context":{"before_limit":-1}}`), "M_INVALID_PARAM", 400},
		{"bad next_batch", "?next_batch=garbage", body(`{"search_term":"x"}`), "M_INVALID_PARAM", 400},
		{"forged next_batch", "?next_batch=" + base64.RawURLEncoding.EncodeToString([]byte(`{"o":"rank","g":"type","n":1}`)), body(`{"search_term":"x"}`), "M_INVALID_PARAM", 400},
	}
	for _, c := range cases {
		status, resp, _ := s.Do(t, "POST", "/_matrix/client/v3/search"+c.query, tok, strings.NewReader(c.body))
		var e struct{ Errcode string }
		json.Unmarshal(resp, &e)
		if status != c.status || e.Errcode != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, status, resp, c.status, c.code)
		}
	}
	if status, _, _ := s.Do(t, "POST", "/_matrix/client/v3/search", "", strings.NewReader(body(`{"search_term":"x"}`))); status != 401 {
		t.Errorf("search without a token: %d", status)
	}
	// Another category alone is answered with no categories.
	status, resp, _ := s.Do(t, "POST", "/_matrix/client/v3/search", tok, strings.NewReader(`{"search_categories":{"rooms":{}}}`))
	if status != 200 || string(resp) != `{"search_categories":{}}` {
		t.Errorf("unknown category: %d %s", status, resp)
	}
}

// TestSearchResponseShape checks a full answer against the OpenAPI definition's fields.
func TestSearchResponseShape(t *testing.T) {
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{})
	for i := range 3 {
		mustSend(t, alice, room, fmt.Sprintf("shape %d", i))
	}
	status, body, _ := s.Do(t, "POST", "/_matrix/client/v3/search", alice.AccessToken, strings.NewReader(`{"search_categories":{"room_events":{
		"search_term":"shape","include_state":true,"filter":{"limit":2},"event_context":{"include_profile":true},
		"groupings":{"group_by":[{"key":"room_id"},{"key":"sender"}]}}}}`))
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	var resp map[string]map[string]map[string]json.RawMessage
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	re := resp["search_categories"]["room_events"]
	allowed := []string{"count", "highlights", "results", "state", "groups", "next_batch"}
	for k := range re {
		if !slices.Contains(allowed, k) {
			t.Errorf("room_events has %q, not in the spec", k)
		}
	}
	var shape struct {
		Count      int      `json:"count"`
		Highlights []string `json:"highlights"`
		Results    []struct {
			Rank    float64                    `json:"rank"`
			Result  map[string]json.RawMessage `json:"result"`
			Context map[string]json.RawMessage `json:"context"`
		} `json:"results"`
		State     map[id.RoomID][]map[string]json.RawMessage `json:"state"`
		Groups    map[string]map[string]map[string]any       `json:"groups"`
		NextBatch string                                     `json:"next_batch"`
	}
	raw, _ := json.Marshal(re)
	if err := json.Unmarshal(raw, &shape); err != nil {
		t.Fatalf("shape: %v in %s", err, raw)
	}
	if shape.Count != 3 || len(shape.Results) != 2 || shape.NextBatch == "" || len(shape.State[room]) == 0 {
		t.Errorf("answer = %s", raw)
	}
	for _, r := range shape.Results {
		for _, k := range []string{"event_id", "type", "sender", "room_id", "origin_server_ts", "content"} {
			if _, ok := r.Result[k]; !ok {
				t.Errorf("result lacks %s", k)
			}
		}
		for k := range r.Context {
			if !slices.Contains([]string{"start", "end", "profile_info", "events_before", "events_after"}, k) {
				t.Errorf("context has %q, not in the spec", k)
			}
		}
	}
	for _, groups := range shape.Groups {
		for _, g := range groups {
			for k := range g {
				if !slices.Contains([]string{"next_batch", "order", "results"}, k) {
					t.Errorf("group has %q, not in the spec", k)
				}
			}
		}
	}
}
