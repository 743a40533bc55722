package ephemeral

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
	"fyr/storage"
)

// Receipt types a client may send. m.fully_read moves the fully-read marker, which lives in
// the user's room account data and never appears in m.receipt.
const (
	ReceiptRead        = storage.ReceiptRead
	ReceiptReadPrivate = storage.ReceiptReadPrivate
	FullyRead          = storage.ReceiptFullyRead
	// ThreadMain is the thread ID of a room's main timeline.
	ThreadMain = "main"
)

// SetReceipt moves user's receipt of type typ (m.read, m.read.private or m.fully_read) in
// roomID to eventID. threadID is "" for an unthreaded receipt, ThreadMain or a thread root's
// event ID for a threaded one, and must fit the event (ErrInvalidParam): an event is in a
// thread when it, or an event it relates to at most three relations up, has an m.thread
// relation; thread roots and everything else are in the main timeline, and a thread root may
// also take its own thread's receipt.
//
// The user must be joined to the room (ErrForbidden; ErrNotFound for an unknown room) and
// able to see the event (rooms.ErrNotFound). A receipt that would move backwards, to an
// event earlier in the room's timeline than the current one, is ignored without an error,
// as Synapse does.
//
// See https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3roomsroomidreceiptreceipttypeeventid
func (s *Service) SetReceipt(ctx context.Context, user id.UserID, roomID id.RoomID, typ string, eventID id.EventID, threadID string) error {
	m, err := s.resolve(ctx, user, roomID, typ, eventID, threadID)
	if err != nil {
		return err
	}
	return s.apply(ctx, user, roomID, m)
}

// SetRemoteReceipt stores a public read receipt (m.read) that another server sent for one of
// its users, read at ts (Unix milliseconds; 0 for now). The user must be joined to the room
// (ErrForbidden; ErrNotFound for an unknown room), and the event must be in the room's
// timeline on this server (rooms.ErrNotFound otherwise: the receipt is dropped, as its
// event may never arrive). threadID must fit the event as in SetReceipt. A receipt that
// would move backwards is ignored without an error. That the user belongs to the server
// that sent the receipt is the caller's to check.
//
// See https://spec.matrix.org/v1.19/server-server-api/#receipts
func (s *Service) SetRemoteReceipt(ctx context.Context, user id.UserID, roomID id.RoomID, eventID id.EventID, threadID string, ts int64) error {
	room, err := s.db.RoomByID(ctx, string(roomID))
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: unknown room %s", ErrNotFound, roomID)
	} else if err != nil {
		return err
	}
	if m, _, err := s.db.Membership(ctx, room.NID, string(user)); err != nil {
		return err
	} else if m != "join" {
		return fmt.Errorf("%w: %s is not joined to %s", ErrForbidden, user, roomID)
	}
	ev, err := s.db.EventByID(ctx, string(eventID))
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (ev.RoomNID != room.NID || ev.StreamPos == 0)) {
		return fmt.Errorf("%w: event %s is not in the timeline of %s here", rooms.ErrNotFound, eventID, roomID)
	} else if err != nil {
		return err
	}
	if threadID != "" {
		ok, err := s.inThread(ctx, ev, threadID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: event_id %s is not related to thread %s", ErrInvalidParam, eventID, threadID)
		}
	}
	if ts <= 0 {
		ts = s.typing.clock().UnixMilli()
	}
	return s.store(ctx, user, roomID, storage.Receipt{RoomNID: room.NID, UserID: string(user), Type: ReceiptRead,
		ThreadID: threadID, EventID: ev.ID, EventPos: ev.StreamPos, TS: ts})
}

// ReadMarkers is the body of POST /rooms/{roomId}/read_markers; empty fields are left alone.
type ReadMarkers struct {
	FullyRead   id.EventID
	Read        id.EventID
	ReadPrivate id.EventID
}

// SetReadMarkers moves the fully-read marker and the read receipts in one request, each as
// SetReceipt would (unthreaded). Every event is checked before anything moves.
//
// See https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3roomsroomidread_markers
func (s *Service) SetReadMarkers(ctx context.Context, user id.UserID, roomID id.RoomID, rm ReadMarkers) error {
	if err := s.joined(ctx, user, roomID); err != nil {
		return err
	}
	var moves []*marker
	for _, t := range []struct {
		typ     string
		eventID id.EventID
	}{{FullyRead, rm.FullyRead}, {ReceiptRead, rm.Read}, {ReceiptReadPrivate, rm.ReadPrivate}} {
		if t.eventID == "" {
			continue
		}
		m, err := s.resolve(ctx, user, roomID, t.typ, t.eventID, "")
		if err != nil {
			return err
		}
		moves = append(moves, m)
	}
	for _, m := range moves {
		if err := s.apply(ctx, user, roomID, m); err != nil {
			return err
		}
	}
	return nil
}

// marker is a checked receipt or fully-read move, ready to apply.
type marker struct {
	typ      string
	threadID string
	ev       *storage.Event
}

// resolve checks a receipt: its type, the user's membership, the event and the thread.
func (s *Service) resolve(ctx context.Context, user id.UserID, roomID id.RoomID, typ string, eventID id.EventID, threadID string) (*marker, error) {
	switch typ {
	case ReceiptRead, ReceiptReadPrivate:
	case FullyRead:
		if threadID != "" {
			return nil, fmt.Errorf("%w: thread_id is not compatible with %s receipts", ErrInvalidParam, FullyRead)
		}
	default:
		return nil, fmt.Errorf("%w: receipt type must be %s, %s or %s", ErrInvalidParam, ReceiptRead, ReceiptReadPrivate, FullyRead)
	}
	if err := s.joined(ctx, user, roomID); err != nil {
		return nil, err
	}
	ce, err := s.rooms.Event(ctx, rooms.Viewer{User: user}, roomID, eventID)
	if err != nil {
		return nil, err
	}
	if threadID != "" {
		ok, err := s.inThread(ctx, ce.Stored, threadID)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: event_id %s is not related to thread %s", ErrInvalidParam, eventID, threadID)
		}
	}
	return &marker{typ: typ, threadID: threadID, ev: ce.Stored}, nil
}

// apply stores a checked move.
func (s *Service) apply(ctx context.Context, user id.UserID, roomID id.RoomID, m *marker) error {
	if m.typ == FullyRead {
		return s.moveFullyRead(ctx, user, roomID, m.ev)
	}
	return s.store(ctx, user, roomID, storage.Receipt{RoomNID: m.ev.RoomNID, UserID: string(user), Type: m.typ,
		ThreadID: m.threadID, EventID: m.ev.ID, EventPos: m.ev.StreamPos, TS: s.typing.clock().UnixMilli()})
}

// store writes a checked receipt and tells OnReceipt when it moved.
func (s *Service) store(ctx context.Context, user id.UserID, roomID id.RoomID, r storage.Receipt) error {
	var stored bool
	var pos int64
	err := s.db.Write(ctx, func(tx *storage.Tx) error {
		var err error
		stored, pos, err = tx.PutReceipt(r)
		return err
	})
	if err != nil {
		return err
	}
	if stored && s.OnReceipt != nil {
		s.OnReceipt(roomID, user, r.Type == ReceiptReadPrivate, pos)
	}
	return nil
}

var markerSeed = maphash.MakeSeed()

// moveFullyRead sets the m.fully_read room account data to ev unless the marker already
// stands at ev or later. The marker's position is kept beside the receipts, so the check
// needs no account data read.
func (s *Service) moveFullyRead(ctx context.Context, user id.UserID, roomID id.RoomID, ev *storage.Event) error {
	mu := &s.markerLocks[maphash.String(markerSeed, string(user))%uint64(len(s.markerLocks))]
	mu.Lock()
	defer mu.Unlock()
	cur, err := s.db.UserReceipt(ctx, ev.RoomNID, string(user), FullyRead, "")
	switch {
	case err == nil && cur.EventPos >= ev.StreamPos:
		return nil
	case err != nil && !errors.Is(err, storage.ErrNotFound):
		return err
	}
	s.hookMu.RLock()
	set := s.setAccountData
	s.hookMu.RUnlock()
	if set == nil {
		return fmt.Errorf("%w: the fully-read marker needs account data", ErrUnavailable)
	}
	content, _ := json.Marshal(map[string]string{"event_id": ev.ID})
	if _, err := set(ctx, user, roomID, FullyRead, content); err != nil {
		return fmt.Errorf("set %s account data: %w", FullyRead, err)
	}
	return s.db.Write(ctx, func(tx *storage.Tx) error {
		_, _, err := tx.PutReceipt(storage.Receipt{RoomNID: ev.RoomNID, UserID: string(user), Type: FullyRead,
			EventID: ev.ID, EventPos: ev.StreamPos, TS: s.typing.clock().UnixMilli()})
		return err
	})
}

// ReceiptsSince returns, for each of the rooms that has any, the content of the m.receipt
// event carrying its read receipts stored at stream positions since < pos <= upto (upto 0:
// no bound): m.read receipts of everyone and m.read.private receipts of viewer alone. Only
// each user's newest receipt per type and thread is kept, so the content replaces what a
// client knew for those users, as the spec's deltas do. since = 0 gives the rooms' current
// receipts, for an initial sync.
func (s *Service) ReceiptsSince(ctx context.Context, roomIDs []id.RoomID, since, upto int64, viewer id.UserID) (map[id.RoomID]event.ReceiptEventContent, error) {
	ids := make([]string, len(roomIDs))
	for i, r := range roomIDs {
		ids[i] = string(r)
	}
	rs, err := s.db.ReceiptsSince(ctx, ids, since, upto, string(viewer))
	if err != nil {
		return nil, err
	}
	out := map[id.RoomID]event.ReceiptEventContent{}
	for _, r := range rs {
		c := out[id.RoomID(r.RoomID)]
		if c == nil {
			c = event.ReceiptEventContent{}
			out[id.RoomID(r.RoomID)] = c
		}
		// The content holds one receipt per event, type and user; when a user has both an
		// unthreaded and a threaded receipt at the same event, the unthreaded one is sent
		// (MSC4102), as it says more: everything up to the event is read.
		evID, typ, user := id.EventID(r.EventID), event.ReceiptType(r.Type), id.UserID(r.UserID)
		if had, ok := c[evID][typ][user]; ok && had.ThreadID == "" && r.ThreadID != "" {
			continue
		}
		c.Set(evID, typ, user, event.ReadReceipt{Timestamp: time.UnixMilli(r.TS), ThreadID: event.ThreadID(r.ThreadID)})
	}
	return out, nil
}
