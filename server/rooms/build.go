package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// maxPrevEvents caps how many forward extremities one new event references.
const maxPrevEvents = 10

// loadRoom returns the room's current state, from the cache or storage. The caller holds the
// room's lock.
func (e *Engine) loadRoom(ctx context.Context, roomID id.RoomID) (*roomState, error) {
	if rs := e.cache.get(roomID); rs != nil {
		return rs, nil
	}
	room, err := e.db.RoomByID(ctx, string(roomID))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: unknown room %s", ErrNotFound, roomID)
	} else if err != nil {
		return nil, err
	}
	entries, err := e.db.CurrentStateEntries(ctx, room.NID)
	if err != nil {
		return nil, err
	}
	rs := &roomState{
		nid: room.NID, id: roomID, version: id.RoomVersion(room.Version),
		state: make(map[storage.StateKey]stateEntry, len(entries)), snapshot: room.SnapshotNID,
		maxDepth: room.MaxDepth, memberships: map[id.UserID]string{}, joinedServers: map[string]int{},
	}
	for _, x := range room.Extremities {
		rs.extremities = append(rs.extremities, id.EventID(x))
	}
	for _, c := range entries {
		rs.state[c.Key] = stateEntry{nid: c.EventNID, id: id.EventID(c.EventID)}
		if c.Key.Type == "m.room.member" {
			rs.setMembership(id.UserID(c.Key.StateKey), c.Membership)
		}
	}
	e.cache.put(rs)
	return rs, nil
}

// parsePDU turns a stored event into the PDU auth rules see: redacted if it was redacted,
// marked rejected if it was rejected.
func parsePDU(ev *storage.Event, version id.RoomVersion) (*pdu.PDU, error) {
	p, err := decodePDU(version, ev.JSON)
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", ev.ID, err)
	}
	if ev.RedactedBy != "" {
		if p, err = redactPDU(version, p); err != nil {
			return nil, fmt.Errorf("event %s: %w", ev.ID, err)
		}
	}
	p.InternalMeta.EventID = id.EventID(ev.ID)
	p.InternalMeta.Rejected = ev.Rejected
	return p, nil
}

// pdus loads events by ID as PDUs, aligned with ids (nil where unknown).
func (e *Engine) pdus(ctx context.Context, version id.RoomVersion, ids []id.EventID) ([]*pdu.PDU, error) {
	out := make([]*pdu.PDU, len(ids))
	var missing []string
	for i, x := range ids {
		if p := e.events.get(x); p != nil {
			out[i] = p
		} else {
			missing = append(missing, string(x))
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	evs, err := e.db.EventsByID(ctx, missing)
	if err != nil {
		return nil, err
	}
	byID := map[id.EventID]*pdu.PDU{}
	for _, ev := range evs {
		p, err := parsePDU(ev, version)
		if err != nil {
			return nil, err
		}
		e.events.put(id.EventID(ev.ID), p)
		byID[id.EventID(ev.ID)] = p
	}
	for i, x := range ids {
		if out[i] == nil {
			out[i] = byID[x]
		}
	}
	return out, nil
}

// stateEvent returns the PDU of one piece of the room's current state, or nil.
func (e *Engine) stateEvent(ctx context.Context, rs *roomState, typ, stateKey string) (*pdu.PDU, error) {
	se, ok := rs.state[storage.StateKey{Type: typ, StateKey: stateKey}]
	if !ok {
		return nil, nil
	}
	ps, err := e.pdus(ctx, rs.version, []id.EventID{se.id})
	if err != nil {
		return nil, err
	}
	return ps[0], nil
}

// keyFunc finds signing keys: this server's own, then other servers' through KeyFunc.
func (e *Engine) keyFunc(server string, keyID id.KeyID, minValid time.Time) (id.SigningKey, time.Time, error) {
	if server == e.opt.ServerName && keyID == e.opt.Key.ID {
		return id.SigningKey(b64(e.opt.Key.Public())), time.Now().Add(24 * time.Hour), nil
	}
	if e.opt.KeyFunc == nil {
		return "", time.Time{}, fmt.Errorf("no key for %s %s", server, keyID)
	}
	return e.opt.KeyFunc(server, keyID, minValid)
}

// draft is a local event to build.
type draft struct {
	sender   id.UserID
	typ      string
	stateKey *string
	content  json.RawMessage
	redacts  id.EventID
	// txnDevice and txnID make a client's /send idempotent; txnScope is the endpoint they
	// belong to (storage.DB.TxnEvent).
	txnDevice id.DeviceID
	txnID     string
	txnScope  string
}

// built is a signed, authorised PDU ready to persist.
type built struct {
	pdu   *pdu.PDU
	id    id.EventID
	json  []byte
	draft draft
}

// checkDraft applies the limits every local event must meet.
func checkDraft(d *draft) error {
	if d.typ == "" || len(d.typ) > MaxTypeBytes {
		return fmt.Errorf("%w: event type must be 1 to %d bytes", ErrInvalidParam, MaxTypeBytes)
	}
	if d.stateKey != nil && len(*d.stateKey) > MaxStateKeyBytes {
		return fmt.Errorf("%w: state key must be at most %d bytes", ErrInvalidParam, MaxStateKeyBytes)
	}
	if !gjson.ValidBytes(d.content) || !gjson.ParseBytes(d.content).IsObject() {
		return fmt.Errorf("%w: content must be a JSON object", ErrBadJSON)
	}
	return nil
}

// build makes, signs and authorises a local event on top of the room's current state. It
// does not persist it.
func (e *Engine) build(ctx context.Context, rs *roomState, d draft) (*built, error) {
	if err := checkDraft(&d); err != nil {
		return nil, err
	}
	if err := e.checkReject(ctx, rs, &d); err != nil {
		return nil, err
	}
	content := d.content
	p := &pdu.PDU{
		RoomID:         rs.id,
		Sender:         d.sender,
		Type:           d.typ,
		StateKey:       d.stateKey,
		OriginServerTS: e.now(),
		Depth:          rs.maxDepth + 1,
		PrevEvents:     lastN(rs.extremities, maxPrevEvents),
		AuthEvents:     []id.EventID{},
	}
	if d.typ == "m.room.redaction" {
		if rs.version.RedactsInContent() {
			var err error
			if content, err = setField(content, "redacts", string(d.redacts)); err != nil {
				return nil, err
			}
		}
		// Top-level redacts stays for every version: older clients and servers read it, and
		// v11+ redaction algorithms drop it from the hashed form anyway.
		r := d.redacts
		p.Redacts = &r
	}
	p.Content = []byte(content)
	for _, k := range p.AuthEventSelection(rs.version) {
		if se, ok := rs.state[storage.StateKey{Type: k.Type, StateKey: k.StateKey}]; ok {
			p.AuthEvents = append(p.AuthEvents, se.id)
		}
	}
	return e.finish(ctx, rs.version, p, d)
}

// finish hashes, signs, names and authorises p.
func (e *Engine) finish(ctx context.Context, version id.RoomVersion, p *pdu.PDU, d draft) (*built, error) {
	p, raw, err := e.seal(ctx, version, p, nil)
	if err != nil {
		return nil, err
	}
	if len(raw) > MaxPDUBytes {
		return nil, fmt.Errorf("%w: the event is %d bytes; the limit is %d", ErrTooLarge, len(raw), MaxPDUBytes)
	}
	eventID := p.InternalMeta.EventID
	getEvents := func(ids []id.EventID) ([]*pdu.PDU, error) { return e.pdus(ctx, version, ids) }
	if err := e.authorize(version, p, nil, getEvents); err != nil {
		var afe eventauth.AuthFailError
		if errors.As(err, &afe) {
			return nil, fmt.Errorf("%w: %s", ErrForbidden, authMessage(err))
		}
		return nil, err
	}
	return &built{pdu: p, id: eventID, json: raw, draft: d}, nil
}

// persist writes built events in order, in one transaction, and brings the cached state up
// to date. before, when set, runs first in the same transaction. The caller holds the
// room's lock.
func (e *Engine) persist(ctx context.Context, rs *roomState, bs []*built, before func(*storage.Tx) error) ([]*storage.Event, error) {
	e.mu.RLock()
	outbox := e.outbox
	e.mu.RUnlock()
	out := make([]*storage.Event, len(bs))
	hooks := make([]hookWrite, len(bs))
	for i, b := range bs {
		hooks[i] = e.prepareHook(ctx, rs, b.id, b.pdu)
	}
	var dests []string
	err := e.db.Write(ctx, func(tx *storage.Tx) error {
		dests = dests[:0]
		if before != nil {
			if err := before(tx); err != nil {
				return err
			}
		}
		for i, b := range bs {
			ne := &storage.NewEvent{
				ID: string(b.id), RoomNID: rs.nid, Type: b.pdu.Type, StateKey: b.pdu.StateKey,
				Sender: string(b.pdu.Sender), Depth: b.pdu.Depth, OriginTS: b.pdu.OriginServerTS,
				JSON: b.json, Timeline: true, Extremities: []string{string(b.id)},
				Redacts: string(b.draft.redacts),
			}
			if b.pdu.Type == "m.room.member" {
				ne.Membership = gjson.GetBytes(b.pdu.Content, "membership").Str
			}
			rel := gjson.GetBytes(b.pdu.Content, "m\\.relates_to")
			if rel.IsObject() {
				ne.RelatesTo, ne.RelType = rel.Get("event_id").Str, rel.Get("rel_type").Str
			}
			if b.draft.txnID != "" {
				ne.TxnUser, ne.TxnDevice, ne.TxnID, ne.TxnScope = string(b.draft.sender), string(b.draft.txnDevice), b.draft.txnID, b.draft.txnScope
			}
			p, err := tx.PersistEvent(ne)
			if err != nil {
				return err
			}
			out[i] = &storage.Event{NID: p.NID, ID: ne.ID, RoomNID: rs.nid, Type: ne.Type, StateKey: ne.StateKey,
				Sender: ne.Sender, Depth: ne.Depth, OriginTS: ne.OriginTS, StreamPos: p.StreamPos,
				StateBefore: p.StateBefore, JSON: ne.JSON, RelatesTo: ne.RelatesTo, RelType: ne.RelType}
			if err := hooks[i].write(tx, out[i]); err != nil {
				return err
			}
			if outbox != nil {
				d := e.destinations(rs, b)
				if len(d) > 0 {
					if err := outbox.EnqueuePDU(tx, d, b.json); err != nil {
						return err
					}
					dests = append(dests, d...)
				}
			}
			// Later events in this batch see this one's state (createRoom writes many). If
			// the write fails, the cached state is dropped below.
			e.apply(rs, b, p)
		}
		return nil
	})
	if err != nil {
		// The cache may hold state from a write that did not commit: reload it next time.
		e.cache.drop(rs.id)
		return nil, err
	}
	for _, b := range bs {
		e.events.put(b.id, b.pdu)
		if b.draft.redacts != "" {
			e.events.drop(b.draft.redacts)
		}
	}
	if outbox != nil && len(dests) > 0 {
		outbox.Notify(dedupe(dests))
	}
	e.mu.RLock()
	l := e.listener
	e.mu.RUnlock()
	if l != nil {
		for _, ev := range out {
			l.RoomEvent(ev, rs.id)
		}
	}
	for i, ev := range out {
		hooks[i].committed(ev)
	}
	return out, nil
}

// apply brings the cached state up to date with a persisted event.
func (e *Engine) apply(rs *roomState, b *built, p *storage.Persisted) {
	rs.extremities = []id.EventID{b.id}
	rs.maxDepth = max(rs.maxDepth, b.pdu.Depth)
	rs.snapshot = p.StateAfter
	if b.pdu.StateKey != nil {
		rs.state[storage.StateKey{Type: b.pdu.Type, StateKey: *b.pdu.StateKey}] = stateEntry{nid: p.NID, id: b.id}
		if b.pdu.Type == "m.room.member" {
			rs.setMembership(id.UserID(*b.pdu.StateKey), gjson.GetBytes(b.pdu.Content, "membership").Str)
		}
	}
}

// destinations are the other servers an event goes to: those with joined members, and the
// target's server of a membership change.
func (e *Engine) destinations(rs *roomState, b *built) []string {
	var out []string
	for s := range rs.joinedServers {
		if s != e.opt.ServerName {
			out = append(out, s)
		}
	}
	if b.pdu.Type == "m.room.member" && b.pdu.StateKey != nil {
		if s := id.UserID(*b.pdu.StateKey).Homeserver(); s != e.opt.ServerName && s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

func dedupe(xs []string) []string {
	slices.Sort(xs)
	return slices.Compact(xs)
}

func lastN(xs []id.EventID, n int) []id.EventID {
	if len(xs) > n {
		xs = xs[len(xs)-n:]
	}
	return append([]id.EventID{}, xs...)
}

// setField returns a JSON object with key set to a string value.
func setField(obj json.RawMessage, key, value string) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadJSON, err)
	}
	v, _ := json.Marshal(value)
	m[key] = v
	return json.Marshal(m)
}

// authMessage explains an auth failure to a client.
func authMessage(err error) string {
	var afe eventauth.AuthFailError
	if errors.As(err, &afe) && afe.Message != "" {
		return afe.Message
	}
	return err.Error()
}
