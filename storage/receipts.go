package storage

import (
	"context"
	"database/sql"
	"errors"
)

// Receipt is a user's newest receipt of one type in one thread of a room.
type Receipt struct {
	RoomNID int64
	RoomID  string
	UserID  string
	// Type is m.read, m.read.private or m.fully_read.
	Type string
	// ThreadID is "" for an unthreaded receipt, "main" or a thread root's event ID.
	ThreadID string
	EventID  string
	// EventPos is the stream position of the acknowledged event.
	EventPos int64
	// TS is when the receipt was received, in Unix milliseconds.
	TS        int64
	StreamPos int64
}

// Receipt types that are read receipts (as opposed to the m.fully_read marker).
const (
	ReceiptRead        = "m.read"
	ReceiptReadPrivate = "m.read.private"
	ReceiptFullyRead   = "m.fully_read"
)

// PutReceipt stores r unless the user already has a receipt of that type and thread at the
// same or a later event: receipts never move backwards. It takes a stream position only when
// it stores, and reports whether it did, with the position.
func (tx *Tx) PutReceipt(r Receipt) (stored bool, pos int64, err error) {
	var have int64
	err = tx.QueryRow(`SELECT event_pos FROM receipts WHERE room_nid = ? AND user_id = ? AND receipt_type = ? AND thread_id = ?`,
		r.RoomNID, r.UserID, r.Type, r.ThreadID).Scan(&have)
	switch {
	case err == nil && have >= r.EventPos:
		return false, 0, nil
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return false, 0, err
	}
	if pos, err = tx.NextPos(); err != nil {
		return false, 0, err
	}
	_, err = tx.Exec(`INSERT INTO receipts (room_nid, user_id, receipt_type, thread_id, event_id, event_pos, ts, stream_pos)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (room_nid, user_id, receipt_type, thread_id) DO UPDATE SET
			event_id = excluded.event_id, event_pos = excluded.event_pos, ts = excluded.ts, stream_pos = excluded.stream_pos`,
		r.RoomNID, r.UserID, r.Type, r.ThreadID, r.EventID, r.EventPos, r.TS, pos)
	if err != nil {
		return false, 0, err
	}
	return true, pos, nil
}

// UserReceipt returns a user's receipt of one type and thread in a room, or ErrNotFound.
func (db *DB) UserReceipt(ctx context.Context, roomNID int64, userID, typ, threadID string) (*Receipt, error) {
	r := Receipt{RoomNID: roomNID, UserID: userID, Type: typ, ThreadID: threadID}
	err := db.queryRow(ctx, `SELECT r.room_id, c.event_id, c.event_pos, c.ts, c.stream_pos
		FROM receipts c JOIN rooms r USING (room_nid)
		WHERE c.room_nid = ? AND c.user_id = ? AND c.receipt_type = ? AND c.thread_id = ?`,
		roomNID, userID, typ, threadID).Scan(&r.RoomID, &r.EventID, &r.EventPos, &r.TS, &r.StreamPos)
	if err != nil {
		return nil, notFound(err)
	}
	return &r, nil
}

// ReceiptsSince returns the read receipts (m.read, and m.read.private of viewer only) of the
// given rooms stored at stream positions since < pos <= upto, oldest first. since = 0 gives
// every room's current receipts, as an initial sync wants them; upto = 0 means no bound.
func (db *DB) ReceiptsSince(ctx context.Context, roomIDs []string, since, upto int64, viewer string) ([]Receipt, error) {
	if upto <= 0 {
		upto = 1 << 62
	}
	var out []Receipt
	for chunk := range chunks(roomIDs, 500) {
		args := append(anys(chunk), since, upto, viewer)
		rows, err := db.read.QueryContext(ctx, `SELECT c.room_nid, r.room_id, c.user_id, c.receipt_type, c.thread_id,
				c.event_id, c.event_pos, c.ts, c.stream_pos
			FROM rooms r JOIN receipts c ON c.room_nid = r.room_nid
			WHERE r.room_id IN (`+placeholders(len(chunk))+`) AND c.stream_pos > ? AND c.stream_pos <= ?
				AND (c.receipt_type = 'm.read' OR (c.receipt_type = 'm.read.private' AND c.user_id = ?))
			ORDER BY c.stream_pos`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var r Receipt
			if err := rows.Scan(&r.RoomNID, &r.RoomID, &r.UserID, &r.Type, &r.ThreadID, &r.EventID, &r.EventPos, &r.TS, &r.StreamPos); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ReadUpTo returns the stream position of the latest event a user has acknowledged in a
// room with a read receipt, public or private, unthreaded or in the given thread ("main" or
// a thread root's event ID; "" for unthreaded receipts only); 0 when none.
func (db *DB) ReadUpTo(ctx context.Context, roomNID int64, userID, threadID string) (int64, error) {
	var pos sql.NullInt64
	err := db.queryRow(ctx, `SELECT max(event_pos) FROM receipts
		WHERE room_nid = ? AND user_id = ? AND receipt_type IN ('m.read', 'm.read.private') AND thread_id IN ('', ?)`,
		roomNID, userID, threadID).Scan(&pos)
	return pos.Int64, err
}
