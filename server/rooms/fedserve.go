package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// ErrIncompatibleVersion is M_INCOMPATIBLE_ROOM_VERSION: the joining server does not
// support the room's version.
var ErrIncompatibleVersion = errors.New("rooms: incompatible room version")

// MakeMembership builds the unsigned template of a membership event (join, leave or knock)
// for a user of another server, as make_join, make_leave and make_knock answer it.
func (e *Engine) MakeMembership(ctx context.Context, origin string, roomID id.RoomID, user id.UserID, membership string, versions []string) (id.RoomVersion, json.RawMessage, error) {
	if user.Homeserver() != origin {
		return "", nil, fmt.Errorf("%w: %s may only ask for its own users", ErrForbidden, origin)
	}
	unlock := e.lock(roomID)
	defer unlock()
	rs, err := e.loadRoom(ctx, roomID)
	if err != nil {
		return "", nil, err
	}
	if membership != "leave" {
		if len(versions) == 0 {
			versions = []string{"1"}
		}
		if !slices.Contains(versions, string(rs.version)) {
			return "", nil, fmt.Errorf("%w: the room is version %s; your server supports %v", ErrIncompatibleVersion, rs.version, versions)
		}
	}
	content := map[string]any{"membership": membership}
	if membership == "join" {
		if via, err := e.restrictedAuthoriser(ctx, rs, user); err != nil {
			return "", nil, err
		} else if via != "" {
			content["join_authorised_via_users_server"] = via
		}
	}
	raw, _ := json.Marshal(content)
	sk := string(user)
	p := &pdu.PDU{
		RoomID: rs.id, Sender: user, Type: "m.room.member", StateKey: &sk, Content: raw,
		OriginServerTS: e.now(), Depth: rs.maxDepth + 1, PrevEvents: lastN(rs.extremities, maxPrevEvents),
		AuthEvents: []id.EventID{},
	}
	for _, k := range p.AuthEventSelection(rs.version) {
		if se, ok := rs.state[storage.StateKey{Type: k.Type, StateKey: k.StateKey}]; ok {
			p.AuthEvents = append(p.AuthEvents, se.id)
		}
	}
	// Refuse now what the auth rules would refuse later. An authorised join is checked
	// when it comes back signed.
	if content["join_authorised_via_users_server"] == nil {
		getEvents := func(ids []id.EventID) ([]*pdu.PDU, error) { return e.pdus(ctx, rs.version, ids) }
		if err := e.authorize(rs.version, p, nil, getEvents); err != nil {
			return "", nil, fmt.Errorf("%w: %s", ErrForbidden, authMessage(err))
		}
	}
	tmpl, err := e.templateJSON(ctx, rs.version, p)
	if err != nil {
		return "", nil, err
	}
	return rs.version, tmpl, nil
}

// SendJoinResult is send_join's answer.
type SendJoinResult struct {
	State          []json.RawMessage `json:"state"`
	AuthChain      []json.RawMessage `json:"auth_chain"`
	Event          json.RawMessage   `json:"event,omitempty"`
	MembersOmitted bool              `json:"members_omitted"`
	ServersInRoom  []string          `json:"servers_in_room,omitempty"`
	Origin         string            `json:"origin"`
}

// SendMembership accepts a signed membership event (send_join, send_leave, send_knock) from
// origin for one of its users, signing it as the authorising server of a restricted join.
func (e *Engine) SendMembership(ctx context.Context, origin string, roomID id.RoomID, eventID id.EventID, membership string, raw json.RawMessage) (*SendJoinResult, error) {
	version, err := e.Version(ctx, roomID)
	if err != nil {
		return nil, err
	}
	p, err := decodePDU(version, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadJSON, err)
	}
	if p.Type != "m.room.member" || p.StateKey == nil || *p.StateKey != string(p.Sender) ||
		gjson.GetBytes(p.Content, "membership").Str != membership || p.RoomID != roomID {
		return nil, fmt.Errorf("%w: expected a %s event of the sender for this room", ErrBadJSON, membership)
	}
	if p.Sender.Homeserver() != origin {
		return nil, fmt.Errorf("%w: %s may only send its own users' membership", ErrForbidden, origin)
	}
	var signed json.RawMessage
	if via := id.UserID(gjson.GetBytes(p.Content, "join_authorised_via_users_server").Str); membership == "join" && via != "" && e.isLocal(via) && version.RestrictedJoins() {
		q, err := e.signPDU(version, p)
		if err != nil {
			return nil, err
		}
		if raw, err = wireJSON(version, q); err != nil {
			return nil, err
		}
		signed = raw
	}
	unlock := e.lock(roomID)
	defer unlock()
	rs, err := e.loadRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	checked, gotID, err := e.parseRemote(ctx, rs.version, raw)
	if err != nil {
		return nil, err
	}
	if gotID != eventID {
		return nil, fmt.Errorf("%w: the event's ID is %s, not %s", ErrBadJSON, gotID, eventID)
	}
	serversBefore := slices.Sorted(maps.Keys(rs.joinedServers))
	if err := e.receiveLocked(ctx, origin, rs, checked, gotID, 0); err != nil {
		if errors.Is(err, ErrRejected) {
			return nil, fmt.Errorf("%w: %v", ErrForbidden, err)
		}
		return nil, err
	}
	ev, err := e.db.EventByID(ctx, string(gotID))
	if err != nil {
		return nil, err
	}
	if ev.SoftFailed {
		return nil, fmt.Errorf("%w: the %s is not allowed by the room's current state", ErrForbidden, membership)
	}
	// The joining server only told us: send the event on to everyone else in the room.
	e.forward(ctx, origin, serversBefore, ev)
	res := &SendJoinResult{Origin: e.opt.ServerName, Event: signed, ServersInRoom: serversBefore}
	if membership != "join" {
		return res, nil
	}
	state, err := e.db.Snapshot(ctx, ev.StateBefore)
	if err != nil {
		return nil, err
	}
	stateEvs, err := e.db.EventsByNID(ctx, slices.Collect(maps.Values(state)))
	if err != nil {
		return nil, err
	}
	var seeds []id.EventID
	for _, se := range stateEvs {
		res.State = append(res.State, json.RawMessage(se.JSON))
		seeds = append(seeds, id.EventID(se.ID))
	}
	seeds = append(seeds, gotID)
	chain, err := e.authChain(ctx, seeds)
	if err != nil {
		return nil, err
	}
	for _, ce := range chain {
		res.AuthChain = append(res.AuthChain, json.RawMessage(ce.JSON))
	}
	if res.State == nil {
		res.State = []json.RawMessage{}
	}
	if res.AuthChain == nil {
		res.AuthChain = []json.RawMessage{}
	}
	return res, nil
}

// authChain returns the auth events of the seeds, transitively (not the seeds themselves
// unless reachable), ordered by depth.
func (e *Engine) authChain(ctx context.Context, seeds []id.EventID) ([]*storage.Event, error) {
	seen := map[id.EventID]bool{}
	var out []*storage.Event
	frontier := seeds
	first := true
	for len(frontier) > 0 {
		evs, err := e.known(ctx, frontier)
		if err != nil {
			return nil, err
		}
		var next []id.EventID
		for _, x := range frontier {
			ev := evs[x]
			if ev == nil {
				continue
			}
			if !first {
				out = append(out, ev)
			}
			for _, aid := range refIDs(ev.JSON, "auth_events") {
				if !seen[aid] {
					seen[aid] = true
					next = append(next, aid)
				}
			}
		}
		frontier, first = next, false
	}
	// From room version 12 the create event is no event's auth event (the room ID names
	// it), but it is part of every auth chain.
	rooms := map[int64]bool{}
	for _, ev := range out {
		rooms[ev.RoomNID] = true
	}
	if seedEvs, err := e.known(ctx, seeds); err == nil {
		for _, ev := range seedEvs {
			rooms[ev.RoomNID] = true
		}
	}
	for nid := range rooms {
		room, err := e.db.RoomByNID(ctx, nid)
		if err != nil || !id.RoomVersion(room.Version).RoomIDIsCreateEventID() {
			continue
		}
		createID := id.EventID("$" + strings.TrimPrefix(room.ID, "!"))
		if seen[createID] || slices.Contains(seeds, createID) {
			continue
		}
		if ev, err := e.db.EventByID(ctx, string(createID)); err == nil {
			out = append(out, ev)
		}
	}
	slices.SortFunc(out, func(a, b *storage.Event) int { return int(a.Depth - b.Depth) })
	return out, nil
}

// serverMayRead says whether a server may read a room's events: it has (or had) joined
// members, or the room is world-readable.
func (e *Engine) serverMayRead(ctx context.Context, origin string, room *storage.Room) (bool, error) {
	members, err := e.db.Members(ctx, room.NID)
	if err != nil {
		return false, err
	}
	for _, m := range members {
		if id.UserID(m.UserID).Homeserver() == origin && (m.Membership == "join" || m.Membership == "leave" || m.Membership == "invite") {
			return true, nil
		}
	}
	if hv, err := e.db.CurrentStateEvent(ctx, room.NID, storage.StateKey{Type: "m.room.history_visibility"}); err == nil {
		return gjson.GetBytes(hv.JSON, "content.history_visibility").Str == "world_readable", nil
	}
	return false, nil
}

// RemoteEvent returns one event's PDU for another server, if it may read the room.
func (e *Engine) RemoteEvent(ctx context.Context, origin string, eventID id.EventID) (json.RawMessage, error) {
	ev, err := e.db.EventByID(ctx, string(eventID))
	if errors.Is(err, storage.ErrNotFound) || (err == nil && ev.Rejected) {
		return nil, fmt.Errorf("%w: no event %s", ErrNotFound, eventID)
	} else if err != nil {
		return nil, err
	}
	room, err := e.db.RoomByNID(ctx, ev.RoomNID)
	if err != nil {
		return nil, err
	}
	if ok, err := e.serverMayRead(ctx, origin, room); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("%w: %s is not in the room", ErrForbidden, origin)
	}
	sv, err := e.newServerVisibility(ctx, origin, room)
	if err != nil {
		return nil, err
	}
	return sv.serve(ctx, ev, id.RoomVersion(room.Version))
}

// servedPDU is an event as served to other servers: redacted if it was redacted.
func (e *Engine) servedPDU(ev *storage.Event, version id.RoomVersion) (json.RawMessage, error) {
	if ev.RedactedBy == "" {
		return json.RawMessage(ev.JSON), nil
	}
	p, err := parsePDU(ev, version)
	if err != nil {
		return nil, err
	}
	return wireJSON(version, p)
}

// roomForServer loads a room and checks that origin may read it.
func (e *Engine) roomForServer(ctx context.Context, origin string, roomID id.RoomID) (*storage.Room, error) {
	room, err := e.room(ctx, roomID)
	if err != nil {
		return nil, err
	}
	if ok, err := e.serverMayRead(ctx, origin, room); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("%w: %s is not in the room", ErrForbidden, origin)
	}
	return room, nil
}

// RemoteState returns the state before an event and the auth chain, for /state and
// /state_ids.
func (e *Engine) RemoteState(ctx context.Context, origin string, roomID id.RoomID, eventID id.EventID) (state, authChain []*storage.Event, err error) {
	room, err := e.roomForServer(ctx, origin, roomID)
	if err != nil {
		return nil, nil, err
	}
	ev, err := e.db.EventByID(ctx, string(eventID))
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (ev.RoomNID != room.NID || ev.StreamPos == 0)) {
		return nil, nil, fmt.Errorf("%w: no event %s in the room", ErrNotFound, eventID)
	} else if err != nil {
		return nil, nil, err
	}
	snap, err := e.db.Snapshot(ctx, ev.StateBefore)
	if err != nil {
		return nil, nil, err
	}
	if state, err = e.db.EventsByNID(ctx, slices.Collect(maps.Values(snap))); err != nil {
		return nil, nil, err
	}
	var seeds []id.EventID
	for _, s := range state {
		seeds = append(seeds, id.EventID(s.ID))
	}
	authChain, err = e.authChain(ctx, seeds)
	return state, authChain, err
}

// RemoteEventAuth returns an event's auth chain.
func (e *Engine) RemoteEventAuth(ctx context.Context, origin string, roomID id.RoomID, eventID id.EventID) ([]*storage.Event, error) {
	if _, err := e.roomForServer(ctx, origin, roomID); err != nil {
		return nil, err
	}
	return e.authChain(ctx, []id.EventID{eventID})
}

// Backfill returns up to limit events preceding (and including) the given ones, newest first,
// walking prev_events.
func (e *Engine) Backfill(ctx context.Context, origin string, roomID id.RoomID, from []id.EventID, limit int) ([]json.RawMessage, error) {
	room, err := e.roomForServer(ctx, origin, roomID)
	if err != nil {
		return nil, err
	}
	limit = min(max(limit, 1), 100)
	seen := map[id.EventID]bool{}
	frontier := from
	var out []*storage.Event
	for len(frontier) > 0 && len(out) < limit {
		evs, err := e.known(ctx, frontier)
		if err != nil {
			return nil, err
		}
		var next []id.EventID
		for _, x := range frontier {
			ev := evs[x]
			if ev == nil || seen[x] || ev.RoomNID != room.NID || len(out) >= limit {
				continue
			}
			seen[x] = true
			out = append(out, ev)
			next = append(next, refIDs(ev.JSON, "prev_events")...)
		}
		frontier = next
	}
	return e.serveFor(ctx, origin, room, out)
}

// MissingEvents answers get_missing_events: events reachable backwards from latest that are
// not before earliest, up to limit, oldest first.
func (e *Engine) MissingEvents(ctx context.Context, origin string, roomID id.RoomID, earliest, latest []id.EventID, limit int, minDepth int64) ([]json.RawMessage, error) {
	room, err := e.roomForServer(ctx, origin, roomID)
	if err != nil {
		return nil, err
	}
	limit = min(max(limit, 1), 20)
	stop := map[id.EventID]bool{}
	for _, x := range earliest {
		stop[x] = true
	}
	for _, x := range latest {
		stop[x] = true // the latest events themselves are not returned
	}
	var frontier []id.EventID
	latestEvs, err := e.known(ctx, latest)
	if err != nil {
		return nil, err
	}
	for _, ev := range latestEvs {
		frontier = append(frontier, refIDs(ev.JSON, "prev_events")...)
	}
	var out []*storage.Event
	seen := map[id.EventID]bool{}
	for len(frontier) > 0 && len(out) < limit {
		evs, err := e.known(ctx, frontier)
		if err != nil {
			return nil, err
		}
		var next []id.EventID
		for _, x := range frontier {
			ev := evs[x]
			if ev == nil || stop[x] || seen[x] || ev.RoomNID != room.NID || ev.Depth < minDepth || len(out) >= limit {
				continue
			}
			seen[x] = true
			out = append(out, ev)
			next = append(next, refIDs(ev.JSON, "prev_events")...)
		}
		frontier = next
	}
	slices.SortFunc(out, func(a, b *storage.Event) int { return int(a.Depth - b.Depth) })
	return e.serveFor(ctx, origin, room, out)
}

// serveFor returns events as origin may have them, by history visibility.
func (e *Engine) serveFor(ctx context.Context, origin string, room *storage.Room, evs []*storage.Event) ([]json.RawMessage, error) {
	sv, err := e.newServerVisibility(ctx, origin, room)
	if err != nil {
		return nil, err
	}
	version := id.RoomVersion(room.Version)
	res := make([]json.RawMessage, 0, len(evs))
	for _, ev := range evs {
		raw, err := sv.serve(ctx, ev, version)
		if err != nil {
			return nil, err
		}
		res = append(res, raw)
	}
	return res, nil
}

// forward queues an event that reached us through make/send_* for the other servers in the
// room (not its origin, not us).
func (e *Engine) forward(ctx context.Context, origin string, servers []string, ev *storage.Event) {
	e.mu.RLock()
	outbox := e.outbox
	e.mu.RUnlock()
	if outbox == nil {
		return
	}
	var dests []string
	for _, s := range servers {
		if s != origin && s != e.opt.ServerName {
			dests = append(dests, s)
		}
	}
	if len(dests) == 0 {
		return
	}
	err := e.db.Write(ctx, func(tx *storage.Tx) error { return outbox.EnqueuePDU(tx, dests, ev.JSON) })
	if err != nil {
		e.log.Error("forwarding a membership event", "event_id", ev.ID, "err", err)
		return
	}
	outbox.Notify(dests)
}
