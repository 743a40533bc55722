package rooms

import (
	"cmp"
	"context"
	"slices"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// Simplified sliding sync's view of one room (MSC4186): the newest part of its timeline and
// the pieces of its state the client asked for, whole or as what changed since a position.
// The sync engine (server/sync) decides which rooms, between which positions and with which
// state; this file answers with the same history visibility and formatting as /sync v2.

// StateSelector is the room state a client asks for (sliding sync's required_state).
type StateSelector interface {
	// Match says whether a piece of state is wanted.
	Match(typ, stateKey string) bool
	// Keys lists what Match may select when that can be done without reading every key:
	// exact keys and whole types. ok false means every key must be read and matched.
	Keys() (keys []storage.StateKey, types []string, ok bool)
}

// SlidingRequest asks for one room's timeline and state in a sliding sync response.
type SlidingRequest struct {
	// Room is the room; only NID, ID and Version are read.
	Room *storage.Room
	// Upto is where the view ends: the response's position, or the user's leave.
	Upto int64
	// Current says Upto is the response's position, so the state's changes can be read
	// from the room's current state.
	Current bool
	// JoinedAt is as in SyncRequest: the user's membership event at Upto when it is a join.
	JoinedAt int64
	// Limit caps the timeline; 0 sends none.
	Limit int
	// TimelineSince: the timeline holds events after it; 0 means the newest events however
	// old they are.
	TimelineSince int64
	// StateSince 0 sends the state Want selects whole, as of Upto. Otherwise only the keys
	// Want selects whose event changed in (StateSince, Upto] go out, and those Fresh selects
	// (asked for since the client last saw the room) whole.
	StateSince  int64
	Want, Fresh StateSelector
	// LazyMembers sends the member events of the timeline's senders and of its membership
	// events' targets unless Known says the client holds that very event; and, when
	// StateSince is set and the timeline is not limited, every member event that changed.
	LazyMembers bool
	Known       func(user id.UserID, eventNID int64) bool
	// Also are keys read as of Upto for the caller alone (a room's name, avatar, the member
	// events of its heroes).
	Also []storage.StateKey
}

// SlidingRoom is one room's timeline and state for a sliding sync response.
type SlidingRoom struct {
	// Timeline is oldest first.
	Timeline []*ClientEvent
	Limited  bool
	// PrevBatch is a /messages token for the events before the timeline.
	PrevBatch string
	// State is the state selected, oldest first.
	State []*ClientEvent
	// Removed are keys selected that left the state since StateSince (state resolution).
	Removed []storage.StateKey
	// Changed holds every key whose event changed in (StateSince, Upto], selected or not;
	// nil when StateSince is 0.
	Changed map[storage.StateKey]bool
	// Also holds the events of SlidingRequest.Also present at Upto.
	Also map[storage.StateKey]*ClientEvent
}

// SlidingRoom returns one room's timeline and state as the user may see them: never an
// event after Upto, never one history visibility hides, never state of a time the user could
// not see the room.
func (e *Engine) SlidingRoom(ctx context.Context, v Viewer, req SlidingRequest) (*SlidingRoom, error) {
	room := req.Room
	roomID, version := id.RoomID(room.ID), id.RoomVersion(room.Version)
	var vis *visibility
	if req.JoinedAt > 0 {
		vis = &visibility{e: e, user: v.User, room: room, lastJoin: req.JoinedAt, snaps: map[int64]visState{}}
	} else {
		var err error
		if vis, err = e.newVisibility(ctx, v.User, room); err != nil {
			return nil, err
		}
	}
	out := &SlidingRoom{PrevBatch: Token(req.Upto), Timeline: []*ClientEvent{}, State: []*ClientEvent{},
		Also: map[storage.StateKey]*ClientEvent{}}
	var events []*storage.Event
	if req.Limit > 0 {
		sr := SyncRequest{Room: room, Since: req.TimelineSince, Upto: req.Upto, JoinedAt: req.JoinedAt, Limit: req.Limit}
		w, err := e.syncWindow(ctx, vis, &sr)
		if err != nil {
			return nil, err
		}
		events, out.Limited = w.events, w.limited
		if len(events) > 0 {
			out.PrevBatch = Token(events[0].StreamPos - 1)
		}
		if out.Timeline, err = e.format(ctx, events, roomID, version, v, formatOpts{noRoomID: true}); err != nil {
			return nil, err
		}
		if err := e.aggregate(ctx, v, out.Timeline); err != nil {
			return nil, err
		}
	}

	end, err := e.statePointAfter(ctx, room.NID, req.Upto)
	if err != nil {
		return nil, err
	}
	// A user joined from JoinedAt through Upto may read the state after their join.
	readable := req.JoinedAt > 0 && (end.pos > req.JoinedAt || (end.after != nil && end.pos == req.JoinedAt))
	if !readable {
		p := end
		if a := end.after; a != nil && a.Type == "m.room.member" && a.StateKey != nil && *a.StateKey == string(v.User) {
			// The user's own leave, kick or ban ends the view: they see the state as it was
			// when they were in the room, and that event.
			p = statePoint{snapshot: end.snapshot, pos: end.pos}
		}
		if readable, err = vis.stateReadable(ctx, p); err != nil {
			return nil, err
		}
	}
	if !readable {
		return out, nil
	}

	// One read of the state at Upto: what Want selects (for a room the client has, what
	// Fresh selects), the members the timeline needs, and Also.
	sel := req.Want
	if req.StateSince != 0 {
		sel = req.Fresh
	}
	var keys []storage.StateKey
	var types []string
	whole := false
	if sel != nil {
		var ok bool
		keys, types, ok = sel.Keys()
		whole = !ok
	}
	lazy := map[storage.StateKey]bool{}
	if req.LazyMembers {
		for _, ev := range events {
			for _, u := range []string{ev.Sender, memberTarget(ev)} {
				if k := (storage.StateKey{Type: "m.room.member", StateKey: u}); u != "" && !lazy[k] {
					lazy[k] = true
					keys = append(keys, k)
				}
			}
		}
	}
	keys = append(keys, req.Also...)
	var have storage.StateMap
	if whole {
		have, err = end.state(ctx, e.db)
	} else {
		have, err = end.selectKeys(ctx, e.db, keys, types)
	}
	if err != nil {
		return nil, err
	}

	// chosen are the keys to send and their events.
	chosen := storage.StateMap{}
	if sel != nil {
		for k, nid := range have {
			if sel.Match(k.Type, k.StateKey) {
				chosen[k] = nid
			}
		}
	}
	if req.StateSince != 0 {
		changed, removed, err := e.stateChanges(ctx, &req, end)
		if err != nil {
			return nil, err
		}
		out.Changed = make(map[storage.StateKey]bool, len(changed)+len(removed))
		for k, nid := range changed {
			out.Changed[k] = true
			lazyMember := req.LazyMembers && !out.Limited && k.Type == "m.room.member"
			if lazyMember || (req.Want != nil && req.Want.Match(k.Type, k.StateKey)) {
				chosen[k] = nid
			}
		}
		for _, k := range removed {
			out.Changed[k] = true
			if req.Want != nil && req.Want.Match(k.Type, k.StateKey) {
				out.Removed = append(out.Removed, k)
			}
		}
	}
	for k := range lazy {
		if _, ok := chosen[k]; ok {
			continue
		}
		if nid, ok := have[k]; ok && (req.Known == nil || !req.Known(id.UserID(k.StateKey), nid)) {
			chosen[k] = nid
		}
	}

	nids := make([]int64, 0, len(chosen)+len(req.Also))
	for _, nid := range chosen {
		nids = append(nids, nid)
	}
	alsoNIDs := map[int64][]storage.StateKey{}
	for _, k := range req.Also {
		if nid, ok := have[k]; ok {
			if _, dup := alsoNIDs[nid]; !dup {
				nids = append(nids, nid)
			}
			alsoNIDs[nid] = append(alsoNIDs[nid], k)
		}
	}
	evs, err := e.db.EventsByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	sortByStream(evs)
	ces, err := e.format(ctx, evs, roomID, version, v, formatOpts{noRoomID: true})
	if err != nil {
		return nil, err
	}
	sent := map[int64]bool{}
	for _, ce := range ces {
		if ce.Stored == nil || ce.StateKey == nil {
			continue
		}
		k := storage.StateKey{Type: ce.Type, StateKey: *ce.StateKey}
		if nid, ok := chosen[k]; ok && nid == ce.Stored.NID && !sent[nid] {
			sent[nid] = true
			out.State = append(out.State, ce)
		}
		for _, ak := range alsoNIDs[ce.Stored.NID] {
			out.Also[ak] = ce
		}
	}
	return out, nil
}

// memberTarget is the user a membership event is about, or "".
func memberTarget(ev *storage.Event) string {
	if ev.Type == "m.room.member" && ev.StateKey != nil {
		return *ev.StateKey
	}
	return ""
}

// selectKeys reads the given keys and every key of the given types of the state at p.
func (p statePoint) selectKeys(ctx context.Context, db *storage.DB, keys []storage.StateKey, types []string) (storage.StateMap, error) {
	m, err := db.SnapshotSelect(ctx, p.snapshot, keys, types)
	if err != nil {
		return nil, err
	}
	if a := p.after; a != nil {
		k := storage.StateKey{Type: a.Type, StateKey: *a.StateKey}
		if slices.Contains(types, k.Type) || slices.Contains(keys, k) {
			m[k] = a.NID
		}
	}
	return m, nil
}

// stateChanges returns the keys of the state at end (after Upto) whose event changed since
// StateSince, and the keys that left the state. While the user is in the room (Current) the
// room's current state says which keys changed when, in one indexed read; otherwise the two
// states are compared whole.
func (e *Engine) stateChanges(ctx context.Context, req *SlidingRequest, end statePoint) (storage.StateMap, []storage.StateKey, error) {
	if req.Current {
		m, err := e.db.CurrentStateChanges(ctx, req.Room.NID, req.StateSince, req.Upto)
		return m, nil, err
	}
	start, err := e.statePointAfter(ctx, req.Room.NID, req.StateSince)
	if err != nil {
		return nil, nil, err
	}
	if start.snapshot == end.snapshot && afterNID(start) == afterNID(end) {
		return storage.StateMap{}, nil, nil
	}
	before, err := start.state(ctx, e.db)
	if err != nil {
		return nil, nil, err
	}
	after, err := end.state(ctx, e.db)
	if err != nil {
		return nil, nil, err
	}
	changed := storage.StateMap{}
	for k, nid := range after {
		if before[k] != nid {
			changed[k] = nid
		}
	}
	var removed []storage.StateKey
	for k := range before {
		if _, ok := after[k]; !ok {
			removed = append(removed, k)
		}
	}
	slices.SortFunc(removed, func(a, b storage.StateKey) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.StateKey, b.StateKey))
	})
	return changed, removed, nil
}

// afterNID is the event a state point stands just after, or 0.
func afterNID(p statePoint) int64 {
	if p.after == nil {
		return 0
	}
	return p.after.NID
}
