package storage

import (
	"context"
	"database/sql"
	"fmt"
)

// Kinds of outbound items.
const (
	OutboundPDU = 0
	OutboundEDU = 1
)

// OutboundItem is one queued PDU or EDU for one destination.
type OutboundItem struct {
	Seq       int64
	Kind      int
	Body      []byte
	CreatedTS int64
	ExpiresTS int64 // 0: never
}

// OutboundDestination is the delivery state of one destination.
type OutboundDestination struct {
	Name        string
	Failures    int
	DownSinceTS int64 // 0: not failing
	RetryAtTS   int64
	TxnID       string // "" when no transaction is in flight
	TxnLastSeq  int64
}

// EnqueueOutbound queues an item for destination, in the caller's transaction, so that an
// event and its delivery promise are written together.
func (tx *Tx) EnqueueOutbound(destination string, kind int, body []byte, now, expires int64) error {
	_, err := tx.Exec(`INSERT INTO outbound_items (destination, kind, body, created_ts, expires_ts)
		VALUES (?, ?, ?, ?, nullif(?, 0))`, destination, kind, body, now, expires)
	if err != nil {
		return err
	}
	_, err = tx.Exec(`INSERT INTO outbound_destinations (destination) VALUES (?) ON CONFLICT DO NOTHING`, destination)
	return err
}

// TrimOutbound keeps at most max PDUs queued for destination, dropping the oldest ones that
// are not part of a transaction in flight. It returns how many it dropped.
func (tx *Tx) TrimOutbound(destination string, max int) (int64, error) {
	res, err := tx.Exec(`DELETE FROM outbound_items WHERE seq IN (
			SELECT seq FROM outbound_items
			WHERE destination = ? AND kind = 0 AND seq > coalesce(
				(SELECT txn_last_seq FROM outbound_destinations WHERE destination = ?), 0)
			ORDER BY seq DESC LIMIT -1 OFFSET ?)`, destination, destination, max)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// OutboundBacklog counts the PDUs queued for destination.
func (tx *Tx) OutboundBacklog(destination string) (int, error) {
	var n int
	err := tx.QueryRow(`SELECT count(*) FROM outbound_items WHERE destination = ? AND kind = 0`, destination).Scan(&n)
	return n, err
}

// OutboundDestinations lists the destinations that have items queued.
func (db *DB) OutboundDestinations(ctx context.Context) ([]OutboundDestination, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT d.destination, d.failures, coalesce(d.down_since_ts, 0), d.retry_at_ts,
			coalesce(d.txn_id, ''), coalesce(d.txn_last_seq, 0)
		FROM outbound_destinations d
		WHERE EXISTS (SELECT 1 FROM outbound_items i WHERE i.destination = d.destination)`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []OutboundDestination
	for rows.Next() {
		var d OutboundDestination
		if err := rows.Scan(&d.Name, &d.Failures, &d.DownSinceTS, &d.RetryAtTS, &d.TxnID, &d.TxnLastSeq); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// OutboundDestination returns one destination's delivery state (zero values if unknown).
func (db *DB) OutboundDestination(ctx context.Context, destination string) (*OutboundDestination, error) {
	d := OutboundDestination{Name: destination}
	err := db.queryRow(ctx, `SELECT failures, coalesce(down_since_ts, 0), retry_at_ts, coalesce(txn_id, ''), coalesce(txn_last_seq, 0)
		FROM outbound_destinations WHERE destination = ?`, destination).Scan(&d.Failures, &d.DownSinceTS, &d.RetryAtTS, &d.TxnID, &d.TxnLastSeq)
	if err != nil && notFound(err) != ErrNotFound {
		return nil, err
	}
	return &d, nil
}

// NextOutboundBatch returns the transaction to send to destination: the one in flight if
// there is one (the same items, under the same ID), else a new one of at most maxPDUs PDUs and
// maxEDUs EDUs in queue order, which it records as in flight. Stale EDUs are deleted first.
// It returns an empty ID when nothing is queued.
func (tx *Tx) NextOutboundBatch(destination string, maxPDUs, maxEDUs int, now int64) (txnID string, items []OutboundItem, err error) {
	if _, err := tx.Exec(`DELETE FROM outbound_items WHERE destination = ? AND expires_ts <= ?
		AND seq > coalesce((SELECT txn_last_seq FROM outbound_destinations WHERE destination = ?), 0)`, destination, now, destination); err != nil {
		return "", nil, err
	}
	var lastSeq sql.NullInt64
	var counter int64
	if err := tx.QueryRow(`SELECT coalesce(txn_id, ''), txn_last_seq, txn_counter FROM outbound_destinations WHERE destination = ?`,
		destination).Scan(&txnID, &lastSeq, &counter); err != nil {
		return "", nil, notFound(err)
	}
	inFlight := txnID != ""
	query := `SELECT seq, kind, body, created_ts, coalesce(expires_ts, 0) FROM outbound_items
		WHERE destination = ? AND seq <= ? ORDER BY seq`
	bound := lastSeq.Int64
	if !inFlight {
		bound = 1<<63 - 1
	}
	rows, err := tx.Query(query, destination, bound)
	if err != nil {
		return "", nil, err
	}
	pdus, edus := 0, 0
	for rows.Next() {
		var it OutboundItem
		if err := rows.Scan(&it.Seq, &it.Kind, &it.Body, &it.CreatedTS, &it.ExpiresTS); err != nil {
			rows.Close()
			return "", nil, err
		}
		if !inFlight {
			if it.Kind == OutboundPDU && pdus == maxPDUs || it.Kind == OutboundEDU && edus == maxEDUs {
				break // keep order: stop at the first item that does not fit
			}
		}
		if it.Kind == OutboundPDU {
			pdus++
		} else {
			edus++
		}
		items = append(items, it)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", nil, err
	}
	if len(items) == 0 {
		if inFlight { // everything in it went away: forget it
			_, err = tx.Exec(`UPDATE outbound_destinations SET txn_id = NULL, txn_last_seq = NULL WHERE destination = ?`, destination)
		}
		return "", nil, err
	}
	if !inFlight {
		counter++
		txnID = fmt.Sprintf("%d.%d", now, counter)
		if _, err := tx.Exec(`UPDATE outbound_destinations SET txn_id = ?, txn_last_seq = ?, txn_counter = ? WHERE destination = ?`,
			txnID, items[len(items)-1].Seq, counter, destination); err != nil {
			return "", nil, err
		}
	}
	return txnID, items, nil
}

// CompleteOutboundBatch removes a delivered transaction's items and marks the destination
// healthy.
func (tx *Tx) CompleteOutboundBatch(destination, txnID string) error {
	var lastSeq int64
	err := tx.QueryRow(`SELECT txn_last_seq FROM outbound_destinations WHERE destination = ? AND txn_id = ?`, destination, txnID).Scan(&lastSeq)
	if err != nil {
		return notFound(err)
	}
	if _, err := tx.Exec(`DELETE FROM outbound_items WHERE destination = ? AND seq <= ?`, destination, lastSeq); err != nil {
		return err
	}
	_, err = tx.Exec(`UPDATE outbound_destinations SET txn_id = NULL, txn_last_seq = NULL,
		failures = 0, down_since_ts = NULL, retry_at_ts = 0 WHERE destination = ?`, destination)
	return err
}

// FailOutbound records a failed attempt and when to try again.
func (tx *Tx) FailOutbound(destination string, now, retryAt int64) error {
	_, err := tx.Exec(`UPDATE outbound_destinations SET failures = failures + 1,
		down_since_ts = coalesce(down_since_ts, ?), retry_at_ts = ? WHERE destination = ?`, now, retryAt, destination)
	return err
}
