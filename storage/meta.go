package storage

import (
	"context"
	"errors"
	"fmt"
)

// ErrServerNameChanged means the database belongs to a server of another name.
var ErrServerNameChanged = errors.New("storage: server name differs from the one this database was created for")

// BindServerName records name as the server this database belongs to, or checks it against
// the recorded one: user IDs, event signatures and room IDs all carry the name, so a database
// cannot change servers.
func (db *DB) BindServerName(ctx context.Context, name string) error {
	return db.Write(ctx, func(tx *Tx) error {
		var have string
		err := tx.QueryRow(`SELECT value FROM meta WHERE key = 'server_name'`).Scan(&have)
		switch err = notFound(err); {
		case errors.Is(err, ErrNotFound):
			_, err := tx.Exec(`INSERT INTO meta (key, value) VALUES ('server_name', ?)`, name)
			return err
		case err != nil:
			return err
		case have != name:
			return fmt.Errorf("%w: %s was created for %q, not %q; start with --server-name %s or use another data directory",
				ErrServerNameChanged, db.path, have, name, have)
		}
		return nil
	})
}
