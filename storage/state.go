package storage

import (
	"context"
	"database/sql"
)

// State snapshots: see migration 0007. A snapshot with sequence s stores its difference from
// the ancestor with sequence s&(s-1) (its base), so reading any snapshot visits at most
// log2(s) deltas, and writing one reads only the deltas between its parent and its base.

// NewSnapshot records the state parent + changes as a new snapshot of room and returns it.
// An event NID of 0 in changes removes that key.
func (tx *Tx) NewSnapshot(roomNID, parent int64, changes StateMap) (int64, error) {
	var seq int64
	if parent != 0 {
		if err := tx.QueryRow(`SELECT seq FROM state_snapshots WHERE snapshot_nid = ?`, parent).Scan(&seq); err != nil {
			return 0, notFound(err)
		}
	}
	seq++
	baseSeq := seq & (seq - 1)
	// Walk from the parent down its base links until reaching the new snapshot's base,
	// collecting the deltas in between; nearer deltas win.
	delta := StateMap{}
	node, nodeSeq := parent, seq-1
	for node != 0 && nodeSeq > baseSeq {
		rows, err := tx.Query(`SELECT type, state_key, event_nid FROM state_deltas WHERE snapshot_nid = ?`, node)
		if err != nil {
			return 0, err
		}
		for rows.Next() {
			var k StateKey
			var nid int64
			if err := rows.Scan(&k.Type, &k.StateKey, &nid); err != nil {
				rows.Close()
				return 0, err
			}
			if _, seen := delta[k]; !seen {
				delta[k] = nid
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, err
		}
		if err := tx.QueryRow(`SELECT s.base_nid, coalesce(b.seq, 0) FROM state_snapshots s
				LEFT JOIN state_snapshots b ON b.snapshot_nid = s.base_nid WHERE s.snapshot_nid = ?`, node).Scan(&node, &nodeSeq); err != nil {
			return 0, err
		}
	}
	base := node
	if baseSeq == 0 {
		base = 0
	}
	for k, nid := range changes {
		delta[k] = nid
	}
	res, err := tx.Exec(`INSERT INTO state_snapshots (room_nid, parent_nid, seq, base_nid) VALUES (?, ?, ?, ?)`, roomNID, parent, seq, base)
	if err != nil {
		return 0, err
	}
	nid, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	for k, ev := range delta {
		if ev == 0 && base == 0 {
			continue // removing from the empty state
		}
		if _, err := tx.Exec(`INSERT INTO state_deltas (snapshot_nid, type, state_key, event_nid) VALUES (?, ?, ?, ?)`,
			nid, k.Type, k.StateKey, ev); err != nil {
			return 0, err
		}
	}
	return nid, nil
}

// snapshotQuery reads the deltas along a snapshot's base chain, nearest first.
const snapshotQuery = `WITH RECURSIVE chain(nid, hop) AS (
		SELECT ?, 0
		UNION ALL
		SELECT s.base_nid, chain.hop + 1 FROM state_snapshots s JOIN chain ON s.snapshot_nid = chain.nid
		WHERE s.base_nid != 0)
	SELECT d.type, d.state_key, d.event_nid FROM chain JOIN state_deltas d ON d.snapshot_nid = chain.nid`

func readSnapshot(ctx context.Context, q querier, snapshot int64, filter string, args ...any) (StateMap, error) {
	m := StateMap{}
	if snapshot == 0 {
		return m, nil
	}
	rows, err := q.QueryContext(ctx, snapshotQuery+filter+` ORDER BY chain.hop`, append([]any{snapshot}, args...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	seen := map[StateKey]bool{}
	for rows.Next() {
		var k StateKey
		var nid int64
		if err := rows.Scan(&k.Type, &k.StateKey, &nid); err != nil {
			return nil, err
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		if nid != 0 {
			m[k] = nid
		}
	}
	return m, rows.Err()
}

// Snapshot returns the whole state of a snapshot.
func (db *DB) Snapshot(ctx context.Context, snapshot int64) (StateMap, error) {
	return readSnapshot(ctx, db.read, snapshot, "")
}

// SnapshotKeys returns only the given keys of a snapshot (those present).
func (db *DB) SnapshotKeys(ctx context.Context, snapshot int64, keys ...StateKey) (StateMap, error) {
	if len(keys) == 0 {
		return StateMap{}, nil
	}
	filter := ` WHERE (d.type, d.state_key) IN (VALUES `
	var args []any
	for i, k := range keys {
		if i > 0 {
			filter += ","
		}
		filter += "(?, ?)"
		args = append(args, k.Type, k.StateKey)
	}
	return readSnapshot(ctx, db.read, snapshot, filter+")", args...)
}

// SnapshotType returns the keys of one event type in a snapshot (e.g. every member).
func (db *DB) SnapshotType(ctx context.Context, snapshot int64, typ string) (StateMap, error) {
	return readSnapshot(ctx, db.read, snapshot, ` WHERE d.type = ?`, typ)
}

// txQuerier adapts a Tx to querier.
type txQuerier struct{ tx *Tx }

func (q txQuerier) QueryContext(_ context.Context, query string, args ...any) (*sql.Rows, error) {
	return q.tx.Query(query, args...)
}
func (q txQuerier) QueryRowContext(_ context.Context, query string, args ...any) *sql.Row {
	return q.tx.QueryRow(query, args...)
}

// Snapshot returns a snapshot's whole state as this transaction sees it.
func (tx *Tx) Snapshot(snapshot int64) (StateMap, error) {
	return readSnapshot(tx.ctx, txQuerier{tx}, snapshot, "")
}

// DeltaRows counts the stored state delta rows (for tests and metrics).
func (db *DB) DeltaRows(ctx context.Context) (int, error) {
	var n int
	err := db.queryRow(ctx, `SELECT count(*) FROM state_deltas`).Scan(&n)
	return n, err
}
