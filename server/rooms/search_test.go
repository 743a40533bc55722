package rooms_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
	"fyr/server/servertest"
)

// BenchmarkSearch20k searches 20,000 indexed messages in four rooms through the engine, as
// POST /search does without HTTP: a rare word (about 20 hits), a common one (about half of
// all messages) by rank and by recency, a common prefix, and the third page of a common
// search.
//
//	go test -run '^$' -bench Search20k -benchtime 200x ./server/rooms/
func BenchmarkSearch20k(b *testing.B) {
	ctx := context.Background()
	s := servertest.Start(b, servertest.OpenRegistration)
	alice := s.Register(b, "alice", "correct horse battery").UserID
	var roomIDs []id.RoomID
	for range 4 {
		r, err := s.Rooms.CreateRoom(ctx, alice, &rooms.CreateRequest{Preset: "private_chat"})
		if err != nil {
			b.Fatal(err)
		}
		roomIDs = append(roomIDs, r)
	}
	total := 20_000
	if n := os.Getenv("FYR_BENCH_SEARCH_N"); n != "" {
		total, _ = strconv.Atoi(n)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(roomIDs))
	for i, r := range roomIDs {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for n := range total / len(roomIDs) {
				body, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": benchBody(rng, i*total+n)})
				if _, err := s.Rooms.Send(ctx, rooms.Sender{User: alice}, r, "m.room.message", "", body); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	v := rooms.Viewer{User: alice}
	third := func(req rooms.SearchRequest) rooms.SearchRequest {
		for range 2 {
			resp, err := s.Rooms.Search(ctx, v, req)
			if err != nil {
				b.Fatal(err)
			}
			req.NextBatch = resp.NextBatch
		}
		return req
	}
	for _, c := range []struct {
		name string
		req  rooms.SearchRequest
	}{
		{"rare", rooms.SearchRequest{Term: "zebra"}},
		{"common-rank", rooms.SearchRequest{Term: "och"}},
		{"common-recent", rooms.SearchRequest{Term: "och", OrderBy: "recent"}},
		{"prefix", rooms.SearchRequest{Term: "vatten"}},
		{"two-words", rooms.SearchRequest{Term: "pump vatten"}},
		{"common-recent-page3", third(rooms.SearchRequest{Term: "och", OrderBy: "recent"})},
	} {
		b.Run(c.name, func(b *testing.B) {
			resp, err := s.Rooms.Search(ctx, v, c.req)
			if err != nil || len(resp.Results) == 0 {
				b.Fatalf("search %q: %v, %v", c.req.Term, resp, err)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := s.Rooms.Search(ctx, v, c.req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(resp.Count), "hits")
		})
	}
}

// benchWords is a small Swedish vocabulary; "och" is in half of all messages and "zebra"
// in one in a thousand.
var benchWords = strings.Fields(`vattnet stiger vid bron pumpen går sandsäckar behövs på
	norra sidan vattennivån mäts varje timme vattenverket rapporterar läget är lugnt
	ambulansen är framme räddningstjänsten möts klockan tio kontrollera elen i källaren
	evakuering av skolan pågår vägen är avstängd kartan uppdaterad skicka fler pumpar`)

func benchBody(rng *rand.Rand, n int) string {
	words := make([]string, 0, 16)
	for range 6 + rng.IntN(10) {
		words = append(words, benchWords[rng.IntN(len(benchWords))])
	}
	if n%2 == 0 {
		words = append(words, "och")
	}
	if n%1000 == 0 {
		words = append(words, "zebra")
	}
	return strings.Join(words, " ")
}
