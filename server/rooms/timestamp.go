package rooms

import (
	"context"
	"errors"
	"fmt"
	"slices"

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
	local, err := e.nearestVisible(ctx, vis, a.room, ts, backwards)
	if err != nil {
		return nil, err
	}
	if remote := e.remoteTimestamp(ctx, a.room, ts, backwards, local); remote != nil {
		return remote, nil
	}
	if local == nil {
		return nil, notFound
	}
	return local, nil
}

// TimestampRemote asks another server for the event nearest a time (GET
// /_matrix/federation/v1/timestamp_to_event).
type TimestampRemote interface {
	TimestampToEvent(ctx context.Context, server string, roomID id.RoomID, ts int64, backwards bool) (*TimestampEvent, error)
}

// maxTimestampBackfill bounds the backfill rounds that bring a remote answer into the
// timeline.
const maxTimestampBackfill = 10

// remoteTimestamp asks the room's other servers when the answer may lie in history this
// server never had: ts is no later than the oldest event here and history goes on before
// it. A remote answer closer to ts than the local one wins; as the spec asks, the server
// then backfills down to it, so that /context and /messages work from it. nil means the
// local answer stands.
func (e *Engine) remoteTimestamp(ctx context.Context, room *storage.Room, ts int64, backwards bool, local *TimestampEvent) *TimestampEvent {
	e.mu.RLock()
	tr, _ := e.remote.(TimestampRemote)
	e.mu.RUnlock()
	if tr == nil || len(e.backfillFrom(ctx, room)) == 0 {
		return nil
	}
	oldest, err := e.db.RoomEvents(ctx, room.NID, storage.NoBound+1, 1<<62, false, 1)
	if err != nil || len(oldest) == 0 || ts > oldest[0].OriginTS {
		return nil
	}
	roomID := id.RoomID(room.ID)
	for _, server := range e.otherServers(ctx, roomID) {
		got, err := tr.TimestampToEvent(ctx, server, roomID, ts, backwards)
		if err != nil {
			e.log.Info("timestamp_to_event failed", "server", server, "room_id", roomID, "err", err)
			continue
		}
		closer := local == nil || (backwards && got.OriginServerTS > local.OriginServerTS) ||
			(!backwards && got.OriginServerTS < local.OriginServerTS)
		if !closer {
			return nil
		}
		for range maxTimestampBackfill {
			if ev, err := e.db.EventByID(ctx, string(got.EventID)); err == nil && ev.StreamPos != 0 {
				break
			}
			if !e.backfill(ctx, room, 100) {
				break
			}
		}
		return got
	}
	return nil
}

// otherServers are the servers other than this one with members joined to the room.
func (e *Engine) otherServers(ctx context.Context, roomID id.RoomID) []string {
	unlock := e.lock(roomID)
	defer unlock()
	rs, err := e.loadRoom(ctx, roomID)
	if err != nil {
		return nil
	}
	var out []string
	for s := range rs.joinedServers {
		if s != e.opt.ServerName {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// RemoteTimestampToEvent answers another server's /timestamp_to_event: the event nearest ts
// in the direction, among those that server may read.
func (e *Engine) RemoteTimestampToEvent(ctx context.Context, origin string, roomID id.RoomID, ts int64, backwards bool) (*TimestampEvent, error) {
	room, err := e.roomForServer(ctx, origin, roomID)
	if err != nil {
		return nil, err
	}
	ev, err := e.db.EventNear(ctx, room.NID, ts, backwards)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no event found from %d", ErrNotFound, ts)
	} else if err != nil {
		return nil, err
	}
	return &TimestampEvent{EventID: id.EventID(ev.ID), OriginServerTS: ev.OriginTS}, nil
}

// nearestVisible finds the event nearest ts in the direction that vis lets the user see,
// or nil.
func (e *Engine) nearestVisible(ctx context.Context, vis *visibility, room *storage.Room, ts int64, backwards bool) (*TimestampEvent, error) {
	ev, err := e.db.EventNear(ctx, room.NID, ts, backwards)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
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
			if batch, err = e.db.EventsNear(ctx, room.NID, ts, backwards, ev, timestampBatch); err != nil {
				return nil, err
			}
			if len(batch) == 0 {
				break
			}
		}
		ev, batch = batch[0], batch[1:]
	}
	return nil, nil
}
