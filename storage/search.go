package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/tidwall/gjson"
)

// Full-text search over room events: the FTS5 table event_search (migration 0012) holds the
// searchable text of every timeline event, keyed by event NID, with copies of the columns
// search filters on. PersistEvent indexes an event in the same write that stores it and drops
// an event from the index in the write that redacts it, so the index never runs ahead of or
// behind the events. Rejected, soft-failed and outlier events never enter it.

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

// indexEvent adds a timeline event's searchable text, if it has any, to the index, with
// the columns search filters on.
func (tx *Tx) indexEvent(nid int64, ev *NewEvent, p *Persisted) error {
	key, text := SearchableText(ev.Type, ev.JSON)
	if text == "" {
		return nil
	}
	_, err := tx.Exec(`INSERT INTO event_search (rowid, `+SearchKeys[key]+`, room_nid, stream_pos, state_before, type, sender)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, nid, text, ev.RoomNID, p.StreamPos, p.StateBefore, ev.Type, ev.Sender)
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

// where builds the WHERE clause shared by Search and SearchBuckets, over event_search's
// own columns (qualified: json_each has a column named type): the index holds timeline
// events only, and loses them when they are redacted.
func (q *SearchQuery) where() (string, []any) {
	var b strings.Builder
	var args []any
	b.WriteString(`event_search.room_nid IN (SELECT value FROM json_each(?))`)
	args = append(args, jsonArray(q.Rooms))
	if len(q.Types) > 0 {
		b.WriteString(` AND EXISTS (SELECT 1 FROM json_each(?) WHERE event_search.type GLOB value)`)
		args = append(args, jsonArray(globs(q.Types)))
	}
	if len(q.NotTypes) > 0 {
		b.WriteString(` AND NOT EXISTS (SELECT 1 FROM json_each(?) WHERE event_search.type GLOB value)`)
		args = append(args, jsonArray(globs(q.NotTypes)))
	}
	if len(q.Senders) > 0 {
		b.WriteString(` AND event_search.sender IN (SELECT value FROM json_each(?))`)
		args = append(args, jsonArray(q.Senders))
	}
	if len(q.NotSenders) > 0 {
		b.WriteString(` AND event_search.sender NOT IN (SELECT value FROM json_each(?))`)
		args = append(args, jsonArray(q.NotSenders))
	}
	if q.ContainsURL != nil {
		// The only filter that needs the event itself.
		b.WriteString(` AND (SELECT json_type(CAST(e.json AS TEXT), '$.content.url') IS 'text' FROM events e
			WHERE e.event_nid = event_search.rowid) = ?`)
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

// Search returns up to q.Limit events matching q, after q.After, in q's order.
//
// Newest first is event NID order, descending: a timeline event's NID and stream position
// are both assigned in insertion order by the one writer, in the same INSERT (PersistEvent),
// so the two orders agree, and FTS5 can hand out matches by descending rowid and stop at the
// page, instead of ranking and sorting every match of a common word. By rank, every match
// is ranked and sorted, by NID and rank alone; only the page's events are loaded.
func (db *DB) Search(ctx context.Context, q SearchQuery) ([]SearchHit, error) {
	match, err := q.match()
	if err != nil {
		return nil, err
	}
	where, args := q.where()
	var query string
	if q.Recent {
		if c := q.After; c != nil {
			where += ` AND rowid < ?`
			args = append(args, c.NID)
		}
		query = `SELECT rowid, -bm25(event_search) FROM event_search WHERE event_search MATCH ? AND ` + where +
			` ORDER BY rowid DESC LIMIT ?`
	} else {
		// The matches are materialised so that the cursor can compare ranks.
		cursor := ``
		if c := q.After; c != nil {
			cursor = `WHERE rank < ? OR (rank = ? AND nid < ?)`
			args = append(args, c.Rank, c.Rank, c.NID)
		}
		query = `WITH m AS MATERIALIZED (SELECT rowid AS nid, -bm25(event_search) AS rank FROM event_search
			WHERE event_search MATCH ? AND ` + where + `) SELECT nid, rank FROM m ` + cursor + ` ORDER BY rank DESC, nid DESC LIMIT ?`
	}
	rows, err := db.read.QueryContext(ctx, query, append(append([]any{match}, args...), q.Limit)...)
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
		// Events are never deleted, so every indexed NID has its event; skipping a missing
		// one keeps a damaged index from failing every search that touches it.
		if ev := byNID[nid]; ev != nil {
			hits = append(hits, SearchHit{Event: ev, Rank: ranks[nid]})
		}
	}
	return hits, nil
}

// SearchBuckets counts every event matching q (ignoring After and Limit), grouped by room
// and the state before the event.
func (db *DB) SearchBuckets(ctx context.Context, q SearchQuery) ([]SearchBucket, error) {
	match, err := q.match()
	if err != nil {
		return nil, err
	}
	where, args := q.where()
	rows, err := db.read.QueryContext(ctx, `SELECT room_nid, state_before, count(*), min(stream_pos), max(stream_pos)
		FROM event_search WHERE event_search MATCH ? AND `+where+` GROUP BY room_nid, state_before`, append([]any{match}, args...)...)
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
