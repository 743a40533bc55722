package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Tx is one Write's view of the current write transaction. It is only valid inside the
// function passed to Write.
type Tx struct {
	ctx  context.Context
	conn *sql.Conn
}

// Exec runs a statement in the transaction.
func (tx *Tx) Exec(query string, args ...any) (sql.Result, error) {
	return tx.conn.ExecContext(tx.ctx, query, args...)
}

// QueryRow runs a single-row query in the transaction; it sees the transaction's own writes.
func (tx *Tx) QueryRow(query string, args ...any) *sql.Row {
	return tx.conn.QueryRowContext(tx.ctx, query, args...)
}

// Query runs a query in the transaction.
func (tx *Tx) Query(query string, args ...any) (*sql.Rows, error) {
	return tx.conn.QueryContext(tx.ctx, query, args...)
}

type writeReq struct {
	ctx  context.Context
	fn   func(*Tx) error
	done chan error
}

// Write runs fn in a write transaction and returns once the transaction is durably committed
// (or failed). fn's changes are atomic: if fn returns an error or panics, none of them are
// kept, and other Writes sharing the transaction are unaffected.
//
// fn runs on the single writer goroutine and may share its transaction with other Writes, so it
// must be short, must not block on anything but the Tx, and must never call Write itself:
// a nested Write waits for the writer that is running it, forever.
//
// If ctx ends before fn starts, fn does not run and Write returns ctx's error. Once fn has
// run, Write waits for the commit regardless of ctx, so its answer is the truth.
func (db *DB) Write(ctx context.Context, fn func(*Tx) error) error {
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case <-db.stop:
		return ErrClosed
	default:
	}
	select {
	case db.reqs <- req:
	case <-db.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-db.done:
		// The writer has exited. It answers everything it took before closing done, so an
		// empty req.done means the request raced with Close and never ran.
		select {
		case err := <-req.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// writer is the only goroutine that writes. It takes whatever requests are waiting (up to
// maxBatch), runs each inside a savepoint of one transaction, commits once and answers all.
func (db *DB) writer() {
	defer close(db.done)
	for {
		var first *writeReq
		select {
		case first = <-db.reqs:
		case <-db.stop:
			db.drain()
			return
		}
		batch := []*writeReq{first}
	fill:
		for len(batch) < db.maxBatch {
			select {
			case r := <-db.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		db.commit(batch)
	}
}

// drain answers requests that raced with Close: they are written, not dropped.
func (db *DB) drain() {
	for {
		select {
		case r := <-db.reqs:
			db.commit([]*writeReq{r})
		default:
			return
		}
	}
}

func (db *DB) commit(batch []*writeReq) {
	ctx := context.Background() // a request's ctx must not abort its neighbours' commit
	errs := make([]error, len(batch))
	fail := func(err error) {
		for _, r := range batch {
			r.done <- err
		}
	}
	conn, err := db.write.Conn(ctx)
	if err != nil {
		fail(fmt.Errorf("writer connection: %w", err))
		return
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		fail(fmt.Errorf("begin: %w", err))
		return
	}
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		errs[i] = runSavepoint(ctx, conn, &Tx{ctx: r.ctx, conn: conn}, r.fn)
		if errs[i] != nil && errors.Is(errs[i], errSavepoint) {
			// The transaction itself is broken: give up on all of it.
			conn.ExecContext(ctx, "ROLLBACK")
			fail(errs[i])
			return
		}
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		conn.ExecContext(ctx, "ROLLBACK")
		fail(fmt.Errorf("commit: %w", err))
		return
	}
	for i, r := range batch {
		r.done <- errs[i]
	}
}

var errSavepoint = errors.New("storage: savepoint")

// runSavepoint runs fn inside SAVEPOINT w, rolling back to it if fn fails or panics.
func runSavepoint(ctx context.Context, conn *sql.Conn, tx *Tx, fn func(*Tx) error) (err error) {
	if _, err := conn.ExecContext(ctx, "SAVEPOINT w"); err != nil {
		return fmt.Errorf("%w: %v", errSavepoint, err)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("storage: write panicked: %v", p)
		}
		if err != nil {
			if _, rbErr := conn.ExecContext(ctx, "ROLLBACK TO w; RELEASE w"); rbErr != nil {
				err = fmt.Errorf("%w: rollback: %v (after %v)", errSavepoint, rbErr, err)
			}
			return
		}
		if _, relErr := conn.ExecContext(ctx, "RELEASE w"); relErr != nil {
			err = fmt.Errorf("%w: release: %v", errSavepoint, relErr)
		}
	}()
	return fn(tx)
}
