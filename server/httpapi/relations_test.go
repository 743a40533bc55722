package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/server/servertest"
)

// sendRel sends an event of type typ whose content relates to parent; extra adds content.
func sendRel(t *testing.T, c *mautrix.Client, room id.RoomID, typ string, relType event.RelationType, parent id.EventID, extra map[string]any) id.EventID {
	t.Helper()
	content := map[string]any{"m.relates_to": map[string]any{"rel_type": relType, "event_id": parent}}
	for k, v := range extra {
		if k == "key" {
			content["m.relates_to"].(map[string]any)["key"] = v
			continue
		}
		content[k] = v
	}
	resp, err := c.SendMessageEvent(context.Background(), room, event.Type{Type: typ, Class: event.MessageEventType}, content)
	if err != nil {
		t.Fatalf("send %s %s → %s: %v", typ, relType, parent, err)
	}
	return resp.EventID
}

func text(body string) map[string]any { return map[string]any{"msgtype": "m.text", "body": body} }

// edit is the content of an edit to body.
func edit(body string) map[string]any {
	return map[string]any{"msgtype": "m.text", "body": "* " + body, "m.new_content": text(body)}
}

func mustSend(t *testing.T, c *mautrix.Client, room id.RoomID, body string) id.EventID {
	t.Helper()
	resp, err := c.SendText(context.Background(), room, body)
	if err != nil {
		t.Fatalf("send %q: %v", body, err)
	}
	return resp.EventID
}

func mustEvent(t *testing.T, c *mautrix.Client, room id.RoomID, ev id.EventID) *event.Event {
	t.Helper()
	got, err := c.GetEvent(context.Background(), room, ev)
	if err != nil {
		t.Fatalf("%s gets %s: %v", c.UserID, ev, err)
	}
	return got
}

// relations pages through all of a parent's relations with a request and returns the event
// IDs in the order served, failing on duplicates.
func allRelations(t *testing.T, c *mautrix.Client, room id.RoomID, parent id.EventID, req mautrix.ReqGetRelations) []id.EventID {
	t.Helper()
	var got []id.EventID
	seen := map[id.EventID]bool{}
	for page := 0; ; page++ {
		resp, err := c.GetRelations(context.Background(), room, parent, &req)
		if err != nil {
			t.Fatalf("relations page %d: %v", page, err)
		}
		if page == 0 && resp.PrevBatch != "" {
			t.Errorf("first page has prev_batch %q", resp.PrevBatch)
		}
		if page > 0 && resp.PrevBatch != req.From {
			t.Errorf("page %d: prev_batch %q, want the from token %q", page, resp.PrevBatch, req.From)
		}
		if req.Limit > 0 && len(resp.Chunk) > req.Limit {
			t.Fatalf("page %d holds %d events, limit %d", page, len(resp.Chunk), req.Limit)
		}
		for _, ev := range resp.Chunk {
			if seen[ev.ID] {
				t.Fatalf("page %d repeats %s", page, ev.ID)
			}
			seen[ev.ID] = true
			got = append(got, ev.ID)
		}
		if resp.NextBatch == "" {
			return got
		}
		if page > 1000 {
			t.Fatal("pagination does not end")
		}
		req.From = resp.NextBatch
	}
}

func relationIDs(t *testing.T, c *mautrix.Client, room id.RoomID, parent id.EventID, req mautrix.ReqGetRelations) []id.EventID {
	t.Helper()
	resp, err := c.GetRelations(context.Background(), room, parent, &req)
	if err != nil {
		t.Fatalf("relations of %s: %v", parent, err)
	}
	var out []id.EventID
	for _, ev := range resp.Chunk {
		out = append(out, ev.ID)
	}
	return out
}

func reversed[T any](xs []T) []T {
	out := slices.Clone(xs)
	slices.Reverse(out)
	return out
}

// checkBundle checks the aggregations bundled with an edited, threaded, referenced event.
func checkBundle(t *testing.T, where string, ev *event.Event, latestEdit, latestThread id.EventID, count int, participated bool, refs []id.EventID) {
	t.Helper()
	rel := ev.Unsigned.Relations
	if rel == nil {
		t.Fatalf("%s: %s has no m.relations", where, ev.ID)
	}
	if got := rel.GetLatestEdit(); latestEdit == "" && got != nil {
		t.Errorf("%s: m.replace = %s, want none", where, got.ID)
	} else if latestEdit != "" && (got == nil || got.ID != latestEdit) {
		t.Errorf("%s: m.replace = %v, want %s", where, got, latestEdit)
	} else if got != nil && got.Content.Raw["m.new_content"] == nil {
		t.Errorf("%s: the bundled edit is not the whole event: %v", where, got.Content.Raw)
	}
	th := rel.GetThread()
	if latestThread == "" {
		if th != nil {
			t.Errorf("%s: m.thread = %+v, want none", where, th)
		}
	} else if th == nil || th.LatestEvent == nil || th.LatestEvent.ID != latestThread || th.Count != count || th.CurrentUserParticipated != participated {
		t.Errorf("%s: m.thread = %+v, want latest %s, count %d, participated %v", where, th, latestThread, count, participated)
	}
	if got := rel.GetReferences().GetEventIDs(); !slices.Equal(got, refs) {
		t.Errorf("%s: m.reference = %v, want %v", where, got, refs)
	}
}

func TestRelationsEditReactThreadReference(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	carol := s.Register(t, "carol", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	other := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	for _, c := range []*mautrix.Client{bob, carol} {
		if _, err := c.JoinRoomByID(ctx, room); err != nil {
			t.Fatal(err)
		}
	}

	root := mustSend(t, alice, room, "root")
	// Reactions: one per sender, type and key.
	sendRel(t, bob, room, "m.reaction", event.RelAnnotation, root, map[string]any{"key": "👍"})
	_, err := bob.SendMessageEvent(ctx, room, event.EventReaction, map[string]any{
		"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": root, "key": "👍"}})
	if code, status := servertest.ErrCode(err); code != "M_DUPLICATE_ANNOTATION" || status != 400 {
		t.Errorf("second identical reaction: %s %d (%v), want M_DUPLICATE_ANNOTATION 400", code, status, err)
	}
	sendRel(t, bob, room, "m.reaction", event.RelAnnotation, root, map[string]any{"key": "🎉"})
	sendRel(t, alice, room, "m.reaction", event.RelAnnotation, root, map[string]any{"key": "👍"})

	// Edits: two valid ones and several the spec says to ignore.
	edit1 := sendRel(t, alice, room, "m.room.message", event.RelReplace, root, edit("root v1"))
	edit2 := sendRel(t, alice, room, "m.room.message", event.RelReplace, root, edit("root v2"))
	sendRel(t, bob, room, "m.room.message", event.RelReplace, root, edit("bob's version"))
	sendRel(t, alice, room, "org.example.note", event.RelReplace, root, edit("another type"))
	sendRel(t, alice, room, "m.room.message", event.RelReplace, root, text("no new content"))
	editOfEdit := sendRel(t, alice, room, "m.room.message", event.RelReplace, edit2, edit("root v2 fixed"))
	// Relations from another room are not relations.
	sendRel(t, alice, other, "m.room.message", event.RelReplace, root, edit("from elsewhere"))
	sendRel(t, alice, other, "m.room.message", event.RelThread, root, text("thread from elsewhere"))

	// The newest edit by origin_server_ts, then the larger event ID.
	newest := func(ids ...id.EventID) id.EventID {
		best := mustEvent(t, alice, room, ids[0])
		for _, x := range ids[1:] {
			ev := mustEvent(t, alice, room, x)
			if ev.Timestamp > best.Timestamp || (ev.Timestamp == best.Timestamp && ev.ID > best.ID) {
				best = ev
			}
		}
		return best.ID
	}
	latestEdit := newest(edit1, edit2)

	t1 := sendRel(t, bob, room, "m.room.message", event.RelThread, root, text("in a thread"))
	t2 := sendRel(t, alice, room, "m.room.message", event.RelThread, root, text("me too"))
	t2edit := sendRel(t, alice, room, "m.room.message", event.RelReplace, t2, edit("me too!"))
	ref := sendRel(t, bob, room, "m.room.message", event.RelReference, root, text("see above"))
	// A thread cannot start from an event with a relation.
	_, err = bob.SendMessageEvent(ctx, room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "nested",
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": t1}})
	if code, status := servertest.ErrCode(err); code != "M_UNKNOWN" || status != 400 {
		t.Errorf("thread from a thread event: %s %d (%v), want M_UNKNOWN 400", code, status, err)
	}

	// /event, as each user sees it.
	for _, c := range []struct {
		cli          *mautrix.Client
		participated bool
	}{{alice, true}, {bob, true}, {carol, false}} {
		ev := mustEvent(t, c.cli, room, root)
		checkBundle(t, "event as "+c.cli.UserID.String(), ev, latestEdit, t2, 2, c.participated, []id.EventID{ref})
		le := ev.Unsigned.Relations.GetThread().GetLatestEvent()
		if le == nil || le.Unsigned.Relations.GetLatestEdit() == nil || le.Unsigned.Relations.GetLatestEdit().ID != t2edit {
			t.Errorf("thread's latest event lacks its own edit: %+v", le)
		}
	}
	// An edit gets no aggregations: an edit of an edit is not bundled.
	if ev := mustEvent(t, alice, room, edit2); ev.Unsigned.Relations != nil {
		t.Errorf("edit %s has bundled aggregations %+v", edit2, ev.Unsigned.Relations)
	}
	// Annotations are not aggregated.
	status, body, _ := s.Do(t, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(string(room))+"/event/"+url.PathEscape(string(root)), bob.AccessToken, nil)
	var raw struct {
		Unsigned struct {
			Relations map[string]json.RawMessage `json:"m.relations"`
		} `json:"unsigned"`
	}
	if err := json.Unmarshal(body, &raw); status != 200 || err != nil {
		t.Fatalf("raw event: %d %s", status, body)
	}
	if keys := slices.Sorted(maps.Keys(raw.Unsigned.Relations)); !slices.Equal(keys, []string{"m.reference", "m.replace", "m.thread"}) {
		t.Errorf("m.relations holds %v", keys)
	}

	// /messages and /context bundle the same.
	msgs, err := bob.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range msgs.Chunk {
		if ev.ID == root {
			found = true
			checkBundle(t, "messages", ev, latestEdit, t2, 2, true, []id.EventID{ref})
		}
	}
	if !found {
		t.Fatal("root not in /messages")
	}
	cx, err := carol.Context(ctx, room, root, nil, 4)
	if err != nil {
		t.Fatal(err)
	}
	checkBundle(t, "context", cx.Event, latestEdit, t2, 2, false, []id.EventID{ref})

	// /relations lists direct children newest first, of any validity, from this room only.
	all := relationIDs(t, bob, room, root, mautrix.ReqGetRelations{Limit: 100})
	if len(all) != 11 || all[0] != ref || slices.Contains(all, editOfEdit) {
		t.Errorf("relations = %d events %v", len(all), all)
	}
	if got := relationIDs(t, bob, room, root, mautrix.ReqGetRelations{RelationType: event.RelThread}); !slices.Equal(got, []id.EventID{t2, t1}) {
		t.Errorf("m.thread relations = %v, want %v", got, []id.EventID{t2, t1})
	}
	if got := relationIDs(t, bob, room, root, mautrix.ReqGetRelations{RelationType: event.RelReplace, EventType: event.Type{Type: "org.example.note"}}); len(got) != 1 {
		t.Errorf("m.replace org.example.note relations = %v", got)
	}
	// recurse reaches the edit of the edit, and the edit of the thread's event.
	rec, err := bob.GetRelations(ctx, room, root, &mautrix.ReqGetRelations{Limit: 100, Recurse: true})
	if err != nil {
		t.Fatal(err)
	}
	if rec.RecursionDepth != 3 || len(rec.Chunk) != 13 {
		t.Errorf("recursive relations: depth %d, %d events", rec.RecursionDepth, len(rec.Chunk))
	}

	// Redacting the newest edit reverts to the one before it.
	if _, err := alice.RedactEvent(ctx, room, latestEdit); err != nil {
		t.Fatal(err)
	}
	previous := edit1
	if latestEdit == edit1 {
		previous = edit2
	}
	checkBundle(t, "after redacting the edit", mustEvent(t, bob, room, root), previous, t2, 2, true, []id.EventID{ref})
	// A redacted original gets no edit, but its thread and references stay.
	if _, err := alice.RedactEvent(ctx, room, root); err != nil {
		t.Fatal(err)
	}
	checkBundle(t, "redacted root", mustEvent(t, bob, room, root), "", t2, 2, true, []id.EventID{ref})
	// A redacted thread event leaves the thread.
	if _, err := alice.RedactEvent(ctx, room, t2); err != nil {
		t.Fatal(err)
	}
	checkBundle(t, "redacted thread event", mustEvent(t, bob, room, root), "", t1, 1, true, []id.EventID{ref})
}

func TestRelationsPagination(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	root := mustSend(t, alice, room, "root")
	var sent, threads, reactions []id.EventID
	for i := range 120 {
		var x id.EventID
		if i%2 == 0 {
			x = sendRel(t, bob, room, "m.reaction", event.RelAnnotation, root, map[string]any{"key": fmt.Sprint(i)})
			reactions = append(reactions, x)
		} else {
			x = sendRel(t, alice, room, "m.room.message", event.RelThread, root, text(fmt.Sprint(i)))
			threads = append(threads, x)
		}
		sent = append(sent, x)
		// Unrelated messages in between must not disturb the pages.
		if i%10 == 0 {
			mustSend(t, bob, room, "chatter")
		}
	}
	for _, limit := range []int{1, 7, 50, 120, 1000} {
		if got := allRelations(t, bob, room, root, mautrix.ReqGetRelations{Limit: limit}); !slices.Equal(got, reversed(sent)) {
			t.Errorf("backwards, limit %d: %d events, want the %d sent, newest first", limit, len(got), len(sent))
		}
		if got := allRelations(t, bob, room, root, mautrix.ReqGetRelations{Limit: limit, Dir: mautrix.DirectionForward}); !slices.Equal(got, sent) {
			t.Errorf("forwards, limit %d: %d events, want the %d sent, oldest first", limit, len(got), len(sent))
		}
	}
	// Filters by relation and event type.
	if got := allRelations(t, bob, room, root, mautrix.ReqGetRelations{RelationType: event.RelThread, Limit: 9}); !slices.Equal(got, reversed(threads)) {
		t.Errorf("m.thread: %d events", len(got))
	}
	if got := allRelations(t, bob, room, root, mautrix.ReqGetRelations{RelationType: event.RelAnnotation, EventType: event.EventReaction, Limit: 9, Dir: mautrix.DirectionForward}); !slices.Equal(got, reactions) {
		t.Errorf("m.annotation m.reaction: %d events", len(got))
	}
	if got := allRelations(t, bob, room, root, mautrix.ReqGetRelations{RelationType: event.RelAnnotation, EventType: event.EventMessage}); len(got) != 0 {
		t.Errorf("m.annotation m.room.message: %v", got)
	}
	// from and to: the range between two tokens is the page between them.
	p1, err := bob.GetRelations(ctx, room, root, &mautrix.ReqGetRelations{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := bob.GetRelations(ctx, room, root, &mautrix.ReqGetRelations{Limit: 10, From: p1.NextBatch})
	if err != nil {
		t.Fatal(err)
	}
	between := relationIDs(t, bob, room, root, mautrix.ReqGetRelations{Limit: 100, From: p1.NextBatch, To: p2.NextBatch})
	if !slices.Equal(between, reversed(sent)[10:20]) {
		t.Errorf("from page 1 to page 2: %v", between)
	}
	// A sync token (s<pos>_…) works as a from token.
	if got := relationIDs(t, bob, room, root, mautrix.ReqGetRelations{Limit: 3, From: p1.NextBatch + "_0_0", Dir: mautrix.DirectionForward}); !slices.Equal(got, sent[110:113]) {
		t.Errorf("forwards from a sync-style token: %v, want %v", got, sent[110:113])
	}

	// recurse follows three levels, each through a matching relation.
	root2 := mustSend(t, alice, room, "another root")
	r1 := sendRel(t, alice, room, "m.room.message", event.RelReference, root2, text("1"))
	r2 := sendRel(t, alice, room, "m.room.message", event.RelReference, r1, text("2"))
	r3 := sendRel(t, alice, room, "m.room.message", event.RelReference, r2, text("3"))
	sendRel(t, alice, room, "m.room.message", event.RelReference, r3, text("4"))
	th := sendRel(t, alice, room, "m.room.message", event.RelThread, root2, text("thread"))
	thRef := sendRel(t, alice, room, "m.room.message", event.RelReference, th, text("ref in thread"))
	if got := relationIDs(t, bob, room, root2, mautrix.ReqGetRelations{Recurse: true}); !slices.Equal(got, []id.EventID{thRef, th, r3, r2, r1}) {
		t.Errorf("recursive: %v", got)
	}
	if got := relationIDs(t, bob, room, root2, mautrix.ReqGetRelations{Recurse: true, RelationType: event.RelReference}); !slices.Equal(got, []id.EventID{r3, r2, r1}) {
		t.Errorf("recursive m.reference (not through the thread event): %v", got)
	}
	if got := relationIDs(t, bob, room, root2, mautrix.ReqGetRelations{}); !slices.Equal(got, []id.EventID{th, r1}) {
		t.Errorf("direct: %v", got)
	}
	// recursion_depth is there exactly when recurse was given.
	for _, c := range []struct {
		query string
		want  string
	}{{"", "absent"}, {"?recurse=false", "1"}, {"?recurse=true", "3"}} {
		status, body, _ := s.Do(t, "GET", "/_matrix/client/v1/rooms/"+url.PathEscape(string(room))+"/relations/"+url.PathEscape(string(root2))+c.query, bob.AccessToken, nil)
		var resp map[string]json.RawMessage
		if status != 200 || json.Unmarshal(body, &resp) != nil {
			t.Fatalf("%s: %d %s", c.query, status, body)
		}
		got := "absent"
		if d, ok := resp["recursion_depth"]; ok {
			got = string(d)
		}
		if got != c.want {
			t.Errorf("recursion_depth with %q = %s, want %s", c.query, got, c.want)
		}
	}
}

// threadsResp is /threads' answer.
type threadsResp struct {
	Chunk     []*event.Event `json:"chunk"`
	NextBatch string         `json:"next_batch"`
}

func getThreads(t *testing.T, s *servertest.Server, c *mautrix.Client, room id.RoomID, query string) (threadsResp, int, []byte) {
	t.Helper()
	status, body, _ := s.Do(t, "GET", "/_matrix/client/v1/rooms/"+url.PathEscape(string(room))+"/threads"+query, c.AccessToken, nil)
	var resp threadsResp
	if status == 200 {
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatalf("threads: %v: %s", err, body)
		}
	}
	return resp, status, body
}

func TestThreadsList(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	eve := s.Register(t, "eve", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	r1 := mustSend(t, alice, room, "thread 1")
	r2 := mustSend(t, alice, room, "thread 2")
	r3 := mustSend(t, alice, room, "thread 3")
	mustSend(t, alice, room, "not a thread")
	sendRel(t, bob, room, "m.room.message", event.RelThread, r1, text("bob in 1"))
	sendRel(t, alice, room, "m.room.message", event.RelThread, r2, text("alice in 2"))
	latest3 := sendRel(t, alice, room, "m.room.message", event.RelThread, r3, text("alice in 3"))
	latest2 := sendRel(t, bob, room, "m.room.message", event.RelThread, r2, text("bob in 2"))
	// Reactions are not thread activity.
	sendRel(t, bob, room, "m.reaction", event.RelAnnotation, r1, map[string]any{"key": "x"})

	ids := func(evs []*event.Event) []id.EventID {
		var out []id.EventID
		for _, ev := range evs {
			out = append(out, ev.ID)
		}
		return out
	}
	all, status, body := getThreads(t, s, bob, room, "")
	if status != 200 || !slices.Equal(ids(all.Chunk), []id.EventID{r2, r3, r1}) || all.NextBatch != "" {
		t.Fatalf("threads = %d %s", status, body)
	}
	if th := all.Chunk[0].Unsigned.Relations.GetThread(); th == nil || th.LatestEvent.ID != latest2 || th.Count != 2 || !th.CurrentUserParticipated {
		t.Errorf("thread 2 summary = %+v", th)
	}
	if th := all.Chunk[1].Unsigned.Relations.GetThread(); th == nil || th.LatestEvent.ID != latest3 || th.Count != 1 || th.CurrentUserParticipated {
		t.Errorf("thread 3 summary as bob = %+v", th)
	}
	// Pages of one.
	var paged []id.EventID
	from := ""
	for range 10 {
		q := "?limit=1"
		if from != "" {
			q += "&from=" + url.QueryEscape(from)
		}
		page, status, body := getThreads(t, s, bob, room, q)
		if status != 200 || len(page.Chunk) > 1 {
			t.Fatalf("threads page: %d %s", status, body)
		}
		paged = append(paged, ids(page.Chunk)...)
		if page.NextBatch == "" {
			break
		}
		from = page.NextBatch
	}
	if !slices.Equal(paged, []id.EventID{r2, r3, r1}) {
		t.Errorf("paged threads = %v", paged)
	}
	if got, _, _ := getThreads(t, s, bob, room, "?include=participated"); !slices.Equal(ids(got.Chunk), []id.EventID{r2, r1}) {
		t.Errorf("bob's threads = %v, want %v", ids(got.Chunk), []id.EventID{r2, r1})
	}
	if got, _, _ := getThreads(t, s, alice, room, "?include=participated"); !slices.Equal(ids(got.Chunk), []id.EventID{r2, r3, r1}) {
		t.Errorf("alice's threads (she sent every root) = %v", ids(got.Chunk))
	}
	// New activity moves a thread to the top.
	sendRel(t, alice, room, "m.room.message", event.RelThread, r1, text("alice in 1"))
	if got, _, _ := getThreads(t, s, bob, room, ""); !slices.Equal(ids(got.Chunk), []id.EventID{r1, r2, r3}) {
		t.Errorf("threads after new activity = %v", ids(got.Chunk))
	}

	for _, c := range []struct {
		name   string
		who    *mautrix.Client
		query  string
		code   string
		status int
	}{
		{"stranger", eve, "", "M_FORBIDDEN", 403},
		{"bad include", bob, "?include=mine", "M_INVALID_PARAM", 400},
		{"zero limit", bob, "?limit=0", "M_INVALID_PARAM", 400},
		{"negative limit", bob, "?limit=-1", "M_INVALID_PARAM", 400},
		{"bad token", bob, "?from=t123", "M_INVALID_PARAM", 400},
	} {
		_, status, body := getThreads(t, s, c.who, room, c.query)
		var e struct{ Errcode string }
		json.Unmarshal(body, &e)
		if status != c.status || e.Errcode != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, status, body, c.status, c.code)
		}
	}
}

// expectNear is the reference answer of timestamp_to_event over a timeline in stream order.
func expectNear(timeline []*event.Event, ts int64, backwards bool) id.EventID {
	var best *event.Event
	for _, ev := range timeline {
		switch {
		case backwards && ev.Timestamp <= ts && (best == nil || ev.Timestamp >= best.Timestamp):
			best = ev
		case !backwards && ev.Timestamp >= ts && (best == nil || ev.Timestamp < best.Timestamp):
			best = ev
		}
	}
	if best == nil {
		return ""
	}
	return best.ID
}

func TestTimestampToEvent(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	eve := s.Register(t, "eve", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	hv, err := alice.SendStateEvent(ctx, room, event.StateHistoryVisibility, "", map[string]any{"history_visibility": "joined"})
	if err != nil {
		t.Fatal(err)
	}
	// More hidden events than the server reads in one batch when it skips what Bob may not see.
	for i := range 150 {
		mustSend(t, alice, room, fmt.Sprint("before ", i))
	}
	if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		mustSend(t, alice, room, fmt.Sprint("after ", i))
	}
	msgs, err := alice.Messages(ctx, room, "", "", mautrix.DirectionForward, nil, 1000)
	if err != nil {
		t.Fatal(err)
	}
	timeline := msgs.Chunk
	// Bob sees what came while history was shared (up to the change to "joined", judged by
	// the state before it), then nothing until his invite.
	var bobSees []*event.Event
	hidden := false
	for _, ev := range timeline {
		if ev.Type == event.StateMember && ev.GetStateKey() == string(bob.UserID) {
			hidden = false
		}
		if !hidden {
			bobSees = append(bobSees, ev)
		}
		if ev.ID == hv.EventID {
			hidden = true
		}
	}
	if len(bobSees) == len(timeline) || len(bobSees) < 8 {
		t.Fatalf("bob should see part of the %d events, not %d", len(timeline), len(bobSees))
	}
	first, last := timeline[0].Timestamp, timeline[len(timeline)-1].Timestamp
	// Probe around every event near where Bob's view starts and ends, and some others.
	var probes []int64
	for i, ev := range timeline {
		if i%25 == 0 || i < 15 || len(timeline)-i < 15 || ev.ID == hv.EventID {
			probes = append(probes, ev.Timestamp-1, ev.Timestamp, ev.Timestamp+1)
		}
	}
	probes = append(probes, 0, first-1000, last+1000)
	for _, c := range []struct {
		who  *mautrix.Client
		sees []*event.Event
	}{{alice, timeline}, {bob, bobSees}} {
		for _, ts := range probes {
			for _, dir := range []mautrix.Direction{mautrix.DirectionForward, mautrix.DirectionBackward} {
				want := expectNear(c.sees, ts, dir == mautrix.DirectionBackward)
				resp, err := c.who.TimestampToEvent(ctx, room, time.UnixMilli(ts), dir)
				if want == "" {
					if code, status := servertest.ErrCode(err); code != "M_NOT_FOUND" || status != 404 {
						t.Errorf("%s at %d %c: %v %v, want M_NOT_FOUND", c.who.UserID, ts, dir, resp, err)
					}
					continue
				}
				if err != nil || resp.EventID != want {
					t.Errorf("%s at %d %c: %v %v, want %s", c.who.UserID, ts, dir, resp, err, want)
				} else if resp.Timestamp.UnixMilli() != expectTS(c.sees, want) {
					t.Errorf("%s at %d %c: origin_server_ts %d", c.who.UserID, ts, dir, resp.Timestamp.UnixMilli())
				}
			}
		}
	}

	path := "/_matrix/client/v1/rooms/" + url.PathEscape(string(room)) + "/timestamp_to_event"
	for _, c := range []struct {
		name   string
		who    *mautrix.Client
		query  string
		code   string
		status int
	}{
		{"stranger", eve, "?ts=0&dir=f", "M_FORBIDDEN", 403},
		{"no ts", alice, "?dir=f", "M_MISSING_PARAM", 400},
		{"bad ts", alice, "?ts=soon&dir=f", "M_INVALID_PARAM", 400},
		{"no dir", alice, "?ts=0", "M_MISSING_PARAM", 400},
		{"bad dir", alice, "?ts=0&dir=up", "M_INVALID_PARAM", 400},
		// Reads do not tell strangers whether a room exists (as Synapse, and Complement expects).
		{"unknown room", alice, "", "M_FORBIDDEN", 403},
	} {
		p := path
		if c.name == "unknown room" {
			p = "/_matrix/client/v1/rooms/" + url.PathEscape("!nope:"+string(s.UserID("x").Homeserver())) + "/timestamp_to_event?ts=0&dir=f"
		}
		status, body, _ := s.Do(t, "GET", p+c.query, c.who.AccessToken, nil)
		var e struct{ Errcode string }
		json.Unmarshal(body, &e)
		if status != c.status || e.Errcode != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, status, body, c.status, c.code)
		}
	}
}

func expectTS(evs []*event.Event, x id.EventID) int64 {
	for _, ev := range evs {
		if ev.ID == x {
			return ev.Timestamp
		}
	}
	return -1
}

func TestRelationsVisibility(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.OpenRegistration)
	alice := s.Register(t, "alice", "correct horse battery")
	bob := s.Register(t, "bob", "correct horse battery")
	eve := s.Register(t, "eve", "correct horse battery")
	room := mustCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := alice.SendStateEvent(ctx, room, event.StateHistoryVisibility, "", map[string]any{"history_visibility": "joined"}); err != nil {
		t.Fatal(err)
	}
	early := mustSend(t, alice, room, "before bob")
	sendRel(t, alice, room, "m.room.message", event.RelThread, early, text("early thread"))
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	root := mustSend(t, alice, room, "while bob is here")
	c1 := sendRel(t, alice, room, "m.room.message", event.RelThread, root, text("seen"))
	ref1 := sendRel(t, alice, room, "m.room.message", event.RelReference, root, text("seen ref"))
	e1 := sendRel(t, alice, room, "m.room.message", event.RelReplace, root, edit("seen edit"))
	if _, err := bob.LeaveRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	sendRel(t, alice, room, "m.room.message", event.RelThread, root, text("unseen"))
	sendRel(t, alice, room, "m.room.message", event.RelReference, root, text("unseen ref"))
	e2 := sendRel(t, alice, room, "m.room.message", event.RelReplace, root, edit("unseen edit"))

	// Bob sees the children sent while he was there; Alice sees all.
	if got := relationIDs(t, bob, room, root, mautrix.ReqGetRelations{Limit: 50}); !slices.Equal(got, []id.EventID{e1, ref1, c1}) {
		t.Errorf("bob's relations = %v", got)
	}
	if got := relationIDs(t, alice, room, root, mautrix.ReqGetRelations{Limit: 50}); len(got) != 6 {
		t.Errorf("alice's relations = %v", got)
	}
	// Bundles hold what the viewer may see; the count is the server's.
	checkBundle(t, "bob's view", mustEvent(t, bob, room, root), e1, c1, 2, false, []id.EventID{ref1})
	if got := mustEvent(t, alice, room, root).Unsigned.Relations.GetLatestEdit(); got == nil || got.ID != newestOf(t, alice, room, e1, e2) {
		t.Errorf("alice's latest edit = %v", got)
	}

	base := "/_matrix/client/v1/rooms/" + url.PathEscape(string(room)) + "/relations/"
	for _, c := range []struct {
		name   string
		who    *mautrix.Client
		path   string
		code   string
		status int
	}{
		{"parent before bob joined", bob, url.PathEscape(string(early)), "M_NOT_FOUND", 404},
		{"stranger", eve, url.PathEscape(string(root)), "M_NOT_FOUND", 404},
		{"unknown parent", alice, url.PathEscape("$nope"), "M_NOT_FOUND", 404},
		{"bad dir", alice, url.PathEscape(string(root)) + "?dir=sideways", "M_INVALID_PARAM", 400},
		{"bad recurse", alice, url.PathEscape(string(root)) + "?recurse=yes", "M_INVALID_PARAM", 400},
		{"bad limit", alice, url.PathEscape(string(root)) + "?limit=many", "M_INVALID_PARAM", 400},
		{"bad from", alice, url.PathEscape(string(root)) + "?from=nonsense", "M_INVALID_PARAM", 400},
		{"bad to", alice, url.PathEscape(string(root)) + "/m.thread?to=nonsense", "M_INVALID_PARAM", 400},
	} {
		status, body, _ := s.Do(t, "GET", base+c.path, c.who.AccessToken, nil)
		var e struct{ Errcode string }
		json.Unmarshal(body, &e)
		if status != c.status || e.Errcode != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, status, body, c.status, c.code)
		}
	}
	// Bob's timestamp_to_event never lands on what he may not see.
	resp, err := bob.TimestampToEvent(ctx, room, time.UnixMilli(mustEvent(t, alice, room, e2).Timestamp+1), mautrix.DirectionBackward)
	if err != nil {
		t.Fatal(err)
	}
	if ev := mustEvent(t, bob, room, resp.EventID); ev.Type != event.StateMember || ev.GetStateKey() != string(bob.UserID) {
		t.Errorf("bob's latest event before now is %s %s, want his leave", ev.Type, ev.ID)
	}
}

func newestOf(t *testing.T, c *mautrix.Client, room id.RoomID, a, b id.EventID) id.EventID {
	t.Helper()
	ea, eb := mustEvent(t, c, room, a), mustEvent(t, c, room, b)
	if eb.Timestamp > ea.Timestamp || (eb.Timestamp == ea.Timestamp && eb.ID > ea.ID) {
		return b
	}
	return a
}
