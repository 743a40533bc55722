package storage

import (
	"context"
	"strings"
)

// Relations are events whose content's m.relates_to names a parent (relates_to) and a
// relation type (rel_type). Every query here only counts a child that is in the parent's room,
// in the timeline (not an outlier, rejected or soft-failed), not redacted (a redaction prunes
// m.relates_to, which breaks the relationship), and has a rel_type (replies, which have none,
// are not relations in this sense).
const relationChild = `stream_pos IS NOT NULL AND redacted_by IS NULL AND rel_type IS NOT NULL`

// RelationsQuery selects the events relating to one parent event.
type RelationsQuery struct {
	RoomNID int64
	EventID string
	// RelType and EventType, when set, must match every event returned and every event on
	// the way to it from the parent.
	RelType, EventType string
	// Sender, when set, must have sent the events returned.
	Sender string
	// Depth is how many levels of relations to follow: 1 (or 0) is direct children only,
	// 2 adds their children, and so on.
	Depth int
	// From and To bound stream positions as RoomEvents does: backwards, To < pos <= From;
	// forwards, From < pos <= To, with To = 0 meaning no bound.
	From, To  int64
	Backwards bool
	Limit     int
}

// Relations lists the events relating to a parent, in stream order (newest first when
// paging backwards).
func (db *DB) Relations(ctx context.Context, q RelationsQuery) ([]*Event, error) {
	// filter applies the type filters to one level's rows (alias a).
	filter := func(a string) (string, []any) {
		f, args := "", []any{}
		if q.RelType != "" {
			f += ` AND ` + a + `rel_type = ?`
			args = append(args, q.RelType)
		}
		if q.EventType != "" {
			f += ` AND ` + a + `type = ?`
			args = append(args, q.EventType)
		}
		return f, args
	}
	f0, fargs := filter("")
	f1, _ := filter("e.")
	// The recursive part follows relates_to downwards, Depth levels at most; UNION drops
	// repeats, and the depth bound ends cycles (possible only where event IDs are not
	// hashes, in room versions 1 and 2).
	query := `WITH RECURSIVE rel (event_id, depth) AS (
			SELECT event_id, 1 FROM events INDEXED BY events_by_relation WHERE relates_to = ? AND room_nid = ? AND ` + relationChild + f0 + `
			UNION
			SELECT e.event_id, rel.depth + 1 FROM rel JOIN events e INDEXED BY events_by_relation ON e.relates_to = rel.event_id
			WHERE rel.depth < ? AND e.room_nid = ? AND ` + prefixAll("e.", relationChild) + f1 + `
		)
		SELECT ` + eventCols + ` FROM events WHERE event_id IN (SELECT event_id FROM rel) AND event_id != ?`
	args := []any{q.EventID, q.RoomNID}
	args = append(args, fargs...)
	args = append(args, max(q.Depth, 1), q.RoomNID)
	args = append(args, fargs...)
	args = append(args, q.EventID)
	if q.Sender != "" {
		query += ` AND sender = ?`
		args = append(args, q.Sender)
	}
	if q.Backwards {
		query += ` AND stream_pos <= ? AND stream_pos > ? ORDER BY stream_pos DESC LIMIT ?`
		args = append(args, q.From, q.To, q.Limit)
	} else {
		to := q.To
		if to == 0 {
			to = 1 << 62
		}
		query += ` AND stream_pos > ? AND stream_pos <= ? ORDER BY stream_pos ASC LIMIT ?`
		args = append(args, q.From, to, q.Limit)
	}
	return queryEvents(ctx, db.read, query, args...)
}

// RelationsOf returns the children of any of parents with one relation type, in a room, in
// stream order: one query for a whole page of parents (bundled aggregations).
func (db *DB) RelationsOf(ctx context.Context, roomNID int64, parents []string, relType string) ([]*Event, error) {
	var out []*Event
	for chunk := range chunks(parents, 500) {
		args := append(anys(chunk), relType, roomNID)
		evs, err := queryEvents(ctx, db.read, `SELECT `+eventCols+` FROM events INDEXED BY events_by_room_relation
			WHERE relates_to IN (`+placeholders(len(chunk))+`) AND rel_type = ? AND room_nid = ? AND `+relationChild+`
			ORDER BY stream_pos`, args...)
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
	}
	return out, nil
}

// ThreadSummary sums up one thread: how many events it holds, its newest event, and whether
// a given user sent any of them.
type ThreadSummary struct {
	Count int
	// LatestNID is the thread's newest event.
	LatestNID int64
	// Participated says the user asked about sent an event in the thread.
	Participated bool
}

// ThreadSummaries sums up the threads rooted at any of roots in a room, keyed by root ID;
// roots without a thread are absent.
func (db *DB) ThreadSummaries(ctx context.Context, roomNID int64, roots []string, user string) (map[string]ThreadSummary, error) {
	out := map[string]ThreadSummary{}
	for chunk := range chunks(roots, 500) {
		// With exactly one max() in the query, SQLite takes the bare event_nid from the row
		// holding the maximum.
		args := append([]any{user}, anys(chunk)...)
		rows, err := db.read.QueryContext(ctx, `SELECT relates_to, count(*), sum(sender = ?), max(stream_pos), event_nid FROM events INDEXED BY events_by_room_relation
			WHERE relates_to IN (`+placeholders(len(chunk))+`) AND rel_type = 'm.thread' AND room_nid = ? AND `+relationChild+`
			GROUP BY relates_to`, append(args, roomNID)...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var root string
			var s ThreadSummary
			var mine, latest int64
			if err := rows.Scan(&root, &s.Count, &mine, &latest, &s.LatestNID); err != nil {
				rows.Close()
				return nil, err
			}
			s.Participated = mine > 0
			out[root] = s
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ThreadRoot is a thread's root with the stream position of the thread's newest event.
type ThreadRoot struct {
	Root   *Event
	Latest int64
}

// ThreadRoots lists a room's thread roots by their thread's latest activity, newest first,
// starting with threads whose newest event is at or before stream position from. Roots
// must be timeline events of the room without a relation of their own. With participant
// set, only threads that user started or replied in are listed.
func (db *DB) ThreadRoots(ctx context.Context, roomNID, from int64, participant string, limit int) ([]ThreadRoot, error) {
	q := `SELECT ` + eventColsE + `, t.latest FROM (
			SELECT relates_to, max(stream_pos) AS latest FROM events INDEXED BY events_by_room_relation
			WHERE room_nid = ? AND rel_type = 'm.thread' AND relates_to IS NOT NULL AND ` + relationChild + `
			GROUP BY relates_to HAVING latest <= ?
		) t CROSS JOIN events e ON e.event_id = t.relates_to
		WHERE e.room_nid = ? AND e.stream_pos IS NOT NULL AND e.rel_type IS NULL`
	args := []any{roomNID, from, roomNID}
	if participant != "" {
		q += ` AND (e.sender = ? OR EXISTS (SELECT 1 FROM events p INDEXED BY events_by_room_relation WHERE p.relates_to = e.event_id AND p.rel_type = 'm.thread'
			AND p.room_nid = e.room_nid AND p.sender = ? AND ` + prefixAll("p.", relationChild) + `))`
		args = append(args, participant, participant)
	}
	rows, err := db.read.QueryContext(ctx, q+` ORDER BY t.latest DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ThreadRoot
	for rows.Next() {
		var tr ThreadRoot
		ev, err := scanEvent(scanFunc(func(dest ...any) error { return rows.Scan(append(dest, &tr.Latest)...) }))
		if err != nil {
			return nil, err
		}
		tr.Root = ev
		out = append(out, tr)
	}
	return out, rows.Err()
}

// prefixAll qualifies the columns of relationChild with an alias.
func prefixAll(alias, cond string) string {
	return alias + strings.ReplaceAll(cond, " AND ", " AND "+alias)
}

// scanFunc adapts a function to the Scan interface scanEvent reads from.
type scanFunc func(dest ...any) error

func (f scanFunc) Scan(dest ...any) error { return f(dest...) }

// EventsNear pages through a room's timeline by origin_server_ts from ts: forwards, the
// events at or after ts in ascending (timestamp, stream position) order; backwards, those at
// or before it in descending order. after, when set, resumes just past that event.
func (db *DB) EventsNear(ctx context.Context, roomNID, ts int64, backwards bool, after *Event, limit int) ([]*Event, error) {
	q := `SELECT ` + eventCols + ` FROM events WHERE room_nid = ? AND stream_pos IS NOT NULL`
	args := []any{roomNID}
	if backwards {
		q += ` AND origin_ts <= ?`
		args = append(args, ts)
		if after != nil {
			q += ` AND (origin_ts < ? OR (origin_ts = ? AND stream_pos < ?))`
			args = append(args, after.OriginTS, after.OriginTS, after.StreamPos)
		}
		q += ` ORDER BY origin_ts DESC, stream_pos DESC LIMIT ?`
	} else {
		q += ` AND origin_ts >= ?`
		args = append(args, ts)
		if after != nil {
			q += ` AND (origin_ts > ? OR (origin_ts = ? AND stream_pos > ?))`
			args = append(args, after.OriginTS, after.OriginTS, after.StreamPos)
		}
		q += ` ORDER BY origin_ts ASC, stream_pos ASC LIMIT ?`
	}
	return queryEvents(ctx, db.read, q, append(args, limit)...)
}
