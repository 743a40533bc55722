package storage

import (
	"context"
)

// Queries for /sync. Memberships come from the membership log (migration 0007), which is in
// stream order, so "the user's membership at position P" is the log's latest entry at or
// before P: a sync reads everything as of one position even while writes continue.

// SyncMembership is a user's membership of one room as of some stream position.
type SyncMembership struct {
	RoomNID    int64
	RoomID     string
	Version    string
	Membership string
	// EventNID is the membership event; StreamPos its position.
	EventNID  int64
	StreamPos int64
}

const syncMembershipCols = `m.room_nid, r.room_id, r.version, m.membership, m.event_nid, max(m.stream_pos)`

func (db *DB) syncMemberships(ctx context.Context, query string, args ...any) ([]SyncMembership, error) {
	rows, err := db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SyncMembership
	for rows.Next() {
		var m SyncMembership
		if err := rows.Scan(&m.RoomNID, &m.RoomID, &m.Version, &m.Membership, &m.EventNID, &m.StreamPos); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// MembershipsAt returns the user's membership of every room they ever had one in, as of
// stream position pos, ordered by room NID. It reads the user's whole membership history:
// for initial syncs.
func (db *DB) MembershipsAt(ctx context.Context, userID string, pos int64) ([]SyncMembership, error) {
	// With a single max() aggregate, SQLite takes the bare columns from the row holding it.
	return db.syncMemberships(ctx, `SELECT `+syncMembershipCols+` FROM membership_log m JOIN rooms r USING (room_nid)
		WHERE m.user_id = ? AND m.stream_pos <= ? GROUP BY m.room_nid ORDER BY m.room_nid`, userID, pos)
}

// RoomMembershipsAt is MembershipsAt for some rooms only (by room ID); rooms where the user
// had no membership by pos are left out.
func (db *DB) RoomMembershipsAt(ctx context.Context, userID string, pos int64, roomIDs []string) ([]SyncMembership, error) {
	var out []SyncMembership
	for chunk := range chunks(roomIDs, 500) {
		ms, err := db.syncMemberships(ctx, `SELECT `+syncMembershipCols+` FROM membership_log m JOIN rooms r USING (room_nid)
			WHERE m.user_id = ? AND m.stream_pos <= ? AND r.room_id IN (`+placeholders(len(chunk))+`)
			GROUP BY m.room_nid ORDER BY m.room_nid`, append([]any{userID, pos}, anys(chunk)...)...)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}

// MembershipChanges returns the user's membership log entries with positions in (from, to],
// oldest first.
func (db *DB) MembershipChanges(ctx context.Context, userID string, from, to int64) ([]SyncMembership, error) {
	return db.syncMemberships(ctx, `SELECT m.room_nid, r.room_id, r.version, m.membership, m.event_nid, m.stream_pos
		FROM membership_log m JOIN rooms r USING (room_nid)
		WHERE m.user_id = ? AND m.stream_pos > ? AND m.stream_pos <= ? ORDER BY m.stream_pos`, userID, from, to)
}

// rangeScanLimit is the widest stream range RoomsWithEvents reads event by event; wider
// ranges are answered room by room instead.
const rangeScanLimit = 4096

// RoomsWithEvents returns the IDs of the rooms where the user has or had a membership and
// that have timeline events with positions in (from, to]. The work is bounded by the smaller
// of the two: a short range (a client that keeps up) is read event by event, whatever the
// number of rooms; a long one (a client back after a week) room by room.
func (db *DB) RoomsWithEvents(ctx context.Context, userID string, from, to int64) ([]string, error) {
	var query string
	if to-from <= rangeScanLimit {
		query = `SELECT r.room_id FROM rooms r
			WHERE r.room_nid IN (SELECT e.room_nid FROM events e WHERE e.stream_pos > ?1 AND e.stream_pos <= ?2)
			AND EXISTS (SELECT 1 FROM current_state c WHERE c.room_nid = r.room_nid AND c.type = 'm.room.member' AND c.state_key = ?3)`
	} else {
		query = `SELECT r.room_id FROM current_state c JOIN rooms r USING (room_nid)
			WHERE c.type = 'm.room.member' AND c.state_key = ?3
			AND EXISTS (SELECT 1 FROM events e WHERE e.room_nid = c.room_nid AND e.stream_pos IS NOT NULL
				AND e.stream_pos > ?1 AND e.stream_pos <= ?2)`
	}
	rows, err := db.read.QueryContext(ctx, query, from, to, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// MemberSummary counts a room's joined and invited members (current state) and names up to
// heroes others in stream order: joined or invited ones, or, when there are none, those who
// left or were banned.
type MemberSummary struct {
	Joined, Invited int
	Heroes          []string
}

// RoomMemberSummary summarises a room's membership for a user (who is never a hero).
func (db *DB) RoomMemberSummary(ctx context.Context, roomNID int64, self string, heroes int) (*MemberSummary, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT state_key, coalesce(membership, '') FROM current_state
		WHERE room_nid = ? AND type = 'm.room.member' ORDER BY stream_pos`, roomNID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var s MemberSummary
	var gone []string
	for rows.Next() {
		var user, m string
		if err := rows.Scan(&user, &m); err != nil {
			return nil, err
		}
		switch m {
		case "join":
			s.Joined++
		case "invite":
			s.Invited++
		}
		if user == self {
			continue
		}
		switch m {
		case "join", "invite":
			if len(s.Heroes) < heroes {
				s.Heroes = append(s.Heroes, user)
			}
		case "leave", "ban":
			if len(gone) < heroes {
				gone = append(gone, user)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(s.Heroes) == 0 {
		s.Heroes = gone
	}
	return &s, nil
}
