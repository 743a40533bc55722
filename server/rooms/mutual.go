package rooms

import (
	"context"
	"encoding/base64"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// MutualRoomsBatch is how many rooms one mutual_rooms answer lists at most.
const MutualRoomsBatch = 100

// MutualRoomsResponse is the spec's answer to /mutual_rooms.
type MutualRoomsResponse struct {
	Joined    []id.RoomID `json:"joined"`
	Count     int         `json:"count"`
	NextBatch string      `json:"next_batch,omitempty"`
}

// MutualRooms lists the rooms both user and other are joined to, in room ID order, a batch
// at a time; from is the next_batch of the previous batch. Tokens are positions in that
// order, so they do not expire. A user who does not exist shares no rooms.
// See https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1mutual_rooms
func (e *Engine) MutualRooms(ctx context.Context, user, other id.UserID, from string) (*MutualRoomsResponse, error) {
	if _, _, err := other.ParseAndValidateRelaxed(); err != nil {
		return nil, fmt.Errorf("%w: %q is not a valid user ID", ErrInvalidParam, other)
	}
	if other == user {
		return nil, fmt.Errorf("%w: you cannot ask which rooms you share with yourself", ErrInvalidParam)
	}
	var after string
	if from != "" {
		raw, err := base64.RawURLEncoding.DecodeString(from)
		if err != nil || len(raw) < 2 || raw[0] != '!' {
			return nil, fmt.Errorf("%w: %q is not a mutual rooms token from this server", ErrInvalidParam, from)
		}
		after = string(raw)
	}
	ids, err := e.db.MutualRooms(ctx, string(user), string(other), after, MutualRoomsBatch+1)
	if err != nil {
		return nil, err
	}
	count, err := e.db.CountMutualRooms(ctx, string(user), string(other))
	if err != nil {
		return nil, err
	}
	resp := &MutualRoomsResponse{Joined: []id.RoomID{}, Count: count}
	if len(ids) > MutualRoomsBatch {
		ids = ids[:MutualRoomsBatch]
		resp.NextBatch = base64.RawURLEncoding.EncodeToString([]byte(ids[len(ids)-1]))
	}
	for _, r := range ids {
		resp.Joined = append(resp.Joined, id.RoomID(r))
	}
	return resp, nil
}
