package rooms

import (
	"context"
	"encoding/json"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// EventHook is asked about each new timeline event, local or from another server, before
// the write that stores it, and may add to that write. Push rules use it so that an event's
// notification counts commit together with the event: a /sync that sees the event sees its
// counts. Soft-failed events and events filled in by backfill are not shown to it.
type EventHook interface {
	// PrepareEvent runs under the room's lock before ev's write, with room as it stands
	// before ev (before the whole batch, when one write stores several events, as
	// createRoom does). It may read storage but not write it. It returns nil when it has
	// nothing to add.
	PrepareEvent(ctx context.Context, room *RoomView, eventID id.EventID, ev *pdu.PDU) HookWrite
}

// HookWrite is what an EventHook adds to one event's write.
type HookWrite interface {
	// Write runs inside the event's write transaction once the event is stored (ev carries
	// its NID and stream position). An error fails the event's whole write. It must be
	// short and must not call DB.Write.
	Write(tx *storage.Tx, ev *storage.Event) error
	// Committed runs after the write has committed.
	Committed(ev *storage.Event)
}

// SetEventHook sets who is asked about each new event before its write; nil: nobody.
func (e *Engine) SetEventHook(h EventHook) {
	e.mu.Lock()
	e.hook = h
	e.mu.Unlock()
}

// RoomView is a room as an EventHook sees it. It is valid only during PrepareEvent.
type RoomView struct {
	e  *Engine
	rs *roomState
}

// ID is the room's ID.
func (v *RoomView) ID() id.RoomID { return v.rs.id }

// NID is the room's storage NID; 0 while the room itself is being created.
func (v *RoomView) NID() int64 { return v.rs.nid }

// JoinedCount is how many users are joined to the room, on every server.
func (v *RoomView) JoinedCount() int {
	n := 0
	for _, c := range v.rs.joinedServers {
		n += c
	}
	return n
}

// LocalJoined are this server's users who are joined to the room.
func (v *RoomView) LocalJoined() []id.UserID {
	var out []id.UserID
	for u, m := range v.rs.memberships {
		if m == "join" && v.e.isLocal(u) {
			out = append(out, u)
		}
	}
	return out
}

// Membership is a user's membership in the room: join, invite, leave, ban, knock or "".
func (v *RoomView) Membership(u id.UserID) string { return v.rs.membership(u) }

// IsLocal says whether a user belongs to this server.
func (v *RoomView) IsLocal(u id.UserID) bool { return v.e.isLocal(u) }

// StateContent is the content of a piece of the room's state; nil when the room has none.
func (v *RoomView) StateContent(ctx context.Context, typ, stateKey string) json.RawMessage {
	p, err := v.e.stateEvent(ctx, v.rs, typ, stateKey)
	if err != nil || p == nil {
		return nil
	}
	return json.RawMessage(p.Content)
}

// DisplayName is a member's display name in the room; "" when they have none.
func (v *RoomView) DisplayName(ctx context.Context, u id.UserID) string {
	return gjson.GetBytes(v.StateContent(ctx, "m.room.member", string(u)), "displayname").Str
}

// CanNotify says whether a user's power level reaches what the power levels require to
// trigger notifications of a kind (notifications.<key>, default 50), as the push condition
// sender_notification_permission asks.
func (v *RoomView) CanNotify(ctx context.Context, u id.UserID, key string) bool {
	pl, err := v.e.powerLevels(ctx, v.rs)
	if err != nil {
		return false
	}
	need := 50
	if x := pl.raw.Get("notifications." + gjson.Escape(key)); x.Exists() {
		need = int(x.Int())
	}
	return pl.user(u) >= need
}

// hookWrite is an EventHook's part of one write; its zero value adds nothing.
type hookWrite struct{ w HookWrite }

// prepareHook asks the EventHook, if there is one, about an event about to be written.
func (e *Engine) prepareHook(ctx context.Context, rs *roomState, evID id.EventID, p *pdu.PDU) hookWrite {
	e.mu.RLock()
	h := e.hook
	e.mu.RUnlock()
	if h == nil {
		return hookWrite{}
	}
	return hookWrite{h.PrepareEvent(ctx, &RoomView{e: e, rs: rs}, evID, p)}
}

func (h hookWrite) write(tx *storage.Tx, ev *storage.Event) error {
	if h.w == nil {
		return nil
	}
	return h.w.Write(tx, ev)
}

func (h hookWrite) committed(ev *storage.Event) {
	if h.w != nil {
		h.w.Committed(ev)
	}
}
