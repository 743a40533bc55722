package storage

import "context"

// NextPos takes the next position in the stream, the one sequence that orders everything
// sync can see. It is taken inside the write transaction, so a reader that sees position N
// has also seen every position before it.
func (tx *Tx) NextPos() (int64, error) {
	var pos int64
	err := tx.QueryRow(`UPDATE stream SET pos = pos + 1 WHERE id = 1 RETURNING pos`).Scan(&pos)
	return pos, err
}

// StreamPos returns the newest committed stream position.
func (db *DB) StreamPos(ctx context.Context) (int64, error) {
	var pos int64
	err := db.queryRow(ctx, `SELECT pos FROM stream WHERE id = 1`).Scan(&pos)
	return pos, err
}
