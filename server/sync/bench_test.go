package sync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	stdsync "sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/server/accounts"
	"fyr/server/rooms"
	"fyr/server/servertest"
	fsync "fyr/server/sync"
)

// benchUser creates an account without a password (hashing is not what is measured) and
// returns its user ID and access token.
func benchUser(b *testing.B, s *servertest.Server, localpart string) (id.UserID, string) {
	b.Helper()
	sess, err := s.Accounts.Register(context.Background(), accounts.NewAccount{Localpart: localpart})
	if err != nil {
		b.Fatal(err)
	}
	return sess.UserID, sess.AccessToken
}

// parallel runs fn for 0..n-1 on a few goroutines, so that writes share group commits.
func parallel(b *testing.B, n int, fn func(i int) error) {
	b.Helper()
	var wg stdsync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				if err := fn(i); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// syncGet sends GET /sync and returns the decoded body.
func syncGet(client *http.Client, base, token, query string) (map[string]any, int, error) {
	req, err := http.NewRequest("GET", base+"/_matrix/client/v3/sync?"+query, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != 200 {
		return nil, 0, fmt.Errorf("sync: %d %s", resp.StatusCode, body)
	}
	var m map[string]any
	return m, len(body), json.Unmarshal(body, &m)
}

func message(i int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"msgtype":"m.text","body":"message %d"}`, i))
}

// BenchmarkInitialSync is an initial sync of a user in 200 rooms with 50 messages each
// (and the rooms' creation events), over HTTP with the default filter.
func BenchmarkInitialSync(b *testing.B) { benchInitialSync(b, false) }

// BenchmarkInitialSyncEngine is BenchmarkInitialSync without HTTP and JSON.
func BenchmarkInitialSyncEngine(b *testing.B) { benchInitialSync(b, true) }

func benchInitialSync(b *testing.B, direct bool) {
	ctx := context.Background()
	s := servertest.Start(b, servertest.OpenRegistration)
	writer, _ := benchUser(b, s, "writer")
	reader, token := benchUser(b, s, "reader")
	const nRooms, nEvents = 200, 50
	roomIDs := make([]id.RoomID, nRooms)
	// Created one by one: two identical create events in the same millisecond would make
	// the same v12 room ID.
	for i := range nRooms {
		name := fmt.Sprintf("Room %d", i)
		r, err := s.Rooms.CreateRoom(ctx, writer, &rooms.CreateRequest{Preset: "public_chat", Name: &name})
		if err != nil {
			b.Fatal(err)
		}
		roomIDs[i] = r
	}
	parallel(b, nRooms, func(i int) error {
		_, err := s.Rooms.Join(ctx, reader, roomIDs[i], "", nil)
		return err
	})
	parallel(b, nRooms*nEvents, func(i int) error {
		_, err := s.Rooms.Send(ctx, rooms.Sender{User: writer}, roomIDs[i%nRooms], "m.room.message", "", message(i))
		return err
	})
	if direct {
		for b.Loop() {
			resp, err := s.Sync.Sync(ctx, fsync.Request{User: reader, Device: "D"})
			if err != nil || len(resp.Rooms.Join) != nRooms {
				b.Fatal(err)
			}
		}
		return
	}
	client := &http.Client{}
	var size int
	for b.Loop() {
		resp, n, err := syncGet(client, s.URL, token, "")
		if err != nil {
			b.Fatal(err)
		}
		if got := len(resp["rooms"].(map[string]any)["join"].(map[string]any)); got != nRooms {
			b.Fatalf("initial sync has %d joined rooms, want %d", got, nRooms)
		}
		size = n
	}
	b.ReportMetric(float64(size)/1024, "KiB/sync")
}

// BenchmarkWakeLatency measures how long after a message is sent 100 clients long-polling
// in its room have it: each round parks 100 syncs, sends one message over HTTP, and takes
// the time each sync's answer arrives, from the send's start. p50 and p99 are over every
// answer of every round.
func BenchmarkWakeLatency(b *testing.B) {
	ctx := context.Background()
	s := servertest.Start(b, servertest.OpenRegistration)
	sender, senderToken := benchUser(b, s, "sender")
	room, err := s.Rooms.CreateRoom(ctx, sender, &rooms.CreateRequest{Preset: "public_chat"})
	if err != nil {
		b.Fatal(err)
	}
	const nClients = 100
	tokens := make([]string, nClients)
	since := make([]string, nClients)
	for i := range nClients {
		var u id.UserID
		u, tokens[i] = benchUser(b, s, fmt.Sprintf("client%d", i))
		if _, err := s.Rooms.Join(ctx, u, room, "", nil); err != nil {
			b.Fatal(err)
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: nClients + 10}}
	for i := range nClients {
		resp, _, err := syncGet(client, s.URL, tokens[i], "")
		if err != nil {
			b.Fatal(err)
		}
		since[i] = resp["next_batch"].(string)
	}
	var fromStart, fromReturn []time.Duration
	round := 0
	for b.Loop() {
		round++
		arrived := make([]time.Time, nClients)
		var wg stdsync.WaitGroup
		errs := make(chan error, nClients)
		for i := range nClients {
			wg.Go(func() {
				resp, _, err := syncGet(client, s.URL, tokens[i], "timeout=30000&since="+url.QueryEscape(since[i]))
				arrived[i] = time.Now()
				if err != nil {
					errs <- err
					return
				}
				since[i] = resp["next_batch"].(string)
				if _, ok := resp["rooms"].(map[string]any)["join"].(map[string]any)[string(room)]; !ok {
					errs <- fmt.Errorf("client %d woke without the message: %v", i, resp)
				}
			})
		}
		for deadline := time.Now().Add(10 * time.Second); s.Sync.Waiting() < nClients; time.Sleep(100 * time.Microsecond) {
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d syncs are waiting", s.Sync.Waiting(), nClients)
			}
		}
		start := time.Now()
		status, body := putMessage(client, s.URL, senderToken, room, round)
		returned := time.Now()
		if status != 200 {
			b.Fatalf("send: %d %s", status, body)
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
		for _, t := range arrived {
			fromStart = append(fromStart, t.Sub(start))
			fromReturn = append(fromReturn, t.Sub(returned))
		}
	}
	report := func(ds []time.Duration, p float64, unit string) {
		slices.Sort(ds)
		b.ReportMetric(float64(ds[int(p*float64(len(ds)-1))].Microseconds())/1000, unit)
	}
	report(fromStart, 0.50, "p50-ms")
	report(fromStart, 0.99, "p99-ms")
	report(fromReturn, 0.50, "p50-after-send-ms")
	report(fromReturn, 0.99, "p99-after-send-ms")
}

func putMessage(client *http.Client, base, token string, room id.RoomID, i int) (int, string) {
	u := fmt.Sprintf("%s/_matrix/client/v3/rooms/%s/send/m.room.message/bench%d", base, url.PathEscape(string(room)), i)
	req, _ := http.NewRequest("PUT", u, bytes.NewReader(message(i)))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// BenchmarkIncrementalSync is the server's work for one incremental sync that finds one new
// message, called directly (no HTTP).
func BenchmarkIncrementalSync(b *testing.B) {
	ctx := context.Background()
	s := servertest.Start(b, servertest.OpenRegistration)
	sender, _ := benchUser(b, s, "sender")
	reader, _ := benchUser(b, s, "reader")
	room, err := s.Rooms.CreateRoom(ctx, sender, &rooms.CreateRequest{Preset: "public_chat"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Rooms.Join(ctx, reader, room, "", nil); err != nil {
		b.Fatal(err)
	}
	req := fsync.Request{User: reader, Device: "D"}
	resp, err := s.Sync.Sync(ctx, req)
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		if _, err := s.Rooms.Send(ctx, rooms.Sender{User: sender}, room, "m.room.message", "", message(i)); err != nil {
			b.Fatal(err)
		}
		next := resp.Next()
		req.Since = &next
		b.StartTimer()
		if resp, err = s.Sync.Sync(ctx, req); err != nil {
			b.Fatal(err)
		}
		if len(resp.Rooms.Join[room].Timeline.Events) != 1 {
			b.Fatal("no message")
		}
	}
}
