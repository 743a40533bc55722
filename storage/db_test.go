package storage_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"fyr/storage"
)

// MustOpen opens a fresh database in a temporary directory and closes it when the test ends.
func MustOpen(tb testing.TB, opts storage.Options) *storage.DB {
	tb.Helper()
	db, err := storage.Open(context.Background(), filepath.Join(tb.TempDir(), "fyr.db"), opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return db
}

func TestOpenMigratesAndReopens(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fyr.db")
	db, err := storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v1, err := db.SchemaVersion(ctx)
	if err != nil || v1 < 1 {
		t.Fatalf("SchemaVersion = %d, %v; want >= 1", v1, err)
	}
	if err := db.Write(ctx, func(tx *storage.Tx) error {
		return tx.CreateUser(storage.User{Localpart: "alice", CreatedTS: 1})
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	db, err = storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	if v2, _ := db.SchemaVersion(ctx); v2 != v1 {
		t.Errorf("schema after reopen = %d, want %d", v2, v1)
	}
	if _, err := db.User(ctx, "alice"); err != nil {
		t.Errorf("User(alice) after reopen: %v", err)
	}
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestOpenRefusesNewerSchemaUntouched(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fyr.db")
	db, err := storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := db.SchemaVersion(ctx)
	db.Close()
	// Pretend a newer Fyr wrote it, using a plain connection in rollback-journal mode.
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(fmt.Sprintf("PRAGMA journal_mode=DELETE; PRAGMA user_version = %d", v+1)); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	before := fileHash(t, path)
	_, err = storage.Open(ctx, path, storage.Options{})
	if !errors.Is(err, storage.ErrSchemaTooNew) {
		t.Fatalf("Open of newer schema = %v, want ErrSchemaTooNew", err)
	}
	if after := fileHash(t, path); after != before {
		t.Error("refused database file was modified")
	}
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused database got a WAL file (stat err %v)", err)
	}
}

func TestOpenRefusesForeignDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec("CREATE TABLE x (y)"); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	_, err = storage.Open(context.Background(), path, storage.Options{})
	if !errors.Is(err, storage.ErrNotFyrDatabase) {
		t.Fatalf("Open of a foreign database = %v, want ErrNotFyrDatabase", err)
	}
}

func TestWriteFailureIsIsolated(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t, storage.Options{})
	// Many concurrent writes share transactions; the failing ones must leave no trace and
	// must not take their neighbours down.
	var wg sync.WaitGroup
	errBoom := errors.New("boom")
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("u%d", i)
			err := db.Write(ctx, func(tx *storage.Tx) error {
				if err := tx.CreateUser(storage.User{Localpart: name, CreatedTS: 1}); err != nil {
					return err
				}
				switch i % 5 {
				case 1:
					return errBoom
				case 2:
					panic("write panics")
				}
				return nil
			})
			switch i % 5 {
			case 1:
				if !errors.Is(err, errBoom) {
					t.Errorf("write %d = %v, want boom", i, err)
				}
			case 2:
				if err == nil {
					t.Errorf("panicking write %d returned nil", i)
				}
			default:
				if err != nil {
					t.Errorf("write %d = %v", i, err)
				}
			}
		}()
	}
	wg.Wait()
	for i := range 50 {
		_, err := db.User(ctx, fmt.Sprintf("u%d", i))
		kept := i%5 != 1 && i%5 != 2
		if kept && err != nil {
			t.Errorf("user u%d missing: %v", i, err)
		}
		if !kept && !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("user u%d of a failed write: err %v, want ErrNotFound", i, err)
		}
	}
}

func TestWriteAfterClose(t *testing.T) {
	db, err := storage.Open(context.Background(), filepath.Join(t.TempDir(), "fyr.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	err = db.Write(context.Background(), func(*storage.Tx) error { return nil })
	if !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
}

func TestWriteCanceledContextDoesNotRun(t *testing.T) {
	db := MustOpen(t, storage.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	err := db.Write(ctx, func(*storage.Tx) error { ran = true; return nil })
	if !errors.Is(err, context.Canceled) || ran {
		t.Errorf("Write with canceled ctx = %v (ran %v), want context.Canceled, not run", err, ran)
	}
}

func TestBindServerName(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t, storage.Options{})
	if err := db.BindServerName(ctx, "a.test"); err != nil {
		t.Fatalf("first bind: %v", err)
	}
	if err := db.BindServerName(ctx, "a.test"); err != nil {
		t.Errorf("same name again: %v", err)
	}
	if err := db.BindServerName(ctx, "b.test"); !errors.Is(err, storage.ErrServerNameChanged) {
		t.Errorf("other name = %v, want ErrServerNameChanged", err)
	}
}

// TestCloseRacingWrites: every Write racing with Close either commits or reports ErrClosed;
// none hangs, and what reported success is in the file.
func TestCloseRacingWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fyr.db")
	db, err := storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	ok := make([]bool, 200)
	for i := range ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := db.Write(ctx, func(tx *storage.Tx) error {
				return tx.CreateUser(storage.User{Localpart: fmt.Sprintf("r%d", i), CreatedTS: 1})
			})
			switch {
			case err == nil:
				ok[i] = true
			case !errors.Is(err, storage.ErrClosed):
				t.Errorf("write %d = %v, want nil or ErrClosed", i, err)
			}
		}()
	}
	db.Close()
	wg.Wait()
	db, err = storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i, committed := range ok {
		if _, err := db.User(ctx, fmt.Sprintf("r%d", i)); committed && err != nil {
			t.Errorf("write %d reported success but is missing: %v", i, err)
		}
	}
}
