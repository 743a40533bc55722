package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// BackfillRemote fetches history from another server (GET /backfill).
type BackfillRemote interface {
	Backfill(ctx context.Context, server string, roomID id.RoomID, from []id.EventID, limit int) ([]json.RawMessage, error)
}

// backfillFrom returns the unknown prev events of the room's oldest timeline event: where
// history continues on other servers. nil when there is nothing to fetch.
func (e *Engine) backfillFrom(ctx context.Context, room *storage.Room) []id.EventID {
	evs, err := e.db.RoomEvents(ctx, room.NID, storage.NoBound+1, 1<<62, false, 1)
	if err != nil || len(evs) == 0 {
		return nil
	}
	prevs := refIDs(evs[0].JSON, "prev_events")
	have, err := e.known(ctx, prevs)
	if err != nil {
		return nil
	}
	var missing []id.EventID
	for _, p := range prevs {
		if ev := have[p]; ev == nil || (ev.StreamPos == 0 && !ev.Rejected) {
			missing = append(missing, p)
		}
	}
	return missing
}

// backfill fetches up to limit events of older history from the servers in the room and
// places them before everything local. It reports whether it placed any.
func (e *Engine) backfill(ctx context.Context, room *storage.Room, limit int) bool {
	e.mu.RLock()
	br, _ := e.remote.(BackfillRemote)
	e.mu.RUnlock()
	if br == nil {
		return false
	}
	from := e.backfillFrom(ctx, room)
	if len(from) == 0 {
		return false
	}
	roomID := id.RoomID(room.ID)
	unlock := e.lock(roomID)
	defer unlock()
	rs, err := e.loadRoom(ctx, roomID)
	if err != nil {
		return false
	}
	var servers []string
	for s := range rs.joinedServers {
		if s != e.opt.ServerName {
			servers = append(servers, s)
		}
	}
	slices.Sort(servers)
	for _, server := range servers {
		raws, err := br.Backfill(ctx, server, roomID, from, min(max(limit, 10), 100))
		if err != nil {
			e.log.Info("backfill failed", "server", server, "room_id", roomID, "err", err)
			continue
		}
		return e.placeBackfill(ctx, server, rs, raws) > 0
	}
	return false
}

// placeBackfill stores fetched history oldest first. Each event is checked like any other
// (signatures, hash, auth against its auth events and the state before it); the state
// before the oldest comes from the server (/state_ids) when its prev events are unknown.
func (e *Engine) placeBackfill(ctx context.Context, origin string, rs *roomState, raws []json.RawMessage) int {
	type item struct {
		p  *pdu.PDU
		id id.EventID
	}
	var items []item
	for _, raw := range raws {
		p, evID, err := e.parseRemote(ctx, rs.version, raw)
		if err != nil {
			continue
		}
		roomID := p.RoomID
		if p.Type == "m.room.create" && rs.version.RoomIDIsCreateEventID() {
			// A v12 create event names no room: the room's ID is its own hash.
			roomID, _ = p.GetRoomID()
		}
		if roomID != rs.id {
			continue
		}
		items = append(items, item{p, evID})
	}
	slices.SortFunc(items, func(a, b item) int { return int(a.p.Depth - b.p.Depth) })
	if len(items) == 0 {
		return 0
	}
	var low int64
	if err := e.db.Write(ctx, func(tx *storage.Tx) error {
		var err error
		low, err = tx.ReserveBackfill(len(items))
		return err
	}); err != nil {
		return 0
	}
	placed := 0
	getEvents := func(ids []id.EventID) ([]*pdu.PDU, error) { return e.pdus(ctx, rs.version, ids) }
	after := map[id.EventID]StateMap{}
	var last snapshotChain
	for i, it := range items {
		have, err := e.known(ctx, append(append([]id.EventID{it.id}, it.p.AuthEvents...), it.p.PrevEvents...))
		if err != nil {
			continue
		}
		if ev := have[it.id]; ev != nil && (ev.StreamPos != 0 || ev.Rejected) {
			continue // already in the timeline; an outlier is promoted below
		}
		if err := e.fetchAuth(ctx, origin, rs, it.p.AuthEvents, have, 0); err != nil {
			continue
		}
		if err := e.authorize(rs.version, it.p, nil, getEvents); err != nil {
			e.storeRejected(ctx, rs, it.p, it.id, err)
			continue
		}
		// The state before: from the events placed just now, else from storage, else
		// from the server.
		var states []StateMap
		for _, prev := range it.p.PrevEvents {
			if st, ok := after[prev]; ok {
				states = append(states, st)
			} else if ev := have[prev]; ev != nil && ev.StreamPos != 0 {
				if st, err := e.stateAfter(ctx, ev); err == nil {
					states = append(states, st)
				}
			}
		}
		var before StateMap
		if len(it.p.PrevEvents) == 0 {
			before = StateMap{} // the create event: nothing comes before it
		} else if len(states) == len(it.p.PrevEvents) {
			before, err = e.resolveStates(ctx, rs, states)
		} else {
			before, err = e.stateFromRemote(ctx, origin, rs, it.p, it.id)
		}
		if err != nil {
			e.log.Info("backfilled event has no state", "event_id", it.id, "err", err)
			continue
		}
		if auth, err := e.selectAuth(ctx, rs, it.p, before); err != nil {
			continue
		} else if err := e.authorize(rs.version, it.p, auth, getEvents); err != nil {
			e.storeRejected(ctx, rs, it.p, it.id, err)
			continue
		}
		if err := e.persistBackfilled(ctx, rs, it.p, it.id, before, low+int64(i), &last); err != nil {
			e.log.Info("backfilled event not stored", "event_id", it.id, "err", err)
			continue
		}
		st := maps.Clone(before)
		if it.p.StateKey != nil {
			st[storage.StateKey{Type: it.p.Type, StateKey: *it.p.StateKey}] = it.id
		}
		after[it.id] = st
		placed++
	}
	return placed
}

// snapshotChain carries the last snapshot written during one backfill, so that each
// backfilled event's state is a small delta from its predecessor's.
type snapshotChain struct {
	nid  int64
	nids storage.StateMap
}

// persistBackfilled writes one historical event with its state at position pos; the room's
// current state and extremities are untouched.
func (e *Engine) persistBackfilled(ctx context.Context, rs *roomState, p *pdu.PDU, evID id.EventID, before StateMap, pos int64, last *snapshotChain) error {
	ids := make([]id.EventID, 0, len(before))
	for _, x := range before {
		ids = append(ids, x)
	}
	evs, err := e.known(ctx, ids)
	if err != nil {
		return err
	}
	nids := storage.StateMap{}
	for k, x := range before {
		if ev := evs[x]; ev != nil {
			nids[k] = ev.NID
		}
	}
	diff := storage.StateMap{}
	for k, n := range nids {
		if last.nids[k] != n {
			diff[k] = n
		}
	}
	for k := range last.nids {
		if _, ok := nids[k]; !ok {
			diff[k] = 0
		}
	}
	ne := e.newEvent(rs, p, evID)
	var snap int64
	err = e.db.Write(ctx, func(tx *storage.Tx) error {
		snap = last.nid
		if len(diff) > 0 || snap == 0 {
			var err error
			if snap, err = tx.NewSnapshot(rs.nid, last.nid, diff); err != nil {
				return err
			}
		}
		_, err = tx.InsertEvent(&storage.InboundEvent{NewEvent: *ne, StateBefore: snap, Backfilled: true, Pos: pos})
		return err
	})
	if errors.Is(err, storage.ErrExists) {
		return nil
	}
	if err != nil {
		return err
	}
	last.nid, last.nids = snap, nids
	e.events.put(evID, p)
	return nil
}
