package rooms

import (
	"context"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"
)

// RejectGuard is asked before a local event would turn user's invite to roomID into a leave
// (the user rejecting it, or anyone rescinding it) and may refuse with an error, which the
// request returns as it is. Server notices use it: an invite to a user's notices room cannot
// be rejected. It runs under the room's lock, so it must not send to the room.
type RejectGuard func(ctx context.Context, roomID id.RoomID, user id.UserID) error

// SetRejectGuard sets who may refuse the rejection of invites; nil: nobody.
func (e *Engine) SetRejectGuard(g RejectGuard) {
	e.mu.Lock()
	e.rejectGuard = g
	e.mu.Unlock()
}

// checkReject asks the RejectGuard about a draft that would end an invite with a leave,
// whichever endpoint built it (leave, kick, or the state API).
func (e *Engine) checkReject(ctx context.Context, rs *roomState, d *draft) error {
	if d.typ != "m.room.member" || d.stateKey == nil || gjson.GetBytes(d.content, "membership").Str != "leave" {
		return nil
	}
	target := id.UserID(*d.stateKey)
	if rs.membership(target) != "invite" {
		return nil
	}
	e.mu.RLock()
	g := e.rejectGuard
	e.mu.RUnlock()
	if g == nil {
		return nil
	}
	return g(ctx, rs.id, target)
}
