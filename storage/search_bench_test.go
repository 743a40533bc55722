package storage_test

import (
	"context"
	"fmt"
	"testing"

	"fyr/storage"
)

// BenchmarkSearchIndex20k is the SQL side of a search over 20,000 indexed messages in four
// rooms: a page of 11 hits for a rare word (20 hits), a common one (10,000 hits) by rank
// and by recency, and the visibility buckets of the common one (what the count reads).
//
//	go test -run '^$' -bench SearchIndex20k -benchtime 200x ./storage/
func BenchmarkSearchIndex20k(b *testing.B) {
	db := MustOpen(b, storage.Options{})
	ctx := context.Background()
	var roomNIDs []int64
	for r := range 4 {
		nid, _ := searchRoom(b, db, fmt.Sprintf("!r%d:x", r))
		roomNIDs = append(roomNIDs, nid)
	}
	const total, batch = 20_000, 500
	for i := 0; i < total; i += batch {
		err := db.Write(ctx, func(tx *storage.Tx) error {
			for n := i; n < i+batch; n++ {
				body := fmt.Sprintf("vattnet stiger vid bron klockan %d och pumpen går", n)
				if n%2 == 0 {
					body = fmt.Sprintf("sandsäckar behövs på norra sidan, rapport %d", n)
				}
				if n%1000 == 0 {
					body += " zebra"
				}
				ev := message(body)
				ev.ID, ev.RoomNID, ev.Sender, ev.Timeline, ev.Depth = fmt.Sprintf("$%d", n), roomNIDs[n%4], "@alice:x", true, int64(n)
				if _, err := tx.PersistEvent(&ev); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	rare, _ := storage.ParseSearchTerm("zebra")
	common, _ := storage.ParseSearchTerm("pumpen")
	for _, c := range []struct {
		name    string
		q       storage.SearchQuery
		buckets bool
	}{
		{"rare", storage.SearchQuery{Expr: rare}, false},
		{"common-rank", storage.SearchQuery{Expr: common}, false},
		{"common-recent", storage.SearchQuery{Expr: common, Recent: true}, false},
		{"common-buckets", storage.SearchQuery{Expr: common}, true},
	} {
		c.q.Rooms, c.q.Limit = roomNIDs, 11
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				var err error
				if c.buckets {
					_, err = db.SearchBuckets(ctx, c.q)
				} else {
					_, err = db.Search(ctx, c.q)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
