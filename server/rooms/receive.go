package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// Remote fetches from other servers what placing their events needs.
type Remote interface {
	// Event fetches one event (GET /event/{eventId}).
	Event(ctx context.Context, server string, eventID id.EventID) (json.RawMessage, error)
	// MissingEvents asks for the events between what we have and what we were sent
	// (POST /get_missing_events).
	MissingEvents(ctx context.Context, server string, roomID id.RoomID, earliest, latest []id.EventID, limit int, minDepth int64) ([]json.RawMessage, error)
	// StateIDs fetches the state before an event and its auth chain, as event IDs
	// (GET /state_ids).
	StateIDs(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) (state, authChain []id.EventID, err error)
}

// StateMap is room state by event ID.
type StateMap = map[storage.StateKey]id.EventID

// Resolver resolves forked room state (federation/stateres).
type Resolver func(ctx context.Context, version id.RoomVersion, roomID id.RoomID, states []StateMap,
	load func([]id.EventID) ([]*pdu.PDU, error)) (StateMap, error)

// SetFederation gives the engine what it needs to place other servers' events; a nil
// resolve keeps federation/stateres.
func (e *Engine) SetFederation(r Remote, resolve Resolver) {
	e.mu.Lock()
	e.remote = r
	if resolve != nil {
		e.resolve = resolve
	}
	e.mu.Unlock()
}

// Limits on how far the engine reaches back to place one event.
const (
	maxMissingEvents = 20
	maxAuthFetch     = 100
)

// Errors for PDUs that cannot be accepted.
var (
	ErrBadPDU      = errors.New("rooms: malformed PDU")
	ErrBadSig      = errors.New("rooms: bad signature")
	ErrRejected    = errors.New("rooms: event rejected by the auth rules")
	ErrNotInRoom   = errors.New("rooms: this server is not in the room")
	ErrCannotMerge = errors.New("rooms: cannot resolve forked state")
)

// HandlePDUs processes a transaction's PDUs in order (federation/inbound's PDUHandler).
func (e *Engine) HandlePDUs(ctx context.Context, origin string, raws []json.RawMessage) map[id.EventID]string {
	out := map[id.EventID]string{}
	for _, raw := range raws {
		evID, err := e.ReceivePDU(ctx, origin, raw)
		if errors.Is(err, ErrNotInRoom) && evID == "" {
			continue // the spec lets us leave out PDUs for rooms we are not in
		}
		if evID == "" {
			e.log.Info("PDU dropped", "origin", origin, "err", err)
			continue
		}
		if err != nil {
			out[evID] = err.Error()
			e.log.Info("PDU not accepted", "origin", origin, "event_id", evID, "err", err)
		} else {
			out[evID] = ""
		}
	}
	return out
}

// ReceivePDU places one PDU from another server in its room: it checks format, hashes,
// signatures and auth, fetches what is missing, and persists the event (rejected and
// soft-failed events are stored as such, so they are never fetched again).
func (e *Engine) ReceivePDU(ctx context.Context, origin string, raw json.RawMessage) (id.EventID, error) {
	roomID := id.RoomID(gjson.GetBytes(raw, "room_id").Str)
	if roomID == "" {
		return "", fmt.Errorf("%w: no room_id", ErrBadPDU)
	}
	if _, err := e.db.RoomByID(ctx, string(roomID)); errors.Is(err, storage.ErrNotFound) {
		return "", ErrNotInRoom
	}
	unlock := e.lock(roomID)
	defer unlock()
	rs, err := e.loadRoom(ctx, roomID)
	if err != nil {
		return "", err
	}
	if !e.acl(ctx, rs).allows(origin) {
		return "", fmt.Errorf("%w: the room's server ACL bans %s", ErrForbidden, origin)
	}
	p, evID, err := e.parseRemote(ctx, rs.version, raw)
	if err != nil {
		return evID, err
	}
	if !e.acl(ctx, rs).allows(p.Sender.Homeserver()) {
		return evID, fmt.Errorf("%w: the room's server ACL bans %s", ErrForbidden, p.Sender.Homeserver())
	}
	if p.RoomID != roomID {
		return evID, fmt.Errorf("%w: room_id does not match", ErrBadPDU)
	}
	if _, ok := rs.state[storage.StateKey{Type: "m.room.create"}]; !ok {
		return evID, e.receiveOutOfBand(ctx, rs, p, evID)
	}
	return evID, e.receiveLocked(ctx, origin, rs, p, evID, 0)
}

// parseRemote parses and checks a remote PDU: size, signatures (dropped if bad), content
// hash (redacted if wrong). In room versions 1 and 2, where servers name their events, the
// server named by the event ID must have signed it too.
func (e *Engine) parseRemote(ctx context.Context, version id.RoomVersion, raw json.RawMessage) (*pdu.PDU, id.EventID, error) {
	if len(raw) > MaxPDUBytes*2 {
		return nil, "", fmt.Errorf("%w: %d bytes", ErrTooLarge, len(raw))
	}
	if !version.IsKnown() {
		return nil, "", fmt.Errorf("%w: room version %s", ErrUnsupportedVersion, version)
	}
	p, err := decodePDU(version, raw)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrBadPDU, err)
	}
	evID, err := p.GetEventID(version)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrBadPDU, err)
	}
	p.InternalMeta.EventID = evID
	if canon, err := wireJSON(version, p); err != nil || len(canon) > MaxPDUBytes {
		return nil, evID, fmt.Errorf("%w: the event is over %d bytes", ErrTooLarge, MaxPDUBytes)
	}
	if _, _, err := p.Sender.Parse(); err != nil {
		return nil, evID, fmt.Errorf("%w: sender %q", ErrBadPDU, p.Sender)
	}
	if err := e.verifyServers(version, p); err != nil {
		return nil, evID, fmt.Errorf("%w: %v", ErrBadSig, err)
	}
	if via := gjson.GetBytes(p.Content, "join_authorised_via_users_server").Str; via != "" && p.Type == "m.room.member" && version.RestrictedJoins() {
		if err := e.verifySignature(version, p, id.UserID(via).Homeserver()); err != nil {
			return nil, evID, fmt.Errorf("%w: authorising server: %v", ErrBadSig, err)
		}
	}
	if !contentHashOK(version, p) {
		if p, err = redactPDU(version, p); err != nil {
			return nil, evID, fmt.Errorf("%w: %v", ErrBadPDU, err)
		}
		p.InternalMeta.EventID = evID
	}
	return p, evID, nil
}

// known returns the stored events among ids by ID.
func (e *Engine) known(ctx context.Context, ids []id.EventID) (map[id.EventID]*storage.Event, error) {
	evs, err := e.db.EventsByID(ctx, idStrings(ids))
	if err != nil {
		return nil, err
	}
	out := make(map[id.EventID]*storage.Event, len(evs))
	for _, ev := range evs {
		out[id.EventID(ev.ID)] = ev
	}
	return out, nil
}

// receiveLocked places a checked PDU; the caller holds the room's lock. depth bounds the
// recursion through missing events.
func (e *Engine) receiveLocked(ctx context.Context, origin string, rs *roomState, p *pdu.PDU, evID id.EventID, depth int) error {
	have, err := e.known(ctx, append(append([]id.EventID{evID}, p.PrevEvents...), p.AuthEvents...))
	if err != nil {
		return err
	}
	if ev := have[evID]; ev != nil {
		if ev.Rejected {
			return ErrRejected
		}
		return nil
	}
	// 1. The auth events must be known, fetched if not, and the event must pass against them.
	if err := e.fetchAuth(ctx, origin, rs, p.AuthEvents, have, 0); err != nil {
		return err
	}
	getEvents := func(ids []id.EventID) ([]*pdu.PDU, error) { return e.pdus(ctx, rs.version, ids) }
	if err := e.authorize(rs.version, p, nil, getEvents); err != nil {
		return e.storeRejected(ctx, rs, p, evID, err)
	}
	// 2. The prev events: fetch a small gap, else take the state before the event from origin.
	var missing []id.EventID
	for _, prev := range p.PrevEvents {
		if ev := have[prev]; ev == nil || (ev.StreamPos == 0 && !ev.Rejected && !ev.SoftFailed) {
			missing = append(missing, prev)
		}
	}
	if len(missing) > 0 && depth == 0 {
		e.fillGap(ctx, origin, rs, p, evID)
		if have, err = e.known(ctx, p.PrevEvents); err != nil {
			return err
		}
		missing = missing[:0]
		for _, prev := range p.PrevEvents {
			if ev := have[prev]; ev == nil || (ev.StreamPos == 0 && !ev.Rejected && !ev.SoftFailed) {
				missing = append(missing, prev)
			}
		}
	}
	var before StateMap
	if len(missing) > 0 {
		if before, err = e.stateFromRemote(ctx, origin, rs, p, evID); err != nil {
			return err
		}
	} else if before, err = e.stateAfterPrevs(ctx, rs, p.PrevEvents, have); err != nil {
		return err
	}
	// 3. Auth against the state before the event.
	authEvents, err := e.selectAuth(ctx, rs, p, before)
	if err != nil {
		return err
	}
	if err := e.authorize(rs.version, p, authEvents, getEvents); err != nil {
		return e.storeRejected(ctx, rs, p, evID, err)
	}
	// 4. Soft-fail against the current state: stored, never shown, not an extremity.
	current := rs.stateMap()
	soft := false
	if cur, err := e.selectAuth(ctx, rs, p, current); err != nil {
		return err
	} else if err := e.authorize(rs.version, p, cur, getEvents); err != nil {
		soft = true
	}
	return e.persistRemote(ctx, rs, p, evID, before, current, soft)
}

// selectAuth picks the event's auth events out of a state, as PDUs.
func (e *Engine) selectAuth(ctx context.Context, rs *roomState, p *pdu.PDU, st StateMap) ([]*pdu.PDU, error) {
	var ids []id.EventID
	for _, k := range p.AuthEventSelection(rs.version) {
		if x, ok := st[storage.StateKey{Type: k.Type, StateKey: k.StateKey}]; ok {
			ids = append(ids, x)
		}
	}
	ps, err := e.pdus(ctx, rs.version, ids)
	if err != nil {
		return nil, err
	}
	out := ps[:0]
	for _, x := range ps {
		if x != nil {
			out = append(out, x)
		}
	}
	return out, nil
}

// stateMap is the cached current state by event ID.
func (rs *roomState) stateMap() StateMap {
	m := make(StateMap, len(rs.state))
	for k, v := range rs.state {
		m[k] = v.id
	}
	return m
}

// stateAfter is the state after one stored event.
func (e *Engine) stateAfter(ctx context.Context, ev *storage.Event) (StateMap, error) {
	nids, err := e.db.Snapshot(ctx, ev.StateBefore)
	if err != nil {
		return nil, err
	}
	ids, err := e.db.EventIDsByNID(ctx, slices.Collect(maps.Values(nids)))
	if err != nil {
		return nil, err
	}
	st := make(StateMap, len(nids))
	for k, n := range nids {
		st[k] = id.EventID(ids[n])
	}
	if ev.StateKey != nil && !ev.Rejected {
		st[storage.StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = id.EventID(ev.ID)
	}
	return st, nil
}

// stateAfterPrevs is the state before an event whose prev events are all known: the state
// after the one prev event, or the resolution of the states after each.
func (e *Engine) stateAfterPrevs(ctx context.Context, rs *roomState, prevs []id.EventID, have map[id.EventID]*storage.Event) (StateMap, error) {
	if len(prevs) == 1 && len(rs.extremities) == 1 && rs.extremities[0] == prevs[0] {
		return rs.stateMap(), nil // the common case: on top of the current state
	}
	var states []StateMap
	for _, prev := range prevs {
		st, err := e.stateAfter(ctx, have[prev])
		if err != nil {
			return nil, err
		}
		states = append(states, st)
	}
	return e.resolveStates(ctx, rs, states)
}

func (e *Engine) resolveStates(ctx context.Context, rs *roomState, states []StateMap) (StateMap, error) {
	if len(states) == 0 {
		return StateMap{}, nil // the create event: nothing before it
	}
	if len(states) == 1 {
		return states[0], nil
	}
	allSame := true
	for _, s := range states[1:] {
		if !maps.Equal(s, states[0]) {
			allSame = false
		}
	}
	if allSame {
		return states[0], nil
	}
	e.mu.RLock()
	resolve := e.resolve
	e.mu.RUnlock()
	if resolve == nil {
		return nil, ErrCannotMerge
	}
	return resolve(ctx, rs.version, rs.id, states, func(ids []id.EventID) ([]*pdu.PDU, error) { return e.pdus(ctx, rs.version, ids) })
}

// fetchAuth makes sure the given auth events are stored, fetching unknown ones (and their
// own auth events) from origin and storing them as outliers.
func (e *Engine) fetchAuth(ctx context.Context, origin string, rs *roomState, ids []id.EventID, have map[id.EventID]*storage.Event, fetched int) error {
	e.mu.RLock()
	remote := e.remote
	e.mu.RUnlock()
	for _, aid := range ids {
		if have[aid] != nil {
			continue
		}
		if ev, err := e.db.EventByID(ctx, string(aid)); err == nil {
			have[aid] = ev
			continue
		}
		if remote == nil || fetched >= maxAuthFetch {
			return fmt.Errorf("%w: auth event %s is unknown", ErrRejected, aid)
		}
		raw, err := remote.Event(ctx, origin, aid)
		if err != nil {
			return fmt.Errorf("fetch auth event %s: %w", aid, err)
		}
		ap, gotID, err := e.parseRemote(ctx, rs.version, raw)
		if err != nil {
			return err
		}
		if gotID != aid || (ap.RoomID != rs.id && ap.Type != "m.room.create") {
			return fmt.Errorf("%w: %s fetched as %s", ErrBadPDU, aid, gotID)
		}
		fetched++
		if err := e.fetchAuth(ctx, origin, rs, ap.AuthEvents, have, fetched); err != nil {
			return err
		}
		rejected := e.authorize(rs.version, ap, nil, func(x []id.EventID) ([]*pdu.PDU, error) { return e.pdus(ctx, rs.version, x) }) != nil
		ev, err := e.storeOutlier(ctx, rs, ap, aid, rejected)
		if err != nil {
			return err
		}
		have[aid] = ev
	}
	return nil
}

// fillGap asks origin for the events between our extremities and evID and places them,
// oldest first. Failures are not fatal: the caller falls back to the state from origin.
func (e *Engine) fillGap(ctx context.Context, origin string, rs *roomState, p *pdu.PDU, evID id.EventID) {
	e.mu.RLock()
	remote := e.remote
	e.mu.RUnlock()
	if remote == nil {
		return
	}
	raws, err := remote.MissingEvents(ctx, origin, rs.id, rs.extremities, []id.EventID{evID}, maxMissingEvents, max(0, rs.maxDepth-maxMissingEvents))
	if err != nil {
		e.log.Info("get_missing_events failed", "origin", origin, "room_id", rs.id, "err", err)
		return
	}
	type item struct {
		p  *pdu.PDU
		id id.EventID
	}
	var items []item
	for _, raw := range raws {
		mp, mid, err := e.parseRemote(ctx, rs.version, raw)
		if err != nil || mp.RoomID != rs.id {
			continue
		}
		items = append(items, item{mp, mid})
	}
	slices.SortFunc(items, func(a, b item) int { return int(a.p.Depth - b.p.Depth) })
	for _, it := range items {
		if err := e.receiveLocked(ctx, origin, rs, it.p, it.id, 1); err != nil {
			e.log.Info("missing event not placed", "event_id", it.id, "err", err)
		}
	}
}

// stateFromRemote takes the state before p from origin (/state_ids), fetching the events
// we lack as outliers.
func (e *Engine) stateFromRemote(ctx context.Context, origin string, rs *roomState, p *pdu.PDU, evID id.EventID) (StateMap, error) {
	e.mu.RLock()
	remote := e.remote
	e.mu.RUnlock()
	if remote == nil {
		return nil, fmt.Errorf("%w: prev events are unknown", ErrRejected)
	}
	// The state before p is the resolution of the states after its prev events; ask for
	// each missing prev's state and add the prev itself.
	var states []StateMap
	have := map[id.EventID]*storage.Event{}
	for _, prev := range p.PrevEvents {
		if ev, err := e.db.EventByID(ctx, string(prev)); err == nil && (ev.StreamPos != 0 || ev.Rejected) {
			st, err := e.stateAfter(ctx, ev)
			if err != nil {
				return nil, err
			}
			states = append(states, st)
			continue
		}
		stateIDs, authIDs, err := remote.StateIDs(ctx, origin, rs.id, prev)
		if err != nil {
			return nil, fmt.Errorf("state before %s from %s: %w", prev, origin, err)
		}
		if len(stateIDs)+len(authIDs) > 50000 {
			return nil, fmt.Errorf("%w: %s sent %d state events", ErrBadPDU, origin, len(stateIDs)+len(authIDs))
		}
		if err := e.fetchAuth(ctx, origin, rs, append(append([]id.EventID{}, authIDs...), append(stateIDs, prev)...), have, -len(stateIDs)-len(authIDs)); err != nil {
			return nil, err
		}
		st := StateMap{}
		evs, err := e.known(ctx, append(stateIDs, prev))
		if err != nil {
			return nil, err
		}
		for _, sid := range stateIDs {
			if ev := evs[sid]; ev != nil && ev.StateKey != nil && !ev.Rejected {
				st[storage.StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = sid
			}
		}
		if ev := evs[prev]; ev != nil && ev.StateKey != nil && !ev.Rejected {
			st[storage.StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = prev
		}
		states = append(states, st)
	}
	return e.resolveStates(ctx, rs, states)
}

// storeOutlier stores an event without placing it in the timeline or the state.
func (e *Engine) storeOutlier(ctx context.Context, rs *roomState, p *pdu.PDU, evID id.EventID, rejected bool) (*storage.Event, error) {
	ne := e.newEvent(rs, p, evID)
	var out *storage.Event
	err := e.db.Write(ctx, func(tx *storage.Tx) error {
		per, err := tx.InsertEvent(&storage.InboundEvent{NewEvent: *ne, Outlier: true, Rejected: rejected})
		if errors.Is(err, storage.ErrExists) {
			return nil
		} else if err != nil {
			return err
		}
		out = &storage.Event{NID: per.NID, ID: ne.ID, RoomNID: rs.nid, Type: ne.Type, StateKey: ne.StateKey,
			Sender: ne.Sender, Depth: ne.Depth, OriginTS: ne.OriginTS, Rejected: rejected, JSON: ne.JSON}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return e.db.EventByID(ctx, string(evID))
	}
	e.events.put(evID, p)
	return out, nil
}

// storeRejected records a rejected event so that it is never fetched or accepted again.
func (e *Engine) storeRejected(ctx context.Context, rs *roomState, p *pdu.PDU, evID id.EventID, why error) error {
	if _, err := e.storeOutlier(ctx, rs, p, evID, true); err != nil {
		return err
	}
	e.events.drop(evID)
	return fmt.Errorf("%w: %s", ErrRejected, authMessage(why))
}

func (e *Engine) newEvent(rs *roomState, p *pdu.PDU, evID id.EventID) *storage.NewEvent {
	raw, _ := wireJSON(rs.version, p)
	ne := &storage.NewEvent{ID: string(evID), RoomNID: rs.nid, Type: p.Type, StateKey: p.StateKey,
		Sender: string(p.Sender), Depth: p.Depth, OriginTS: p.OriginServerTS, JSON: raw}
	if p.Type == "m.room.member" {
		ne.Membership = gjson.GetBytes(p.Content, "membership").Str
	}
	if rel := gjson.GetBytes(p.Content, "m\\.relates_to"); rel.IsObject() {
		ne.RelatesTo, ne.RelType = rel.Get("event_id").Str, rel.Get("rel_type").Str
	}
	if p.Type == "m.room.redaction" {
		if p.Redacts != nil {
			ne.Redacts = string(*p.Redacts)
		} else {
			ne.Redacts = gjson.GetBytes(p.Content, "redacts").Str
		}
	}
	return ne
}

// persistRemote writes a placed event: its state-before snapshot, the event, the room's
// new current state and extremities, in one transaction.
func (e *Engine) persistRemote(ctx context.Context, rs *roomState, p *pdu.PDU, evID id.EventID, before, current StateMap, soft bool) error {
	ne := e.newEvent(rs, p, evID)
	// The new extremities: the event replaces its prev events, unless soft-failed.
	ext := slices.DeleteFunc(slices.Clone(rs.extremities), func(x id.EventID) bool { return slices.Contains(p.PrevEvents, x) })
	fastForward := len(ext) == 0
	if !soft {
		ext = append(ext, evID)
	}
	after := maps.Clone(before)
	if p.StateKey != nil {
		after[storage.StateKey{Type: p.Type, StateKey: *p.StateKey}] = evID
	}
	newCurrent := current
	if !soft {
		if fastForward {
			newCurrent = after
		} else {
			var err error
			if newCurrent, err = e.resolveStates(ctx, rs, []StateMap{current, after}); err != nil {
				return err
			}
		}
	}
	// NIDs of everything these states mention (the event itself gets its NID in the write).
	var ids []id.EventID
	for _, m := range []StateMap{before, newCurrent} {
		for _, x := range m {
			if x != evID {
				ids = append(ids, x)
			}
		}
	}
	evs, err := e.known(ctx, ids)
	if err != nil {
		return err
	}
	nidOf := func(x id.EventID) int64 {
		if ev := evs[x]; ev != nil {
			return ev.NID
		}
		return 0
	}
	beforeNIDs := storage.StateMap{}
	for k, x := range before {
		beforeNIDs[k] = nidOf(x)
	}
	var hook hookWrite
	if !soft {
		hook = e.prepareHook(ctx, rs, evID, p)
	}
	var stored *storage.Event
	err = e.db.Write(ctx, func(tx *storage.Tx) error {
		// A snapshot for the state before: the current one when it matches, else a delta
		// from the current snapshot.
		snap := rs.snapshot
		curNIDs := storage.StateMap{}
		if _, joined := rs.state[storage.StateKey{Type: "m.room.create"}]; joined {
			for k, se := range rs.state {
				curNIDs[k] = se.nid
			}
		} else {
			// Only out-of-band memberships (an invite, a knock) are current: no snapshot
			// holds them, so the state before is built from the empty one.
			snap = 0
		}
		if !maps.Equal(curNIDs, beforeNIDs) {
			diff := storage.StateMap{}
			for k, n := range beforeNIDs {
				if curNIDs[k] != n {
					diff[k] = n
				}
			}
			for k := range curNIDs {
				if _, ok := beforeNIDs[k]; !ok {
					diff[k] = 0
				}
			}
			var err error
			if snap, err = tx.NewSnapshot(rs.nid, snap, diff); err != nil {
				return err
			}
		}
		per, err := tx.InsertEvent(&storage.InboundEvent{NewEvent: *ne, StateBefore: snap, SoftFailed: soft})
		if err != nil {
			return err
		}
		stored = &storage.Event{NID: per.NID, ID: ne.ID, RoomNID: rs.nid, Type: ne.Type, StateKey: ne.StateKey,
			Sender: ne.Sender, Depth: ne.Depth, OriginTS: ne.OriginTS, StreamPos: per.StreamPos, StateBefore: snap,
			SoftFailed: soft, JSON: ne.JSON, RelatesTo: ne.RelatesTo, RelType: ne.RelType}
		if soft {
			return nil
		}
		changes := map[storage.StateKey]storage.CurrentChange{}
		newNIDs := storage.StateMap{}
		for k, x := range newCurrent {
			n := nidOf(x)
			if x == evID {
				n = per.NID
			}
			newNIDs[k] = n
			if curNIDs[k] != n {
				c := storage.CurrentChange{EventNID: n}
				if k.Type == "m.room.member" {
					if x == evID {
						c.Membership = ne.Membership
					} else if ev := evs[x]; ev != nil {
						c.Membership = gjson.GetBytes(ev.JSON, "content.membership").Str
					}
				}
				changes[k] = c
			}
		}
		for k := range curNIDs {
			if _, ok := newNIDs[k]; !ok {
				changes[k] = storage.CurrentChange{}
			}
		}
		curSnap := per.StateAfter
		if !fastForward && len(changes) > 0 {
			if curSnap, err = tx.NewSnapshot(rs.nid, rs.snapshot, changesToDelta(changes)); err != nil {
				return err
			}
		} else if len(changes) == 0 {
			curSnap = rs.snapshot
		}
		if err := tx.SetCurrentState(rs.nid, curSnap, changes, per.StreamPos); err != nil {
			return err
		}
		strs := make([]string, len(ext))
		for i, x := range ext {
			strs[i] = string(x)
		}
		if err := tx.SetExtremities(rs.nid, strs, p.Depth); err != nil {
			return err
		}
		return hook.write(tx, stored)
	})
	// The cached state is rebuilt from storage on next use: simplest after a remote event.
	e.cache.drop(rs.id)
	if err != nil {
		return err
	}
	e.events.put(evID, p)
	if ne.Redacts != "" {
		e.events.drop(id.EventID(ne.Redacts))
	}
	if !soft {
		e.mu.RLock()
		l := e.listener
		e.mu.RUnlock()
		if l != nil {
			l.RoomEvent(stored, rs.id)
		}
		hook.committed(stored)
	}
	// Reload the room state for the caller's next event under the same lock.
	if fresh, err := e.loadRoom(ctx, rs.id); err == nil {
		*rs = *fresh
	}
	return nil
}

func changesToDelta(changes map[storage.StateKey]storage.CurrentChange) storage.StateMap {
	d := storage.StateMap{}
	for k, c := range changes {
		d[k] = c.EventNID
	}
	return d
}

func idStrings(ids []id.EventID) []string {
	out := make([]string, len(ids))
	for i, x := range ids {
		out[i] = string(x)
	}
	return out
}
