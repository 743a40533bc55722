package rooms

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// Sync's view of rooms: the per-room parts of a /sync response, computed with the same
// history visibility and formatting as /messages. The sync engine (server/sync) decides
// which rooms to ask about and between which stream positions; this file answers.

// SyncRequest asks for one room's timeline and state in a sync response.
type SyncRequest struct {
	// Room is the room; only NID, ID and Version are read.
	Room *storage.Room
	// Since is the client's position: the timeline holds events after it and the state is
	// what changed since it. 0 means the client knows nothing of the room (an initial
	// sync, or a room the user joined since): the timeline is the newest events and the
	// state is whole.
	Since int64
	// Upto bounds the timeline: the sync's position, or the user's leave for a room they left.
	Upto int64
	// JoinedAt, when the user's membership at Upto is join, is the position of their
	// membership event at Upto (their latest join up to there): events after it are visible
	// without reading the state before each. 0: not joined at Upto.
	JoinedAt int64
	// Limit caps the timeline; 0 sends no events, though Limited still says whether the
	// room had any the user could see.
	Limit int
	// FullState sends the whole state at the start of the timeline even when Since is set.
	FullState bool
	// StateAfter sends the state at the end of the timeline (Upto) instead of its start:
	// whole, or what changed since Since, timeline events included (use_state_after).
	StateAfter bool
	// Timeline and State filter the events sent; nil sends all.
	Timeline, State EventMatcher
	// LazyMembers sends only the member events the client needs to show the timeline: those
	// of its senders and of Members unless Known says the client holds them already, and
	// those of AlwaysMembers in any case. Member events that changed in a gap are sent
	// regardless, as the spec asks.
	LazyMembers   bool
	Members       []id.UserID
	AlwaysMembers []id.UserID
	Known         func(user id.UserID, eventNID int64) bool
}

// SyncRoom is one room's timeline and state for a sync response.
type SyncRoom struct {
	// Timeline is oldest first.
	Timeline []*ClientEvent
	Limited  bool
	// PrevBatch is a /messages token for the events before the timeline.
	PrevBatch string
	// State is the state at the start of the timeline (at its end with StateAfter), or what
	// changed of it since Since.
	State []*ClientEvent
	// MembersChanged says a membership changed within what the response covers, so the
	// room summary may have changed.
	MembersChanged bool
}

// SyncRoom returns one room's timeline and state as the user may see them: never an event
// after Upto, never one the room's history visibility hides, never state from a time the
// user could not see the room.
func (e *Engine) SyncRoom(ctx context.Context, v Viewer, req SyncRequest) (*SyncRoom, error) {
	room := req.Room
	roomID, version := id.RoomID(room.ID), id.RoomVersion(room.Version)
	var err error
	var vis *visibility
	if req.JoinedAt > 0 {
		// Joined at Upto since JoinedAt: for every event up to Upto, "joined later than the
		// event" reads the same with this join as with the user's very latest one.
		vis = &visibility{e: e, user: v.User, room: room, lastJoin: req.JoinedAt, snaps: map[int64]visState{}}
	} else if vis, err = e.newVisibility(ctx, v.User, room); err != nil {
		return nil, err
	}
	w, err := e.syncWindow(ctx, vis, &req)
	if err != nil {
		return nil, err
	}
	out := &SyncRoom{Limited: w.limited, MembersChanged: w.members, PrevBatch: Token(req.Upto), Timeline: []*ClientEvent{}}
	if len(w.events) > 0 {
		out.PrevBatch = Token(w.events[0].StreamPos - 1)
	}

	// The state at the start of the timeline: before its first event, or after Upto; with
	// StateAfter, always after Upto.
	start := statePoint{}
	if len(w.events) > 0 && !req.StateAfter {
		start = statePoint{snapshot: w.events[0].StateBefore, pos: w.events[0].StreamPos}
	} else if start, err = e.statePointAfter(ctx, room.NID, req.Upto); err != nil {
		return nil, err
	}
	stateEvs, membersChanged, err := e.syncState(ctx, vis, &req, w, start)
	if err != nil {
		return nil, err
	}
	out.MembersChanged = out.MembersChanged || membersChanged
	if out.Timeline, err = e.format(ctx, w.events, roomID, version, v, formatOpts{noRoomID: true}); err != nil {
		return nil, err
	}
	if err := e.aggregate(ctx, v, out.Timeline); err != nil {
		return nil, err
	}
	sortByStream(stateEvs)
	state, err := e.format(ctx, stateEvs, roomID, version, v, formatOpts{noRoomID: true})
	if err != nil {
		return nil, err
	}
	out.State = []*ClientEvent{}
	for _, ce := range state {
		if req.State == nil || req.State(ce) {
			out.State = append(out.State, ce)
		}
	}
	return out, nil
}

// window is the part of a room's timeline a sync sends.
type window struct {
	// events are oldest first.
	events []*storage.Event
	// limited: visible events between Since and the first of events were left out.
	limited bool
	// gap: some event between Since and the first of events is not in events, so the
	// state at the timeline's start is not the state the client knows.
	gap bool
	// members: a member event was among those read.
	members bool
}

// syncWindow walks a room's timeline back from Upto towards Since and keeps the newest
// Limit events that the user may see and the filter matches. Like /messages it reads a
// bounded number of events, so a filter that matches nothing cannot make it read a room's
// whole history; stopping early counts as limited.
func (e *Engine) syncWindow(ctx context.Context, vis *visibility, req *SyncRequest) (*window, error) {
	limit := max(req.Limit, 0)
	roomID, version := id.RoomID(req.Room.ID), id.RoomVersion(req.Room.Version)
	w := &window{}
	var picked []*storage.Event // newest first
	cursor, scanned, exhausted := req.Upto, 0, false
	skippedLast := false // the oldest event read was left out
	for len(picked) <= limit && !exhausted && scanned < limit*maxScanFactor+100 {
		// Exactly what is missing the first time (a joined user sees every event), more
		// when visibility or the filter left events out.
		batch := limit + 1 - len(picked)
		if scanned > 0 {
			batch = max(batch, 20)
		}
		evs, err := e.db.RoomEvents(ctx, req.Room.NID, cursor, req.Since, true, batch)
		if err != nil {
			return nil, err
		}
		exhausted = len(evs) < batch
		for _, ev := range evs {
			scanned++
			cursor = ev.StreamPos - 1
			if ev.Type == "m.room.member" {
				w.members = true
			}
			ok, err := e.syncVisible(ctx, vis, req, ev)
			if err != nil {
				return nil, err
			}
			if ok && req.Timeline != nil {
				ce, err := e.clientEvent(ev, roomID, version)
				ok = err == nil && req.Timeline(ce)
			}
			if !ok {
				skippedLast = true
				continue
			}
			skippedLast = false
			picked = append(picked, ev)
			if len(picked) > limit {
				exhausted = false
				break
			}
		}
	}
	if len(picked) > limit {
		picked = picked[:limit]
		w.limited = true
	} else if !exhausted {
		w.limited = true // the scan stopped before reaching Since
	}
	w.gap = w.limited || skippedLast
	slices.Reverse(picked)
	w.events = picked
	return w, nil
}

// syncVisible is canSee with a shortcut: a user joined at Upto sees everything after their
// join.
func (e *Engine) syncVisible(ctx context.Context, vis *visibility, req *SyncRequest, ev *storage.Event) (bool, error) {
	if req.JoinedAt > 0 && ev.StreamPos > req.JoinedAt {
		return true, nil
	}
	return vis.canSee(ctx, ev)
}

// syncState picks the state to send: whole, or what changed since Since when the window
// left a gap, and under lazy loading only the member events the client needs. It also says
// whether a membership changed in the gap.
func (e *Engine) syncState(ctx context.Context, vis *visibility, req *SyncRequest, w *window, start statePoint) ([]*storage.Event, bool, error) {
	// A user joined from JoinedAt through Upto may read the state anywhere after their join.
	readable := req.JoinedAt > 0 && (start.pos > req.JoinedAt || (start.after != nil && start.pos == req.JoinedAt))
	if !readable {
		var err error
		if readable, err = vis.stateReadable(ctx, start); err != nil || !readable {
			return nil, false, err
		}
	}
	var out []*storage.Event
	// sent are the keys in out; startState is the whole state at start, when it was read.
	sent := map[storage.StateKey]bool{}
	var startState storage.StateMap
	membersChanged := false
	switch {
	case req.Since == 0 || req.FullState:
		except := ""
		if req.LazyMembers {
			except = "m.room.member"
		}
		evs, err := start.events(ctx, e.db, except)
		if err != nil {
			return nil, false, err
		}
		out = evs
	case w.gap || (req.StateAfter && hasState(w.events)):
		var err error
		if startState, err = start.state(ctx, e.db); err != nil {
			return nil, false, err
		}
		since, err := e.statePointAfter(ctx, req.Room.NID, req.Since)
		if err != nil {
			return nil, false, err
		}
		known, err := since.state(ctx, e.db)
		if err != nil {
			return nil, false, err
		}
		var nids []int64
		for k, nid := range startState {
			if known[k] != nid {
				nids = append(nids, nid)
				membersChanged = membersChanged || k.Type == "m.room.member"
			}
		}
		if out, err = e.db.EventsByNID(ctx, nids); err != nil {
			return nil, false, err
		}
	}
	for _, ev := range out {
		sent[storage.StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = true
	}
	if !req.LazyMembers {
		return out, membersChanged, nil
	}
	// always[u] says the member event goes out even if the client holds it.
	always := map[id.UserID]bool{}
	for _, ev := range w.events {
		always[id.UserID(ev.Sender)] = false
	}
	for _, u := range req.Members {
		if _, ok := always[u]; !ok {
			always[u] = false
		}
	}
	for _, u := range req.AlwaysMembers {
		always[u] = true
	}
	keys := make([]storage.StateKey, 0, len(always))
	for u := range always {
		if k := (storage.StateKey{Type: "m.room.member", StateKey: string(u)}); !sent[k] {
			keys = append(keys, k)
		}
	}
	have := startState
	if have == nil && len(keys) > 0 {
		var err error
		if have, err = start.keys(ctx, e.db, keys...); err != nil {
			return nil, false, err
		}
	}
	var nids []int64
	for _, k := range keys {
		nid, ok := have[k]
		if !ok {
			continue
		}
		u := id.UserID(k.StateKey)
		if !always[u] && req.Known != nil && req.Known(u, nid) {
			continue
		}
		nids = append(nids, nid)
	}
	members, err := e.db.EventsByNID(ctx, nids)
	if err != nil {
		return nil, false, err
	}
	return append(out, members...), membersChanged, nil
}

func hasState(evs []*storage.Event) bool {
	for _, ev := range evs {
		if ev.StateKey != nil {
			return true
		}
	}
	return false
}

// statePoint is a room's state at one point of its timeline: a snapshot, with one event
// applied on top when the point is just after that event.
type statePoint struct {
	snapshot int64
	after    *storage.Event
	// pos is the stream position the point stands at, for visibility.
	pos int64
}

// statePointAfter is the state after the room's last timeline event at or before pos.
func (e *Engine) statePointAfter(ctx context.Context, roomNID, pos int64) (statePoint, error) {
	evs, err := e.db.RoomEvents(ctx, roomNID, pos, 0, true, 1)
	if err != nil || len(evs) == 0 {
		return statePoint{pos: pos}, err
	}
	ev := evs[0]
	p := statePoint{snapshot: ev.StateBefore, pos: ev.StreamPos}
	if ev.StateKey != nil {
		p.after = ev
	}
	return p, nil
}

func (p statePoint) state(ctx context.Context, db *storage.DB) (storage.StateMap, error) {
	m, err := db.Snapshot(ctx, p.snapshot)
	if err != nil {
		return nil, err
	}
	if p.after != nil {
		m[storage.StateKey{Type: p.after.Type, StateKey: *p.after.StateKey}] = p.after.NID
	}
	return m, nil
}

// events are the state's events, leaving out those of type except when it is set.
func (p statePoint) events(ctx context.Context, db *storage.DB, except string) ([]*storage.Event, error) {
	evs, err := db.SnapshotEvents(ctx, p.snapshot, except)
	if err != nil || p.after == nil || p.after.Type == except {
		return evs, err
	}
	out := evs[:0]
	for _, ev := range evs {
		if ev.Type != p.after.Type || *ev.StateKey != *p.after.StateKey {
			out = append(out, ev)
		}
	}
	return append(out, p.after), nil
}

func (p statePoint) keys(ctx context.Context, db *storage.DB, keys ...storage.StateKey) (storage.StateMap, error) {
	m, err := db.SnapshotKeys(ctx, p.snapshot, keys...)
	if err != nil {
		return nil, err
	}
	if p.after != nil {
		k := storage.StateKey{Type: p.after.Type, StateKey: *p.after.StateKey}
		if slices.Contains(keys, k) {
			m[k] = p.after.NID
		}
	}
	return m, nil
}

// stateReadable applies the history visibility rules to a room's state at a point, as
// canSee does to an event, but without canSee's exception for the user's own membership
// events: a user who was only ever invited sees their invite, not the room's state.
func (v *visibility) stateReadable(ctx context.Context, p statePoint) (bool, error) {
	s, err := v.stateAt(ctx, p.snapshot)
	if err != nil {
		return false, err
	}
	if a := p.after; a != nil {
		switch {
		case a.Type == "m.room.history_visibility" && *a.StateKey == "":
			if h := gjson.GetBytes(a.JSON, "content.history_visibility").Str; h != "" {
				s.history = h
			}
		case a.Type == "m.room.member" && *a.StateKey == string(v.user):
			// The state just after the user's own leave or ban is the state they saw as
			// they went: it stays readable if the state before it was.
			if m := gjson.GetBytes(a.JSON, "content.membership").Str; m != "leave" && m != "ban" {
				s.membership = m
			}
		}
	}
	// A user who joins at or after this point sees it under shared history; the state just
	// before their own join event counts.
	joinsLater := v.lastJoin > p.pos || (p.after == nil && v.lastJoin == p.pos)
	switch {
	case s.history == "world_readable", s.membership == "join":
		return true, nil
	case s.history == "shared" && joinsLater:
		return true, nil
	case s.history == "invited" && s.membership == "invite":
		return true, nil
	}
	return false, nil
}

// StrippedEvent is a state event cut down to what stripped state keeps.
// See https://spec.matrix.org/v1.16/client-server-api/#stripped-state
type StrippedEvent struct {
	Content  json.RawMessage `json:"content"`
	Sender   id.UserID       `json:"sender"`
	StateKey string          `json:"state_key"`
	Type     string          `json:"type"`
}

// strippedTypes are the state types stripped state carries: the spec's list and the topic.
var strippedTypes = []string{"m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar",
	"m.room.topic", "m.room.canonical_alias", "m.room.encryption"}

// InviteState returns what an invited or knocking user sees of a room: the stripped state
// at their membership event (with the sender's member event, so the client can name who
// invited them), followed by the membership event itself in client format, as Synapse
// sends it. An invite received over federation brings its own stripped state in
// unsigned.invite_room_state (knock_room_state for knocks), which is used when this server
// holds none of the room's state.
func (e *Engine) InviteState(ctx context.Context, v Viewer, room *storage.Room, memberEventNID int64) ([]any, error) {
	ev, err := e.db.EventByNID(ctx, memberEventNID)
	if err != nil {
		return nil, err
	}
	roomID, version := id.RoomID(room.ID), id.RoomVersion(room.Version)
	out := []any{}
	if ev.StateBefore != 0 {
		keys := make([]storage.StateKey, 0, len(strippedTypes)+1)
		for _, t := range strippedTypes {
			keys = append(keys, storage.StateKey{Type: t})
		}
		if ev.Sender != string(v.User) {
			keys = append(keys, storage.StateKey{Type: "m.room.member", StateKey: ev.Sender})
		}
		st, err := e.db.SnapshotKeys(ctx, ev.StateBefore, keys...)
		if err != nil {
			return nil, err
		}
		evs, err := e.db.EventsByNID(ctx, slices.Collect(mapValues(st)))
		if err != nil {
			return nil, err
		}
		sortByStream(evs)
		for _, s := range evs {
			ce, err := e.clientEvent(s, roomID, version)
			if err != nil || ce.StateKey == nil {
				continue
			}
			out = append(out, StrippedEvent{Content: ce.Content, Sender: ce.Sender, StateKey: *ce.StateKey, Type: ce.Type})
		}
	} else {
		field := "unsigned.invite_room_state"
		if gjson.GetBytes(ev.JSON, "content.membership").Str == "knock" {
			field = "unsigned.knock_room_state"
		}
		stripped := gjson.GetBytes(ev.JSON, field).Array()
		// The invite's own server sent the stripped state alongside it (stored apart).
		if b, err := e.db.StrippedState(ctx, room.NID, string(v.User)); err == nil {
			stripped = gjson.ParseBytes(b).Array()
		}
		for _, r := range stripped {
			var s StrippedEvent
			if json.Unmarshal([]byte(r.Raw), &s) == nil && s.Type != "" && len(s.Content) > 0 {
				out = append(out, s)
			}
		}
	}
	ces, err := e.format(ctx, []*storage.Event{ev}, roomID, version, v, formatOpts{noRoomID: true})
	if err != nil {
		return nil, err
	}
	for _, ce := range ces {
		out = append(out, ce)
	}
	return out, nil
}

// Summary is a joined room's summary in a sync response.
type Summary struct {
	Heroes             []id.UserID `json:"m.heroes"`
	JoinedMemberCount  int         `json:"m.joined_member_count"`
	InvitedMemberCount int         `json:"m.invited_member_count"`
}

// maxHeroes is how many heroes a summary names: the spec's five.
const maxHeroes = 5

// RoomSummary summarises a room's current membership for a user: the counts and up to five
// other members to name the room after, in the order they joined or were invited.
func (e *Engine) RoomSummary(ctx context.Context, roomNID int64, user id.UserID) (*Summary, error) {
	ms, err := e.db.RoomMemberSummary(ctx, roomNID, string(user), maxHeroes)
	if err != nil {
		return nil, err
	}
	s := &Summary{Heroes: make([]id.UserID, len(ms.Heroes)), JoinedMemberCount: ms.Joined, InvitedMemberCount: ms.Invited}
	for i, h := range ms.Heroes {
		s.Heroes[i] = id.UserID(h)
	}
	return s, nil
}

// OutOfBandMembership returns the membership event a sync shows for a room this server is
// not in (an invite declined or withdrawn, a knock refused): it is not part of any timeline
// here, so it is sent as the room's whole timeline. It returns nil for any other event.
func (e *Engine) OutOfBandMembership(ctx context.Context, v Viewer, room *storage.Room, memberEventNID int64) (*ClientEvent, error) {
	ev, err := e.db.EventByNID(ctx, memberEventNID)
	if err != nil {
		return nil, err
	}
	if ev.StreamPos != 0 || ev.Type != "m.room.member" {
		return nil, nil
	}
	ces, err := e.format(ctx, []*storage.Event{ev}, id.RoomID(room.ID), id.RoomVersion(room.Version), v, formatOpts{noRoomID: true})
	if err != nil || len(ces) == 0 {
		return nil, err
	}
	return ces[0], nil
}
