package storage

import (
	"context"
	"database/sql"
	"sync"
)

// Queries the read pool runs often are prepared once and kept: for a short indexed query
// SQLite's parser costs more than running it (a /sync that wakes for one message spends a
// quarter of its time parsing). database/sql keeps one prepared copy per connection.
// Only queries with fixed text belong here; texts that vary (IN lists of any length) would
// fill the cache, which is why it is bounded and falls back to unprepared queries when full.

// maxCachedStmts bounds the cache.
const maxCachedStmts = 256

type stmtCache struct {
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

// stmt returns query prepared on the read pool, or nil when it cannot be (the cache is full,
// or preparing failed; running it unprepared then reports any error).
func (db *DB) stmt(ctx context.Context, query string) *sql.Stmt {
	c := &db.stmts
	c.mu.Lock()
	s, ok := c.stmts[query]
	full := len(c.stmts) >= maxCachedStmts
	c.mu.Unlock()
	if ok || full {
		return s
	}
	s, err := db.read.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stmts == nil {
		c.stmts = map[string]*sql.Stmt{}
	}
	if old, ok := c.stmts[query]; ok { // prepared meanwhile by another request
		s.Close()
		return old
	}
	c.stmts[query] = s
	return s
}

// cachedReader runs read-pool queries through the statement cache.
type cachedReader struct{ db *DB }

func (c cachedReader) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := c.db.stmt(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return c.db.read.QueryContext(ctx, query, args...)
}

func (c cachedReader) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if s := c.db.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return c.db.read.QueryRowContext(ctx, query, args...)
}

// cached is the read pool with prepared statements, for queries with fixed text.
func (db *DB) cached() querier { return cachedReader{db} }
