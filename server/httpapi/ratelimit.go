package httpapi

import (
	"context"
	"math"
	"net/http"
	"sync"
	"time"
)

// limiter is a token bucket per client address. Rate and burst are read from the live
// configuration on each call, so a reload applies at once.
type limiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	now     func() time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// limiterIdle is how long a full bucket is kept before it is forgotten.
const limiterIdle = 10 * time.Minute

func newLimiter() *limiter {
	return &limiter{buckets: map[string]*bucket{}, now: time.Now}
}

// allow takes one token from key's bucket. When empty, it says how long until one is back.
func (l *limiter) allow(key string, perSecond float64, burst int) (bool, time.Duration) {
	if perSecond <= 0 {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: float64(burst), last: now}
		l.buckets[key] = b
	}
	b.tokens = math.Min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*perSecond)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / perSecond * float64(time.Second))
	return false, wait
}

// run forgets idle buckets every minute until ctx ends, so memory stays bounded by the
// number of recently active addresses.
func (l *limiter) run(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.prune()
		}
	}
}

func (l *limiter) prune() {
	cutoff := l.now().Add(-limiterIdle)
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, b := range l.buckets {
		if b.last.Before(cutoff) {
			delete(l.buckets, k)
		}
	}
}

// rateLimited wraps login, registration and the name and token checks with the per-address
// limit. Each class has its own bucket, so a client checking names as the user types does
// not use up the attempts to register.
func (a *API) rateLimited(class string, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		rl := a.cfg.Load().RateLimits
		if ok, wait := a.limits.allow(class+":"+clientIP(r), rl.LoginPerSecond, rl.LoginBurst); !ok {
			e := newErr(http.StatusTooManyRequests, "M_LIMIT_EXCEEDED", "too many attempts from this address; retry later")
			e.RetryAfter = wait
			return e
		}
		return h(w, r)
	}
}

// userLimited limits an authenticated user's room events per user (not per address: many
// users may share an office's address). Admins are exempt. Use inside authed.
func (a *API) userLimited(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		c := caller(r)
		rl := a.cfg.Load().RateLimits
		if !c.Admin {
			if ok, wait := a.limits.allow("user:"+string(c.UserID), rl.MessagesPerSecond, rl.MessagesBurst); !ok {
				e := newErr(http.StatusTooManyRequests, "M_LIMIT_EXCEEDED", "too many events; slow down")
				e.RetryAfter = wait
				return e
			}
		}
		return h(w, r)
	}
}
