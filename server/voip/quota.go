package voip

import (
	"sync"
	"time"

	"maunium.net/go/mautrix/id"
)

// Limits bound what one user may take from the relay. Zero means unlimited.
type Limits struct {
	Allocations    int     // relays held at once
	BytesPerSecond float64 // relayed payload, both directions of all the user's relays together
}

// users tracks each user's allocations and bandwidth. Entries exist while a user holds at
// least one allocation. It is safe for concurrent use.
type users struct {
	mu sync.Mutex
	m  map[id.UserID]*user
}

// user is one user's share of the relay.
type user struct {
	allocs int // guarded by users.mu

	mu     sync.Mutex // guards the token bucket
	tokens float64    // bytes that may pass now
	last   time.Time
}

func newUsers() *users { return &users{m: map[id.UserID]*user{}} }

// mayAllocate reports whether u is below max allocations (0: no limit).
func (t *users) mayAllocate(u id.UserID, max int) bool {
	if max <= 0 {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.m[u]
	return e == nil || e.allocs < max
}

// allocated records a new allocation of u and returns its entry.
func (t *users) allocated(u id.UserID) *user {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.m[u]
	if e == nil {
		e = &user{}
		t.m[u] = e
	}
	e.allocs++
	return e
}

// released records the end of an allocation of u.
func (t *users) released(u id.UserID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.m[u]; e != nil {
		if e.allocs--; e.allocs <= 0 {
			delete(t.m, u)
		}
	}
}

// take spends n bytes from the user's token bucket, which refills at rate bytes per second up
// to one second's worth. It reports false, spending nothing, when the bucket is short: the
// datagram is dropped, as a congested link would.
func (e *user) take(n int, rate float64, now time.Time) bool {
	if rate <= 0 {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.last.IsZero() {
		e.tokens = rate
	} else if d := now.Sub(e.last).Seconds(); d > 0 {
		e.tokens = min(rate, e.tokens+d*rate)
	}
	e.last = now
	if e.tokens < float64(n) {
		return false
	}
	e.tokens -= float64(n)
	return true
}
