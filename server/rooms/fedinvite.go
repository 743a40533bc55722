package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// InviteRemote delivers an invite to a user of another server (PUT /v2/invite), which
// countersigns it.
type InviteRemote interface {
	Invite(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID, version id.RoomVersion, event json.RawMessage, stripped []json.RawMessage) (json.RawMessage, error)
}

// inviteTimeout bounds the wait for another server to countersign an invite; the room's
// lock is held meanwhile.
const inviteTimeout = 15 * time.Second

// strippedStateKeys are the state events an invitee sees before joining.
var strippedStateKeys = []storage.StateKey{
	{Type: "m.room.create"}, {Type: "m.room.join_rules"}, {Type: "m.room.name"}, {Type: "m.room.avatar"},
	{Type: "m.room.canonical_alias"}, {Type: "m.room.encryption"}, {Type: "m.room.topic"},
}

// strippedState is the stripped form of the room's invite-relevant state, plus extra events.
func (e *Engine) strippedState(ctx context.Context, rs *roomState, extra ...id.EventID) ([]json.RawMessage, error) {
	ids := extra
	for _, k := range strippedStateKeys {
		if se, ok := rs.state[k]; ok {
			ids = append(ids, se.id)
		}
	}
	ps, err := e.pdus(ctx, rs.version, ids)
	if err != nil {
		return nil, err
	}
	out := []json.RawMessage{}
	for _, p := range ps {
		if p == nil || p.StateKey == nil {
			continue
		}
		b, _ := json.Marshal(map[string]any{"type": p.Type, "state_key": *p.StateKey, "sender": p.Sender, "content": json.RawMessage(p.Content)})
		out = append(out, b)
	}
	return out, nil
}

// inviteRemoteUser invites a user of another server: the event is built and authorised
// here, countersigned by their server, then persisted. The caller holds the room's lock.
func (e *Engine) inviteRemoteUser(ctx context.Context, rs *roomState, sender, target id.UserID, content map[string]any) error {
	e.mu.RLock()
	ir, _ := e.remote.(InviteRemote)
	e.mu.RUnlock()
	if ir == nil {
		return fmt.Errorf("%w: this server cannot reach %s", ErrRemote, target.Homeserver())
	}
	raw, _ := json.Marshal(content)
	sk := string(target)
	b, err := e.build(ctx, rs, draft{sender: sender, typ: "m.room.member", stateKey: &sk, content: raw})
	if err != nil {
		return err
	}
	stripped, err := e.strippedState(ctx, rs, rs.state[storage.StateKey{Type: "m.room.member", StateKey: string(sender)}].id)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, inviteTimeout)
	defer cancel()
	signed, err := ir.Invite(rctx, target.Homeserver(), rs.id, b.id, rs.version, b.json, stripped)
	if err != nil {
		return err
	}
	p, err := decodePDU(rs.version, signed)
	if err != nil {
		return fmt.Errorf("%w: countersigned invite: %v", ErrBadPDU, err)
	}
	if got, err := p.GetEventID(rs.version); err != nil || got != b.id || !sameEvent(signed, b.json) {
		return fmt.Errorf("%w: %s changed the invite while signing it", ErrBadPDU, target.Homeserver())
	}
	p.InternalMeta.EventID = b.id
	if err := e.verifySignature(rs.version, p, target.Homeserver()); err != nil {
		return fmt.Errorf("%w: %s's signature on the invite: %v", ErrBadSig, target.Homeserver(), err)
	}
	b.pdu = p
	if b.json, err = wireJSON(rs.version, p); err != nil {
		return err
	}
	_, err = e.persist(ctx, rs, []*built{b}, nil)
	return err
}

// ReceiveInvite countersigns an invite from another server for a local user and keeps it,
// with its stripped state, so the user sees it (PUT /v2/invite).
func (e *Engine) ReceiveInvite(ctx context.Context, origin string, roomID id.RoomID, eventID id.EventID, version id.RoomVersion, raw json.RawMessage, stripped []json.RawMessage, userExists func(id.UserID) bool) (json.RawMessage, error) {
	if !version.IsKnown() {
		return nil, fmt.Errorf("%w: room version %s", ErrIncompatibleVersion, version)
	}
	p, err := decodePDU(version, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadJSON, err)
	}
	if p.Type != "m.room.member" || p.StateKey == nil || gjson.GetBytes(p.Content, "membership").Str != "invite" || p.RoomID != roomID {
		return nil, fmt.Errorf("%w: expected an invite for this room", ErrBadJSON)
	}
	target := id.UserID(*p.StateKey)
	if !e.isLocal(target) || !userExists(target) {
		return nil, fmt.Errorf("%w: no user %s here", ErrNotFound, target)
	}
	if p.Sender.Homeserver() != origin {
		return nil, fmt.Errorf("%w: %s may only send its own users' invites", ErrForbidden, origin)
	}
	if got, err := p.GetEventID(version); err != nil || got != eventID {
		return nil, fmt.Errorf("%w: the event's ID is not %s", ErrBadJSON, eventID)
	}
	p.InternalMeta.EventID = eventID
	if err := e.verifyServers(version, p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSig, err)
	}
	p, err = e.signPDU(version, p)
	if err != nil {
		return nil, err
	}
	signed, err := wireJSON(version, p)
	if err != nil {
		return nil, err
	}
	// A room we are in takes the invite through the normal path when it arrives as a PDU;
	// a room we are not in gets a stub with the invite as the user's membership.
	if err := e.placeStubMembership(ctx, roomID, version, p, eventID, stripped); err != nil {
		return nil, err
	}
	return signed, nil
}

// placeStubMembership records a local user's membership (invite, or their own knock or
// leave) in a room this server is not in, keeping the stripped state for them.
func (e *Engine) placeStubMembership(ctx context.Context, roomID id.RoomID, version id.RoomVersion, p *pdu.PDU, eventID id.EventID, stripped []json.RawMessage) error {
	unlock := e.lock(roomID)
	defer unlock()
	return e.placeStubLocked(ctx, roomID, version, p, eventID, stripped)
}

// receiveOutOfBand takes a PDU for a room this server only holds an invite or a knock for:
// the inviter withdrawing the invite (or the room refusing the knock) is sent to the target's
// server, which cannot check it against the room's state. As Synapse does, a rescinded invite
// is believed only from the user who sent the invite; anything else is not for us.
func (e *Engine) receiveOutOfBand(ctx context.Context, rs *roomState, p *pdu.PDU, evID id.EventID) error {
	if p.Type != "m.room.member" || p.StateKey == nil {
		return ErrNotInRoom
	}
	target := id.UserID(*p.StateKey)
	if target.Homeserver() != e.opt.ServerName {
		return ErrNotInRoom
	}
	switch gjson.GetBytes(p.Content, "membership").Str {
	case "leave", "ban":
	default:
		return ErrNotInRoom
	}
	had, ok := rs.state[storage.StateKey{Type: "m.room.member", StateKey: string(target)}]
	if !ok {
		return ErrNotInRoom
	}
	switch rs.membership(target) {
	case "invite":
		inv, err := e.db.EventByNID(ctx, had.nid)
		if err != nil {
			return err
		}
		if id.UserID(inv.Sender) != p.Sender {
			return fmt.Errorf("%w: only %s, who sent the invite, can withdraw it", ErrForbidden, inv.Sender)
		}
	case "knock":
	default:
		return ErrNotInRoom
	}
	return e.placeStubLocked(ctx, rs.id, rs.version, p, evID, nil)
}

// placeStubLocked is placeStubMembership for a caller that holds the room's lock.
func (e *Engine) placeStubLocked(ctx context.Context, roomID id.RoomID, version id.RoomVersion, p *pdu.PDU, eventID id.EventID, stripped []json.RawMessage) error {
	if err := e.ensureRoomRow(ctx, roomID, version); err != nil {
		return err
	}
	rs, err := e.loadRoom(ctx, roomID)
	if err != nil {
		return err
	}
	if e.joinsLocally(rs) && rs.joinedServers[e.opt.ServerName] > 0 {
		return nil // we are in the room: the event arrives through /send like any other
	}
	ne := e.newEvent(rs, p, eventID)
	user := *p.StateKey
	var strippedJSON []byte
	if stripped != nil {
		strippedJSON, _ = json.Marshal(stripped)
	}
	hook := e.prepareHook(ctx, rs, eventID, p)
	var stored *storage.Event
	err = e.db.Write(ctx, func(tx *storage.Tx) error {
		per, err := tx.InsertEvent(&storage.InboundEvent{NewEvent: *ne, Outlier: true})
		if errors.Is(err, storage.ErrExists) {
			return nil
		} else if err != nil {
			return err
		}
		pos, err := tx.NextPos()
		if err != nil {
			return err
		}
		if strippedJSON != nil {
			if err := tx.SetStrippedState(rs.nid, user, strippedJSON); err != nil {
				return err
			}
		}
		if err := tx.SetCurrentState(rs.nid, rs.snapshot, map[storage.StateKey]storage.CurrentChange{
			{Type: "m.room.member", StateKey: user}: {EventNID: per.NID, Membership: ne.Membership}}, pos); err != nil {
			return err
		}
		// The outlier has no stream position of its own; the membership change's stands in.
		stored = &storage.Event{NID: per.NID, ID: ne.ID, RoomNID: rs.nid, Type: ne.Type, StateKey: ne.StateKey,
			Sender: ne.Sender, Depth: ne.Depth, OriginTS: ne.OriginTS, StreamPos: pos, JSON: ne.JSON}
		return hook.write(tx, stored)
	})
	e.cache.drop(roomID)
	if err != nil {
		return err
	}
	e.mu.RLock()
	l := e.listener
	e.mu.RUnlock()
	if l != nil {
		if ev, err := e.db.EventByID(ctx, string(eventID)); err == nil {
			l.RoomEvent(ev, roomID)
		}
	}
	if stored != nil {
		hook.committed(stored)
	}
	return nil
}

// StrippedState returns what a user may see of a room they are invited to or knocked on:
// the stripped state another server sent, or, for a room this server is in, built from
// its state.
func (e *Engine) StrippedState(ctx context.Context, user id.UserID, roomID id.RoomID) ([]json.RawMessage, error) {
	room, err := e.room(ctx, roomID)
	if err != nil {
		return nil, err
	}
	if b, err := e.db.StrippedState(ctx, room.NID, string(user)); err == nil {
		var out []json.RawMessage
		if json.Unmarshal(b, &out) == nil {
			return out, nil
		}
	}
	unlock := e.lock(roomID)
	defer unlock()
	rs, err := e.loadRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	var extra []id.EventID
	if se, ok := rs.state[storage.StateKey{Type: "m.room.member", StateKey: string(user)}]; ok {
		extra = append(extra, se.id)
	}
	return e.strippedState(ctx, rs, extra...)
}

// ensureRoomRow creates the row of a room this server learns about from another server.
func (e *Engine) ensureRoomRow(ctx context.Context, roomID id.RoomID, version id.RoomVersion) error {
	if _, err := e.db.RoomByID(ctx, string(roomID)); !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	err := e.db.Write(ctx, func(tx *storage.Tx) error {
		_, err := tx.InsertRoom(string(roomID), string(version), e.now())
		return err
	})
	if errors.Is(err, storage.ErrExists) {
		return nil
	}
	return err
}
