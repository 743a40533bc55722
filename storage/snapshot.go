package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Snapshot copies the closed database at path into a new file dest with VACUUM INTO: a
// consistent, compact copy that includes what sits in the write-ahead log. It neither
// migrates nor changes the database. A missing database is ErrNotFound; a file that is not a
// Fyr database, or is newer than this binary, is refused like Open refuses it; dest must not
// exist yet. The firmware updater takes one before a new version first migrates the
// database, so that a rollback can hand the old version a schema it knows.
func Snapshot(ctx context.Context, path, dest string) error {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("snapshot %s: %w", path, ErrNotFound)
		}
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	if err := checkFile(ctx, path); err != nil {
		return err
	}
	if _, err := os.Stat(dest); err == nil {
		return fmt.Errorf("snapshot %s: %s: %w", path, dest, ErrExists)
	}
	conn, err := sql.Open("sqlite", "file:"+path+fmt.Sprintf("?_pragma=busy_timeout(%d)", DefaultBusyTimeout))
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	defer conn.Close()
	// VACUUM INTO writes the copy in one transaction; a crash leaves at worst a partial file
	// at a temporary name, which the rename below never publishes.
	tmp := dest + ".partial"
	os.Remove(tmp)
	if _, err := conn.ExecContext(ctx, "VACUUM INTO ?", tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	if err := syncFile(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("snapshot %s: %w", path, err)
	}
	return syncDir(filepath.Dir(dest))
}

// PendingMigrations reports how many migrations Open would apply to the database at path:
// every one for a missing file, none for a current one. It opens the file read-only and
// refuses what Open refuses.
func PendingMigrations(ctx context.Context, path string) (int, error) {
	n := len(migrations())
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return n, nil
	}
	if err := checkFile(ctx, path); err != nil {
		return 0, err
	}
	ro, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer ro.Close()
	var version int
	if err := ro.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return n - version, nil
}

// RestoreSnapshot puts the snapshot at src back in place of the closed database at path:
// it copies src beside path, removes path's write-ahead log and shared-memory files (they
// belong to the database being replaced, and SQLite would replay the log into the restored
// file), and renames the copy over path. src is kept. Nothing may have the database open.
func RestoreSnapshot(ctx context.Context, src, path string) (err error) {
	if err := checkFile(ctx, src); err != nil {
		return fmt.Errorf("restore %s: %w", src, err)
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("restore %s: %w", src, err)
	}
	defer in.Close()
	tmp := path + ".restore"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("restore %s: %w", src, err)
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = io.Copy(out, in); err != nil {
		return fmt.Errorf("restore %s: %w", src, err)
	}
	if err = out.Sync(); err != nil {
		return fmt.Errorf("restore %s: %w", src, err)
	}
	if err = out.Close(); err != nil {
		return fmt.Errorf("restore %s: %w", src, err)
	}
	for _, side := range []string{path + "-wal", path + "-shm"} {
		if err = os.Remove(side); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restore %s: %w", src, err)
		}
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("restore %s: %w", src, err)
	}
	return syncDir(filepath.Dir(path))
}

func syncFile(name string) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	return d.Sync()
}
