// Package outbound delivers PDUs and EDUs to other servers: one durable queue per destination
// in SQLite, sent in order in transactions of at most 50 PDUs and 100 EDUs, retried with
// back-off while the destination is down, and resumed at once when it shows signs of life.
//
// What is queued survives restarts: an item is written with (ideally in the same transaction
// as) the event it carries, and deleted only when the destination acknowledged it. A
// transaction whose answer was lost is resent with the same ID and items, so the receiver can
// recognise it. Each destination has its own goroutine, so a slow or dead server never delays
// the others, or local users.
//
// It is not for HTTP: a Sender (the federation transport) does the request.
package outbound

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"fyr/storage"
)

// Sender delivers one transaction to a destination (PUT /_matrix/federation/v1/send/{txnID}).
// It returns nil once the destination answered 200. An error wrapping ErrRejected means the
// destination refused this transaction for good (a 4xx other than 408 and 429): it is dropped
// rather than retried forever. Any other error is retried.
type Sender interface {
	SendTransaction(ctx context.Context, destination, txnID string, pdus, edus []json.RawMessage) error
}

// ErrRejected marks a permanent refusal by the destination.
var ErrRejected = errors.New("outbound: transaction rejected by the destination")

// Defaults for Options.
const (
	DefaultMaxPDUs        = 50
	DefaultMaxEDUs        = 100
	DefaultMaxBacklog     = 50_000
	DefaultAttemptTimeout = 30 * time.Second
)

// Options tune a Queue; zero values mean the defaults.
type Options struct {
	MaxPDUs, MaxEDUs int
	// MaxBacklog bounds the PDUs kept for one unreachable destination. Past it the oldest are
	// dropped: when the destination returns, the newest events lead it to fetch the gap itself
	// (get_missing_events, backfill), which is cheaper than replaying a week.
	MaxBacklog     int
	AttemptTimeout time.Duration
	// Backoff is the wait before attempt failures+1, given how long the destination has been
	// down. Nil: DefaultBackoff.
	Backoff func(failures int, outage time.Duration) time.Duration
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
}

// Queue is the outbound side of federation. Create it with New, start it with Run, and
// Enqueue (or write with storage.Tx.EnqueueOutbound and then Notify). Safe for concurrent use.
type Queue struct {
	db   *storage.DB
	send Sender
	log  *slog.Logger
	opt  Options

	mu      sync.Mutex
	ctx     context.Context // Run's; nil before Run
	workers map[string]*worker
	wg      sync.WaitGroup
}

type worker struct {
	wake    chan struct{}
	pending bool // work arrived after the last look; guarded by Queue.mu
	alive   bool // the destination contacted us; guarded by Queue.mu
}

// New returns a queue delivering through send.
func New(db *storage.DB, send Sender, log *slog.Logger, opt Options) *Queue {
	if opt.MaxPDUs <= 0 {
		opt.MaxPDUs = DefaultMaxPDUs
	}
	if opt.MaxEDUs <= 0 {
		opt.MaxEDUs = DefaultMaxEDUs
	}
	if opt.MaxBacklog <= 0 {
		opt.MaxBacklog = DefaultMaxBacklog
	}
	if opt.AttemptTimeout <= 0 {
		opt.AttemptTimeout = DefaultAttemptTimeout
	}
	if opt.Backoff == nil {
		opt.Backoff = DefaultBackoff
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Queue{db: db, send: send, log: log, opt: opt, workers: map[string]*worker{}}
}

// Run resumes delivery of everything queued before a restart, then delivers until ctx ends,
// and waits for its workers. Items still queued stay on disk for the next start.
func (q *Queue) Run(ctx context.Context) error {
	q.mu.Lock()
	q.ctx = ctx
	q.mu.Unlock()
	dests, err := q.db.OutboundDestinations(ctx)
	if err != nil {
		return err
	}
	for _, d := range dests {
		q.Notify(d.Name)
	}
	<-ctx.Done()
	q.wg.Wait()
	return nil
}

// Item is one PDU or EDU to queue.
type Item struct {
	Kind    int    // storage.OutboundPDU or storage.OutboundEDU
	Body    []byte // JSON
	Expires time.Time
}

// Enqueue durably queues an item for each destination and wakes their delivery.
func (q *Queue) Enqueue(ctx context.Context, destinations []string, it Item) error {
	now := q.opt.Now().UnixMilli()
	var exp int64
	if !it.Expires.IsZero() {
		exp = it.Expires.UnixMilli()
	}
	err := q.db.Write(ctx, func(tx *storage.Tx) error {
		for _, d := range destinations {
			if err := tx.EnqueueOutbound(d, it.Kind, it.Body, now, exp); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range destinations {
		q.Notify(d)
	}
	return nil
}

// Notify wakes delivery to destination after items were queued for it.
func (q *Queue) Notify(destination string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ctx == nil || q.ctx.Err() != nil {
		return // Run picks queued items up from disk
	}
	if w, ok := q.workers[destination]; ok {
		w.pending = true
		select {
		case w.wake <- struct{}{}:
		default:
		}
		return
	}
	w := &worker{wake: make(chan struct{}, 1)}
	q.workers[destination] = w
	q.wg.Add(1)
	go q.deliver(q.ctx, destination, w)
}

// PeerAlive is called when destination contacts us: it is back, so whatever is queued for
// it goes now rather than when its back-off ends. It costs no I/O, so it can be called on
// every inbound request.
func (q *Queue) PeerAlive(destination string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if w, ok := q.workers[destination]; ok {
		w.alive = true
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// takeAlive reports (and clears) a sign of life from the worker's destination.
func (q *Queue) takeAlive(w *worker) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	alive := w.alive
	w.alive = false
	return alive
}

// deliver is one destination's loop: wait out any back-off, send the next transaction,
// repeat until the queue is empty.
func (q *Queue) deliver(ctx context.Context, dest string, w *worker) {
	defer q.wg.Done()
	for ctx.Err() == nil {
		d, err := q.db.OutboundDestination(ctx, dest)
		if err != nil {
			q.log.Error("outbound: read destination state", "destination", dest, "err", err)
			q.sleep(ctx, w, time.Second)
			continue
		}
		if wait := time.UnixMilli(d.RetryAtTS).Sub(q.opt.Now()); d.RetryAtTS != 0 && wait > 0 && !q.takeAlive(w) {
			q.sleep(ctx, w, wait)
			continue
		}
		sent, err := q.deliver1(ctx, dest)
		if err != nil && ctx.Err() == nil {
			q.fail(ctx, dest, d, err)
			continue
		}
		if !sent && q.idle(dest, w) {
			return
		}
	}
}

// deliver1 sends the next transaction. sent is false when nothing was queued.
func (q *Queue) deliver1(ctx context.Context, dest string) (sent bool, err error) {
	var txnID string
	var items []storage.OutboundItem
	now := q.opt.Now().UnixMilli()
	err = q.db.Write(ctx, func(tx *storage.Tx) error {
		var err error
		txnID, items, err = tx.NextOutboundBatch(dest, q.opt.MaxPDUs, q.opt.MaxEDUs, now)
		return err
	})
	if err != nil || txnID == "" {
		return false, err
	}
	var pdus, edus []json.RawMessage
	for _, it := range items {
		if it.Kind == storage.OutboundPDU {
			pdus = append(pdus, it.Body)
		} else {
			edus = append(edus, it.Body)
		}
	}
	actx, cancel := context.WithTimeout(ctx, q.opt.AttemptTimeout)
	err = q.send.SendTransaction(actx, dest, txnID, pdus, edus)
	cancel()
	if errors.Is(err, ErrRejected) {
		q.log.Error("outbound: destination rejected a transaction; dropping it", "destination", dest, "txn", txnID,
			"pdus", len(pdus), "edus", len(edus), "err", err)
		err = nil
	}
	if err != nil {
		return false, err
	}
	return true, q.db.Write(context.WithoutCancel(ctx), func(tx *storage.Tx) error { return tx.CompleteOutboundBatch(dest, txnID) })
}

// fail records a failed attempt, schedules the next, and bounds the backlog.
func (q *Queue) fail(ctx context.Context, dest string, d *storage.OutboundDestination, cause error) {
	now := q.opt.Now()
	outage := time.Duration(0)
	if d.DownSinceTS != 0 {
		outage = now.Sub(time.UnixMilli(d.DownSinceTS))
	}
	delay := q.opt.Backoff(d.Failures+1, outage)
	var dropped int64
	err := q.db.Write(ctx, func(tx *storage.Tx) error {
		if err := tx.FailOutbound(dest, now.UnixMilli(), now.Add(delay).UnixMilli()); err != nil {
			return err
		}
		var err error
		dropped, err = tx.TrimOutbound(dest, q.opt.MaxBacklog)
		return err
	})
	if err != nil {
		q.log.Error("outbound: record failure", "destination", dest, "err", err)
	}
	level := slog.LevelInfo
	if d.Failures == 0 {
		level = slog.LevelWarn // the first failure of an outage is news; the rest are not
	}
	q.log.Log(ctx, level, "outbound: delivery failed; will retry", "destination", dest, "failures", d.Failures+1,
		"retry_in", delay.Round(time.Millisecond), "err", cause)
	if dropped > 0 {
		q.log.Warn("outbound: backlog over the limit; dropped the oldest events, the destination will fetch them",
			"destination", dest, "dropped", dropped, "limit", q.opt.MaxBacklog)
	}
}

// sleep waits for d, a wake-up, or the end.
func (q *Queue) sleep(ctx context.Context, w *worker, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-w.wake:
	case <-t.C:
	}
}

// idle retires the worker unless work arrived since it last looked.
func (q *Queue) idle(dest string, w *worker) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if w.pending {
		w.pending = false
		return false
	}
	delete(q.workers, dest)
	return true
}

// DefaultBackoff grows from 250 ms, doubling per failure with ±50% jitter, up to a cap that
// depends on how long the destination has been down: 500 ms for the first ten minutes, so
// that with the transport's 1 s connect timeout for failing destinations a link that heals is
// used again within about two seconds even if the peer says nothing; 1 min for the first six
// hours; 10 min after that. A request to a dead server costs a connection attempt, so short
// early caps are cheap, and long outages settle into a slow poll.
func DefaultBackoff(failures int, outage time.Duration) time.Duration {
	d := 250 * time.Millisecond << min(failures-1, 16)
	var limit time.Duration
	switch {
	case outage < 10*time.Minute:
		limit = 500 * time.Millisecond
	case outage < 6*time.Hour:
		limit = time.Minute
	default:
		limit = 10 * time.Minute
	}
	d = min(d, limit)
	return time.Duration(float64(d) * (0.5 + rand.Float64()))
}
