package outbound_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"fyr/federation/outbound"
	"fyr/storage"
)

// peer is a fake destination server: it applies each transaction ID once, as a real
// receiver does, and can be taken down.
type peer struct {
	mu       sync.Mutex
	down     bool
	loseAck  int // answer this many successful transactions with an error, as a lost response
	reject   bool
	seenTxns map[string]bool
	pdus     []string
	edus     []string
	attempts int
}

func newPeer() *peer { return &peer{seenTxns: map[string]bool{}} }

type network struct {
	mu    sync.Mutex
	peers map[string]*peer
	slow  map[string]chan struct{} // destination -> blocks until closed
}

func (n *network) SendTransaction(ctx context.Context, dest, txnID string, pdus, edus []json.RawMessage) error {
	n.mu.Lock()
	p, slow := n.peers[dest], n.slow[dest]
	n.mu.Unlock()
	if slow != nil {
		select {
		case <-slow:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attempts++
	if p.down {
		return errors.New("connection refused")
	}
	if p.reject {
		return fmt.Errorf("%w: 400 M_BAD_JSON", outbound.ErrRejected)
	}
	if len(pdus) > outbound.DefaultMaxPDUs || len(edus) > outbound.DefaultMaxEDUs {
		return fmt.Errorf("%w: transaction too large", outbound.ErrRejected)
	}
	if !p.seenTxns[txnID] {
		p.seenTxns[txnID] = true
		for _, b := range pdus {
			p.pdus = append(p.pdus, string(b))
		}
		for _, b := range edus {
			p.edus = append(p.edus, string(b))
		}
	}
	if p.loseAck > 0 {
		p.loseAck--
		return errors.New("read: connection reset by peer")
	}
	return nil
}

func (p *peer) received() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.pdus...)
}

func (p *peer) set(f func(*peer)) {
	p.mu.Lock()
	f(p)
	p.mu.Unlock()
}

func openDB(t *testing.T, path string) *storage.DB {
	t.Helper()
	db, err := storage.Open(context.Background(), path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fast keeps retries quick in tests.
func fast(opt outbound.Options) outbound.Options {
	opt.Backoff = func(int, time.Duration) time.Duration { return 5 * time.Millisecond }
	return opt
}

// start runs a queue until the test ends (or stop is called) and returns it.
func start(t *testing.T, db *storage.DB, n *network, opt outbound.Options) (*outbound.Queue, func()) {
	t.Helper()
	q := outbound.New(db, n, quiet, opt)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }() // items enqueued before Run starts are found on disk
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return q, sync.OnceFunc(stop)
}

func pdu(i int) outbound.Item {
	return outbound.Item{Kind: storage.OutboundPDU, Body: []byte(fmt.Sprintf(`{"n":%d}`, i))}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func wantInOrder(t *testing.T, got []string, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("peer received %d PDUs, want %d", len(got), n)
	}
	for i, b := range got {
		if want := fmt.Sprintf(`{"n":%d}`, i); b != want {
			t.Fatalf("PDU %d = %s, want %s (order or duplicates broken)", i, b, want)
		}
	}
}

// TestOutageRestartDeliversOnceInOrder: events queued while the peer is down survive a
// restart of the sender, and arrive exactly once, in order, when the peer returns; a lost
// acknowledgement does not make them arrive twice.
func TestOutageRestartDeliversOnceInOrder(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fyr.db")
	b := newPeer()
	b.down = true
	n := &network{peers: map[string]*peer{"b.test": b}}

	db := openDB(t, path)
	q, stop := start(t, db, n, fast(outbound.Options{}))
	for i := range 120 {
		if err := q.Enqueue(ctx, []string{"b.test"}, pdu(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a few failed attempts", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.attempts >= 3 })
	stop()
	db.Close()

	// The sender restarts; the peer comes back but loses the first acknowledgement.
	b.set(func(p *peer) { p.down = false; p.loseAck = 1 })
	db = openDB(t, path)
	defer db.Close()
	start(t, db, n, fast(outbound.Options{}))
	waitFor(t, "all 120 PDUs", func() bool { return len(b.received()) >= 120 })
	time.Sleep(20 * time.Millisecond) // room for a wrong duplicate to show up
	wantInOrder(t, b.received(), 120)
	if left, _ := db.OutboundDestinations(ctx); len(left) != 0 {
		t.Errorf("items still queued after delivery: %+v", left)
	}
}

// TestDeadPeerDoesNotDelayLivePeer: one destination hangs on every request; another must get
// its events meanwhile.
func TestDeadPeerDoesNotDelayLivePeer(t *testing.T) {
	ctx := context.Background()
	live, dead := newPeer(), newPeer()
	n := &network{peers: map[string]*peer{"live.test": live, "dead.test": dead}, slow: map[string]chan struct{}{"dead.test": make(chan struct{})}}
	db := openDB(t, filepath.Join(t.TempDir(), "fyr.db"))
	defer db.Close()
	q, _ := start(t, db, n, fast(outbound.Options{AttemptTimeout: time.Minute}))
	for i := range 10 {
		if err := q.Enqueue(ctx, []string{"dead.test", "live.test"}, pdu(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the live peer's events", func() bool { return len(live.received()) == 10 })
	wantInOrder(t, live.received(), 10)
	if got := len(dead.received()); got != 0 {
		t.Errorf("hung peer received %d", got)
	}
	close(n.slow["dead.test"])
}

// TestPeerAliveEndsBackoff: a peer in long back-off that contacts us gets its events at once.
func TestPeerAliveEndsBackoff(t *testing.T) {
	ctx := context.Background()
	b := newPeer()
	b.down = true
	n := &network{peers: map[string]*peer{"b.test": b}}
	db := openDB(t, filepath.Join(t.TempDir(), "fyr.db"))
	defer db.Close()
	q, _ := start(t, db, n, outbound.Options{Backoff: func(int, time.Duration) time.Duration { return time.Hour }})
	q.Enqueue(ctx, []string{"b.test"}, pdu(0))
	waitFor(t, "a failed attempt", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.attempts == 1 })
	b.set(func(p *peer) { p.down = false })
	q.PeerAlive("b.test")
	waitFor(t, "delivery after PeerAlive", func() bool { return len(b.received()) == 1 })
}

// TestBatchLimitsAndStaleEDUs: transactions respect 50 PDUs / 100 EDUs; an expired typing
// notification is not sent after an outage; a permanently rejected transaction is dropped.
func TestBatchLimitsAndStaleEDUs(t *testing.T) {
	ctx := context.Background()
	b := newPeer()
	b.down = true
	n := &network{peers: map[string]*peer{"b.test": b}}
	db := openDB(t, filepath.Join(t.TempDir(), "fyr.db"))
	defer db.Close()
	q, _ := start(t, db, n, fast(outbound.Options{}))
	for i := range 130 {
		q.Enqueue(ctx, []string{"b.test"}, pdu(i))
	}
	q.Enqueue(ctx, []string{"b.test"}, outbound.Item{Kind: storage.OutboundEDU, Body: []byte(`{"edu_type":"m.typing"}`), Expires: time.Now().Add(20 * time.Millisecond)})
	q.Enqueue(ctx, []string{"b.test"}, outbound.Item{Kind: storage.OutboundEDU, Body: []byte(`{"edu_type":"m.direct_to_device"}`)})
	time.Sleep(50 * time.Millisecond) // the typing notification goes stale during the outage
	b.set(func(p *peer) { p.down = false })
	waitFor(t, "all PDUs", func() bool { return len(b.received()) == 130 })
	wantInOrder(t, b.received(), 130)
	waitFor(t, "the to-device EDU", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.edus) == 1 })
	if b.edus[0] != `{"edu_type":"m.direct_to_device"}` {
		t.Errorf("EDUs sent = %v, want only the to-device one", b.edus)
	}

	b.set(func(p *peer) { p.reject = true })
	q.Enqueue(ctx, []string{"b.test"}, pdu(999))
	waitFor(t, "the rejected transaction to be dropped", func() bool {
		left, _ := db.OutboundDestinations(ctx)
		return len(left) == 0
	})
}

// TestBacklogBound: past MaxBacklog the oldest PDUs give way to the newest.
func TestBacklogBound(t *testing.T) {
	ctx := context.Background()
	b := newPeer()
	b.down = true
	n := &network{peers: map[string]*peer{"b.test": b}}
	db := openDB(t, filepath.Join(t.TempDir(), "fyr.db"))
	defer db.Close()
	q, _ := start(t, db, n, fast(outbound.Options{MaxBacklog: 20}))
	for i := range 100 {
		q.Enqueue(ctx, []string{"b.test"}, pdu(i))
	}
	waitFor(t, "another failed attempt after the last enqueue", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.attempts > 3 })
	time.Sleep(30 * time.Millisecond)
	b.set(func(p *peer) { p.down = false })
	waitFor(t, "delivery", func() bool { left, _ := db.OutboundDestinations(ctx); return len(left) == 0 })
	got := b.received()
	// The first batch (in flight during the outage) and the newest 20 arrive; the middle goes.
	if len(got) > 50+20 || got[len(got)-1] != `{"n":99}` {
		t.Errorf("received %d PDUs ending %s; want at most 70 ending with the newest", len(got), got[len(got)-1])
	}
}

func TestDefaultBackoff(t *testing.T) {
	for _, tc := range []struct {
		failures int
		outage   time.Duration
		max      time.Duration
	}{
		{1, 0, 375 * time.Millisecond},
		{10, 5 * time.Minute, 750 * time.Millisecond},
		{10, time.Hour, 90 * time.Second},
		{30, 24 * time.Hour, 15 * time.Minute},
	} {
		for range 50 {
			if got := outbound.DefaultBackoff(tc.failures, tc.outage); got <= 0 || got > tc.max {
				t.Fatalf("DefaultBackoff(%d, %v) = %v, want in (0, %v]", tc.failures, tc.outage, got, tc.max)
			}
		}
	}
}

// BenchmarkCatchUp10k measures how long a destination takes to receive 10,000 queued events
// once it returns (storage and batching cost; the network is a fake).
func BenchmarkCatchUp10k(b *testing.B) {
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		p := newPeer()
		p.down = true
		n := &network{peers: map[string]*peer{"b.test": p}}
		db, err := storage.Open(ctx, filepath.Join(b.TempDir(), "fyr.db"), storage.Options{})
		if err != nil {
			b.Fatal(err)
		}
		q := outbound.New(db, n, quiet, fast(outbound.Options{}))
		rctx, cancel := context.WithCancel(ctx)
		go q.Run(rctx)
		items := make([]outbound.Item, 10_000)
		for i := range items {
			items[i] = pdu(i)
		}
		db.Write(ctx, func(tx *storage.Tx) error {
			for _, it := range items {
				if err := tx.EnqueueOutbound("b.test", it.Kind, it.Body, 0, 0); err != nil {
					return err
				}
			}
			return nil
		})
		p.set(func(p *peer) { p.down = false })
		b.StartTimer()
		q.Notify("b.test")
		for len(p.received()) < 10_000 {
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		cancel()
		db.Close()
	}
}
