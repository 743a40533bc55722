package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"fyr/storage"
)

// mustCreateUser opens the database at path, adds one user and closes it again.
func mustCreateUser(t *testing.T, path, localpart string) {
	t.Helper()
	ctx := context.Background()
	db, err := storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Write(ctx, func(tx *storage.Tx) error {
		return tx.CreateUser(storage.User{Localpart: localpart, CreatedTS: 1})
	}); err != nil {
		t.Fatal(err)
	}
}

// hasUser reports whether the database at path knows localpart.
func hasUser(t *testing.T, path, localpart string) bool {
	t.Helper()
	ctx := context.Background()
	db, err := storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.User(ctx, localpart)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func TestSnapshotAndRestore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "fyr.db")
	snap := filepath.Join(dir, "snap", "pre.db")
	os.MkdirAll(filepath.Dir(snap), 0o700)

	if err := storage.Snapshot(ctx, path, snap); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Snapshot of a missing database = %v, want ErrNotFound", err)
	}
	mustCreateUser(t, path, "alice")
	if err := storage.Snapshot(ctx, path, snap); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if err := storage.Snapshot(ctx, path, snap); !errors.Is(err, storage.ErrExists) {
		t.Errorf("Snapshot over an existing file = %v, want ErrExists", err)
	}
	mustCreateUser(t, path, "bob")
	// A stale write-ahead log of the database being replaced must not survive the restore.
	if err := os.WriteFile(path+"-wal", []byte("not a log of the snapshot"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := storage.RestoreSnapshot(ctx, snap, path); err != nil {
		t.Fatalf("RestoreSnapshot: %v", err)
	}
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the old -wal file is still there: %v", err)
	}
	if !hasUser(t, path, "alice") {
		t.Error("alice, written before the snapshot, is gone after the restore")
	}
	if hasUser(t, path, "bob") {
		t.Error("bob, written after the snapshot, is still there after the restore")
	}
	if _, err := os.Stat(snap); err != nil {
		t.Errorf("the snapshot was not kept: %v", err)
	}
}

func TestSnapshotRefusesForeignFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	foreign := filepath.Join(dir, "other.db")
	raw, err := sql.Open("sqlite", "file:"+foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec("CREATE TABLE t (x)"); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if err := storage.Snapshot(ctx, foreign, filepath.Join(dir, "s.db")); !errors.Is(err, storage.ErrNotFyrDatabase) {
		t.Errorf("Snapshot of a foreign database = %v, want ErrNotFyrDatabase", err)
	}
	path := filepath.Join(dir, "fyr.db")
	mustCreateUser(t, path, "alice")
	if err := storage.RestoreSnapshot(ctx, foreign, path); !errors.Is(err, storage.ErrNotFyrDatabase) {
		t.Errorf("RestoreSnapshot of a foreign database = %v, want ErrNotFyrDatabase", err)
	}
	if !hasUser(t, path, "alice") {
		t.Error("a refused restore changed the database")
	}
}

func TestPendingMigrations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fyr.db")
	all, err := storage.PendingMigrations(ctx, path)
	if err != nil || all < 1 {
		t.Fatalf("PendingMigrations of a missing file = %d, %v; want every migration", all, err)
	}
	mustCreateUser(t, path, "alice")
	if n, err := storage.PendingMigrations(ctx, path); n != 0 || err != nil {
		t.Errorf("PendingMigrations of a current database = %d, %v; want 0", n, err)
	}
	// Pretend an older binary wrote it: one migration short.
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec("PRAGMA user_version = " + strconv.Itoa(all-1)); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if n, err := storage.PendingMigrations(ctx, path); n != 1 || err != nil {
		t.Errorf("PendingMigrations one version behind = %d, %v; want 1", n, err)
	}
}
