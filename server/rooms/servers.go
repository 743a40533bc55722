package rooms

import (
	"context"
	"slices"

	"maunium.net/go/mautrix/id"
)

// JoinedServers lists, sorted, the servers with users joined to a room, this one included
// when it has any: the audience of the room's typing notifications and read receipts. An
// unknown room is ErrNotFound.
func (e *Engine) JoinedServers(ctx context.Context, roomID id.RoomID) ([]string, error) {
	room, err := e.room(ctx, roomID)
	if err != nil {
		return nil, err
	}
	servers, err := e.db.JoinedServers(ctx, room.NID)
	if err != nil {
		return nil, err
	}
	slices.Sort(servers)
	return servers, nil
}
