package keys

import (
	"context"
	"fmt"
	"time"

	"maunium.net/go/mautrix/id"
)

// flight is one fetch in progress; callers wanting the same server wait for it.
type flight struct {
	done      chan struct{}
	err       error
	abandoned bool // the caller running it gave up (its ctx ended) before it finished
}

// attempt remembers the last fetch from a server, so it is not repeated too soon.
type attempt struct {
	next     time.Time // no fetch before this
	failures int       // consecutive failures; 0 after a success
	err      error     // the last failure
}

// maxAttempts bounds the attempts map; past it, entries whose wait is over are dropped.
const maxAttempts = 10_000

// fetch brings serverName's keys into the cache: one attempt, shared by every concurrent
// caller for the same server, and refused while an earlier attempt's backoff lasts. If the
// caller that runs the attempt gives up (its ctx ends), a waiting caller runs it anew.
func (r *Ring) fetch(ctx context.Context, serverName string, keyID id.KeyID, at time.Time, viaNotaries bool) error {
	name := serverName
	if !viaNotaries {
		// Separate from full fetches, so a full fetch of A that needs notary B's key
		// never waits for a full fetch of B that needs notary A's key.
		name = "direct " + serverName
	}
	for {
		r.mu.Lock()
		if f, ok := r.flights[name]; ok {
			r.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if f.abandoned && ctx.Err() == nil {
				continue // the caller running it went away; try ourselves
			}
			return f.err
		}
		now := r.now()
		if a, ok := r.attempts[name]; ok && now.Before(a.next) {
			r.mu.Unlock()
			if a.err == nil {
				return fmt.Errorf("fetched %s's keys less than %s ago", serverName, r.opts.RefetchInterval)
			}
			return fmt.Errorf("%w: %s, not retried before %s: %w", ErrBackoff, serverName, a.next.UTC().Format(time.RFC3339), a.err)
		}
		f := &flight{done: make(chan struct{})}
		r.flights[name] = f
		r.mu.Unlock()

		fctx, cancel := context.WithTimeout(ctx, r.opts.FetchTimeout)
		f.err = r.fetch1(fctx, serverName, keyID, at, viaNotaries)
		cancel()

		r.mu.Lock()
		delete(r.flights, name)
		if f.abandoned = ctx.Err() != nil; !f.abandoned {
			r.record(name, f.err, now)
		}
		r.mu.Unlock()
		close(f.done)
		return f.err
	}
}

// record notes the outcome of an attempt that started at now. r.mu must be held.
func (r *Ring) record(name string, err error, now time.Time) {
	if len(r.attempts) >= maxAttempts {
		for k, a := range r.attempts {
			if !now.Before(a.next) {
				delete(r.attempts, k)
			}
		}
	}
	if err == nil {
		r.attempts[name] = attempt{next: now.Add(r.opts.RefetchInterval)}
		return
	}
	a := r.attempts[name]
	a.failures++
	a.err = err
	wait := r.opts.MinBackoff
	for i := 1; i < a.failures && wait < r.opts.MaxBackoff; i++ {
		wait *= 2
	}
	a.next = now.Add(min(wait, r.opts.MaxBackoff))
	r.attempts[name] = a
}
