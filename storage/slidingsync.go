package storage

import (
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/id"
)

// Queries for simplified sliding sync (server/sync/sliding*.go): the order of a user's rooms,
// what changed in a room's state since a position, and room tags for list filters.

// BumpStamps returns, for each of rooms, the stream position of its newest timeline event at
// or before upto whose type is one of types; rooms with none are left out. History fetched
// from other servers (negative positions) never counts. Each room is read from its newest
// event backwards, so the cost is how far back its last such event lies, not its length.
func (db *DB) BumpStamps(ctx context.Context, roomNIDs []int64, types []string, upto int64) (map[int64]int64, error) {
	out := make(map[int64]int64, len(roomNIDs))
	if len(roomNIDs) == 0 || len(types) == 0 {
		return out, nil
	}
	nids, _ := json.Marshal(roomNIDs)
	typeList, _ := json.Marshal(types)
	rows, err := db.cached().QueryContext(ctx, `SELECT r.value, (SELECT e.stream_pos FROM events e
			WHERE e.room_nid = r.value AND e.stream_pos IS NOT NULL AND e.stream_pos > 0 AND e.stream_pos <= ?1
			AND e.type IN (SELECT t.value FROM json_each(?2) t)
			ORDER BY e.stream_pos DESC LIMIT 1)
		FROM json_each(?3) r`, upto, string(typeList), string(nids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var nid int64
		var pos *int64
		if err := rows.Scan(&nid, &pos); err != nil {
			return nil, err
		}
		if pos != nil {
			out[nid] = *pos
		}
	}
	return out, rows.Err()
}

// CurrentStateChanges returns the keys of a room's current state whose event became current
// at a position in (since, upto], with that event. A key that changed in the range and again
// after upto is left out: its newer change is in the range that covers it. Keys that left
// the state (only state resolution removes) are not seen.
func (db *DB) CurrentStateChanges(ctx context.Context, roomNID, since, upto int64) (StateMap, error) {
	rows, err := db.cached().QueryContext(ctx, `SELECT type, state_key, event_nid FROM current_state
		WHERE room_nid = ? AND stream_pos > ? AND stream_pos <= ?`, roomNID, since, upto)
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

// RoomAccountDataOfType returns the content of one type of a user's per-room account data
// (m.tag for room tags) in every room that has it.
func (db *DB) RoomAccountDataOfType(ctx context.Context, userID id.UserID, typ string) (map[id.RoomID]json.RawMessage, error) {
	rows, err := db.cached().QueryContext(ctx, `SELECT room_id, content FROM account_data
		WHERE user_id = ? AND room_id != '' AND type = ?`, userID, typ)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[id.RoomID]json.RawMessage{}
	for rows.Next() {
		var room id.RoomID
		var content string
		if err := rows.Scan(&room, &content); err != nil {
			return nil, err
		}
		out[room] = json.RawMessage(content)
	}
	return out, rows.Err()
}

// ForgottenRooms returns the NIDs of the rooms a user has forgotten.
func (db *DB) ForgottenRooms(ctx context.Context, userID string) (map[int64]bool, error) {
	rows, err := db.cached().QueryContext(ctx, `SELECT room_nid FROM forgotten_rooms WHERE user_id = ?`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]bool{}
	for rows.Next() {
		var nid int64
		if err := rows.Scan(&nid); err != nil {
			return nil, err
		}
		out[nid] = true
	}
	return out, rows.Err()
}

// EventSenders returns the sender of each of the events, by event NID.
func (db *DB) EventSenders(ctx context.Context, nids []int64) (map[int64]string, error) {
	return db.eventText(ctx, "sender", nids)
}

// RoomKind is what list filters ask of a room: its type (the create event's content.type;
// nil for none) and whether it is encrypted. Known says the room's create event is held;
// for a room known only from an invite over federation it is not, and Type is nil.
type RoomKind struct {
	Type      *string
	Encrypted bool
	Known     bool
}

// RoomKinds returns the kind of each of rooms, from their current state.
func (db *DB) RoomKinds(ctx context.Context, roomNIDs []int64) (map[int64]RoomKind, error) {
	out := make(map[int64]RoomKind, len(roomNIDs))
	if len(roomNIDs) == 0 {
		return out, nil
	}
	nids, _ := json.Marshal(roomNIDs)
	rows, err := db.cached().QueryContext(ctx, `SELECT c.room_nid, c.type, CASE WHEN c.type = 'm.room.create' THEN e.json END
		FROM current_state c JOIN events e ON e.event_nid = c.event_nid
		WHERE c.room_nid IN (SELECT value FROM json_each(?)) AND c.type IN ('m.room.create', 'm.room.encryption') AND c.state_key = ''`,
		string(nids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var nid int64
		var typ string
		var create []byte
		if err := rows.Scan(&nid, &typ, &create); err != nil {
			return nil, err
		}
		k := out[nid]
		if typ == "m.room.encryption" {
			k.Encrypted = true
		} else {
			k.Known = true
			var c struct {
				Content struct {
					Type *string `json:"type"`
				} `json:"content"`
			}
			if json.Unmarshal(create, &c) == nil {
				k.Type = c.Content.Type
			}
		}
		out[nid] = k
	}
	return out, rows.Err()
}

// SnapshotSelect returns the given keys of a snapshot (those present) and every key of the
// given types: two indexed reads (one OR-ed read would scan every delta of the chain).
func (db *DB) SnapshotSelect(ctx context.Context, snapshot int64, keys []StateKey, types []string) (StateMap, error) {
	m, err := db.SnapshotKeys(ctx, snapshot, keys...)
	if err != nil || len(types) == 0 {
		return m, err
	}
	byType, err := readSnapshot(ctx, db.read, snapshot, ` WHERE d.type IN (`+placeholders(len(types))+`)`, anys(types)...)
	if err != nil {
		return nil, err
	}
	for k, nid := range byType {
		m[k] = nid
	}
	return m, nil
}
