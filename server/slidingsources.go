package server

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/id"

	syncapi "fyr/server/sync"
)

// RoomReceipts reads the receipts of some of the user's joined rooms, for sliding sync,
// which sends receipts for the rooms in its window only.
func (x syncSources) RoomReceipts(ctx context.Context, user id.UserID, rooms []id.RoomID, since, to int64) (map[id.RoomID]json.RawMessage, error) {
	joined, err := x.s.Rooms.JoinedRooms(ctx, user)
	if err != nil {
		return nil, err
	}
	isJoined := make(map[id.RoomID]bool, len(joined))
	for _, r := range joined {
		isJoined[r] = true
	}
	var ask []id.RoomID
	for _, r := range rooms {
		if isJoined[r] {
			ask = append(ask, r)
		}
	}
	if len(ask) == 0 {
		return nil, nil
	}
	got, err := x.s.Ephemeral.ReceiptsSince(ctx, ask, since, to, user)
	if err != nil {
		return nil, err
	}
	out := make(map[id.RoomID]json.RawMessage, len(got))
	for room, content := range got {
		b, _ := json.Marshal(map[string]any{"type": "m.receipt", "content": content})
		out[room] = b
	}
	return out, nil
}

var _ syncapi.RoomReceiptSource = syncSources{}
