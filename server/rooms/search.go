package rooms

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// Search limits and defaults. The spec leaves them to the server; these follow Synapse
// where it has one (10 results, 5 events of context each way).
const (
	DefaultSearchLimit  = 10
	MaxSearchLimit      = 100
	DefaultContextLimit = 5
	MaxContextLimit     = 100
)

// SearchRequest is the room_events category of POST /search.
// See https://spec.matrix.org/v1.19/client-server-api/#server-side-search
type SearchRequest struct {
	// Term is search_term; see storage.ParseSearchTerm for what it understands.
	Term string
	// Keys narrow the search to content.body, content.name and content.topic; empty: all.
	Keys []string
	// Filter is the room event filter.
	Filter SearchFilter
	// OrderBy is "rank" (the default when empty) or "recent".
	OrderBy string
	// Context, when set, asks for the events around each result.
	Context *SearchContextRequest
	// IncludeState asks for the current state of each room with a result.
	IncludeState bool
	// GroupBy lists the groupings asked for: "room_id", "sender".
	GroupBy []string
	// NextBatch continues an earlier search with the same request.
	NextBatch string
	// Ignored users' events are left out.
	Ignored map[id.UserID]bool
}

// SearchFilter is the part of a room event filter that applies to search.
type SearchFilter struct {
	Rooms, NotRooms []id.RoomID
	// Types and NotTypes may use * as a wildcard.
	Types, NotTypes     []string
	Senders, NotSenders []id.UserID
	ContainsURL         *bool
	// Limit is the page size; 0 means DefaultSearchLimit.
	Limit int
}

// SearchContextRequest is event_context.
type SearchContextRequest struct {
	BeforeLimit, AfterLimit int
	IncludeProfile          bool
}

// SearchResponse is the room_events category of the answer.
type SearchResponse struct {
	Count      int                                `json:"count"`
	Results    []*SearchResult                    `json:"results"`
	Highlights []string                           `json:"highlights"`
	State      map[id.RoomID][]*ClientEvent       `json:"state,omitempty"`
	Groups     map[string]map[string]*SearchGroup `json:"groups,omitempty"`
	NextBatch  string                             `json:"next_batch,omitempty"`
}

// SearchResult is one event found.
type SearchResult struct {
	// Rank is how well the event matches; higher is better.
	Rank    float64        `json:"rank"`
	Result  *ClientEvent   `json:"result"`
	Context *SearchContext `json:"context,omitempty"`
}

// SearchContext is the events around a result.
type SearchContext struct {
	Start        string                       `json:"start"`
	End          string                       `json:"end"`
	ProfileInfo  map[id.UserID]*SearchProfile `json:"profile_info,omitempty"`
	EventsBefore []*ClientEvent               `json:"events_before"`
	EventsAfter  []*ClientEvent               `json:"events_after"`
}

// SearchProfile is a sender's display name and avatar as the room's state had them.
type SearchProfile struct {
	DisplayName string `json:"displayname,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

// SearchGroup is the results of one page that share a room or a sender.
type SearchGroup struct {
	// NextBatch continues the search within this group.
	NextBatch string `json:"next_batch,omitempty"`
	// Order sorts groups: the place of the group's first result on the page, from 1.
	Order   int          `json:"order"`
	Results []id.EventID `json:"results"`
}

// searchBatch is what a next_batch token holds: the order it belongs to, the group it is
// scoped to (if any), and the place of the last hit examined.
type searchBatch struct {
	Order string  `json:"o"`
	Group string  `json:"g,omitempty"`
	Key   string  `json:"k,omitempty"`
	Rank  float64 `json:"r"`
	NID   int64   `json:"n"`
}

func (b searchBatch) String() string {
	raw, _ := json.Marshal(b)
	return base64.RawURLEncoding.EncodeToString(raw)
}

func parseSearchBatch(tok string) (*searchBatch, error) {
	var b searchBatch
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		err = json.Unmarshal(raw, &b)
	}
	if err != nil || b.NID <= 0 || math.IsNaN(b.Rank) || (b.Order != "rank" && b.Order != "recent") ||
		(b.Group != "" && b.Group != "room_id" && b.Group != "sender") {
		return nil, fmt.Errorf("%w: next_batch is not a search token from this server", ErrInvalidParam)
	}
	return &b, nil
}

// searchRoom is one room being searched. The room's row and the user's view of its
// history are loaded when the room first has a hit: a user in hundreds of rooms pays for
// the few a search finds something in.
type searchRoom struct {
	room *storage.Room
	vis  *visibility
}

// load fills in sr's room and the user's view of its history, once.
func (sr *searchRoom) load(ctx context.Context, e *Engine, user id.UserID, nid int64) error {
	if sr.vis != nil {
		return nil
	}
	room, err := e.db.RoomByNID(ctx, nid)
	if err != nil {
		return err
	}
	vis, err := e.newVisibility(ctx, user, room)
	if err != nil {
		return err
	}
	sr.room, sr.vis = room, vis
	return nil
}

// Search runs a full-text search over the events the user may see in the rooms they are
// joined to now. Like Synapse, it leaves out rooms the user has left, although the spec
// allows searching what they saw there. Within a room, history visibility decides which
// events count, exactly as for /messages. The count is exact, except that it leaves out
// the rare events whose visibility would have to be judged one by one (see countVisible).
func (e *Engine) Search(ctx context.Context, v Viewer, req SearchRequest) (*SearchResponse, error) {
	plan, err := planSearch(req)
	if err != nil {
		return nil, err
	}
	rooms, err := e.searchRooms(ctx, v.User, req.Filter, plan.batch)
	if err != nil {
		return nil, err
	}
	resp := &SearchResponse{Results: []*SearchResult{}, Highlights: []string{}}
	q, ok := plan.query(req, rooms)
	if !ok {
		return resp, nil
	}
	if resp.Count, err = e.countVisible(ctx, v.User, rooms, q); err != nil {
		return nil, err
	}
	hits, last, more, err := e.searchPage(ctx, v.User, rooms, q, plan.batch, plan.limit)
	if err != nil {
		return nil, err
	}
	// A full page carries next_batch even when nothing follows it, as Synapse's does:
	// clients and Complement page until a response without one, and an empty last page is
	// allowed.
	if more || (len(hits) == plan.limit && last != nil) {
		next := *plan.batch
		next.Rank, next.NID = last.Rank, last.NID
		resp.NextBatch = next.String()
	}
	if err := e.searchResults(ctx, v, req, plan.expr, rooms, hits, resp); err != nil {
		return nil, err
	}
	if len(req.GroupBy) > 0 {
		resp.Groups = searchGroups(req.GroupBy, resp.Results, plan.batch, last, more)
	}
	return resp, nil
}

// searchPlan is a validated SearchRequest.
type searchPlan struct {
	expr  *storage.SearchExpr
	limit int
	// batch is where the search starts: the order, the group it is scoped to, and the last
	// hit a previous page examined (none for a first page).
	batch *searchBatch
}

// planSearch checks a request, refusing what the spec does not allow.
func planSearch(req SearchRequest) (*searchPlan, error) {
	expr, err := storage.ParseSearchTerm(req.Term)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidParam, err)
	}
	order := req.OrderBy
	if order == "" {
		order = "rank"
	}
	if order != "rank" && order != "recent" {
		return nil, fmt.Errorf("%w: order_by must be rank or recent, not %q", ErrInvalidParam, order)
	}
	for _, k := range req.Keys {
		if _, ok := storage.SearchKeys[k]; !ok {
			return nil, fmt.Errorf("%w: %q is not a search key (content.body, content.name, content.topic)", ErrInvalidParam, k)
		}
	}
	for _, g := range req.GroupBy {
		if g != "room_id" && g != "sender" {
			return nil, fmt.Errorf("%w: cannot group by %q (room_id, sender)", ErrInvalidParam, g)
		}
	}
	limit := req.Filter.Limit
	switch {
	case limit < 0:
		return nil, fmt.Errorf("%w: filter limit must be positive", ErrInvalidParam)
	case limit == 0:
		limit = DefaultSearchLimit
	}
	if c := req.Context; c != nil && (c.BeforeLimit < 0 || c.AfterLimit < 0) {
		return nil, fmt.Errorf("%w: event_context limits must not be negative", ErrInvalidParam)
	}
	batch := &searchBatch{Order: order}
	if req.NextBatch != "" {
		if batch, err = parseSearchBatch(req.NextBatch); err != nil {
			return nil, err
		}
		if batch.Order != order {
			return nil, fmt.Errorf("%w: next_batch belongs to a search ordered by %s", ErrInvalidParam, batch.Order)
		}
	}
	return &searchPlan{expr: expr, limit: min(limit, MaxSearchLimit), batch: batch}, nil
}

// query is the index query for the plan over rooms; false when it can find nothing.
func (p *searchPlan) query(req SearchRequest, rooms map[int64]*searchRoom) (storage.SearchQuery, bool) {
	q := storage.SearchQuery{Expr: p.expr, Keys: req.Keys, Types: req.Filter.Types, NotTypes: req.Filter.NotTypes,
		Senders: userStrings(req.Filter.Senders), NotSenders: userStrings(req.Filter.NotSenders),
		ContainsURL: req.Filter.ContainsURL, Recent: p.batch.Order == "recent"}
	for nid := range rooms {
		q.Rooms = append(q.Rooms, nid)
	}
	if p.batch.Group == "sender" {
		if len(q.Senders) > 0 && !slices.Contains(q.Senders, p.batch.Key) {
			return q, false
		}
		q.Senders = []string{p.batch.Key}
	}
	for u, ignored := range req.Ignored {
		if ignored {
			q.NotSenders = append(q.NotSenders, string(u))
		}
	}
	return q, len(q.Rooms) > 0
}

// searchRooms returns the rooms to search: those the user is joined to now, narrowed by
// the filter and by a next_batch scoped to one room.
func (e *Engine) searchRooms(ctx context.Context, user id.UserID, f SearchFilter, batch *searchBatch) (map[int64]*searchRoom, error) {
	joined, err := e.db.UserRooms(ctx, string(user), "join")
	if err != nil {
		return nil, err
	}
	out := map[int64]*searchRoom{}
	for _, r := range joined {
		rid := id.RoomID(r.RoomID)
		if (len(f.Rooms) > 0 && !slices.Contains(f.Rooms, rid)) || slices.Contains(f.NotRooms, rid) ||
			(batch.Group == "room_id" && batch.Key != r.RoomID) {
			continue
		}
		out[r.RoomNID] = &searchRoom{}
	}
	return out, nil
}

// countVisible counts the events matching q that the user may see. Visibility depends
// only on the state before an event and on whether the user joined after it, so it is
// decided once per bucket of events sharing a room and a state: a bucket is counted when
// its newest event is visible. That is exact unless the user rejoined a room with shared
// history in the middle of a bucket; then the bucket is left out rather than overcounted.
func (e *Engine) countVisible(ctx context.Context, user id.UserID, rooms map[int64]*searchRoom, q storage.SearchQuery) (int, error) {
	buckets, err := e.db.SearchBuckets(ctx, q)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, b := range buckets {
		sr := rooms[b.RoomNID]
		if sr == nil {
			continue
		}
		if err := sr.load(ctx, e, user, b.RoomNID); err != nil {
			return 0, err
		}
		// Events after the user's current join were sent while they were in the room.
		ok := b.MaxPos > sr.vis.lastJoin
		if !ok {
			if ok, err = sr.vis.canSee(ctx, &storage.Event{Type: "m.room.message", StateBefore: b.StateBefore, StreamPos: b.MaxPos}); err != nil {
				return 0, err
			}
		}
		if ok {
			n += b.Count
		}
	}
	return n, nil
}

// maxSearchScanFactor bounds how many hits one page examines, as for /messages, so that a
// search whose hits are mostly invisible cannot walk the whole index in one request; the
// page then comes back short with a next_batch.
const maxSearchScanFactor = 10

// searchPage returns up to limit visible hits after the batch's cursor, the last hit it
// examined, and whether more may follow.
func (e *Engine) searchPage(ctx context.Context, user id.UserID, rooms map[int64]*searchRoom, q storage.SearchQuery, batch *searchBatch, limit int) ([]storage.SearchHit, *storage.SearchCursor, bool, error) {
	var last *storage.SearchCursor
	if batch.NID > 0 {
		last = &storage.SearchCursor{Rank: batch.Rank, NID: batch.NID}
	}
	var page []storage.SearchHit
	scanned := 0
	for {
		// One hit beyond the page tells whether there are more.
		q.After, q.Limit = last, limit-len(page)+1
		hits, err := e.db.Search(ctx, q)
		if err != nil {
			return nil, nil, false, err
		}
		for _, h := range hits {
			if len(page) == limit {
				return page, last, true, nil
			}
			scanned++
			last = h.Cursor()
			sr := rooms[h.Event.RoomNID]
			if sr == nil {
				continue
			}
			if err := sr.load(ctx, e, user, h.Event.RoomNID); err != nil {
				return nil, nil, false, err
			}
			if ok, err := sr.vis.canSee(ctx, h.Event); err != nil {
				return nil, nil, false, err
			} else if ok {
				page = append(page, h)
			}
		}
		if len(hits) < q.Limit {
			return page, last, false, nil
		}
		if scanned >= limit*maxSearchScanFactor+100 {
			return page, last, true, nil
		}
	}
}

// searchResults formats the page's hits with their highlights, context and room state.
func (e *Engine) searchResults(ctx context.Context, v Viewer, req SearchRequest, expr *storage.SearchExpr, rooms map[int64]*searchRoom, hits []storage.SearchHit, resp *SearchResponse) error {
	highlights := map[string]bool{}
	for _, w := range expr.Words {
		highlights[w.Text] = true
	}
	var all []*ClientEvent
	for _, h := range hits {
		room := rooms[h.Event.RoomNID].room
		roomID := id.RoomID(room.ID)
		ces, err := e.format(ctx, []*storage.Event{h.Event}, roomID, id.RoomVersion(room.Version), v, formatOpts{})
		if err != nil {
			return err
		}
		if len(ces) == 0 {
			continue
		}
		res := &SearchResult{Rank: h.Rank, Result: ces[0]}
		all = append(all, ces[0])
		_, text := storage.SearchableText(h.Event.Type, h.Event.JSON)
		for _, w := range expr.Highlights(text) {
			highlights[w] = true
		}
		if req.Context != nil {
			if res.Context, err = e.searchContext(ctx, v, req, roomID, h.Event); err != nil {
				return err
			}
			all = append(append(all, res.Context.EventsBefore...), res.Context.EventsAfter...)
		}
		resp.Results = append(resp.Results, res)
		if req.IncludeState {
			if resp.State == nil {
				resp.State = map[id.RoomID][]*ClientEvent{}
			}
			if _, done := resp.State[roomID]; !done {
				if resp.State[roomID], err = e.State(ctx, v, roomID); err != nil {
					return err
				}
			}
		}
	}
	for w := range highlights {
		resp.Highlights = append(resp.Highlights, w)
	}
	slices.Sort(resp.Highlights)
	return e.aggregate(ctx, v, all)
}

// searchContext returns the events around a result, as /messages would show them, and,
// when asked, the senders' profiles as the room's state had them after the last of them.
func (e *Engine) searchContext(ctx context.Context, v Viewer, req SearchRequest, roomID id.RoomID, ev *storage.Event) (*SearchContext, error) {
	c := &SearchContext{Start: Token(ev.StreamPos - 1), End: Token(ev.StreamPos), EventsBefore: []*ClientEvent{}, EventsAfter: []*ClientEvent{}}
	before, after := min(req.Context.BeforeLimit, MaxContextLimit), min(req.Context.AfterLimit, MaxContextLimit)
	if before > 0 {
		m, err := e.Messages(ctx, v, roomID, MessagesRequest{From: Token(ev.StreamPos - 1), Backwards: true, Limit: before, Ignored: req.Ignored})
		if err != nil {
			return nil, err
		}
		c.EventsBefore = nonNil(m.Chunk)
		if n := len(m.Chunk); n > 0 {
			c.Start = Token(m.Chunk[n-1].Stored.StreamPos - 1)
		}
	}
	if after > 0 {
		m, err := e.Messages(ctx, v, roomID, MessagesRequest{From: Token(ev.StreamPos), Limit: after, Ignored: req.Ignored})
		if err != nil {
			return nil, err
		}
		c.EventsAfter = nonNil(m.Chunk)
		if n := len(m.Chunk); n > 0 {
			c.End = Token(m.Chunk[n-1].Stored.StreamPos)
		}
	}
	if !req.Context.IncludeProfile {
		return c, nil
	}
	senders := []id.UserID{id.UserID(ev.Sender)}
	for _, ce := range slices.Concat(c.EventsBefore, c.EventsAfter) {
		if !slices.Contains(senders, ce.Sender) {
			senders = append(senders, ce.Sender)
		}
	}
	lastEv := ev
	if n := len(c.EventsAfter); n > 0 {
		lastEv = c.EventsAfter[n-1].Stored
	}
	var err error
	c.ProfileInfo, err = e.profilesAt(ctx, lastEv, senders)
	return c, err
}

// profilesAt returns the users' profiles in the room's state just after ev.
func (e *Engine) profilesAt(ctx context.Context, ev *storage.Event, users []id.UserID) (map[id.UserID]*SearchProfile, error) {
	keys := make([]storage.StateKey, len(users))
	for i, u := range users {
		keys[i] = storage.StateKey{Type: "m.room.member", StateKey: string(u)}
	}
	st, err := e.db.SnapshotKeys(ctx, ev.StateBefore, keys...)
	if err != nil {
		return nil, err
	}
	if ev.Type == "m.room.member" && ev.StateKey != nil {
		if k := (storage.StateKey{Type: ev.Type, StateKey: *ev.StateKey}); slices.Contains(keys, k) {
			st[k] = ev.NID
		}
	}
	evs, err := e.db.EventsByNID(ctx, slices.Collect(mapValues(st)))
	if err != nil {
		return nil, err
	}
	out := map[id.UserID]*SearchProfile{}
	for _, m := range evs {
		p := &SearchProfile{}
		if m.RedactedBy == "" {
			c := gjson.GetBytes(m.JSON, "content")
			p.DisplayName, p.AvatarURL = c.Get("displayname").Str, c.Get("avatar_url").Str
		}
		out[id.UserID(*m.StateKey)] = p
	}
	return out, nil
}

// searchGroups groups a page's results by room and by sender. A group's next_batch
// continues the search within the group from where the page stopped; like Synapse, it is
// given to every group while the search as a whole has more.
func searchGroups(groupBy []string, results []*SearchResult, batch *searchBatch, last *storage.SearchCursor, more bool) map[string]map[string]*SearchGroup {
	out := map[string]map[string]*SearchGroup{}
	for _, g := range groupBy {
		if out[g] != nil {
			continue
		}
		groups := map[string]*SearchGroup{}
		for _, r := range results {
			key := string(r.Result.RoomID)
			if g == "sender" {
				key = string(r.Result.Sender)
			}
			grp := groups[key]
			if grp == nil {
				grp = &SearchGroup{Order: len(groups) + 1, Results: []id.EventID{}}
				if more {
					grp.NextBatch = searchBatch{Order: batch.Order, Group: g, Key: key, Rank: last.Rank, NID: last.NID}.String()
				}
				groups[key] = grp
			}
			grp.Results = append(grp.Results, r.Result.EventID)
		}
		out[g] = groups
	}
	return out
}

func userStrings(us []id.UserID) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = string(u)
	}
	return out
}
