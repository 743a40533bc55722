// Package storage is Fyr's only speaker of SQL: one SQLite database file (modernc.org/sqlite,
// pure Go) in WAL mode with synchronous=FULL, so an acknowledged write is on disk.
//
// Reads go to a pool of read-only connections and run concurrently with writes. Writes go
// through Write, which hands them to a single writer goroutine that commits many of them in one
// transaction (group commit): one fsync serves every request in the batch.
//
// The schema lives in numbered migrations embedded in the binary (migrations/NNNN_name.sql). A
// database whose schema is newer than this binary knows is refused and left untouched.
//
// It is not for policy: callers decide what may be written; storage only keeps it consistent.
package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Errors callers test for with errors.Is.
var (
	ErrNotFound       = errors.New("storage: not found")
	ErrExists         = errors.New("storage: already exists")
	ErrClosed         = errors.New("storage: database is closed")
	ErrSchemaTooNew   = errors.New("storage: database schema is newer than this binary")
	ErrNotFyrDatabase = errors.New("storage: not a Fyr database")
)

// Defaults for Options.
const (
	DefaultReadConns   = 4
	DefaultMaxBatch    = 256
	DefaultBusyTimeout = 5000 // milliseconds; only other processes (fyr user add) contend
)

// applicationID marks a SQLite file as Fyr's ("Fyr1"), so we never migrate someone else's file.
const applicationID = 0x46797231

// Options tune Open. The zero value means the defaults.
type Options struct {
	// ReadConns is the size of the read pool. Zero means DefaultReadConns.
	ReadConns int
	// MaxBatch caps how many Write calls share one transaction. Zero means DefaultMaxBatch;
	// 1 turns group commit off (one transaction and one fsync per Write).
	MaxBatch int
}

// DB is an open Fyr database. It is safe for concurrent use. Close it once.
type DB struct {
	path  string
	read  *sql.DB
	write *sql.DB

	reqs      chan *writeReq
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	maxBatch  int
	// stmts are the read pool's prepared statements (stmtcache.go).
	stmts stmtCache
}

// Open opens (creating if needed) the database at path and migrates it to the newest schema.
// A file that is not a Fyr database, or whose schema is newer than this binary, is refused
// without being modified.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if opts.ReadConns <= 0 {
		opts.ReadConns = DefaultReadConns
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if err := checkFile(ctx, path); err != nil {
		return nil, err
	}
	write, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	if err := migrate(ctx, write); err != nil {
		write.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	read, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	read.SetMaxOpenConns(opts.ReadConns)
	read.SetMaxIdleConns(opts.ReadConns)
	read.SetConnMaxIdleTime(0)
	db := &DB{
		path:     path,
		read:     read,
		write:    write,
		reqs:     make(chan *writeReq, opts.MaxBatch),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		maxBatch: opts.MaxBatch,
	}
	go db.writer()
	return db, nil
}

// dsn builds the connection string. Every connection gets the same pragmas; readers are
// additionally query_only so a bug cannot write around the writer.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", DefaultBusyTimeout))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	if readOnly {
		q.Add("_pragma", "query_only(ON)")
	}
	return "file:" + path + "?" + q.Encode()
}

// checkFile looks at an existing file through a read-only connection that sets no pragmas,
// so a file we refuse is not touched (not even switched to WAL).
func checkFile(ctx context.Context, path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	ro, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer ro.Close()
	var appID, version int
	if err := ro.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := ro.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if appID != applicationID {
		var tables int
		if err := ro.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&tables); err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if appID != 0 || tables > 0 {
			return fmt.Errorf("%w: %s has application_id %#x and %d schema objects; point --database at a Fyr database or an empty path", ErrNotFyrDatabase, path, appID, tables)
		}
	}
	if n := len(migrations()); version > n {
		return fmt.Errorf("%w: %s is at schema %d, this binary knows up to %d; run the newer Fyr that wrote it, or restore a backup", ErrSchemaTooNew, path, version, n)
	}
	return nil
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Close waits for queued writes to finish, then closes every connection. It is safe to call
// more than once; later calls return nil.
func (db *DB) Close() error {
	var err error
	db.closeOnce.Do(func() {
		close(db.stop)
		<-db.done
		err = errors.Join(db.read.Close(), db.write.Close())
	})
	return err
}

// SchemaVersion reports the number of migrations applied.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.read.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	return v, err
}

// queryRow runs a single-row query with fixed text on the read pool, prepared once.
func (db *DB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return db.cached().QueryRowContext(ctx, query, args...)
}

// notFound turns sql.ErrNoRows into ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}
