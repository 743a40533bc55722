package rooms

import (
	"context"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// maxTimestampScan bounds how many events past the nearest one /timestamp_to_event examines
// for one the user may see, reading timestampBatch at a time.
const (
	maxTimestampScan = 1000
	timestampBatch   = 100
)

// TimestampEvent is /timestamp_to_event's answer.
type TimestampEvent struct {
	EventID        id.EventID `json:"event_id"`
	OriginServerTS int64      `json:"origin_server_ts"`
}

// TimestampToEvent finds the event the user may see that is closest to ts in a direction:
// the first at or after it going forwards, the last at or before it going backwards, events
// with the same timestamp in stream order. None is ErrNotFound.
//
// See https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv1roomsroomidtimestamp_to_event
func (e *Engine) TimestampToEvent(ctx context.Context, v Viewer, roomID id.RoomID, ts int64, backwards bool) (*TimestampEvent, error) {
	a, err := e.access(ctx, v.User, roomID)
	if err != nil {
		return nil, err
	}
	vis, err := e.newVisibility(ctx, v.User, a.room)
	if err != nil {
		return nil, err
	}
	dir := "forwards"
	if backwards {
		dir = "backwards"
	}
	notFound := fmt.Errorf("%w: no event found from %d %s", ErrNotFound, ts, dir)
	ev, err := e.db.EventNear(ctx, a.room.NID, ts, backwards)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, notFound
	} else if err != nil {
		return nil, err
	}
	// Usually the nearest event is visible; otherwise go on past it, a batch at a time.
	var batch []*storage.Event
	for scanned := 0; scanned <= maxTimestampScan; scanned++ {
		ok, err := vis.canSee(ctx, ev)
		if err != nil {
			return nil, err
		}
		if ok {
			return &TimestampEvent{EventID: id.EventID(ev.ID), OriginServerTS: ev.OriginTS}, nil
		}
		if len(batch) == 0 {
			if batch, err = e.db.EventsNear(ctx, a.room.NID, ts, backwards, ev, timestampBatch); err != nil {
				return nil, err
			}
			if len(batch) == 0 {
				break
			}
		}
		ev, batch = batch[0], batch[1:]
	}
	return nil, notFound
}
