package rooms

import (
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// ClientEvent is an event in the client-server API's format.
type ClientEvent struct {
	Content        json.RawMessage `json:"content"`
	EventID        id.EventID      `json:"event_id"`
	OriginServerTS int64           `json:"origin_server_ts"`
	RoomID         id.RoomID       `json:"room_id,omitempty"`
	Sender         id.UserID       `json:"sender"`
	StateKey       *string         `json:"state_key,omitempty"`
	Type           string          `json:"type"`
	Redacts        id.EventID      `json:"redacts,omitempty"`
	Unsigned       map[string]any  `json:"unsigned,omitempty"`

	// Stored is the event as stored, for callers that page or filter further.
	Stored *storage.Event `json:"-"`
}

// Viewer is who reads events: their user (for visibility) and device (for transaction IDs).
type Viewer = Sender

// formatOpts shape formatting.
type formatOpts struct {
	// noRoomID leaves room_id out (sync's per-room sections).
	noRoomID bool
}

// format turns stored events into client events, with unsigned data: age, transaction_id
// for the device that sent it, prev_content for state, redacted_because for redactions.
func (e *Engine) format(ctx context.Context, evs []*storage.Event, roomID id.RoomID, version id.RoomVersion, viewer Viewer, opt formatOpts) ([]*ClientEvent, error) {
	now := e.now()
	// Load what unsigned needs in two queries.
	var replaced []int64
	var redactions []string
	for _, ev := range evs {
		if ev.ReplacesNID != 0 {
			replaced = append(replaced, ev.ReplacesNID)
		}
		if ev.RedactedBy != "" {
			redactions = append(redactions, ev.RedactedBy)
		}
	}
	prev := map[int64]*storage.Event{}
	if len(replaced) > 0 {
		ps, err := e.db.EventsByNID(ctx, replaced)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			prev[p.NID] = p
		}
	}
	because := map[string]*storage.Event{}
	if len(redactions) > 0 {
		rs, err := e.db.EventsByID(ctx, redactions)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			because[r.ID] = r
		}
	}
	out := make([]*ClientEvent, 0, len(evs))
	for _, ev := range evs {
		ce, err := e.clientEvent(ev, roomID, version)
		if err != nil {
			e.log.Warn("unreadable stored event skipped", "event_id", ev.ID, "err", err)
			continue
		}
		if opt.noRoomID {
			ce.RoomID = ""
		}
		u := map[string]any{"age": max(0, now-ev.OriginTS)}
		if viewer.Device != "" && id.UserID(ev.Sender) == viewer.User {
			if txn := e.db.TxnIDOf(ctx, string(viewer.User), string(viewer.Device), ev.ID); txn != "" {
				u["transaction_id"] = txn
			}
		}
		if p := prev[ev.ReplacesNID]; p != nil {
			if pc, err := e.clientEvent(p, roomID, version); err == nil {
				u["prev_content"] = pc.Content
				u["prev_sender"] = pc.Sender
				u["replaces_state"] = pc.EventID
			}
		}
		if r := because[ev.RedactedBy]; r != nil {
			if rc, err := e.clientEvent(r, roomID, version); err == nil {
				u["redacted_because"] = rc
			}
		}
		ce.Unsigned = u
		out = append(out, ce)
	}
	return out, nil
}

// clientEvent converts one stored event, pruned if it was redacted. It reads only the fields
// a client event carries (with gjson: decoding the whole PDU was a third of a sync's time).
func (e *Engine) clientEvent(ev *storage.Event, roomID id.RoomID, version id.RoomVersion) (*ClientEvent, error) {
	if !gjson.ValidBytes(ev.JSON) {
		return nil, errUnreadable
	}
	f := gjson.GetManyBytes(ev.JSON, "type", "sender", "state_key", "origin_server_ts", "content", "redacts")
	if f[0].Type != gjson.String || f[1].Type != gjson.String || (f[2].Exists() && f[2].Type != gjson.String) ||
		f[3].Type != gjson.Number {
		return nil, errUnreadable
	}
	typ := f[0].Str
	content := json.RawMessage(f[4].Raw)
	if ev.RedactedBy != "" {
		content = json.RawMessage(pdu.RedactContent(typ, jsontext.Value(content), version))
	}
	if len(content) == 0 {
		content = json.RawMessage(`{}`)
	}
	ce := &ClientEvent{
		Content: content, EventID: id.EventID(ev.ID), OriginServerTS: f[3].Int(), RoomID: roomID,
		Sender: id.UserID(f[1].Str), Type: typ, Stored: ev,
	}
	if f[2].Exists() {
		sk := f[2].Str
		ce.StateKey = &sk
	}
	if typ == "m.room.redaction" {
		if f[5].Type == gjson.String {
			ce.Redacts = id.EventID(f[5].Str)
		} else if r, ok := redactsFromContent(content); ok {
			ce.Redacts = r
		}
	}
	return ce, nil
}

// errUnreadable is a stored event that is not a well-formed PDU.
var errUnreadable = errors.New("rooms: stored event is not a well-formed PDU")

func redactsFromContent(content json.RawMessage) (id.EventID, bool) {
	var c struct {
		Redacts id.EventID `json:"redacts"`
	}
	if json.Unmarshal(content, &c) != nil || c.Redacts == "" {
		return "", false
	}
	return c.Redacts, true
}
