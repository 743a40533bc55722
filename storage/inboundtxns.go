package storage

import "context"

// InboundTxnResponse returns the answer given to a transaction already processed, or
// ErrNotFound.
func (db *DB) InboundTxnResponse(ctx context.Context, origin, txnID string) ([]byte, error) {
	var resp []byte
	err := db.queryRow(ctx, `SELECT response FROM inbound_txns WHERE origin = ? AND txn_id = ?`, origin, txnID).Scan(&resp)
	if err != nil {
		return nil, notFound(err)
	}
	return resp, nil
}

// RecordInboundTxn remembers the answer to a processed transaction.
func (tx *Tx) RecordInboundTxn(origin, txnID string, response []byte, now int64) error {
	_, err := tx.Exec(`INSERT INTO inbound_txns (origin, txn_id, response, received_ts) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, origin, txnID, response, now)
	return err
}

// ForgetInboundTxns drops answers recorded before cutoff.
func (tx *Tx) ForgetInboundTxns(cutoff int64) error {
	_, err := tx.Exec(`DELETE FROM inbound_txns WHERE received_ts < ?`, cutoff)
	return err
}
