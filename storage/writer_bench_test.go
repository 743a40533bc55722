package storage_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"fyr/storage"
)

// BenchmarkWrite64 compares group commit with one transaction (and one fsync) per write, with
// 64 goroutines writing at once, as 64 clients sending messages would.
//
//	go test -bench Write64 -benchtime 2000x ./storage/
func BenchmarkWrite64(b *testing.B) {
	for _, bc := range []struct {
		name     string
		maxBatch int
	}{
		{"group", storage.DefaultMaxBatch},
		{"serial", 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			db := MustOpen(b, storage.Options{MaxBatch: bc.maxBatch})
			ctx := context.Background()
			const writers = 64
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						err := db.Write(ctx, func(tx *storage.Tx) error {
							return tx.CreateUser(storage.User{Localpart: fmt.Sprintf("user%d", i), CreatedTS: i})
						})
						if err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}
