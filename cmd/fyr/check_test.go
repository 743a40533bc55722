package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fyr/storage"
)

func TestCheck(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var out bytes.Buffer
	if err := check(ctx, []string{"--data-dir", dir}, &out); err == nil {
		t.Error("fyr check without a database succeeded")
	}
	db, err := storage.Open(ctx, filepath.Join(dir, "fyr.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	out.Reset()
	if err := check(ctx, []string{"--data-dir", dir}, &out); err != nil || !strings.HasPrefix(out.String(), "integrity_check: ok") {
		t.Fatalf("fyr check of a sound database: %v, output %q", err, out.String())
	}
	if err := os.Truncate(filepath.Join(dir, "fyr.db"), 4096*3+10); err != nil {
		t.Fatal(err)
	}
	if err := check(ctx, []string{"--data-dir", dir}, &out); err == nil {
		t.Errorf("fyr check of a truncated database succeeded: %q", out.String())
	}
	if err := check(ctx, []string{"extra"}, &out); err == nil {
		t.Error("fyr check with an argument succeeded")
	}
}
