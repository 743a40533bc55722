package server

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/id"

	syncapi "fyr/server/sync"
)

// RoomReceipts reads the receipts of some of the user's joined rooms (sync checked that they
// are), for sliding sync, which sends receipts for the rooms in its window only.
func (x syncSources) RoomReceipts(ctx context.Context, user id.UserID, rooms []id.RoomID, since, to int64) (map[id.RoomID]json.RawMessage, error) {
	if len(rooms) == 0 {
		return nil, nil
	}
	got, err := x.s.Ephemeral.ReceiptsSince(ctx, rooms, since, to, user)
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
