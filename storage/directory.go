package storage

import (
	"context"
	"strings"
)

// The queries behind the public room directory, room summaries, space hierarchies and
// mutual rooms. They read the current_state table, so a room's numbers are as fresh as its
// last state change.

// PublishedRooms lists the rooms listed in the public room directory, with their NID, ID,
// version and snapshot (the other fields of Room are left empty).
func (db *DB) PublishedRooms(ctx context.Context) ([]*Room, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT room_nid, room_id, version, snapshot_nid FROM rooms WHERE published = 1`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Room
	for rows.Next() {
		r := &Room{Published: true}
		if err := rows.Scan(&r.NID, &r.ID, &r.Version, &r.SnapshotNID); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RoomStats is what a room's directory entry or summary is made of: its joined member count
// and the current events of a few state types.
type RoomStats struct {
	RoomNID       int64
	JoinedMembers int
	// State holds the current event of each requested type with the empty state key.
	State map[string]*Event
}

// RoomStats loads the joined member count of each room and its current state events of the
// given types (state key ""). The result is aligned with roomNIDs.
func (db *DB) RoomStats(ctx context.Context, roomNIDs []int64, types []string) ([]*RoomStats, error) {
	out := make([]*RoomStats, len(roomNIDs))
	byNID := make(map[int64]*RoomStats, len(roomNIDs))
	for i, nid := range roomNIDs {
		out[i] = &RoomStats{RoomNID: nid, State: map[string]*Event{}}
		byNID[nid] = out[i]
	}
	for chunk := range chunks(roomNIDs, 400) {
		rows, err := db.read.QueryContext(ctx, `SELECT room_nid, count(*) FROM current_state
			WHERE room_nid IN (`+placeholders(len(chunk))+`) AND type = 'm.room.member' AND membership = 'join'
			GROUP BY room_nid`, anys(chunk)...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var nid int64
			var n int
			if err := rows.Scan(&nid, &n); err != nil {
				rows.Close()
				return nil, err
			}
			byNID[nid].JoinedMembers = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if len(types) == 0 {
			continue
		}
		args := append(anys(chunk), anys(types)...)
		evs, err := queryEvents(ctx, db.read, `SELECT `+eventColsE+` FROM current_state c JOIN events e USING (event_nid)
			WHERE c.room_nid IN (`+placeholders(len(chunk))+`) AND c.type IN (`+placeholders(len(types))+`) AND c.state_key = ''`, args...)
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			byNID[ev.RoomNID].State[ev.Type] = ev
		}
	}
	return out, nil
}

// JoinedServers lists the servers with a joined member in a room, in no particular order.
func (db *DB) JoinedServers(ctx context.Context, roomNID int64) ([]string, error) {
	members, err := db.Members(ctx, roomNID, "join")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, m := range members {
		_, server, ok := strings.Cut(m.UserID, ":")
		if ok && !seen[server] {
			seen[server] = true
			out = append(out, server)
		}
	}
	return out, nil
}

// mutualRoomsFrom is the rooms both users are joined to.
const mutualRoomsFrom = ` FROM current_state a
	JOIN current_state b ON b.room_nid = a.room_nid AND b.type = 'm.room.member' AND b.state_key = ? AND b.membership = 'join'
	JOIN rooms r ON r.room_nid = a.room_nid
	WHERE a.type = 'm.room.member' AND a.state_key = ? AND a.membership = 'join'`

// MutualRooms lists, in room ID order, up to limit rooms after the room ID after (""
// for the first) to which both users are joined.
func (db *DB) MutualRooms(ctx context.Context, user, other, after string, limit int) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT r.room_id`+mutualRoomsFrom+` AND r.room_id > ? ORDER BY r.room_id LIMIT ?`,
		other, user, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// CountMutualRooms counts the rooms to which both users are joined.
func (db *DB) CountMutualRooms(ctx context.Context, user, other string) (int, error) {
	var n int
	err := db.queryRow(ctx, `SELECT count(*)`+mutualRoomsFrom, other, user).Scan(&n)
	return n, err
}
