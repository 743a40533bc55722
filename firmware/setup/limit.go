package setup

import (
	"sync"
	"time"
)

// Limits on wrong claim codes: each address gets perAddr tries in window; all addresses
// together get total, so that many addresses cannot share the guessing.
const (
	limitWindow  = 10 * time.Minute
	limitPerAddr = 5
	limitTotal   = 30
	// totalKey counts every address's failures; no IP address is spelt "*".
	totalKey = "*"
)

// limiter remembers recent wrong claim codes.
type limiter struct {
	now func() time.Time
	mu  sync.Mutex
	// fails holds the times of recent failures, per address and in total (totalKey).
	fails map[string][]time.Time
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, fails: map[string][]time.Time{}}
}

// prune drops failures older than the window and returns what is left for key.
func (l *limiter) prune(key string, now time.Time) []time.Time {
	ts := l.fails[key]
	for len(ts) > 0 && now.Sub(ts[0]) >= limitWindow {
		ts = ts[1:]
	}
	if len(ts) == 0 {
		delete(l.fails, key)
		return nil
	}
	l.fails[key] = ts
	return ts
}

// blocked returns how long addr must wait before its next try, or 0.
func (l *limiter) blocked(addr string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for key, limit := range map[string]int{addr: limitPerAddr, totalKey: limitTotal} {
		if ts := l.prune(key, now); len(ts) >= limit {
			wait = max(wait, ts[len(ts)-limit].Add(limitWindow).Sub(now))
		}
	}
	return wait
}

// fail records a wrong code from addr.
func (l *limiter) fail(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.fails[addr] = append(l.prune(addr, now), now)
	l.fails[totalKey] = append(l.prune(totalKey, now), now)
}
