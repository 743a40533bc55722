package storage_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"fyr/storage"
)

// TestSnapshotsMatchAFullCopy builds a long chain of state changes and checks that every
// snapshot reads back exactly as a naive full copy would, and that the deltas stay far
// smaller than one full copy per change.
func TestSnapshotsMatchAFullCopy(t *testing.T) {
	db := MustOpen(t, storage.Options{})
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	var want []storage.StateMap
	var snaps []int64
	cur := storage.StateMap{}
	parent := int64(0)
	const n = 600
	for i := 1; i <= n; i++ {
		changes := storage.StateMap{}
		for range 1 + rng.IntN(2) {
			k := storage.StateKey{Type: "m.room.member", StateKey: fmt.Sprintf("@u%d:x", rng.IntN(200))}
			if rng.IntN(10) == 0 && len(cur) > 0 {
				changes[k] = 0
			} else {
				changes[k] = int64(i)
			}
		}
		err := db.Write(ctx, func(tx *storage.Tx) error {
			nid, err := tx.NewSnapshot(1, parent, changes)
			parent = nid
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		next := maps.Clone(cur)
		for k, v := range changes {
			if v == 0 {
				delete(next, k)
			} else {
				next[k] = v
			}
		}
		cur = next
		want = append(want, cur)
		snaps = append(snaps, parent)
	}
	for i, s := range snaps {
		got, err := db.Snapshot(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, want[i]) {
			t.Fatalf("snapshot %d: got %d keys, want %d", i+1, len(got), len(want[i]))
		}
	}
	k := storage.StateKey{Type: "m.room.member", StateKey: "@u7:x"}
	got, err := db.SnapshotKeys(ctx, snaps[n-1], k)
	if err != nil {
		t.Fatal(err)
	}
	if got[k] != want[n-1][k] {
		t.Fatalf("SnapshotKeys = %v, want %v", got[k], want[n-1][k])
	}
	rows, err := db.DeltaRows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A full copy per change would be about n*len(state)/2 ≈ 50,000 rows.
	if rows > n*12 {
		t.Fatalf("%d delta rows for %d changes; want O(n log n)", rows, n)
	}
	t.Logf("%d delta rows for %d snapshots", rows, n)
}
