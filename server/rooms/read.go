package rooms

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// room loads a room's row, or ErrNotFound.
func (e *Engine) room(ctx context.Context, roomID id.RoomID) (*storage.Room, error) {
	r, err := e.db.RoomByID(ctx, string(roomID))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: unknown room %s", ErrNotFound, roomID)
	}
	return r, err
}

// Version returns a room's version.
func (e *Engine) Version(ctx context.Context, roomID id.RoomID) (id.RoomVersion, error) {
	r, err := e.room(ctx, roomID)
	if err != nil {
		return "", err
	}
	return id.RoomVersion(r.Version), nil
}

// access is what a user may read of a room: everything current while joined; the state as
// it was when they left; or, for world-readable rooms, everything.
type access struct {
	room       *storage.Room
	membership string
	// memberEvent is the user's current membership event (0: none).
	memberEvent int64
	worldRead   bool
}

// access decides what user may read of roomID, refusing users who may read nothing.
func (e *Engine) access(ctx context.Context, user id.UserID, roomID id.RoomID) (*access, error) {
	r, err := e.room(ctx, roomID)
	if errors.Is(err, ErrNotFound) {
		// Reads do not tell strangers whether a room exists.
		return nil, fmt.Errorf("%w: you are not a member of this room", ErrForbidden)
	} else if err != nil {
		return nil, err
	}
	if forgot, err := e.db.Forgotten(ctx, string(user), r.NID); err != nil {
		return nil, err
	} else if forgot {
		return nil, fmt.Errorf("%w: you forgot this room", ErrForbidden)
	}
	m, nid, err := e.db.Membership(ctx, r.NID, string(user))
	if err != nil {
		return nil, err
	}
	a := &access{room: r, membership: m, memberEvent: nid}
	if hv, err := e.db.CurrentStateEvent(ctx, r.NID, storage.StateKey{Type: "m.room.history_visibility"}); err == nil {
		a.worldRead = gjson.GetBytes(hv.JSON, "content.history_visibility").Str == "world_readable"
	}
	if m == "" && !a.worldRead {
		return nil, fmt.Errorf("%w: you are not a member of this room", ErrForbidden)
	}
	return a, nil
}

// stateNID returns the snapshot a user sees as the room's state: current while joined (or
// world-readable), otherwise the state just after their last membership change.
func (e *Engine) visibleState(ctx context.Context, a *access) (storage.StateMap, error) {
	if a.membership == "join" || a.worldRead || a.memberEvent == 0 {
		return e.db.CurrentState(ctx, a.room.NID)
	}
	ev, err := e.db.EventByNID(ctx, a.memberEvent)
	if err != nil {
		return nil, err
	}
	st, err := e.db.Snapshot(ctx, ev.StateBefore)
	if err != nil {
		return nil, err
	}
	st[storage.StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = ev.NID
	return st, nil
}

// State returns the room's state as the user may see it.
func (e *Engine) State(ctx context.Context, v Viewer, roomID id.RoomID) ([]*ClientEvent, error) {
	a, err := e.access(ctx, v.User, roomID)
	if err != nil {
		return nil, err
	}
	st, err := e.visibleState(ctx, a)
	if err != nil {
		return nil, err
	}
	evs, err := e.db.EventsByNID(ctx, slices.Collect(mapValues(st)))
	if err != nil {
		return nil, err
	}
	sortByStream(evs)
	return e.format(ctx, evs, roomID, id.RoomVersion(a.room.Version), v, formatOpts{})
}

// StateEvent returns one piece of state, as the user may see it.
func (e *Engine) StateEvent(ctx context.Context, v Viewer, roomID id.RoomID, typ, stateKey string) (*ClientEvent, error) {
	a, err := e.access(ctx, v.User, roomID)
	if err != nil {
		return nil, err
	}
	st, err := e.visibleState(ctx, a)
	if err != nil {
		return nil, err
	}
	nid, ok := st[storage.StateKey{Type: typ, StateKey: stateKey}]
	if !ok {
		return nil, fmt.Errorf("%w: the room has no %s state with key %q", ErrNotFound, typ, stateKey)
	}
	ev, err := e.db.EventByNID(ctx, nid)
	if err != nil {
		return nil, err
	}
	ces, err := e.format(ctx, []*storage.Event{ev}, roomID, id.RoomVersion(a.room.Version), v, formatOpts{})
	if err != nil || len(ces) == 0 {
		return nil, fmt.Errorf("%w: the state event is unreadable", ErrNotFound)
	}
	return ces[0], nil
}

// MembersFilter narrows /members.
type MembersFilter struct {
	// At is a pagination token: the members as they were at that point.
	At            string
	Membership    string
	NotMembership string
}

// Members returns the member events of a room as the user may see them.
func (e *Engine) Members(ctx context.Context, v Viewer, roomID id.RoomID, f MembersFilter) ([]*ClientEvent, error) {
	a, err := e.access(ctx, v.User, roomID)
	if err != nil {
		return nil, err
	}
	var members storage.StateMap
	if f.At != "" {
		pos, err := ParseToken(f.At)
		if err != nil {
			return nil, err
		}
		members, err = e.membersAt(ctx, a, pos)
		if err != nil {
			return nil, err
		}
	} else {
		st, err := e.visibleState(ctx, a)
		if err != nil {
			return nil, err
		}
		members = storage.StateMap{}
		for k, nid := range st {
			if k.Type == "m.room.member" {
				members[k] = nid
			}
		}
	}
	evs, err := e.db.EventsByNID(ctx, slices.Collect(mapValues(members)))
	if err != nil {
		return nil, err
	}
	sortByStream(evs)
	ces, err := e.format(ctx, evs, roomID, id.RoomVersion(a.room.Version), v, formatOpts{})
	if err != nil {
		return nil, err
	}
	out := ces[:0]
	for _, ce := range ces {
		m := gjson.GetBytes(ce.Content, "membership").Str
		if (f.Membership != "" && m != f.Membership) || (f.NotMembership != "" && m == f.NotMembership) {
			continue
		}
		out = append(out, ce)
	}
	return out, nil
}

// membersAt returns the membership state after stream position pos (capped at what the user
// may see).
func (e *Engine) membersAt(ctx context.Context, a *access, pos int64) (storage.StateMap, error) {
	if a.membership != "join" && !a.worldRead && a.memberEvent != 0 {
		if ev, err := e.db.EventByNID(ctx, a.memberEvent); err == nil && ev.StreamPos < pos {
			pos = ev.StreamPos
		}
	}
	evs, err := e.db.RoomEvents(ctx, a.room.NID, pos, storage.NoBound, true, 1)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 {
		return storage.StateMap{}, nil
	}
	ev := evs[0]
	m, err := e.db.SnapshotType(ctx, ev.StateBefore, "m.room.member")
	if err != nil {
		return nil, err
	}
	if ev.Type == "m.room.member" && ev.StateKey != nil {
		m[storage.StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = ev.NID
	}
	return m, nil
}

// JoinedMember is one entry of /joined_members.
type JoinedMember struct {
	// DisplayName and AvatarURL are left out when unset: the spec types them as strings
	// (Synapse sends null, which Complement's sytest port expects).
	DisplayName *string `json:"display_name,omitempty"`
	AvatarURL   *string `json:"avatar_url,omitempty"`
}

// JoinedMembers lists the joined members with their profile in the room. Only members (or
// anyone, in a world-readable room) may ask.
func (e *Engine) JoinedMembers(ctx context.Context, user id.UserID, roomID id.RoomID) (map[id.UserID]JoinedMember, error) {
	a, err := e.access(ctx, user, roomID)
	if err != nil {
		return nil, err
	}
	if a.membership != "join" && !a.worldRead {
		return nil, fmt.Errorf("%w: you are not joined to this room", ErrForbidden)
	}
	evs, err := e.db.CurrentStateEvents(ctx, a.room.NID, "m.room.member")
	if err != nil {
		return nil, err
	}
	out := map[id.UserID]JoinedMember{}
	for _, ev := range evs {
		c := gjson.GetBytes(ev.JSON, "content")
		if c.Get("membership").Str != "join" || ev.StateKey == nil {
			continue
		}
		var jm JoinedMember
		if n := c.Get("displayname"); n.Type == gjson.String {
			jm.DisplayName = &n.Str
		}
		if u := c.Get("avatar_url"); u.Type == gjson.String {
			jm.AvatarURL = &u.Str
		}
		out[id.UserID(*ev.StateKey)] = jm
	}
	return out, nil
}

// JoinedRooms lists the rooms the user is joined to.
func (e *Engine) JoinedRooms(ctx context.Context, user id.UserID) ([]id.RoomID, error) {
	rooms, err := e.db.UserRooms(ctx, string(user), "join")
	if err != nil {
		return nil, err
	}
	out := make([]id.RoomID, len(rooms))
	for i, r := range rooms {
		out[i] = id.RoomID(r.RoomID)
	}
	return out, nil
}

// Membership returns the user's current membership in a room ("" for none or unknown room).
func (e *Engine) Membership(ctx context.Context, user id.UserID, roomID id.RoomID) (string, error) {
	r, err := e.db.RoomByID(ctx, string(roomID))
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	m, _, err := e.db.Membership(ctx, r.NID, string(user))
	return m, err
}

// Token is a pagination token: a position in the stream. Tokens are "s" followed by the
// position; sync tokens, which start the same way, are accepted too.
func Token(pos int64) string { return "s" + strconv.FormatInt(pos, 10) }

// ParseToken reads a pagination token.
func ParseToken(tok string) (int64, error) {
	s, ok := strings.CutPrefix(tok, "s")
	if !ok {
		// Topological tokens from other servers' clients are not ours.
		return 0, fmt.Errorf("%w: %q is not a pagination token from this server", ErrInvalidParam, tok)
	}
	if i := strings.IndexAny(s, "_~."); i >= 0 {
		s = s[:i]
	}
	pos, err := strconv.ParseInt(s, 10, 64)
	if err != nil || pos == storage.NoBound {
		return 0, fmt.Errorf("%w: %q is not a pagination token from this server", ErrInvalidParam, tok)
	}
	return pos, nil
}

func mapValues[K comparable, V any](m map[K]V) func(func(V) bool) {
	return func(yield func(V) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

func sortByStream(evs []*storage.Event) {
	slices.SortFunc(evs, func(a, b *storage.Event) int {
		if a.StreamPos != b.StreamPos {
			return int(a.StreamPos - b.StreamPos)
		}
		return int(a.NID - b.NID)
	})
}
