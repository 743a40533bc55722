package rooms

import (
	"context"
	"errors"
	"fmt"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// visibility decides which events of one room a user may see, by the spec's history
// visibility rules, reading the state before each event (cached per snapshot).
type visibility struct {
	e        *Engine
	user     id.UserID
	room     *storage.Room
	lastJoin int64
	snaps    map[int64]visState
}

type visState struct {
	history    string
	membership string
}

func (e *Engine) newVisibility(ctx context.Context, user id.UserID, room *storage.Room) (*visibility, error) {
	lj, err := e.db.LastJoinPos(ctx, room.NID, string(user))
	if err != nil {
		return nil, err
	}
	return &visibility{e: e, user: user, room: room, lastJoin: lj, snaps: map[int64]visState{}}, nil
}

func (v *visibility) stateAt(ctx context.Context, snapshot int64) (visState, error) {
	if s, ok := v.snaps[snapshot]; ok {
		return s, nil
	}
	hvKey := storage.StateKey{Type: "m.room.history_visibility"}
	memKey := storage.StateKey{Type: "m.room.member", StateKey: string(v.user)}
	st, err := v.e.db.SnapshotKeys(ctx, snapshot, hvKey, memKey)
	if err != nil {
		return visState{}, err
	}
	s := visState{history: "shared"}
	var nids []int64
	for _, n := range st {
		nids = append(nids, n)
	}
	evs, err := v.e.db.EventsByNID(ctx, nids)
	if err != nil {
		return visState{}, err
	}
	for _, ev := range evs {
		switch ev.Type {
		case "m.room.history_visibility":
			if h := gjson.GetBytes(ev.JSON, "content.history_visibility").Str; h != "" {
				s.history = h
			}
		case "m.room.member":
			s.membership = gjson.GetBytes(ev.JSON, "content.membership").Str
		}
	}
	v.snaps[snapshot] = s
	return s, nil
}

// canSee applies the spec's algorithm: world_readable; joined at the event; shared and
// joined at some point after it; invited at the event with history "invited".
func (v *visibility) canSee(ctx context.Context, ev *storage.Event) (bool, error) {
	s, err := v.stateAt(ctx, ev.StateBefore)
	if err != nil {
		return false, err
	}
	membership := s.membership
	if ev.Type == "m.room.member" && ev.StateKey != nil && *ev.StateKey == string(v.user) {
		// Users always see the changes of their own membership (invites, kicks, bans).
		return true, nil
	}
	switch {
	case s.history == "world_readable":
		return true, nil
	case membership == "join":
		return true, nil
	case s.history == "shared" && v.lastJoin > ev.StreamPos:
		return true, nil
	case s.history == "invited" && membership == "invite":
		return true, nil
	}
	return false, nil
}

// Event returns one event if the user may see it.
func (e *Engine) Event(ctx context.Context, v Viewer, roomID id.RoomID, eventID id.EventID) (*ClientEvent, error) {
	a, err := e.access(ctx, v.User, roomID)
	if errors.Is(err, ErrForbidden) {
		return nil, fmt.Errorf("%w: no event %s that you may see", ErrNotFound, eventID)
	} else if err != nil {
		return nil, err
	}
	ev, err := e.db.EventByID(ctx, string(eventID))
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (ev.RoomNID != a.room.NID || ev.StreamPos == 0)) {
		return nil, fmt.Errorf("%w: no event %s in this room", ErrNotFound, eventID)
	} else if err != nil {
		return nil, err
	}
	vis, err := e.newVisibility(ctx, v.User, a.room)
	if err != nil {
		return nil, err
	}
	if ok, err := vis.canSee(ctx, ev); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("%w: you may not see this event", ErrNotFound)
	}
	ces, err := e.format(ctx, []*storage.Event{ev}, roomID, id.RoomVersion(a.room.Version), v, formatOpts{})
	if err != nil || len(ces) == 0 {
		return nil, fmt.Errorf("%w: the event is unreadable", ErrNotFound)
	}
	if err := e.aggregate(ctx, v, ces); err != nil {
		return nil, err
	}
	return ces[0], nil
}

// EventMatcher filters timeline events (a room event filter); nil matches everything.
type EventMatcher func(ev *ClientEvent) bool

// MessagesRequest is /messages' query.
type MessagesRequest struct {
	From, To string
	// Backwards is dir=b.
	Backwards bool
	Limit     int
	Filter    EventMatcher
	// LazyMembers returns only the member events of the chunk's senders in State.
	LazyMembers bool
	// Ignored users' events are left out.
	Ignored map[id.UserID]bool
}

// MessagesResponse is /messages' answer.
type MessagesResponse struct {
	Chunk []*ClientEvent `json:"chunk"`
	Start string         `json:"start"`
	End   string         `json:"end,omitempty"`
	State []*ClientEvent `json:"state,omitempty"`
}

// maxScan bounds how many stored events one /messages request examines while filtering,
// so a filter that matches nothing cannot make a request walk a room's whole history.
const maxScanFactor = 10

// Messages pages through a room's timeline, applying history visibility and the filter.
func (e *Engine) Messages(ctx context.Context, v Viewer, roomID id.RoomID, req MessagesRequest) (*MessagesResponse, error) {
	a, err := e.access(ctx, v.User, roomID)
	if err != nil {
		return nil, err
	}
	limit := req.Limit
	if limit <= 0 {
		limit = 10
	}
	limit = min(limit, 1000)
	var from int64
	to := int64(storage.NoBound)
	if req.From != "" {
		if from, err = ParseToken(req.From); err != nil {
			return nil, err
		}
	} else if req.Backwards {
		if from, err = e.db.StreamPos(ctx); err != nil {
			return nil, err
		}
	}
	if req.To != "" {
		if to, err = ParseToken(req.To); err != nil {
			return nil, err
		}
	}
	vis, err := e.newVisibility(ctx, v.User, a.room)
	if err != nil {
		return nil, err
	}
	resp := &MessagesResponse{Chunk: []*ClientEvent{}, Start: Token(from)}
	if req.From == "" {
		resp.Start = Token(from)
	}
	version := id.RoomVersion(a.room.Version)
	cursor, scanned, exhausted := from, 0, false
	backfilled := false
	var picked []*storage.Event
	for len(picked) < limit && scanned < limit*maxScanFactor+100 {
		if exhausted {
			// At the local edge of a room shared with other servers: fetch older history
			// from them once, then carry on.
			if !req.Backwards || backfilled || req.To != "" || !e.backfill(ctx, a.room, limit-len(picked)) {
				break
			}
			backfilled, exhausted = true, false
		}
		batch := limit - len(picked) + 10
		evs, err := e.db.RoomEvents(ctx, a.room.NID, cursor, to, req.Backwards, batch)
		if err != nil {
			return nil, err
		}
		if len(evs) < batch {
			exhausted = true
		}
		for _, ev := range evs {
			scanned++
			if req.Backwards {
				cursor = ev.StreamPos - 1
			} else {
				cursor = ev.StreamPos
			}
			if req.Ignored[id.UserID(ev.Sender)] && ev.StateKey == nil {
				continue
			}
			if ok, err := vis.canSee(ctx, ev); err != nil {
				return nil, err
			} else if !ok {
				continue
			}
			// The filter needs only the event itself; the unsigned extras are added once
			// for the whole page below.
			if ce, err := e.clientEvent(ev, roomID, version); err != nil || (req.Filter != nil && !req.Filter(ce)) {
				continue
			}
			picked = append(picked, ev)
			if len(picked) == limit {
				exhausted = exhausted && ev == evs[len(evs)-1]
				break
			}
		}
	}
	if !exhausted || (len(picked) == limit && !e.atEdge(ctx, a.room.NID, cursor, to, req.Backwards)) ||
		(req.Backwards && len(picked) == limit && req.To == "" && e.backfillFrom(ctx, a.room) != nil) {
		resp.End = Token(cursor)
	}
	if resp.Chunk, err = e.format(ctx, picked, roomID, version, v, formatOpts{}); err != nil {
		return nil, err
	}
	resp.Chunk = nonNil(resp.Chunk)
	if err := e.aggregate(ctx, v, resp.Chunk); err != nil {
		return nil, err
	}
	if req.LazyMembers && len(resp.Chunk) > 0 {
		if resp.State, err = e.lazyMembers(ctx, v, a, resp.Chunk); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// atEdge says whether no events remain past cursor in the direction of travel.
func (e *Engine) atEdge(ctx context.Context, roomNID, cursor, to int64, backwards bool) bool {
	evs, err := e.db.RoomEvents(ctx, roomNID, cursor, to, backwards, 1)
	return err == nil && len(evs) == 0
}

// lazyMembers returns the member events of the senders in chunk, as of the room's current
// state (or the user's view of it).
func (e *Engine) lazyMembers(ctx context.Context, v Viewer, a *access, chunk []*ClientEvent) ([]*ClientEvent, error) {
	st, err := e.visibleState(ctx, a)
	if err != nil {
		return nil, err
	}
	seen := map[id.UserID]bool{}
	var nids []int64
	for _, ce := range chunk {
		if seen[ce.Sender] {
			continue
		}
		seen[ce.Sender] = true
		if nid, ok := st[storage.StateKey{Type: "m.room.member", StateKey: string(ce.Sender)}]; ok {
			nids = append(nids, nid)
		}
	}
	evs, err := e.db.EventsByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	sortByStream(evs)
	return e.format(ctx, evs, id.RoomID(a.room.ID), id.RoomVersion(a.room.Version), v, formatOpts{})
}

// ContextResponse is /context's answer.
type ContextResponse struct {
	Event        *ClientEvent   `json:"event"`
	EventsBefore []*ClientEvent `json:"events_before"`
	EventsAfter  []*ClientEvent `json:"events_after"`
	Start        string         `json:"start"`
	End          string         `json:"end"`
	State        []*ClientEvent `json:"state"`
}

// Context returns an event with the events around it and the state at the last of them.
func (e *Engine) Context(ctx context.Context, v Viewer, roomID id.RoomID, eventID id.EventID, limit int, filter EventMatcher, lazy bool) (*ContextResponse, error) {
	ev, err := e.Event(ctx, v, roomID, eventID)
	if err != nil {
		return nil, err
	}
	if limit < 0 {
		limit = 10
	}
	limit = min(limit, 1000)
	pos := ev.Stored.StreamPos
	before, err := e.Messages(ctx, v, roomID, MessagesRequest{From: Token(pos - 1), Backwards: true, Limit: max(limit/2, 0) + boolInt(limit == 1), Filter: filter})
	if err != nil {
		return nil, err
	}
	after, err := e.Messages(ctx, v, roomID, MessagesRequest{From: Token(pos), Limit: max(limit-limit/2-boolInt(limit == 1), 0), Filter: filter})
	if err != nil {
		return nil, err
	}
	if limit == 0 {
		before.Chunk, after.Chunk = nil, nil
	}
	resp := &ContextResponse{Event: ev, EventsBefore: nonNil(before.Chunk), EventsAfter: nonNil(after.Chunk)}
	resp.Start, resp.End = Token(pos-1), Token(pos)
	if n := len(before.Chunk); n > 0 {
		resp.Start = Token(before.Chunk[n-1].Stored.StreamPos - 1)
	}
	if n := len(after.Chunk); n > 0 {
		resp.End = Token(after.Chunk[n-1].Stored.StreamPos)
	}
	a, err := e.access(ctx, v.User, roomID)
	if err != nil {
		return nil, err
	}
	all := append(append([]*ClientEvent{ev}, before.Chunk...), after.Chunk...)
	if lazy {
		resp.State, err = e.lazyMembers(ctx, v, a, all)
	} else {
		resp.State, err = e.State(ctx, v, roomID)
	}
	if err != nil {
		return nil, err
	}
	resp.State = nonNil(resp.State)
	return resp, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func nonNil(ces []*ClientEvent) []*ClientEvent {
	if ces == nil {
		return []*ClientEvent{}
	}
	return ces
}

// aggregate adds bundled aggregations to events; see relations.go.
func (e *Engine) aggregate(ctx context.Context, v Viewer, ces []*ClientEvent) error {
	if e.aggregator == nil {
		return nil
	}
	return e.aggregator(ctx, v, ces)
}
