package storage_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"fyr/storage"
)

func TestCheckIntegrity(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fyr.db")
	if _, err := storage.CheckIntegrity(ctx, path); err == nil {
		t.Error("CheckIntegrity of a missing file succeeded")
	}
	db, err := storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	problems, err := storage.CheckIntegrity(ctx, path)
	if err != nil || len(problems) != 0 {
		t.Fatalf("CheckIntegrity of a fresh database = %q, %v; want no problems", problems, err)
	}

	// Scribble over the b-tree pages after the first: the check must notice.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	if len(b) < 4*page {
		t.Fatalf("database is only %d bytes", len(b))
	}
	for p := 1; p*page < len(b); p++ {
		copy(b[p*page+8:], bytes.Repeat([]byte{0xa5}, 64))
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	problems, err = storage.CheckIntegrity(ctx, path)
	if err == nil && len(problems) == 0 {
		t.Fatal("CheckIntegrity of a damaged database found nothing")
	}
	t.Logf("damage found: %q, %v", problems, err)
}
