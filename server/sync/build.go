package sync

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	stdsync "sync"
	"sync/atomic"

	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
	"fyr/storage"
)

// plan is one room's part of a response: its section (the user's membership) and the
// stream range its timeline covers.
type plan struct {
	// m is the user's membership at the sync's position; for a room they left, the leave.
	m storage.SyncMembership
	// since is where the timeline starts; 0 means the client knows nothing of the room yet
	// (an initial sync, or a room joined since the token), so the state is sent whole.
	since int64
	// upto is where it ends: the sync's position, or the leave.
	upto int64
	// ignored are the senders whose messages the user does not want to see.
	ignored map[id.UserID]bool
}

// extras are what other streams have for one room.
type extras struct {
	ephemeral   []json.RawMessage
	accountData []json.RawMessage
}

// build computes the response for the range (since, to]; since nil is an initial sync.
func (e *Engine) build(ctx context.Context, req *Request, f *Filter, since *Token, to Token) (*Response, error) {
	resp := &Response{next: to}
	if since != nil && !req.FullState && since.Pos == to.Pos && since.toDevicePos() == to.Pos &&
		(e.opt.Typing == nil || since.Typing == to.Typing) {
		return resp, nil // nothing happened
	}
	ex, err := e.streams(ctx, req, f, since, to, resp)
	if err != nil {
		return nil, err
	}
	var plans []plan
	if since == nil {
		e.lazy.reset(req.User, req.Device)
		plans, err = e.initialPlans(ctx, req, f, to.Pos)
	} else {
		plans, err = e.incrementalPlans(ctx, req, f, since.Pos, to.Pos, ex)
	}
	if err != nil {
		return nil, err
	}
	if e.opt.Ignored != nil {
		ignored := e.opt.Ignored(ctx, req.User)
		for i := range plans {
			plans[i].ignored = ignored
		}
	}
	var sincePos int64
	if since != nil {
		sincePos = since.Pos
	}
	results := make([]any, len(plans))
	err = e.forEach(ctx, len(plans), func(ctx context.Context, i int) error {
		r, err := e.room(ctx, req, f, plans[i], ex[id.RoomID(plans[i].m.RoomID)], sincePos)
		results[i] = r
		return err
	})
	if err != nil {
		return nil, err
	}
	lazy := f.Room.State.LazyLoadMembers
	var joined []id.RoomID
	for i, r := range results {
		roomID := id.RoomID(plans[i].m.RoomID)
		switch r := r.(type) {
		case *JoinedRoom:
			if resp.rooms().Join == nil {
				resp.Rooms.Join = map[id.RoomID]*JoinedRoom{}
			}
			resp.Rooms.Join[roomID] = r
			joined = append(joined, roomID)
			if lazy {
				e.lazy.record(req.User, req.Device, roomID, to.Pos, r.State.Events, r.Timeline.Events)
			}
		case *LeftRoom:
			if resp.rooms().Leave == nil {
				resp.Rooms.Leave = map[id.RoomID]*LeftRoom{}
			}
			resp.Rooms.Leave[roomID] = r
		case *InvitedRoom:
			if resp.rooms().Invite == nil {
				resp.Rooms.Invite = map[id.RoomID]*InvitedRoom{}
			}
			resp.Rooms.Invite[roomID] = r
		case *KnockedRoom:
			if resp.rooms().Knock == nil {
				resp.Rooms.Knock = map[id.RoomID]*KnockedRoom{}
			}
			resp.Rooms.Knock[roomID] = r
		}
	}
	if e.opt.Notifications != nil && len(joined) > 0 {
		counts, err := e.opt.Notifications.UnreadCounts(ctx, req.User, joined)
		if err != nil {
			return nil, fmt.Errorf("unread counts: %w", err)
		}
		for roomID, c := range counts {
			if jr := resp.Rooms.Join[roomID]; jr != nil {
				jr.UnreadNotifications = c.Main
				if !f.Room.Timeline.UnreadThreadNotifications {
					// Without per-thread counts, the room's counts include its threads.
					for _, t := range c.Threads {
						jr.UnreadNotifications.NotificationCount += t.NotificationCount
						jr.UnreadNotifications.HighlightCount += t.HighlightCount
					}
				} else if len(c.Threads) > 0 {
					jr.UnreadThreadNotifications = c.Threads
				}
			}
		}
	}
	return resp, nil
}

// initialPlans are the rooms of an initial sync: every room the user is joined to, invited
// to or knocking on, and with include_leave the rooms they left and did not forget.
func (e *Engine) initialPlans(ctx context.Context, req *Request, f *Filter, to int64) ([]plan, error) {
	ms, err := e.db.MembershipsAt(ctx, string(req.User), to)
	if err != nil {
		return nil, err
	}
	var plans []plan
	for _, m := range ms {
		if !allowsRoom(f.Room.Rooms, f.Room.NotRooms, id.RoomID(m.RoomID)) {
			continue
		}
		switch m.Membership {
		case "join":
			plans = append(plans, plan{m: m, upto: to})
		case "invite", "knock":
			plans = append(plans, plan{m: m, upto: m.StreamPos})
		case "leave", "ban":
			if !f.Room.IncludeLeave {
				continue
			}
			if forgotten, err := e.db.Forgotten(ctx, string(req.User), m.RoomNID); err != nil {
				return nil, err
			} else if !forgotten {
				plans = append(plans, plan{m: m, upto: m.StreamPos})
			}
		}
	}
	return plans, nil
}

// incrementalPlans are the rooms with something new in (since, to]: timeline events,
// membership changes of the user, or data from other streams. The work is proportional to
// those rooms, not to every room the user is in: a long-poll that wakes for one message
// costs two queries here.
func (e *Engine) incrementalPlans(ctx context.Context, req *Request, f *Filter, since, to int64, ex map[id.RoomID]*extras) ([]plan, error) {
	user := string(req.User)
	// Every membership change after since, also those after to: where there are some, the
	// current membership is not the membership at to.
	all, err := e.db.MembershipChanges(ctx, user, since, 0)
	if err != nil {
		return nil, err
	}
	// changed are the changes in (since, to]; moved the rooms with changes after since, in
	// or after the range.
	changed := map[string][]storage.SyncMembership{}
	moved := map[string]bool{}
	var changedIDs []string
	for _, c := range all {
		moved[c.RoomID] = true
		if c.StreamPos > to {
			continue
		}
		if changed[c.RoomID] == nil {
			changedIDs = append(changedIDs, c.RoomID)
		}
		changed[c.RoomID] = append(changed[c.RoomID], c)
	}
	active := map[string]bool{}
	var ms []storage.SyncMembership
	var lookup []string // rooms whose membership at to must be read from the log
	if req.FullState {
		if ms, err = e.db.MembershipsAt(ctx, user, to); err != nil {
			return nil, err
		}
	} else {
		withEvents, err := e.db.RoomsWithEvents(ctx, user, since, to)
		if err != nil {
			return nil, err
		}
		for _, m := range withEvents {
			active[m.RoomID] = true
			if moved[m.RoomID] {
				lookup = append(lookup, m.RoomID)
			} else {
				ms = append(ms, m) // unchanged since before since: current is as of to
			}
		}
		for _, r := range changedIDs {
			if !active[r] {
				lookup = append(lookup, r)
			}
		}
		for r := range ex {
			if !active[string(r)] && changed[string(r)] == nil {
				lookup = append(lookup, string(r))
			}
		}
	}
	if len(lookup) > 0 {
		atTo, err := e.db.RoomMembershipsAt(ctx, user, to, lookup)
		if err != nil {
			return nil, err
		}
		ms = append(ms, atTo...)
	}
	slices.SortFunc(ms, func(a, b storage.SyncMembership) int { return cmp.Compare(a.RoomNID, b.RoomNID) })
	// What the user's membership was at since, for the rooms where it changed.
	before := map[string]string{}
	if len(changedIDs) > 0 {
		prev, err := e.db.RoomMembershipsAt(ctx, user, since, changedIDs)
		if err != nil {
			return nil, err
		}
		for _, p := range prev {
			before[p.RoomID] = p.Membership
		}
	}
	var plans []plan
	for _, m := range ms {
		roomID := id.RoomID(m.RoomID)
		if !allowsRoom(f.Room.Rooms, f.Room.NotRooms, roomID) {
			continue
		}
		es := changed[m.RoomID]
		// stayed: joined at since and at every change before the last, so the client's view
		// of the room carries on; otherwise the room is new to it.
		stayed := len(es) == 0 || before[m.RoomID] == "join"
		for i := 0; i+1 < len(es); i++ {
			stayed = stayed && es[i].Membership == "join"
		}
		start := since
		if !stayed {
			start = 0
		}
		switch m.Membership {
		case "join":
			if len(es) > 0 || active[m.RoomID] || ex[roomID] != nil || req.FullState {
				plans = append(plans, plan{m: m, since: start, upto: to})
			}
		case "invite", "knock":
			if len(es) > 0 {
				plans = append(plans, plan{m: m, upto: m.StreamPos})
			}
		case "leave", "ban":
			// A leave in the range shows even when the room was forgotten since: the user's
			// other devices must learn that they left (Synapse does the same, though the spec
			// says forgotten rooms never show).
			if len(es) > 0 {
				plans = append(plans, plan{m: m, since: start, upto: m.StreamPos})
			}
		}
	}
	return plans, nil
}

// room computes one room's section: a *JoinedRoom, *LeftRoom, *InvitedRoom or *KnockedRoom,
// or nil when a joined room turns out to have nothing for the client.
func (e *Engine) room(ctx context.Context, req *Request, f *Filter, p plan, ex *extras, sincePos int64) (any, error) {
	room := &storage.Room{NID: p.m.RoomNID, ID: p.m.RoomID, Version: p.m.Version}
	roomID := id.RoomID(p.m.RoomID)
	v := rooms.Viewer{User: req.User, Device: req.Device}
	if ex == nil {
		ex = &extras{}
	}
	switch p.m.Membership {
	case "invite", "knock":
		evs, err := e.rooms.InviteState(ctx, v, room, p.m.EventNID)
		if err != nil {
			return nil, fmt.Errorf("room %s: invite state: %w", roomID, err)
		}
		if p.m.Membership == "knock" {
			return &KnockedRoom{KnockState: AnyEvents{Events: evs}}, nil
		}
		return &InvitedRoom{InviteState: AnyEvents{Events: evs}}, nil
	case "join", "leave", "ban":
	default:
		return nil, nil
	}
	joined := p.m.Membership == "join"
	full := p.since == 0 || req.FullState
	lazy := f.Room.State.LazyLoadMembers
	sr := rooms.SyncRequest{
		Room: room, Since: p.since, Upto: p.upto, Limit: f.timelineLimit(), FullState: req.FullState, StateAfter: req.UseStateAfter,
		Timeline: withoutIgnored(f.Room.Timeline.matcher(roomID), p.ignored), State: f.Room.State.matcher(roomID), LazyMembers: lazy,
	}
	if joined {
		sr.JoinedAt = p.m.StreamPos
	}
	var summary *rooms.Summary
	var err error
	if joined && full {
		if summary, err = e.rooms.RoomSummary(ctx, room.NID, req.User); err != nil {
			return nil, fmt.Errorf("room %s: summary: %w", roomID, err)
		}
	}
	if lazy {
		if full {
			sr.AlwaysMembers = []id.UserID{req.User}
		}
		if summary != nil {
			sr.Members = summary.Heroes
		}
		if p.since != 0 && !f.Room.State.IncludeRedundantMembers {
			sr.Known = e.lazy.known(req.User, req.Device, roomID, sincePos)
		}
	}
	out, err := e.rooms.SyncRoom(ctx, v, sr)
	if err != nil {
		return nil, fmt.Errorf("room %s: %w", roomID, err)
	}
	timeline := Timeline{Events: out.Timeline, Limited: out.Limited, PrevBatch: out.PrevBatch}
	state, stateAfter := &StateBatch{Events: out.State}, (*StateBatch)(nil)
	if req.UseStateAfter {
		state, stateAfter = nil, state
	}
	accountData := Events{Events: f.Room.AccountData.filterRoomRaw(roomID, ex.accountData)}
	if !joined {
		if len(timeline.Events) == 0 && len(out.State) == 0 {
			// A room this server is not in: the leave is all there is to show.
			oob, err := e.rooms.OutOfBandMembership(ctx, v, room, p.m.EventNID)
			if err != nil {
				return nil, fmt.Errorf("room %s: %w", roomID, err)
			}
			if oob != nil {
				timeline.Events = []*rooms.ClientEvent{oob}
			}
		}
		return &LeftRoom{State: state, StateAfter: stateAfter, Timeline: timeline, AccountData: accountData}, nil
	}
	ephemeral := Events{Events: f.Room.Ephemeral.filterRoomRaw(roomID, ex.ephemeral)}
	if !full && len(out.Timeline) == 0 && len(out.State) == 0 && len(ephemeral.Events) == 0 && len(accountData.Events) == 0 {
		return nil, nil
	}
	if !full && out.MembersChanged {
		if summary, err = e.rooms.RoomSummary(ctx, room.NID, req.User); err != nil {
			return nil, fmt.Errorf("room %s: summary: %w", roomID, err)
		}
	}
	return &JoinedRoom{Summary: summary, State: state, StateAfter: stateAfter, Timeline: timeline,
		Ephemeral: ephemeral, AccountData: accountData}, nil
}

// streams asks the other streams for what changed in (since, to]: the global sections go
// into resp, the per-room data is returned.
func (e *Engine) streams(ctx context.Context, req *Request, f *Filter, since *Token, to Token, resp *Response) (map[id.RoomID]*extras, error) {
	ex := map[id.RoomID]*extras{}
	get := func(r id.RoomID) *extras {
		if ex[r] == nil {
			ex[r] = &extras{}
		}
		return ex[r]
	}
	var from int64
	if since != nil {
		from = since.Pos
	}
	if s := e.opt.AccountData; s != nil {
		global, perRoom, err := s.AccountData(ctx, req.User, from, to.Pos)
		if err != nil {
			return nil, fmt.Errorf("account data: %w", err)
		}
		if evs := f.AccountData.filterRaw(global); len(evs) > 0 {
			resp.AccountData = &Events{Events: evs}
		}
		for r, evs := range perRoom {
			if len(evs) > 0 {
				get(r).accountData = evs
			}
		}
	}
	if s := e.opt.Receipts; s != nil {
		perRoom, err := s.Receipts(ctx, req.User, from, to.Pos)
		if err != nil {
			return nil, fmt.Errorf("receipts: %w", err)
		}
		for r, ev := range perRoom {
			get(r).ephemeral = append(get(r).ephemeral, ev)
		}
	}
	if s := e.opt.Typing; s != nil {
		var typingFrom int64
		if since != nil && since.Typing <= to.Typing {
			typingFrom = since.Typing
		}
		if since == nil || typingFrom != to.Typing {
			perRoom, err := s.Typing(ctx, req.User, typingFrom, to.Typing)
			if err != nil {
				return nil, fmt.Errorf("typing: %w", err)
			}
			for r, ev := range perRoom {
				get(r).ephemeral = append(get(r).ephemeral, ev)
			}
		}
	}
	if s := e.opt.Presence; s != nil {
		evs, err := s.Presence(ctx, req.User, from, to.Pos)
		if err != nil {
			return nil, fmt.Errorf("presence: %w", err)
		}
		if evs = f.Presence.filterRaw(evs); len(evs) > 0 {
			resp.Presence = &Events{Events: evs}
		}
	}
	if s := e.opt.ToDevice; s != nil {
		var tdFrom int64
		if since != nil {
			tdFrom = since.toDevicePos()
		}
		evs, reached, err := s.ToDevice(ctx, req.User, req.Device, tdFrom, to.Pos, DefaultToDeviceLimit)
		if err != nil {
			return nil, fmt.Errorf("to-device: %w", err)
		}
		if len(evs) > 0 {
			resp.ToDevice = &Events{Events: evs}
		}
		if reached < to.Pos {
			resp.next.ToDevice = reached
		}
	}
	if s := e.opt.DeviceLists; s != nil && since != nil {
		changed, left, err := s.DeviceLists(ctx, req.User, from, to.Pos)
		if err != nil {
			return nil, fmt.Errorf("device lists: %w", err)
		}
		if len(changed) > 0 || len(left) > 0 {
			resp.DeviceLists = &DeviceLists{Changed: changed, Left: left}
		}
	}
	return ex, nil
}

// forEach runs fn for 0..n-1 on up to Options.Workers goroutines, the caller's included, and
// returns the first error; after one, the others' ctx is cancelled.
func (e *Engine) forEach(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var once stdsync.Once
	var first error
	work := func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= n || ctx.Err() != nil {
				return
			}
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
				return
			}
		}
	}
	// The caller is one of the workers: a sync of one room (the common long-poll wake-up)
	// starts no goroutine, whose stack would have to grow to SQLite's depth again.
	var wg stdsync.WaitGroup
	for range min(e.opt.Workers, n) - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err() // the caller's ctx ended before every room was done
}

// withoutIgnored drops the messages of users the syncing user ignores (m.ignored_user_list);
// their state changes still show, as the room's state must stay whole.
func withoutIgnored(m rooms.EventMatcher, ignored map[id.UserID]bool) rooms.EventMatcher {
	if len(ignored) == 0 {
		return m
	}
	return func(ce *rooms.ClientEvent) bool {
		if ce.StateKey == nil && ignored[ce.Sender] {
			return false
		}
		return m == nil || m(ce)
	}
}
