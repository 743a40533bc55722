package sync

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"
)

// Simplified sliding sync (MSC4186), the sync Element X speaks: the client asks for windows
// ("ranges") of its room list sorted by activity and for rooms by ID ("subscriptions"), each
// with the state and timeline it wants, and gets each room once and then only what changed.
//
// What a connection has sent lives in memory (slidingconn.go), as one immutable state per
// pos: a request continues from the state of its pos, so a retry is answered the same way,
// and a pos the server forgot answers M_UNKNOWN_POS, after which the client starts over.
// Everything else comes from the same storage stream and sources as /sync v2; a response
// covers (pos, now] like an incremental v2 sync does.
// See https://github.com/matrix-org/matrix-spec-proposals/pull/4186

// sliding is what sliding sync keeps in memory: the connections, and the kinds of rooms.
type sliding struct {
	conns *slidingConns
	kinds *kindCache
}

func newSliding(now func() time.Time) *sliding {
	return &sliding{conns: newSlidingConns(now), kinds: &kindCache{}}
}

// SlidingSync answers a sliding sync request: at once if there is something to send (always
// for a new connection), or after waiting up to the timeout for something to happen.
func (e *Engine) SlidingSync(ctx context.Context, req SlidingRequest) (*SlidingResponse, error) {
	presence, err := presenceState(req.SetPresence)
	if err != nil {
		return nil, err
	}
	cfg, err := req.Body.resolve(req.User)
	if err != nil {
		return nil, err
	}
	key := connKey{user: req.User, device: req.Device, conn: cfg.connID}
	base, err := e.sliding.conns.begin(key, req.Pos)
	if err != nil {
		return nil, err
	}
	if e.opt.Presence != nil {
		e.opt.Presence.Syncing(ctx, req.User, req.Device, presence)
	}
	var from *Token
	var timeout time.Duration
	if req.Pos != nil {
		from = &req.Pos.Token
		timeout = min(req.Timeout, e.opt.MaxTimeout)
	}
	var timer <-chan time.Time
	for {
		wake := e.notifier.Listen(req.User)
		to, err := e.current(ctx)
		if err != nil {
			return nil, err
		}
		resp, next, err := e.slidingBuild(ctx, &req, cfg, base, from, to)
		if err != nil {
			return nil, err
		}
		if from == nil || !resp.empty() || timeout <= 0 {
			return e.slidingFinish(key, resp, next, to), nil
		}
		if timer == nil {
			t := time.NewTimer(timeout)
			defer t.Stop()
			timer = t.C
		}
		if answer, err := e.await(ctx, wake, timer); err != nil {
			return nil, err
		} else if answer {
			return e.slidingFinish(key, resp, next, to), nil
		}
	}
}

// SlidingConnections is how many sliding sync connections the server keeps (for metrics and
// tests).
func (e *Engine) SlidingConnections() int { return e.sliding.conns.count() }

// slidingFinish stores the connection's new state and gives the response its pos.
func (e *Engine) slidingFinish(key connKey, resp *SlidingResponse, next *connState, to Token) *SlidingResponse {
	next.issued = Token{Pos: to.Pos, Typing: to.Typing}
	resp.Pos = SlidingPos{Token: next.issued, Conn: e.sliding.conns.commit(key, next)}.String()
	return resp
}

// presenceState checks set_presence.
func presenceState(p string) (string, error) {
	switch p {
	case "":
		return "online", nil
	case "online", "unavailable", "offline":
		return p, nil
	}
	return "", fmt.Errorf("%w: set_presence must be online, unavailable or offline", ErrInvalidParam)
}

// slidingPlan is one room a response considers sending.
type slidingPlan struct {
	ur   *userRoom
	cfg  roomConfig
	prev *sentRoom
	isDM bool
	// initial: the client gets the room whole (first time on this connection, or joined
	// since); otherwise what changed since since.
	initial bool
	since   int64
	// expanded: the timeline_limit grew, so the timeline is sent whole again.
	expanded bool
}

// slidingBuild computes the response for (from, to] and the connection state it leads to.
func (e *Engine) slidingBuild(ctx context.Context, req *SlidingRequest, cfg *slidingConfig, base *connState,
	from *Token, to Token) (*SlidingResponse, *connState, error) {
	resp := &SlidingResponse{Rooms: map[id.RoomID]*SlidingRoomResult{}, TxnID: req.Body.TxnID}
	next := base.clone()
	if len(cfg.lists) == 0 && len(cfg.subs) == 0 {
		// No rooms asked for (Element X keeps a connection for the to-device and e2ee
		// extensions alone): nothing about rooms is read, and the rooms sent before all
		// count as behind, in case a later request asks for them again.
		x := &slidingExt{e: e, req: req, cfg: cfg, set: &roomSet{all: map[id.RoomID]*userRoom{}}, resp: resp,
			from: from, to: to, touched: map[id.RoomID]bool{}}
		if err := x.build(ctx); err != nil {
			return nil, nil, err
		}
		for r, s := range next.rooms {
			if from != nil && s.behind == 0 {
				behind := *s
				behind.behind = from.Pos
				next.rooms[r] = &behind
			}
		}
		return resp, next, nil
	}
	set, err := e.userRooms(ctx, req.User, base, from, to)
	if err != nil {
		return nil, nil, err
	}

	// The rooms the lists' ranges and the subscriptions name, with their combined config.
	relevant := map[id.RoomID]roomConfig{}
	add := func(r id.RoomID, rc roomConfig) {
		if old, ok := relevant[r]; ok {
			rc = old.union(rc)
		}
		relevant[r] = rc
	}
	inList := map[string][]id.RoomID{}
	for _, l := range cfg.lists {
		rooms, err := e.filter(ctx, req.User, set, l.filters)
		if err != nil {
			return nil, nil, err
		}
		if resp.Lists == nil {
			resp.Lists = map[string]SlidingListResult{}
		}
		resp.Lists[l.name] = SlidingListResult{Count: len(rooms)}
		for _, ur := range window(rooms, l.ranges) {
			add(ur.id, l.roomConfig)
			inList[l.name] = append(inList[l.name], ur.id)
		}
	}
	for roomID, rc := range cfg.subs {
		// Rooms the user has no membership in are ignored (no peeking yet).
		if set.all[roomID] != nil {
			add(roomID, rc)
		}
	}

	active := set.active
	next.index = set.index

	plans := slidingPlans(set, relevant, active, base, from)
	results := make([]*SlidingRoomResult, len(plans))
	sent := make([]*sentRoom, len(plans))
	err = e.forEach(ctx, len(plans), func(ctx context.Context, i int) error {
		r, s, err := e.slidingRoom(ctx, req, plans[i], from, to)
		results[i], sent[i] = r, s
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	for i, p := range plans {
		next.rooms[p.ur.id] = sent[i]
		if results[i] != nil {
			resp.Rooms[p.ur.id] = results[i]
		}
	}
	if err := e.slidingCounts(ctx, req.User, set, resp); err != nil {
		return nil, nil, err
	}

	x := &slidingExt{e: e, req: req, cfg: cfg, set: set, resp: resp, plans: plans, inList: inList,
		from: from, to: to, sent: base.rooms, touched: map[id.RoomID]bool{}}
	if err := x.build(ctx); err != nil {
		return nil, nil, err
	}

	// Rooms sent before that changed while out of the client's window are now behind: the
	// next time they are in it, they get everything since from.
	for r, s := range next.rooms {
		ur := set.all[r]
		switch {
		case ur == nil:
			delete(next.rooms, r) // forgotten, or left long ago
		case from != nil && s.behind == 0 && (active[r] || x.touched[r] || s.isDM != set.dm[r]):
			if _, ok := relevant[r]; !ok {
				behind := *s
				behind.behind = from.Pos
				next.rooms[r] = &behind
			}
		}
	}
	return resp, next, nil
}

// slidingPlans decides which of the relevant rooms to compute: every one the client has not
// got, and of the others those with something new or asked for with a wider config.
func slidingPlans(set *roomSet, relevant map[id.RoomID]roomConfig, active map[id.RoomID]bool, base *connState, from *Token) []*slidingPlan {
	ids := make([]id.RoomID, 0, len(relevant))
	for r := range relevant {
		ids = append(ids, r)
	}
	slices.SortFunc(ids, func(a, b id.RoomID) int { return strings.Compare(string(a), string(b)) })
	var plans []*slidingPlan
	for _, r := range ids {
		ur, rc, prev := set.all[r], relevant[r], base.rooms[r]
		p := &slidingPlan{ur: ur, cfg: rc, prev: prev, isDM: set.dm[r]}
		m := ur.m.Membership
		switch {
		case from == nil || prev == nil:
			p.initial = true
		case m == "join" && (ur.newlyJoined || prev.membership != "join"):
			p.initial = true
		case m == "invite" || m == "knock":
			if prev.memberNID == ur.m.EventNID && prev.isDM == p.isDM {
				continue
			}
			p.initial = true
		default:
			p.since = from.Pos
			if prev.behind > 0 {
				p.since = prev.behind
			}
			p.expanded = rc.limit > prev.limit
			wider := !rc.spec.within(prev.spec)
			if !ur.changed && prev.behind == 0 && !p.expanded && !wider && prev.isDM == p.isDM &&
				prev.memberNID == ur.m.EventNID && !active[r] {
				continue
			}
		}
		plans = append(plans, p)
	}
	return plans
}
