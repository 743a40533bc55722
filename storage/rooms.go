package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// StateKey names one piece of room state.
type StateKey struct {
	Type     string
	StateKey string
}

// StateMap maps state keys to event NIDs.
type StateMap map[StateKey]int64

// Room is one room's row.
type Room struct {
	NID         int64
	ID          string
	Version     string
	SnapshotNID int64
	MaxDepth    int64
	Extremities []string
	Published   bool
	CreatedTS   int64
}

// Event is one stored event. JSON is the PDU as built or received.
type Event struct {
	NID         int64
	ID          string
	RoomNID     int64
	Type        string
	StateKey    *string
	Sender      string
	Depth       int64
	OriginTS    int64
	StreamPos   int64 // 0: not in any timeline (outlier, rejected, soft-failed)
	StateBefore int64
	ReplacesNID int64
	Rejected    bool
	SoftFailed  bool
	RedactedBy  string
	RelatesTo   string
	RelType     string
	JSON        []byte
}

// querier is what both the read pool and a write transaction can answer.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const roomCols = `room_nid, room_id, version, snapshot_nid, max_depth, extremities, published, created_ts`

func scanRoom(row interface{ Scan(...any) error }) (*Room, error) {
	var r Room
	var ext string
	if err := row.Scan(&r.NID, &r.ID, &r.Version, &r.SnapshotNID, &r.MaxDepth, &ext, &r.Published, &r.CreatedTS); err != nil {
		return nil, notFound(err)
	}
	if err := json.Unmarshal([]byte(ext), &r.Extremities); err != nil {
		return nil, fmt.Errorf("room %s: extremities: %w", r.ID, err)
	}
	return &r, nil
}

// RoomByID returns a room, or ErrNotFound.
func (db *DB) RoomByID(ctx context.Context, roomID string) (*Room, error) {
	return scanRoom(db.queryRow(ctx, `SELECT `+roomCols+` FROM rooms WHERE room_id = ?`, roomID))
}

// RoomByNID returns a room, or ErrNotFound.
func (db *DB) RoomByNID(ctx context.Context, nid int64) (*Room, error) {
	return scanRoom(db.queryRow(ctx, `SELECT `+roomCols+` FROM rooms WHERE room_nid = ?`, nid))
}

// InsertRoom creates a room's row and returns its NID. A room that exists is ErrExists.
func (tx *Tx) InsertRoom(roomID, version string, now int64) (int64, error) {
	res, err := tx.Exec(`INSERT INTO rooms (room_id, version, created_ts) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, roomID, version, now)
	if err != nil {
		return 0, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return 0, ErrExists
	}
	return res.LastInsertId()
}

const eventCols = `event_nid, event_id, room_nid, type, state_key, sender, depth, origin_ts,
	coalesce(stream_pos, 0), state_before, replaces_nid, rejected, soft_failed, coalesce(redacted_by, ''),
	coalesce(relates_to, ''), coalesce(rel_type, ''), json`

// eventColsE is eventCols qualified with the alias e, for joins.
const eventColsE = `e.event_nid, e.event_id, e.room_nid, e.type, e.state_key, e.sender, e.depth, e.origin_ts,
	coalesce(e.stream_pos, 0), e.state_before, e.replaces_nid, e.rejected, e.soft_failed, coalesce(e.redacted_by, ''),
	coalesce(e.relates_to, ''), coalesce(e.rel_type, ''), e.json`

func scanEvent(row interface{ Scan(...any) error }) (*Event, error) {
	var e Event
	var sk sql.NullString
	if err := row.Scan(&e.NID, &e.ID, &e.RoomNID, &e.Type, &sk, &e.Sender, &e.Depth, &e.OriginTS,
		&e.StreamPos, &e.StateBefore, &e.ReplacesNID, &e.Rejected, &e.SoftFailed, &e.RedactedBy, &e.RelatesTo, &e.RelType, &e.JSON); err != nil {
		return nil, notFound(err)
	}
	if sk.Valid {
		e.StateKey = &sk.String
	}
	return &e, nil
}

func queryEvents(ctx context.Context, q querier, query string, args ...any) ([]*Event, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// EventByID returns an event, or ErrNotFound.
func (db *DB) EventByID(ctx context.Context, eventID string) (*Event, error) {
	return scanEvent(db.queryRow(ctx, `SELECT `+eventCols+` FROM events WHERE event_id = ?`, eventID))
}

// EventByNID returns an event, or ErrNotFound.
func (db *DB) EventByNID(ctx context.Context, nid int64) (*Event, error) {
	return scanEvent(db.queryRow(ctx, `SELECT `+eventCols+` FROM events WHERE event_nid = ?`, nid))
}

// EventsByNID returns the events with these NIDs that exist, in no particular order.
func (db *DB) EventsByNID(ctx context.Context, nids []int64) ([]*Event, error) {
	var out []*Event
	for chunk := range chunks(nids, 500) {
		evs, err := queryEvents(ctx, db.read, `SELECT `+eventCols+` FROM events WHERE event_nid IN (`+placeholders(len(chunk))+`)`, anys(chunk)...)
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
	}
	return out, nil
}

// EventsByID returns the events with these IDs that exist, in no particular order.
func (db *DB) EventsByID(ctx context.Context, ids []string) ([]*Event, error) {
	var out []*Event
	for chunk := range chunks(ids, 500) {
		evs, err := queryEvents(ctx, db.read, `SELECT `+eventCols+` FROM events WHERE event_id IN (`+placeholders(len(chunk))+`)`, anys(chunk)...)
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
	}
	return out, nil
}

// NewEvent is an event to persist with PersistEvent.
type NewEvent struct {
	ID       string
	RoomNID  int64
	Type     string
	StateKey *string
	Sender   string
	Depth    int64
	OriginTS int64
	JSON     []byte
	// Membership is the content's membership for m.room.member events.
	Membership string
	RelatesTo  string
	RelType    string
	// Redacts is the event a redaction redacts, marked redacted in the same write when it
	// is in this room.
	Redacts string
	// Timeline: the event takes a stream position and joins the room's timeline. False for
	// outliers.
	Timeline bool
	// Extremities replace the room's forward extremities when non-nil.
	Extremities []string
	// Txn records a client transaction ID for the event (idempotent /send).
	TxnUser, TxnDevice, TxnID string
	// TxnScope is the endpoint the transaction ID belongs to (see TxnEvent).
	TxnScope string
}

// Persisted is what PersistEvent assigned.
type Persisted struct {
	NID         int64
	StreamPos   int64
	StateBefore int64
	StateAfter  int64
}

// PersistEvent stores ev in the caller's transaction: the event, its stream position, the
// room's new current state (a new snapshot when ev is state), memberships, extremities,
// depth and the search index (see search.go). The event's ID must be new; a duplicate is
// ErrExists.
func (tx *Tx) PersistEvent(ev *NewEvent) (*Persisted, error) {
	var p Persisted
	var snapshot, maxDepth int64
	if err := tx.QueryRow(`SELECT snapshot_nid, max_depth FROM rooms WHERE room_nid = ?`, ev.RoomNID).Scan(&snapshot, &maxDepth); err != nil {
		return nil, fmt.Errorf("room %d: %w", ev.RoomNID, notFound(err))
	}
	p.StateBefore, p.StateAfter = snapshot, snapshot
	var pos any
	if ev.Timeline {
		n, err := tx.NextPos()
		if err != nil {
			return nil, err
		}
		p.StreamPos, pos = n, n
	}
	res, err := tx.Exec(`INSERT INTO events (event_id, room_nid, type, state_key, sender, depth, origin_ts, stream_pos,
			state_before, relates_to, rel_type, json)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, nullif(?, ''), nullif(?, ''), ?) ON CONFLICT (event_id) DO NOTHING`,
		ev.ID, ev.RoomNID, ev.Type, ev.StateKey, ev.Sender, ev.Depth, ev.OriginTS, pos, snapshot, ev.RelatesTo, ev.RelType, ev.JSON)
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, fmt.Errorf("event %s: %w", ev.ID, ErrExists)
	}
	if p.NID, err = res.LastInsertId(); err != nil {
		return nil, err
	}
	if ev.Timeline {
		if err := tx.indexEvent(p.NID, ev, &p); err != nil {
			return nil, err
		}
	}
	if ev.StateKey != nil && ev.Timeline {
		key := StateKey{ev.Type, *ev.StateKey}
		var replaces int64
		err := tx.QueryRow(`SELECT event_nid FROM current_state WHERE room_nid = ? AND type = ? AND state_key = ?`,
			ev.RoomNID, key.Type, key.StateKey).Scan(&replaces)
		if err != nil && err != sql.ErrNoRows {
			return nil, err
		}
		if replaces != 0 {
			if _, err := tx.Exec(`UPDATE events SET replaces_nid = ? WHERE event_nid = ?`, replaces, p.NID); err != nil {
				return nil, err
			}
		}
		if p.StateAfter, err = tx.NewSnapshot(ev.RoomNID, snapshot, StateMap{key: p.NID}); err != nil {
			return nil, err
		}
		if err := tx.setCurrent(ev.RoomNID, key, p.NID, ev.Membership, p.StreamPos); err != nil {
			return nil, err
		}
		if ev.Type == "m.room.member" {
			if _, err := tx.Exec(`INSERT INTO membership_log (stream_pos, room_nid, user_id, membership, event_nid) VALUES (?, ?, ?, ?, ?)`,
				p.StreamPos, ev.RoomNID, *ev.StateKey, ev.Membership, p.NID); err != nil {
				return nil, err
			}
		}
	}
	if ev.Redacts != "" && ev.Timeline {
		if _, err := tx.Exec(`UPDATE events SET redacted_by = ? WHERE event_id = ? AND room_nid = ? AND redacted_by IS NULL`,
			ev.ID, ev.Redacts, ev.RoomNID); err != nil {
			return nil, err
		}
		if err := tx.unindexEvent(ev.RoomNID, ev.Redacts); err != nil {
			return nil, err
		}
	}
	if ev.Timeline {
		ext := "[]"
		if ev.Extremities != nil {
			b, _ := json.Marshal(ev.Extremities)
			ext = string(b)
		}
		if _, err := tx.Exec(`UPDATE rooms SET snapshot_nid = ?, max_depth = max(max_depth, ?),
				extremities = CASE WHEN ? THEN ? ELSE extremities END WHERE room_nid = ?`,
			p.StateAfter, ev.Depth, ev.Extremities != nil, ext, ev.RoomNID); err != nil {
			return nil, err
		}
	}
	if ev.TxnID != "" {
		if _, err := tx.Exec(`INSERT INTO room_txn_ids (user_id, device_id, scope, txn_id, event_id, ts) VALUES (?, ?, ?, ?, ?, ?)`,
			ev.TxnUser, ev.TxnDevice, ev.TxnScope, ev.TxnID, ev.ID, ev.OriginTS); err != nil {
			return nil, err
		}
	}
	return &p, nil
}

func (tx *Tx) setCurrent(roomNID int64, key StateKey, eventNID int64, membership string, pos int64) error {
	_, err := tx.Exec(`INSERT INTO current_state (room_nid, type, state_key, event_nid, membership, stream_pos)
		VALUES (?, ?, ?, ?, nullif(?, ''), ?)
		ON CONFLICT (room_nid, type, state_key) DO UPDATE SET event_nid = excluded.event_nid,
			membership = excluded.membership, stream_pos = excluded.stream_pos`,
		roomNID, key.Type, key.StateKey, eventNID, membership, pos)
	return err
}

// TxnEvent returns the event ID a client transaction produced, or ErrNotFound. A transaction
// ID is scoped to one device and one endpoint: scope is the request path without the ID.
func (db *DB) TxnEvent(ctx context.Context, userID, deviceID, scope, txnID string) (string, error) {
	var eventID string
	err := db.queryRow(ctx, `SELECT event_id FROM room_txn_ids WHERE user_id = ? AND device_id = ? AND scope = ? AND txn_id = ?`,
		userID, deviceID, scope, txnID).Scan(&eventID)
	return eventID, notFound(err)
}

// TxnIDOf returns the transaction ID with which this device sent eventID, or "".
func (db *DB) TxnIDOf(ctx context.Context, userID, deviceID, eventID string) string {
	var txnID string
	db.queryRow(ctx, `SELECT txn_id FROM room_txn_ids WHERE user_id = ? AND device_id = ? AND event_id = ?`,
		userID, deviceID, eventID).Scan(&txnID)
	return txnID
}

// CurrentState returns the room's current state from the current_state table.
func (db *DB) CurrentState(ctx context.Context, roomNID int64) (StateMap, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT type, state_key, event_nid FROM current_state WHERE room_nid = ?`, roomNID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := StateMap{}
	for rows.Next() {
		var k StateKey
		var nid int64
		if err := rows.Scan(&k.Type, &k.StateKey, &nid); err != nil {
			return nil, err
		}
		m[k] = nid
	}
	return m, rows.Err()
}

// Member is one current membership of a room.
type Member struct {
	UserID     string
	Membership string
	EventNID   int64
}

// Members lists a room's current members whose membership is one of memberships (all when
// empty).
func (db *DB) Members(ctx context.Context, roomNID int64, memberships ...string) ([]Member, error) {
	q := `SELECT state_key, membership, event_nid FROM current_state WHERE room_nid = ? AND type = 'm.room.member'`
	args := []any{roomNID}
	if len(memberships) > 0 {
		q += ` AND membership IN (` + placeholders(len(memberships)) + `)`
		args = append(args, anys(memberships)...)
	}
	rows, err := db.read.QueryContext(ctx, q+` ORDER BY state_key`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		if err := rows.Scan(&m.UserID, &m.Membership, &m.EventNID); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Membership returns a user's current membership in a room ("" when none).
func (db *DB) Membership(ctx context.Context, roomNID int64, userID string) (string, int64, error) {
	var m string
	var nid int64
	err := db.queryRow(ctx, `SELECT membership, event_nid FROM current_state WHERE room_nid = ? AND type = 'm.room.member' AND state_key = ?`,
		roomNID, userID).Scan(&m, &nid)
	if err = notFound(err); err == ErrNotFound {
		return "", 0, nil
	}
	return m, nid, err
}

// UserRoom is one room a user has a membership in.
type UserRoom struct {
	RoomNID    int64
	RoomID     string
	Membership string
	EventNID   int64
	StreamPos  int64
}

// UserRooms lists the rooms where a user's current membership is one of memberships.
func (db *DB) UserRooms(ctx context.Context, userID string, memberships ...string) ([]UserRoom, error) {
	q := `SELECT c.room_nid, r.room_id, c.membership, c.event_nid, c.stream_pos FROM current_state c JOIN rooms r USING (room_nid)
		WHERE c.type = 'm.room.member' AND c.state_key = ?`
	args := []any{userID}
	if len(memberships) > 0 {
		q += ` AND c.membership IN (` + placeholders(len(memberships)) + `)`
		args = append(args, anys(memberships)...)
	}
	rows, err := db.read.QueryContext(ctx, q+` ORDER BY c.room_nid`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []UserRoom
	for rows.Next() {
		var u UserRoom
		if err := rows.Scan(&u.RoomNID, &u.RoomID, &u.Membership, &u.EventNID, &u.StreamPos); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// LastJoinPos returns the stream position of the user's latest join to the room, or 0.
func (db *DB) LastJoinPos(ctx context.Context, roomNID int64, userID string) (int64, error) {
	var pos sql.NullInt64
	err := db.queryRow(ctx, `SELECT max(stream_pos) FROM membership_log WHERE room_nid = ? AND user_id = ? AND membership = 'join'`,
		roomNID, userID).Scan(&pos)
	return pos.Int64, err
}

// NoBound is RoomEvents' to for "no bound" (history from other servers has negative
// positions, so 0 is a real bound).
const NoBound = math.MinInt64

// RoomEvents pages through a room's timeline by stream position. Forwards it returns events
// with from < pos <= to in ascending order; backwards, events with to < pos <= from in
// descending order. to = NoBound means no bound.
func (db *DB) RoomEvents(ctx context.Context, roomNID, from, to int64, backwards bool, limit int) ([]*Event, error) {
	if backwards {
		return queryEvents(ctx, db.cached(), `SELECT `+eventCols+` FROM events WHERE room_nid = ? AND stream_pos IS NOT NULL
			AND stream_pos <= ? AND stream_pos > ? ORDER BY stream_pos DESC LIMIT ?`, roomNID, from, to, limit)
	}
	if to == NoBound {
		to = math.MaxInt64
	}
	return queryEvents(ctx, db.cached(), `SELECT `+eventCols+` FROM events WHERE room_nid = ? AND stream_pos IS NOT NULL
		AND stream_pos > ? AND stream_pos <= ? ORDER BY stream_pos ASC LIMIT ?`, roomNID, from, to, limit)
}

// EventNear returns the timeline event closest to ts in a direction: the first at or after
// ts going forwards, the last at or before it going backwards.
func (db *DB) EventNear(ctx context.Context, roomNID, ts int64, backwards bool) (*Event, error) {
	if backwards {
		return scanEvent(db.queryRow(ctx, `SELECT `+eventCols+` FROM events WHERE room_nid = ? AND stream_pos IS NOT NULL
			AND origin_ts <= ? ORDER BY origin_ts DESC, stream_pos DESC LIMIT 1`, roomNID, ts))
	}
	return scanEvent(db.queryRow(ctx, `SELECT `+eventCols+` FROM events WHERE room_nid = ? AND stream_pos IS NOT NULL
		AND origin_ts >= ? ORDER BY origin_ts ASC, stream_pos ASC LIMIT 1`, roomNID, ts))
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func anys[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

func chunks[T any](xs []T, n int) func(func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(xs) > 0 {
			k := min(n, len(xs))
			if !yield(xs[:k]) {
				return
			}
			xs = xs[k:]
		}
	}
}

// CurrentEntry is one piece of a room's current state.
type CurrentEntry struct {
	Key        StateKey
	EventNID   int64
	EventID    string
	Membership string
}

// CurrentStateEntries returns the room's current state with event IDs and memberships.
func (db *DB) CurrentStateEntries(ctx context.Context, roomNID int64) ([]CurrentEntry, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT c.type, c.state_key, c.event_nid, e.event_id, coalesce(c.membership, '')
		FROM current_state c JOIN events e USING (event_nid) WHERE c.room_nid = ?`, roomNID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []CurrentEntry
	for rows.Next() {
		var c CurrentEntry
		if err := rows.Scan(&c.Key.Type, &c.Key.StateKey, &c.EventNID, &c.EventID, &c.Membership); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// CurrentStateEvents returns the events of a room's current state, optionally of one type.
func (db *DB) CurrentStateEvents(ctx context.Context, roomNID int64, typ string) ([]*Event, error) {
	q := `SELECT ` + eventColsE + ` FROM current_state c JOIN events e USING (event_nid) WHERE c.room_nid = ?`
	args := []any{roomNID}
	if typ != "" {
		q += ` AND c.type = ?`
		args = append(args, typ)
	}
	return queryEvents(ctx, db.read, q, args...)
}

// CurrentStateEvent returns one event of a room's current state, or ErrNotFound.
func (db *DB) CurrentStateEvent(ctx context.Context, roomNID int64, key StateKey) (*Event, error) {
	return scanEvent(db.queryRow(ctx, `SELECT `+eventColsE+` FROM current_state c JOIN events e USING (event_nid)
		WHERE c.room_nid = ? AND c.type = ? AND c.state_key = ?`, roomNID, key.Type, key.StateKey))
}

// SetPublished lists or unlists a room in the public room directory.
func (tx *Tx) SetPublished(roomNID int64, published bool) error {
	_, err := tx.Exec(`UPDATE rooms SET published = ? WHERE room_nid = ?`, published, roomNID)
	return err
}

// InsertAlias maps alias to a room. An alias in use is ErrExists.
func (tx *Tx) InsertAlias(alias, roomID, creator string) error {
	res, err := tx.Exec(`INSERT INTO room_aliases (alias, room_id, creator) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, alias, roomID, creator)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrExists
	}
	return nil
}

// DeleteAlias removes an alias; a missing one is ErrNotFound.
func (tx *Tx) DeleteAlias(alias string) error {
	res, err := tx.Exec(`DELETE FROM room_aliases WHERE alias = ?`, alias)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// Alias is one room alias.
type Alias struct {
	Alias, RoomID, Creator string
}

// AliasByName resolves an alias, or ErrNotFound.
func (db *DB) AliasByName(ctx context.Context, alias string) (*Alias, error) {
	var a Alias
	err := db.queryRow(ctx, `SELECT alias, room_id, creator FROM room_aliases WHERE alias = ?`, alias).Scan(&a.Alias, &a.RoomID, &a.Creator)
	if err != nil {
		return nil, notFound(err)
	}
	return &a, nil
}

// RoomAliases lists a room's local aliases.
func (db *DB) RoomAliases(ctx context.Context, roomID string) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias`, roomID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// MoveAliases points every alias of one room at another (room upgrades).
func (tx *Tx) MoveAliases(from, to string) error {
	_, err := tx.Exec(`UPDATE room_aliases SET room_id = ? WHERE room_id = ?`, to, from)
	return err
}

// Forget hides a room the user has left.
func (tx *Tx) Forget(userID string, roomNID int64) error {
	_, err := tx.Exec(`INSERT INTO forgotten_rooms (user_id, room_nid) VALUES (?, ?) ON CONFLICT DO NOTHING`, userID, roomNID)
	return err
}

// Unforget clears the forgotten mark when the user comes back to the room.
func (tx *Tx) Unforget(userID string, roomNID int64) error {
	_, err := tx.Exec(`DELETE FROM forgotten_rooms WHERE user_id = ? AND room_nid = ?`, userID, roomNID)
	return err
}

// Forgotten says whether the user forgot the room.
func (db *DB) Forgotten(ctx context.Context, userID string, roomNID int64) (bool, error) {
	var n int
	err := db.queryRow(ctx, `SELECT count(*) FROM forgotten_rooms WHERE user_id = ? AND room_nid = ?`, userID, roomNID).Scan(&n)
	return n > 0, err
}

// InboundEvent is an event from another server to store with InsertEvent.
type InboundEvent struct {
	NewEvent
	// StateBefore is the snapshot of the state before the event (0: unknown, for outliers).
	StateBefore int64
	Rejected    bool
	SoftFailed  bool
	Outlier     bool
	// Backfilled history takes a position before every other event (see migration 0007):
	// Pos, reserved with ReserveBackfill.
	Backfilled bool
	Pos        int64
}

// ReserveBackfill reserves n positions for history from other servers and returns the
// lowest; the reserved positions are lowest … lowest+n-1, all below any used before.
func (tx *Tx) ReserveBackfill(n int) (int64, error) {
	var low int64
	err := tx.QueryRow(`UPDATE stream SET backfill_pos = backfill_pos - ? WHERE id = 1 RETURNING backfill_pos`, n).Scan(&low)
	return low, err
}

// InsertEvent stores an event from another server without touching the room's current
// state or extremities: timeline events (not outliers, rejected or soft-failed) take a
// stream position, and state events get their state-after snapshot. A known event ID is
// ErrExists.
func (tx *Tx) InsertEvent(ev *InboundEvent) (*Persisted, error) {
	p := &Persisted{StateBefore: ev.StateBefore, StateAfter: ev.StateBefore}
	timeline := !ev.Outlier && !ev.Rejected && !ev.SoftFailed
	var pos any
	if timeline {
		var n int64
		var err error
		if ev.Backfilled {
			n = ev.Pos
		} else {
			n, err = tx.NextPos()
		}
		if err != nil {
			return nil, err
		}
		p.StreamPos, pos = n, n
	}
	res, err := tx.Exec(`INSERT INTO events (event_id, room_nid, type, state_key, sender, depth, origin_ts, stream_pos,
			state_before, rejected, soft_failed, relates_to, rel_type, json)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, nullif(?, ''), nullif(?, ''), ?) ON CONFLICT (event_id) DO NOTHING`,
		ev.ID, ev.RoomNID, ev.Type, ev.StateKey, ev.Sender, ev.Depth, ev.OriginTS, pos, ev.StateBefore,
		ev.Rejected, ev.SoftFailed, ev.RelatesTo, ev.RelType, ev.JSON)
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		// An outlier (fetched as an auth or state event) that now takes its place in the
		// timeline is promoted; anything else is a duplicate.
		var nid int64
		var had sql.NullInt64
		var rejected bool
		if err := tx.QueryRow(`SELECT event_nid, stream_pos, rejected FROM events WHERE event_id = ?`, ev.ID).Scan(&nid, &had, &rejected); err != nil {
			return nil, err
		}
		if had.Valid || rejected || !timeline {
			return nil, fmt.Errorf("event %s: %w", ev.ID, ErrExists)
		}
		if _, err := tx.Exec(`UPDATE events SET stream_pos = ?, state_before = ?, soft_failed = ? WHERE event_nid = ?`,
			pos, ev.StateBefore, ev.SoftFailed, nid); err != nil {
			return nil, err
		}
		p.NID = nid
	} else if p.NID, err = res.LastInsertId(); err != nil {
		return nil, err
	}
	// Search: new timeline events are indexed (search's recent order relies on event NIDs
	// growing with stream positions, so history backfilled from other servers is not).
	if timeline && !ev.Backfilled {
		if err := tx.indexEvent(p.NID, &ev.NewEvent, p); err != nil {
			return nil, err
		}
	}
	if ev.StateKey != nil && !ev.Outlier && !ev.Rejected {
		key := StateKey{ev.Type, *ev.StateKey}
		if prev, err := readSnapshot(tx.ctx, txQuerier{tx}, ev.StateBefore, ` WHERE d.type = ? AND d.state_key = ?`, key.Type, key.StateKey); err != nil {
			return nil, err
		} else if r := prev[key]; r != 0 {
			if _, err := tx.Exec(`UPDATE events SET replaces_nid = ? WHERE event_nid = ?`, r, p.NID); err != nil {
				return nil, err
			}
		}
		if p.StateAfter, err = tx.NewSnapshot(ev.RoomNID, ev.StateBefore, StateMap{key: p.NID}); err != nil {
			return nil, err
		}
	}
	if ev.Redacts != "" && timeline {
		if _, err := tx.Exec(`UPDATE events SET redacted_by = ? WHERE event_id = ? AND room_nid = ? AND redacted_by IS NULL`,
			ev.ID, ev.Redacts, ev.RoomNID); err != nil {
			return nil, err
		}
		if err := tx.unindexEvent(ev.RoomNID, ev.Redacts); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// CurrentChange is one change to a room's current state.
type CurrentChange struct {
	EventNID int64 // 0: the key leaves the state
	// Membership, for m.room.member keys.
	Membership string
}

// SetCurrentState moves a room's current state to snapshot, applying changes to the
// current_state table (and the membership log) at stream position pos.
func (tx *Tx) SetCurrentState(roomNID, snapshot int64, changes map[StateKey]CurrentChange, pos int64) error {
	for k, c := range changes {
		if c.EventNID == 0 {
			if _, err := tx.Exec(`DELETE FROM current_state WHERE room_nid = ? AND type = ? AND state_key = ?`, roomNID, k.Type, k.StateKey); err != nil {
				return err
			}
			continue
		}
		if err := tx.setCurrent(roomNID, k, c.EventNID, c.Membership, pos); err != nil {
			return err
		}
		if k.Type == "m.room.member" {
			// One log row per position: several changes at once (a state resolution) share
			// the event's position, so later ones take fresh positions.
			logPos := pos
			var taken int
			tx.QueryRow(`SELECT count(*) FROM membership_log WHERE stream_pos = ?`, logPos).Scan(&taken)
			if taken > 0 {
				var err error
				if logPos, err = tx.NextPos(); err != nil {
					return err
				}
			}
			if _, err := tx.Exec(`INSERT INTO membership_log (stream_pos, room_nid, user_id, membership, event_nid) VALUES (?, ?, ?, ?, ?)`,
				logPos, roomNID, k.StateKey, c.Membership, c.EventNID); err != nil {
				return err
			}
		}
	}
	_, err := tx.Exec(`UPDATE rooms SET snapshot_nid = ? WHERE room_nid = ?`, snapshot, roomNID)
	return err
}

// SetExtremities replaces a room's forward extremities and raises its depth.
func (tx *Tx) SetExtremities(roomNID int64, extremities []string, depth int64) error {
	b, _ := json.Marshal(extremities)
	_, err := tx.Exec(`UPDATE rooms SET extremities = ?, max_depth = max(max_depth, ?) WHERE room_nid = ?`, string(b), depth, roomNID)
	return err
}

// EventIDsByNID maps event NIDs to IDs.
func (db *DB) EventIDsByNID(ctx context.Context, nids []int64) (map[int64]string, error) {
	return db.eventText(ctx, "event_id", nids)
}

// eventText maps event NIDs to one text column of their events; column is one of this
// package's constants, never input.
func (db *DB) eventText(ctx context.Context, column string, nids []int64) (map[int64]string, error) {
	out := make(map[int64]string, len(nids))
	for chunk := range chunks(nids, 500) {
		rows, err := db.read.QueryContext(ctx, `SELECT event_nid, `+column+` FROM events WHERE event_nid IN (`+placeholders(len(chunk))+`)`, anys(chunk)...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var n int64
			var s string
			if err := rows.Scan(&n, &s); err != nil {
				rows.Close()
				return nil, err
			}
			out[n] = s
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// SetStrippedState keeps the stripped state another server sent with a user's invite.
func (tx *Tx) SetStrippedState(roomNID int64, userID string, state []byte) error {
	_, err := tx.Exec(`INSERT INTO stripped_state (room_nid, user_id, state) VALUES (?, ?, ?)
		ON CONFLICT (room_nid, user_id) DO UPDATE SET state = excluded.state`, roomNID, userID, state)
	return err
}

// StrippedState returns the stripped state stored for a user's invite, or ErrNotFound.
func (db *DB) StrippedState(ctx context.Context, roomNID int64, userID string) ([]byte, error) {
	var b []byte
	err := db.queryRow(ctx, `SELECT state FROM stripped_state WHERE room_nid = ? AND user_id = ?`, roomNID, userID).Scan(&b)
	return b, notFound(err)
}

// ServersSharingRooms lists the servers with joined members in the rooms where user is
// joined (the audience of the user's presence and device-list updates).
func (db *DB) ServersSharingRooms(ctx context.Context, userID string) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT DISTINCT substr(o.state_key, instr(o.state_key, ':') + 1)
		FROM current_state u JOIN current_state o ON o.room_nid = u.room_nid AND o.type = 'm.room.member' AND o.membership = 'join'
		WHERE u.type = 'm.room.member' AND u.state_key = ? AND u.membership = 'join'`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// UsersSharingRooms lists the users joined to any room where user is joined (user too).
func (db *DB) UsersSharingRooms(ctx context.Context, userID string) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT DISTINCT o.state_key
		FROM current_state u JOIN current_state o ON o.room_nid = u.room_nid AND o.type = 'm.room.member' AND o.membership = 'join'
		WHERE u.type = 'm.room.member' AND u.state_key = ? AND u.membership = 'join'`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{userID}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		if s != userID {
			out = append(out, s)
		}
	}
	return out, rows.Err()
}
