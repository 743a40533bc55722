// Package sync serves /sync v2 and simplified sliding sync (MSC4186, sliding*.go): what
// changed for a user since their token, computed from the storage stream, and long-polls
// that wait for it. Its Notifier hears about every committed write and wakes exactly the
// long-polls it concerns.
//
// A sync reads everything as of one stream position N: room events up to N, memberships
// from the membership log up to N, state from the snapshots of the events before N, and the
// other streams for (since, N]; next_batch is N. A write committed after N has a larger
// position, wakes the long-poll if it concerns the user, and is sent by the next sync, so
// nothing is missed or sent twice however writes and syncs interleave.
//
// It is not for room logic (history visibility, formatting and state live in server/rooms),
// nor for the streams of other engines (account data, receipts, typing, presence, to-device
// messages, device lists, key counts, notification counts): those plug in as the sources in
// Options.
package sync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
	"fyr/storage"
)

// Errors the API maps to the spec's codes.
var (
	ErrInvalidParam = errors.New("sync: invalid parameter")
	ErrNotJSON      = errors.New("sync: not JSON")
	ErrBadFilter    = errors.New("sync: bad filter")
)

// Defaults for Options.
const (
	// DefaultMaxTimeout caps how long one long-poll waits.
	DefaultMaxTimeout = 5 * time.Minute
	// DefaultWorkers is how many rooms one sync computes at once.
	DefaultWorkers = 4
	// DefaultToDeviceLimit is how many to-device messages one response carries.
	DefaultToDeviceLimit = 100
)

// Options configure an Engine. The sources are the streams of other engines; nil leaves a
// stream out (see sources.go).
type Options struct {
	// ServerName is this server's name: the notifier wakes its users only.
	ServerName string
	Log        *slog.Logger
	// MaxTimeout caps a long-poll's timeout; zero means DefaultMaxTimeout.
	MaxTimeout time.Duration
	// Workers is how many rooms one sync computes at once; zero means DefaultWorkers.
	Workers int

	Filters       FilterSource
	Presence      PresenceSource
	AccountData   AccountDataSource
	Receipts      ReceiptSource
	Typing        TypingSource
	ToDevice      ToDeviceSource
	DeviceLists   DeviceListSource
	Keys          KeyCountSource
	Notifications NotificationSource
	// Ignored returns the users whose messages user ignores (m.ignored_user_list); nil:
	// nobody is ignored.
	Ignored func(ctx context.Context, user id.UserID) map[id.UserID]bool
}

// Engine answers /sync. It is safe for concurrent use.
type Engine struct {
	db       *storage.DB
	rooms    *rooms.Engine
	opt      Options
	log      *slog.Logger
	notifier *Notifier
	lazy     *lazyCache
	sliding  *sliding
	waiting  atomic.Int64
}

// New returns an engine. Hand its Notifier to the rooms engine (SetListener) and to every
// other stream.
func New(db *storage.DB, roomsEngine *rooms.Engine, opt Options) *Engine {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.MaxTimeout <= 0 {
		opt.MaxTimeout = DefaultMaxTimeout
	}
	if opt.Workers <= 0 {
		opt.Workers = DefaultWorkers
	}
	return &Engine{db: db, rooms: roomsEngine, opt: opt, log: opt.Log,
		notifier: NewNotifier(db, opt.ServerName, opt.Log), lazy: newLazyCache(DefaultLazyDevices),
		sliding: newSliding(time.Now)}
}

// Notifier is the engine's notifier.
func (e *Engine) Notifier() *Notifier { return e.notifier }

// Close ends every long-poll with what it has, and makes later ones answer at once: call
// it when the server starts shutting down, so that in-flight syncs do not hold it up.
func (e *Engine) Close() { e.notifier.Close() }

// Request is one /sync call.
type Request struct {
	User   id.UserID
	Device id.DeviceID
	// Since is the client's token; nil for an initial sync.
	Since *Token
	// Timeout is how long to wait for something to send (capped at Options.MaxTimeout).
	Timeout time.Duration
	// FullState sends every joined room with its whole state; the timeline still starts
	// after Since, and the sync does not wait.
	FullState bool
	// UseStateAfter sends each room's state at the end of its timeline, as state_after,
	// instead of the state at its start (spec v1.16).
	UseStateAfter bool
	// SetPresence is "online" (also when empty), "unavailable" or "offline".
	SetPresence string
	// Filter is a stored filter's ID or an inline filter (JSON, starting with "{"); empty
	// is the default filter.
	Filter string
}

// Sync answers a /sync request: at once if there is something to send, or after waiting up
// to the timeout for something to happen. A since beyond the stream's end (a token from
// before a database restore) is answered as an initial sync, so the client loses nothing.
func (e *Engine) Sync(ctx context.Context, req Request) (*Response, error) {
	presence := req.SetPresence
	switch presence {
	case "":
		presence = "online"
	case "online", "unavailable", "offline":
	default:
		return nil, fmt.Errorf("%w: set_presence must be online, unavailable or offline", ErrInvalidParam)
	}
	f, err := e.loadFilter(ctx, req.User, req.Filter)
	if err != nil {
		return nil, err
	}
	if e.opt.Presence != nil {
		e.opt.Presence.Syncing(ctx, req.User, req.Device, presence)
	}
	timeout := min(req.Timeout, e.opt.MaxTimeout)
	var timer <-chan time.Time
	for {
		wake := e.notifier.Listen(req.User)
		to, err := e.current(ctx)
		if err != nil {
			return nil, err
		}
		since := req.Since
		if since != nil && since.Pos > to.Pos {
			e.log.Warn("sync token is ahead of the stream (database restored from a backup?); sending an initial sync",
				"user", req.User, "since", since.String(), "stream", to.Pos)
			since = nil
		}
		resp, err := e.build(ctx, &req, f, since, to)
		if err != nil {
			return nil, err
		}
		if since == nil || req.FullState || !resp.empty() || timeout <= 0 {
			return e.finish(ctx, &req, resp)
		}
		if timer == nil {
			t := time.NewTimer(timeout)
			defer t.Stop()
			timer = t.C
		}
		if answer, err := e.await(ctx, wake, timer); err != nil {
			return nil, err
		} else if answer {
			return e.finish(ctx, &req, resp)
		}
	}
}

// await parks a long-poll until wake fires, the timer runs out or ctx ends, using no CPU
// meanwhile. answer says the caller should respond with what it has (the time is up or the
// server is shutting down); otherwise something changed and it should look again.
func (e *Engine) await(ctx context.Context, wake <-chan struct{}, timer <-chan time.Time) (answer bool, err error) {
	e.waiting.Add(1)
	defer e.waiting.Add(-1)
	timedOut := false
	select {
	case <-wake:
	case <-timer:
		timedOut = true
	case <-ctx.Done():
		return false, ctx.Err()
	}
	return timedOut || e.notifier.Closed(), nil
}

// Waiting is how many long-polls are waiting right now (for metrics, and for tests that
// must know a sync is parked before they write).
func (e *Engine) Waiting() int { return int(e.waiting.Load()) }

// current is the token for now: the storage stream's newest position and the typing serial.
func (e *Engine) current(ctx context.Context) (Token, error) {
	pos, err := e.db.StreamPos(ctx)
	if err != nil {
		return Token{}, err
	}
	t := Token{Pos: pos}
	if e.opt.Typing != nil {
		t.Typing = e.opt.Typing.TypingPos()
	}
	return t, nil
}

// finish adds what every response carries, whether or not anything changed.
func (e *Engine) finish(ctx context.Context, req *Request, resp *Response) (*Response, error) {
	resp.NextBatch = resp.next.String()
	resp.DeviceOneTimeKeysCount = map[string]int{}
	if e.opt.Keys != nil {
		counts, fallback, err := e.opt.Keys.KeyCounts(ctx, req.User, req.Device)
		if err != nil {
			return nil, fmt.Errorf("key counts: %w", err)
		}
		for alg, n := range counts {
			if n > 0 {
				resp.DeviceOneTimeKeysCount[alg] = n
			}
		}
		resp.DeviceUnusedFallbackKeyTypes = append([]string{}, fallback...)
	}
	return resp, nil
}
