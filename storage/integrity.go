package storage

import (
	"context"
	"database/sql"
	"fmt"
	"os"
)

// CheckIntegrity runs SQLite's PRAGMA integrity_check on the database at path and returns
// the problems it reports; none means the file is sound. It does not migrate the schema: a
// box checks its database at boot after a power cut, before the homeserver (perhaps a newer
// one) opens it. Opening the file replays a committed WAL, as any open would.
func CheckIntegrity(ctx context.Context, path string) ([]string, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	if err := checkFile(ctx, path); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return nil, fmt.Errorf("integrity_check %s: %w", path, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("integrity_check %s: %w", path, err)
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("integrity_check %s: %w", path, err)
	}
	return problems, nil
}
