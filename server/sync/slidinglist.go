package sync

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	stdsync "sync"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// BumpTypes are the event types that count as activity in a room: a room's bump_stamp is
// the stream position of its newest one, and lists are sorted by it. They are MSC4186's
// (and Synapse's) list. A room the user is not joined to is bumped by their membership.
var BumpTypes = []string{"m.room.create", "m.room.message", "m.room.encrypted", "m.sticker",
	"m.call.invite", "m.poll.start", "m.beacon_info"}

// userRoom is one of the user's rooms as of a response's position.
type userRoom struct {
	m  storage.SyncMembership
	id id.RoomID
	// bump is the room's bump_stamp.
	bump int64
	// changed says the user's membership changed in (from, to]; newlyJoined that they are
	// joined at to and were not joined all through it.
	changed, newlyJoined bool
	// listed says lists draw from the room: not for invites from users the user ignores,
	// nor for rooms they left of their own accord, unless they left since from or the
	// connection has not told the client yet (the MSC's "previously sent" left rooms).
	listed bool
}

// roomSet is the user's rooms for one response.
type roomSet struct {
	// all are the rooms with a membership of the user that they did not forget.
	all map[id.RoomID]*userRoom
	// listed are those lists draw from, most recently active first.
	listed []*userRoom
	// dm are the rooms m.direct names.
	dm map[id.RoomID]bool
	// active are the rooms with events, or a membership change of the user, since from.
	active map[id.RoomID]bool
	// index is what the next request of the connection starts from.
	index *roomIndex
	// filter data, loaded when a list first needs it.
	kinds map[int64]storage.RoomKind
	// encryption says kinds tells encrypted rooms for sure.
	encryption bool
	tags       map[id.RoomID]map[string]bool
	spaces     map[id.RoomID]map[id.RoomID]bool
}

// roomIndex is the user's memberships as of a position, with what ordering them needs. It
// is kept with a connection's state, so that the next request reads only what changed
// since: the rooms with events, and the user's membership changes. Never modify one.
type roomIndex struct {
	at    int64
	rooms map[id.RoomID]*indexedRoom
}

type indexedRoom struct {
	m storage.SyncMembership
	// sender sent the membership event; it is read for invites and leaves only.
	sender string
	// bump is the room's bump_stamp as of the index's position.
	bump int64
}

// userRooms reads the user's rooms as of to, what changed of their memberships since from,
// and sorts the rooms lists draw from by activity (bump_stamp, then newest room first).
// base, the request's connection state, says what the client was told, and its index saves
// reading what did not change.
func (e *Engine) userRooms(ctx context.Context, user id.UserID, base *connState, from *Token, to Token) (*roomSet, error) {
	prev := base.index
	set := &roomSet{active: map[id.RoomID]bool{}}
	// The user's membership changes in (from, to], and the rooms with events in it.
	changes := map[id.RoomID][]storage.SyncMembership{}
	if from != nil {
		cs, err := e.db.MembershipChanges(ctx, string(user), from.Pos, to.Pos)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			changes[id.RoomID(c.RoomID)] = append(changes[id.RoomID(c.RoomID)], c)
			set.active[id.RoomID(c.RoomID)] = true
		}
		ws, err := e.db.RoomsWithEvents(ctx, string(user), from.Pos, to.Pos)
		if err != nil {
			return nil, err
		}
		for _, w := range ws {
			set.active[id.RoomID(w.RoomID)] = true
		}
	}
	// Each room's membership at from, where it changed.
	before := map[id.RoomID]string{}
	var err error
	if from != nil && prev != nil && prev.at == from.Pos {
		for r := range changes {
			if ir := prev.rooms[r]; ir != nil {
				before[r] = ir.m.Membership
			}
		}
		set.index, err = e.advanceIndex(ctx, prev, changes, set.active, to)
	} else {
		if len(changes) > 0 {
			ids := make([]string, 0, len(changes))
			for r := range changes {
				ids = append(ids, string(r))
			}
			ms, err := e.db.RoomMembershipsAt(ctx, string(user), from.Pos, ids)
			if err != nil {
				return nil, err
			}
			for _, m := range ms {
				before[id.RoomID(m.RoomID)] = m.Membership
			}
		}
		set.index, err = e.readIndex(ctx, user, to)
	}
	if err != nil {
		return nil, err
	}
	forgotten, err := e.db.ForgottenRooms(ctx, string(user))
	if err != nil {
		return nil, err
	}
	var ignored map[id.UserID]bool
	if e.opt.Ignored != nil {
		ignored = e.opt.Ignored(ctx, user)
	}

	set.all = make(map[id.RoomID]*userRoom, len(set.index.rooms))
	for r, ir := range set.index.rooms {
		m := ir.m
		if forgotten[m.RoomNID] && (m.Membership == "leave" || m.Membership == "ban") {
			continue
		}
		ur := &userRoom{m: m, id: r, bump: ir.bump}
		es := changes[r]
		ur.changed = len(es) > 0
		if m.Membership == "join" && ur.changed {
			stayed := before[r] == "join"
			for i := 0; i+1 < len(es); i++ {
				stayed = stayed && es[i].Membership == "join"
			}
			ur.newlyJoined = !stayed
		}
		switch m.Membership {
		case "join", "knock", "ban":
			ur.listed = true
		case "invite":
			ur.listed = !ignored[id.UserID(ir.sender)]
		case "leave":
			told := base.rooms[r] == nil || base.rooms[r].membership == "leave"
			ur.listed = ir.sender != string(user) || ur.changed || !told
		}
		set.all[r] = ur
		if ur.listed {
			set.listed = append(set.listed, ur)
		}
	}
	slices.SortFunc(set.listed, func(a, b *userRoom) int {
		return cmp.Or(cmp.Compare(b.bump, a.bump), cmp.Compare(b.m.RoomNID, a.m.RoomNID))
	})
	if set.dm, err = e.directRooms(ctx, user); err != nil {
		return nil, err
	}
	return set, nil
}

// directRooms are the rooms the user's m.direct account data names.
func (e *Engine) directRooms(ctx context.Context, user id.UserID) (map[id.RoomID]bool, error) {
	dm := map[id.RoomID]bool{}
	ad, err := e.db.AccountData(ctx, user, "", "m.direct")
	if err == storage.ErrNotFound {
		return dm, nil
	} else if err != nil {
		return nil, fmt.Errorf("m.direct: %w", err)
	}
	gjson.ParseBytes(ad.Content).ForEach(func(_, rooms gjson.Result) bool {
		for _, r := range rooms.Array() {
			if r.Type == gjson.String {
				dm[id.RoomID(r.Str)] = true
			}
		}
		return true
	})
	return dm, nil
}

// filter returns the listed rooms that pass f, in list order.
func (e *Engine) filter(ctx context.Context, user id.UserID, set *roomSet, f *SlidingFilters) ([]*userRoom, error) {
	if f == nil {
		return set.listed, nil
	}
	if err := e.loadFilterData(ctx, user, set, f); err != nil {
		return nil, err
	}
	var spaces map[id.RoomID]bool
	if f.Spaces != nil {
		spaces = map[id.RoomID]bool{}
		for _, s := range f.Spaces {
			for child := range set.spaces[s] {
				spaces[child] = true
			}
		}
	}
	invited := f.IsInvited
	if invited == nil {
		invited = f.IsInvite
	}
	var out []*userRoom
	for _, ur := range set.listed {
		if f.IsDM != nil && set.dm[ur.id] != *f.IsDM {
			continue
		}
		if invited != nil && (ur.m.Membership == "invite") != *invited {
			continue
		}
		if spaces != nil && !spaces[ur.id] {
			continue
		}
		kind := set.kinds[ur.m.RoomNID]
		if f.IsEncrypted != nil && kind.Encrypted != *f.IsEncrypted {
			continue
		}
		if f.RoomTypes != nil && !containsType(f.RoomTypes, kind.Type) || containsType(f.NotRoomTypes, kind.Type) {
			continue
		}
		if f.Tags != nil || f.NotTags != nil {
			tags := set.tags[ur.id]
			if slices.ContainsFunc(f.NotTags, func(t string) bool { return tags[t] }) {
				continue
			}
			if f.Tags != nil && !slices.ContainsFunc(f.Tags, func(t string) bool { return tags[t] }) {
				continue
			}
		}
		out = append(out, ur)
	}
	return out, nil
}

// containsType says whether a room type (nil: none) is among types (null: none).
func containsType(types []*string, typ *string) bool {
	return slices.ContainsFunc(types, func(t *string) bool {
		return (t == nil && typ == nil) || (t != nil && typ != nil && *t == *typ)
	})
}

// loadFilterData reads what f needs that the set does not hold yet: the rooms' create and
// encryption events, their tags, the children of the spaces named.
func (e *Engine) loadFilterData(ctx context.Context, user id.UserID, set *roomSet, f *SlidingFilters) error {
	if (f.IsEncrypted != nil && !set.encryption) || ((f.RoomTypes != nil || f.NotRoomTypes != nil) && set.kinds == nil) {
		nids := make([]int64, len(set.listed))
		for i, ur := range set.listed {
			nids[i] = ur.m.RoomNID
		}
		var err error
		if set.kinds, err = e.sliding.kinds.get(ctx, e.db, nids, f.IsEncrypted != nil); err != nil {
			return err
		}
		set.encryption = set.encryption || f.IsEncrypted != nil
	}
	if (f.Tags != nil || f.NotTags != nil) && set.tags == nil {
		all, err := e.db.RoomAccountDataOfType(ctx, user, "m.tag")
		if err != nil {
			return err
		}
		set.tags = map[id.RoomID]map[string]bool{}
		for room, content := range all {
			var c struct {
				Tags map[string]json.RawMessage `json:"tags"`
			}
			if json.Unmarshal(content, &c) == nil {
				set.tags[room] = map[string]bool{}
				for t := range c.Tags {
					set.tags[room][t] = true
				}
			}
		}
	}
	for _, s := range f.Spaces {
		if set.spaces == nil {
			set.spaces = map[id.RoomID]map[id.RoomID]bool{}
		}
		if _, done := set.spaces[s]; done {
			continue
		}
		set.spaces[s] = map[id.RoomID]bool{}
		// Only spaces the user is joined to count; unknown ones are ignored.
		ur := set.all[s]
		if ur == nil || ur.m.Membership != "join" {
			continue
		}
		children, err := e.db.CurrentStateEvents(ctx, ur.m.RoomNID, "m.space.child")
		if err != nil {
			return err
		}
		for _, ev := range children {
			// A child event without via is a removed child.
			if ev.StateKey != nil && len(gjson.GetBytes(ev.JSON, "content.via").Array()) > 0 {
				set.spaces[s][id.RoomID(*ev.StateKey)] = true
			}
		}
	}
	return nil
}

// window picks the rooms of a filtered list that its ranges cover, each once, in order.
func window(rooms []*userRoom, ranges [][2]int) []*userRoom {
	if ranges == nil {
		return rooms
	}
	var out []*userRoom
	seen := map[id.RoomID]bool{}
	for _, r := range ranges {
		for i := r[0]; i <= r[1] && i < len(rooms); i++ {
			if !seen[rooms[i].id] {
				seen[rooms[i].id] = true
				out = append(out, rooms[i])
			}
		}
	}
	return out
}

// kindCacheSize bounds the rooms kindCache remembers.
const kindCacheSize = 1 << 16

// kindCache remembers the kinds of rooms, which barely change: a room's type is fixed by its
// create event, and encryption once on cannot be turned off. So a room's type is kept once
// its create event was seen, and whether it is encrypted is asked again while it is not. It
// is safe for concurrent use.
type kindCache struct {
	mu    stdsync.Mutex
	kinds map[int64]storage.RoomKind
}

// get returns the kinds of rooms, reading from storage those not known for good; without
// encryption, a room's type is enough.
func (c *kindCache) get(ctx context.Context, db *storage.DB, nids []int64, encryption bool) (map[int64]storage.RoomKind, error) {
	out := make(map[int64]storage.RoomKind, len(nids))
	var missing []int64
	c.mu.Lock()
	for _, nid := range nids {
		if k, ok := c.kinds[nid]; ok && (k.Encrypted || !encryption) {
			out[nid] = k
		} else {
			missing = append(missing, nid)
		}
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	got, err := db.RoomKinds(ctx, missing)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kinds == nil || len(c.kinds)+len(got) > kindCacheSize {
		c.kinds = map[int64]storage.RoomKind{}
	}
	for nid, k := range got {
		out[nid] = k
		if k.Known {
			c.kinds[nid] = k
		}
	}
	return out, nil
}

// readIndex reads the user's memberships as of to whole: for a new connection, or one whose
// state has no index yet.
func (e *Engine) readIndex(ctx context.Context, user id.UserID, to Token) (*roomIndex, error) {
	ms, err := e.db.MembershipsAt(ctx, string(user), to.Pos)
	if err != nil {
		return nil, err
	}
	idx := &roomIndex{at: to.Pos, rooms: make(map[id.RoomID]*indexedRoom, len(ms))}
	for _, m := range ms {
		idx.rooms[id.RoomID(m.RoomID)] = &indexedRoom{m: m, bump: max(m.StreamPos, 0)}
	}
	return idx, e.completeIndex(ctx, idx, idx.rooms, to)
}

// advanceIndex moves an index at from on to to: the rooms whose membership changed take
// their newest change, and the joined rooms with events their new bump_stamp. The rooms it
// does not touch are shared with prev.
func (e *Engine) advanceIndex(ctx context.Context, prev *roomIndex, changes map[id.RoomID][]storage.SyncMembership,
	active map[id.RoomID]bool, to Token) (*roomIndex, error) {
	idx := &roomIndex{at: to.Pos, rooms: maps.Clone(prev.rooms)}
	touched := map[id.RoomID]*indexedRoom{}
	for r := range active {
		ir := idx.rooms[r]
		if es := changes[r]; len(es) > 0 {
			last := es[len(es)-1]
			ir = &indexedRoom{m: last, bump: max(last.StreamPos, 0)}
		} else if ir != nil {
			copied := *ir
			ir = &copied
		}
		if ir != nil {
			idx.rooms[r] = ir
			touched[r] = ir
		}
	}
	return idx, e.completeIndex(ctx, idx, touched, to)
}

// completeIndex reads what the rooms of todo lack: the senders of invites and leaves, and the
// bump_stamps of joined rooms (a joined room without a bump event keeps its membership's).
func (e *Engine) completeIndex(ctx context.Context, idx *roomIndex, todo map[id.RoomID]*indexedRoom, to Token) error {
	var senders, joined []int64
	for _, ir := range todo {
		switch ir.m.Membership {
		case "invite", "leave":
			senders = append(senders, ir.m.EventNID)
		case "join":
			joined = append(joined, ir.m.RoomNID)
		}
	}
	sent, err := e.db.EventSenders(ctx, senders)
	if err != nil {
		return err
	}
	bumps, err := e.db.BumpStamps(ctx, joined, BumpTypes, to.Pos)
	if err != nil {
		return err
	}
	for _, ir := range todo {
		ir.sender = sent[ir.m.EventNID]
		if b, ok := bumps[ir.m.RoomNID]; ok && ir.m.Membership == "join" {
			ir.bump = b
		} else {
			ir.bump = max(ir.m.StreamPos, 0)
		}
	}
	return nil
}
