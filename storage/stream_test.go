package storage_test

import (
	"context"
	"errors"
	"testing"

	"fyr/storage"
)

func TestNextPosIsAtomicWithTheWrite(t *testing.T) {
	db := MustOpen(t, storage.Options{})
	ctx := context.Background()
	var first int64
	if err := db.Write(ctx, func(tx *storage.Tx) error {
		var err error
		first, err = tx.NextPos()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := db.Write(ctx, func(tx *storage.Tx) error {
		if _, err := tx.NextPos(); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("Write = %v, want boom", err)
	}
	pos, err := db.StreamPos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pos != first {
		t.Fatalf("StreamPos = %d after a failed write, want %d", pos, first)
	}
}
