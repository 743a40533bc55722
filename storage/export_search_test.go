package storage

import "context"

// SearchIndexHas reports whether the search index has a row for the event, for tests that
// must see the index itself rather than what Search (which also skips redacted events)
// returns.
func SearchIndexHas(db *DB, eventNID int64) (bool, error) {
	var n int
	err := db.read.QueryRowContext(context.Background(), `SELECT count(*) FROM event_search WHERE rowid = ?`, eventNID).Scan(&n)
	return n > 0, err
}
