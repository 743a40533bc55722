package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"maunium.net/go/mautrix/id"
)

// AccountData is one entry of a user's account data.
type AccountData struct {
	// RoomID is the room the entry belongs to; "" for global account data.
	RoomID id.RoomID
	Type   string
	// Content is the entry's JSON object.
	Content json.RawMessage
	// StreamPos is the stream position of the entry's last change.
	StreamPos int64
}

const accountDataColumns = `room_id, type, content, stream_pos`

func scanAccountData(row interface{ Scan(...any) error }) (*AccountData, error) {
	var d AccountData
	var content string
	if err := row.Scan(&d.RoomID, &d.Type, &content, &d.StreamPos); err != nil {
		return nil, notFound(err)
	}
	d.Content = json.RawMessage(content)
	return &d, nil
}

const accountDataQuery = `SELECT ` + accountDataColumns + ` FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?`

// AccountData returns one entry of a user's account data (roomID "" for global), or
// ErrNotFound.
func (db *DB) AccountData(ctx context.Context, userID id.UserID, roomID id.RoomID, typ string) (*AccountData, error) {
	return scanAccountData(db.queryRow(ctx, accountDataQuery, userID, roomID, typ))
}

// AccountData is DB.AccountData inside the write transaction, for read-modify-write.
func (tx *Tx) AccountData(userID id.UserID, roomID id.RoomID, typ string) (*AccountData, error) {
	return scanAccountData(tx.QueryRow(accountDataQuery, userID, roomID, typ))
}

// AccountDataSince returns the entries of a user's account data whose last change has a
// stream position in (since, upto], in stream order: the global ones, and the per-room ones
// by room. since 0 asks for all of them. An entry changed again after upto is left out; it
// will be in the range that covers its newer position.
func (db *DB) AccountDataSince(ctx context.Context, userID id.UserID, since, upto int64) (global []AccountData, rooms map[id.RoomID][]AccountData, err error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+accountDataColumns+` FROM account_data
		WHERE user_id = ? AND stream_pos > ? AND stream_pos <= ? ORDER BY stream_pos`, userID, since, upto)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		d, err := scanAccountData(rows)
		if err != nil {
			return nil, nil, err
		}
		if d.RoomID == "" {
			global = append(global, *d)
			continue
		}
		if rooms == nil {
			rooms = map[id.RoomID][]AccountData{}
		}
		rooms[d.RoomID] = append(rooms[d.RoomID], *d)
	}
	return global, rooms, rows.Err()
}

// SetAccountData stores one entry of a user's account data (roomID "" for global), replacing
// any entry of the same type, at the next stream position, which it returns. content must be
// a JSON object; callers validate it.
func (tx *Tx) SetAccountData(userID id.UserID, roomID id.RoomID, typ string, content json.RawMessage) (int64, error) {
	pos, err := tx.NextPos()
	if err != nil {
		return 0, err
	}
	_, err = tx.Exec(`INSERT INTO account_data (user_id, room_id, type, content, stream_pos) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_id, room_id, type) DO UPDATE SET content = excluded.content, stream_pos = excluded.stream_pos`,
		userID, roomID, typ, string(content), pos)
	return pos, err
}

// Filter returns the JSON of one of a user's filters, or ErrNotFound.
func (db *DB) Filter(ctx context.Context, userID id.UserID, filterID int64) (json.RawMessage, error) {
	var s string
	if err := db.queryRow(ctx, `SELECT json FROM filters WHERE user_id = ? AND filter_id = ?`, userID, filterID).Scan(&s); err != nil {
		return nil, notFound(err)
	}
	return json.RawMessage(s), nil
}

// AddFilter stores a filter for a user and returns its ID: the ID of an identical filter the
// user already has, else one more than their highest (starting at 1). Clients upload the
// same filter at every start, so this keeps one row per distinct filter.
func (tx *Tx) AddFilter(userID id.UserID, filter json.RawMessage) (int64, error) {
	var fid int64
	err := tx.QueryRow(`SELECT filter_id FROM filters WHERE user_id = ? AND json = ?`, userID, string(filter)).Scan(&fid)
	if err == nil {
		return fid, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	err = tx.QueryRow(`INSERT INTO filters (user_id, filter_id, json)
		SELECT ?, coalesce(max(filter_id), 0) + 1, ? FROM filters WHERE user_id = ?
		RETURNING filter_id`, userID, string(filter), userID).Scan(&fid)
	return fid, err
}

// Presence is a user's stored presence.
type Presence struct {
	UserID id.UserID
	// State is online, unavailable or offline.
	State string
	// StatusMsg is the user's status message; "" for none.
	StatusMsg string
	// LastActiveTS is when the user was last active, in Unix milliseconds; 0 for never.
	LastActiveTS int64
	// StreamPos is the stream position of the last change.
	StreamPos int64
}

const presenceColumns = `user_id, state, status_msg, last_active_ts, stream_pos`

func scanPresence(row interface{ Scan(...any) error }) (*Presence, error) {
	var p Presence
	if err := row.Scan(&p.UserID, &p.State, &p.StatusMsg, &p.LastActiveTS, &p.StreamPos); err != nil {
		return nil, notFound(err)
	}
	return &p, nil
}

// Presence returns a user's stored presence, or ErrNotFound if none was ever stored.
func (db *DB) Presence(ctx context.Context, userID id.UserID) (*Presence, error) {
	return scanPresence(db.queryRow(ctx, `SELECT `+presenceColumns+` FROM presence WHERE user_id = ?`, userID))
}

// Presence is DB.Presence inside the write transaction, for read-modify-write.
func (tx *Tx) Presence(userID id.UserID) (*Presence, error) {
	return scanPresence(tx.QueryRow(`SELECT `+presenceColumns+` FROM presence WHERE user_id = ?`, userID))
}

// PresenceSince returns the stored presence of those of users whose last change has a stream
// position in (since, upto], in stream order. since 0 asks for every stored presence.
func (db *DB) PresenceSince(ctx context.Context, users []id.UserID, since, upto int64) ([]Presence, error) {
	if len(users) == 0 {
		return nil, nil
	}
	list, err := json.Marshal(users)
	if err != nil {
		return nil, err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+presenceColumns+` FROM presence
		WHERE user_id IN (SELECT value FROM json_each(?)) AND stream_pos > ? AND stream_pos <= ?
		ORDER BY stream_pos`, string(list), since, upto)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Presence
	for rows.Next() {
		p, err := scanPresence(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *p)
	}
	return out, rows.Err()
}

// SetPresence stores a user's presence at the next stream position, which it returns
// (p.StreamPos is ignored).
func (tx *Tx) SetPresence(p Presence) (int64, error) {
	pos, err := tx.NextPos()
	if err != nil {
		return 0, err
	}
	_, err = tx.Exec(`INSERT INTO presence (user_id, state, status_msg, last_active_ts, stream_pos) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET state = excluded.state, status_msg = excluded.status_msg,
			last_active_ts = excluded.last_active_ts, stream_pos = excluded.stream_pos`,
		p.UserID, p.State, p.StatusMsg, p.LastActiveTS, pos)
	return pos, err
}
