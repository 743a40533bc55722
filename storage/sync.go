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

func (db *DB) syncMemberships(ctx context.Context, q querier, query string, args ...any) ([]SyncMembership, error) {
	rows, err := q.QueryContext(ctx, query, args...)
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
	return db.syncMemberships(ctx, db.cached(), `SELECT `+syncMembershipCols+` FROM membership_log m JOIN rooms r USING (room_nid)
		WHERE m.user_id = ? AND m.stream_pos <= ? GROUP BY m.room_nid ORDER BY m.room_nid`, userID, pos)
}

// RoomMembershipsAt is MembershipsAt for some rooms only (by room ID); rooms where the user
// had no membership by pos are left out.
func (db *DB) RoomMembershipsAt(ctx context.Context, userID string, pos int64, roomIDs []string) ([]SyncMembership, error) {
	var out []SyncMembership
	for chunk := range chunks(roomIDs, 500) {
		ms, err := db.syncMemberships(ctx, db.read, `SELECT `+syncMembershipCols+` FROM membership_log m JOIN rooms r USING (room_nid)
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
// oldest first; to = 0 means no upper bound.
func (db *DB) MembershipChanges(ctx context.Context, userID string, from, to int64) ([]SyncMembership, error) {
	return db.syncMemberships(ctx, db.cached(), `SELECT m.room_nid, r.room_id, r.version, m.membership, m.event_nid, m.stream_pos
		FROM membership_log m JOIN rooms r USING (room_nid)
		WHERE m.user_id = ? AND m.stream_pos > ? AND (? = 0 OR m.stream_pos <= ?) ORDER BY m.stream_pos`, userID, from, to, to)
}

// rangeScanLimit is the widest stream range RoomsWithEvents reads event by event; wider
// ranges are answered room by room instead.
const rangeScanLimit = 4096

// RoomsWithEvents returns the rooms where the user has or had a membership and that have
// timeline events with positions in (from, to], each with the user's current membership
// (which is their membership at to unless MembershipChanges shows entries after to). The
// work is bounded by the smaller of two things: a short range (a client that keeps up) is
// read event by event, whatever the number of rooms; a long one (a client back after a
// week) room by room.
func (db *DB) RoomsWithEvents(ctx context.Context, userID string, from, to int64) ([]SyncMembership, error) {
	const cols = `c.room_nid, r.room_id, r.version, coalesce(c.membership, ''), c.event_nid, c.stream_pos`
	if to-from <= rangeScanLimit {
		return db.syncMemberships(ctx, db.cached(), `SELECT `+cols+` FROM rooms r
			JOIN current_state c ON c.room_nid = r.room_nid AND c.type = 'm.room.member' AND c.state_key = ?3
			WHERE r.room_nid IN (SELECT e.room_nid FROM events e WHERE e.stream_pos > ?1 AND e.stream_pos <= ?2)
			ORDER BY c.room_nid`, from, to, userID)
	}
	return db.syncMemberships(ctx, db.cached(), `SELECT `+cols+` FROM current_state c JOIN rooms r USING (room_nid)
		WHERE c.type = 'm.room.member' AND c.state_key = ?3
		AND EXISTS (SELECT 1 FROM events e WHERE e.room_nid = c.room_nid AND e.stream_pos IS NOT NULL
			AND e.stream_pos > ?1 AND e.stream_pos <= ?2)
		ORDER BY c.room_nid`, from, to, userID)
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
	rows, err := db.cached().QueryContext(ctx, `SELECT state_key, coalesce(membership, '') FROM current_state
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

// snapshotEventsQuery reads a snapshot's state events in one statement: the deltas along the
// snapshot's base chain, the nearest entry of each key winning (a removal, event 0, wins too
// and drops the key), joined with the events. CROSS JOIN keeps the entries as the outer
// loop; left to itself the planner scans every event and probes the entries.
const snapshotEventsQuery = `WITH RECURSIVE chain(nid, hop) AS (
		SELECT ?1, 0
		UNION ALL
		SELECT s.base_nid, chain.hop + 1 FROM state_snapshots s JOIN chain ON s.snapshot_nid = chain.nid
		WHERE s.base_nid != 0),
	entries AS (
		SELECT d.event_nid, row_number() OVER (PARTITION BY d.type, d.state_key ORDER BY chain.hop) AS rn
		FROM chain JOIN state_deltas d ON d.snapshot_nid = chain.nid WHERE d.type != ?2)
	SELECT ` + eventColsE + ` FROM entries x CROSS JOIN events e ON e.event_nid = x.event_nid
	WHERE x.rn = 1 AND x.event_nid != 0`

// SnapshotEvents returns the events of a snapshot's state, leaving out those of type except
// (a lazy-loading sync's member events) when it is set.
func (db *DB) SnapshotEvents(ctx context.Context, snapshot int64, except string) ([]*Event, error) {
	if snapshot == 0 {
		return nil, nil
	}
	return queryEvents(ctx, db.cached(), snapshotEventsQuery, snapshot, except)
}
