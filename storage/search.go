package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/tidwall/gjson"
)

// Full-text search over room events: the FTS5 table event_search (migration 0008) holds the
// searchable text of every timeline event, keyed by event NID. PersistEvent indexes an event
// in the same write that stores it and drops an event from the index in the write that
// redacts it, so the index never runs ahead of or behind the events.

// SearchKeys are the event content keys search covers (the spec's room_events keys), each
// with its column in event_search.
var SearchKeys = map[string]string{
	"content.body":  "body",
	"content.name":  "name",
	"content.topic": "topic",
}

// SearchableText returns the search key an event's text is indexed under and that text:
// content.body of m.room.message, content.name of m.room.name, and content.topic of
// m.room.topic together with the text/plain bodies of its m.topic. Other events, and events
// without such text, return "", "".
func SearchableText(typ string, eventJSON []byte) (key, text string) {
	switch typ {
	case "m.room.message":
		return "content.body", stringAt(eventJSON, "content.body")
	case "m.room.name":
		return "content.name", stringAt(eventJSON, "content.name")
	case "m.room.topic":
		parts := []string{}
		if t := stringAt(eventJSON, "content.topic"); t != "" {
			parts = append(parts, t)
		}
		for _, r := range gjson.GetBytes(eventJSON, `content.m\.topic.m\.text`).Array() {
			mime := r.Get("mimetype")
			if body := r.Get("body"); body.Type == gjson.String && body.Str != "" &&
				(!mime.Exists() || mime.Str == "text/plain") && !slices.Contains(parts, body.Str) {
				parts = append(parts, body.Str)
			}
		}
		return "content.topic", strings.Join(parts, "\n")
	}
	return "", ""
}

func stringAt(eventJSON []byte, path string) string {
	if r := gjson.GetBytes(eventJSON, path); r.Type == gjson.String {
		return r.Str
	}
	return ""
}

// indexEvent adds a timeline event's searchable text, if it has any, to the index.
func (tx *Tx) indexEvent(nid int64, typ string, eventJSON []byte) error {
	key, text := SearchableText(typ, eventJSON)
	if text == "" {
		return nil
	}
	_, err := tx.Exec(`INSERT INTO event_search (rowid, `+SearchKeys[key]+`) VALUES (?, ?)`, nid, text)
	return err
}

// unindexEvent drops a redacted event from the index (a no-op when it was never there).
func (tx *Tx) unindexEvent(roomNID int64, eventID string) error {
	_, err := tx.Exec(`DELETE FROM event_search WHERE rowid = (SELECT event_nid FROM events WHERE event_id = ? AND room_nid = ?)`,
		eventID, roomNID)
	return err
}

// SearchQuery asks the index for timeline events of some rooms. Visibility is the caller's
// business; the query only narrows by room, key, type and sender.
type SearchQuery struct {
	Expr *SearchExpr
	// Keys narrow the search to some of SearchKeys; empty means all.
	Keys []string
	// Rooms to search, by NID; none finds nothing.
	Rooms []int64
	// Types and NotTypes are event types, where * matches any run of characters.
	Types, NotTypes []string
	// Senders and NotSenders are user IDs.
	Senders, NotSenders []string
	// ContainsURL, when set, keeps only events whose content has (or lacks) a url string.
	ContainsURL *bool
	// Recent orders newest first; otherwise by rank, best first, and newest first among
	// equal ranks.
	Recent bool
	// After continues after this hit in the query's order; nil starts at the beginning.
	After *SearchCursor
	// Limit caps Search's hits.
	Limit int
}

// SearchCursor is a place in a search's order: the rank and event NID of a hit.
type SearchCursor struct {
	Rank float64
	NID  int64
}

// SearchHit is one event the index found.
type SearchHit struct {
	Event *Event
	// Rank is how well the event matches (FTS5's bm25, negated): higher is better.
	Rank float64
}

// Cursor is the place of h in a search's order.
func (h SearchHit) Cursor() *SearchCursor {
	return &SearchCursor{Rank: h.Rank, NID: h.Event.NID}
}

// SearchBucket counts the hits of a search that share a room and the state before them:
// history visibility depends on nothing else for events found by search, so a caller can
// decide visibility once per bucket instead of once per event.
type SearchBucket struct {
	RoomNID     int64
	StateBefore int64
	Count       int
	// MinPos and MaxPos are the bucket's lowest and highest stream positions.
	MinPos, MaxPos int64
}

// where builds the WHERE clause shared by Search and SearchBuckets, for events e joined to
// the matches m.
func (q *SearchQuery) where() (string, []any) {
	var b strings.Builder
	var args []any
	b.WriteString(`e.room_nid IN (SELECT value FROM json_each(?)) AND e.stream_pos IS NOT NULL
		AND e.redacted_by IS NULL AND e.rejected = 0 AND e.soft_failed = 0`)
	args = append(args, jsonArray(q.Rooms))
	if len(q.Types) > 0 {
		b.WriteString(` AND EXISTS (SELECT 1 FROM json_each(?) WHERE e.type GLOB value)`)
		args = append(args, jsonArray(globs(q.Types)))
	}
	if len(q.NotTypes) > 0 {
		b.WriteString(` AND NOT EXISTS (SELECT 1 FROM json_each(?) WHERE e.type GLOB value)`)
		args = append(args, jsonArray(globs(q.NotTypes)))
	}
	if len(q.Senders) > 0 {
		b.WriteString(` AND e.sender IN (SELECT value FROM json_each(?))`)
		args = append(args, jsonArray(q.Senders))
	}
	if len(q.NotSenders) > 0 {
		b.WriteString(` AND e.sender NOT IN (SELECT value FROM json_each(?))`)
		args = append(args, jsonArray(q.NotSenders))
	}
	if q.ContainsURL != nil {
		b.WriteString(` AND (json_type(CAST(e.json AS TEXT), '$.content.url') IS 'text') = ?`)
		args = append(args, *q.ContainsURL)
	}
	return b.String(), args
}

// match returns the FTS5 query: the expression, narrowed to the columns of q.Keys.
func (q *SearchQuery) match() (string, error) {
	if q.Expr == nil {
		return "", fmt.Errorf("storage: search without an expression")
	}
	var cols []string
	for _, k := range q.Keys {
		c, ok := SearchKeys[k]
		if !ok {
			return "", fmt.Errorf("storage: %q is not a search key", k)
		}
		if !slices.Contains(cols, c) {
			cols = append(cols, c)
		}
	}
	if len(cols) == 0 || len(cols) == len(SearchKeys) {
		return q.Expr.Match, nil
	}
	return "{" + strings.Join(cols, " ") + "} : (" + q.Expr.Match + ")", nil
}

// Search returns up to q.Limit events matching q, after q.After, in q's order. Events that
// are redacted, rejected, soft-failed or outside any timeline are never found.
//
// Newest first is event NID order, descending: a timeline event's NID and stream position
// are both assigned in insertion order by the one writer, in the same INSERT (PersistEvent),
// so the two orders agree, and FTS5 can hand out matches by descending rowid and stop at the
// page, instead of joining and sorting every match of a common word.
func (db *DB) Search(ctx context.Context, q SearchQuery) ([]SearchHit, error) {
	match, err := q.match()
	if err != nil {
		return nil, err
	}
	if q.Recent {
		return db.searchRecent(ctx, q, match)
	}
	return db.searchRanked(ctx, q, match)
}

func (db *DB) searchRecent(ctx context.Context, q SearchQuery, match string) ([]SearchHit, error) {
	where, args := q.where()
	if c := q.After; c != nil {
		where += ` AND event_search.rowid < ?`
		args = append(args, c.NID)
	}
	// CROSS JOIN keeps the index the outer loop, walked in rowid order.
	evs, err := queryEvents(ctx, db.read, `SELECT `+eventColsE+` FROM event_search CROSS JOIN events e ON e.event_nid = event_search.rowid
		WHERE event_search MATCH ? AND `+where+` ORDER BY event_search.rowid DESC LIMIT ?`, append(append([]any{match}, args...), q.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	hits := make([]SearchHit, len(evs))
	for i, ev := range evs {
		hits[i].Event = ev
	}
	if len(hits) > 0 {
		if err := db.rankHits(ctx, match, hits); err != nil {
			return nil, err
		}
	}
	return hits, nil
}

func (db *DB) searchRanked(ctx context.Context, q SearchQuery, match string) ([]SearchHit, error) {
	where, args := q.where()
	if c := q.After; c != nil {
		where += ` AND (m.rank < ? OR (m.rank = ? AND m.nid < ?))`
		args = append(args, c.Rank, c.Rank, c.NID)
	}
	// Every match is ranked and sorted, by its NID and rank alone; the page's events are
	// loaded after. The matches are materialised so that the cursor can compare ranks, and
	// CROSS JOIN keeps them the outer loop: left to itself, the planner walks every event of
	// the rooms through events_by_room_stream and probes the matches, a scan of the rooms'
	// whole history for a word that occurs twice.
	rows, err := db.read.QueryContext(ctx, `WITH m AS MATERIALIZED (SELECT rowid AS nid, -bm25(event_search) AS rank FROM event_search WHERE event_search MATCH ?)
		SELECT m.nid, m.rank FROM m CROSS JOIN events e ON e.event_nid = m.nid WHERE `+where+` ORDER BY m.rank DESC, m.nid DESC LIMIT ?`,
		append(append([]any{match}, args...), q.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	defer rows.Close()
	var nids []int64
	ranks := map[int64]float64{}
	for rows.Next() {
		var nid int64
		var rank float64
		if err := rows.Scan(&nid, &rank); err != nil {
			return nil, err
		}
		nids = append(nids, nid)
		ranks[nid] = rank
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	evs, err := db.EventsByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	byNID := map[int64]*Event{}
	for _, ev := range evs {
		byNID[ev.NID] = ev
	}
	hits := make([]SearchHit, 0, len(nids))
	for _, nid := range nids {
		if ev := byNID[nid]; ev != nil {
			hits = append(hits, SearchHit{Event: ev, Rank: ranks[nid]})
		}
	}
	return hits, nil
}

// rankHits fills in the ranks of hits found without them. One FTS5 query over the hits'
// range of rowids ranks them all: a query per hit (or rowid IN (…), which FTS5 runs as one
// query per value) would count the documents of every phrase again each time, for bm25's
// inverse document frequency, a walk of the whole posting list of a common word.
func (db *DB) rankHits(ctx context.Context, match string, hits []SearchHit) error {
	lo, hi := hits[0].Event.NID, hits[0].Event.NID
	for _, h := range hits {
		lo, hi = min(lo, h.Event.NID), max(hi, h.Event.NID)
	}
	rows, err := db.read.QueryContext(ctx, `SELECT rowid, -bm25(event_search) FROM event_search
		WHERE event_search MATCH ? AND rowid BETWEEN ? AND ?`, match, lo, hi)
	if err != nil {
		return fmt.Errorf("search rank: %w", err)
	}
	defer rows.Close()
	ranks := map[int64]float64{}
	for rows.Next() {
		var nid int64
		var r float64
		if err := rows.Scan(&nid, &r); err != nil {
			return err
		}
		ranks[nid] = r
	}
	for i := range hits {
		hits[i].Rank = ranks[hits[i].Event.NID]
	}
	return rows.Err()
}

// SearchBuckets counts every event matching q (ignoring After and Limit), grouped by room
// and the state before the event.
func (db *DB) SearchBuckets(ctx context.Context, q SearchQuery) ([]SearchBucket, error) {
	match, err := q.match()
	if err != nil {
		return nil, err
	}
	where, args := q.where()
	query := `WITH m AS MATERIALIZED (SELECT rowid AS nid FROM event_search WHERE event_search MATCH ?)
		SELECT e.room_nid, e.state_before, count(*), min(e.stream_pos), max(e.stream_pos)
		FROM m CROSS JOIN events e ON e.event_nid = m.nid WHERE ` + where + ` GROUP BY e.room_nid, e.state_before`
	rows, err := db.read.QueryContext(ctx, query, append([]any{match}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	defer rows.Close()
	var out []SearchBucket
	for rows.Next() {
		var sb SearchBucket
		if err := rows.Scan(&sb.RoomNID, &sb.StateBefore, &sb.Count, &sb.MinPos, &sb.MaxPos); err != nil {
			return nil, err
		}
		out = append(out, sb)
	}
	return out, rows.Err()
}

// globs turns filter patterns, where only * is special, into GLOB patterns.
func globs(patterns []string) []string {
	out := make([]string, len(patterns))
	r := strings.NewReplacer("[", "[[]", "?", "[?]")
	for i, p := range patterns {
		out[i] = r.Replace(p)
	}
	return out
}

// jsonArray encodes a list as a JSON array for json_each.
func jsonArray[T any](xs []T) string {
	if len(xs) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(xs)
	return string(b)
}
