package keys

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// Errors callers test for with errors.Is.
var (
	// ErrKeyNotFound: neither the cache, the server nor a notary knows the key.
	ErrKeyNotFound = errors.New("keys: key not found")
	// ErrKeyExpired: the key is known but was not valid at the time asked about, and no
	// newer word on it could be had.
	ErrKeyExpired = errors.New("keys: key expired")
	// ErrBadSignature: a key response's self-signature or notary signature does not verify.
	ErrBadSignature = errors.New("keys: bad signature")
	// ErrNoTransport: the Ring has no Getter, so it cannot fetch keys.
	ErrNoTransport = errors.New("keys: no federation transport")
	// ErrBackoff: an earlier fetch from the server failed recently; Ring waits before trying
	// again.
	ErrBackoff = errors.New("keys: recent fetch failed")
)

// Defaults for Options.
const (
	DefaultFetchTimeout    = 30 * time.Second
	DefaultMaxFetches      = 8                // key requests in flight at once, over all servers
	DefaultRefetchInterval = time.Minute      // after a fetch, before asking the same server again
	DefaultMinBackoff      = 30 * time.Second // after the first failure; doubles per failure …
	DefaultMaxBackoff      = 10 * time.Minute // … up to this
)

// Options tune a Ring. The zero value of each field means its default.
type Options struct {
	// Getter makes the key requests. Nil: nothing is fetched and only cached keys verify.
	Getter Getter
	// Notaries are asked, in order, for a server's keys when the server itself does not
	// answer with the key wanted (federation.trusted_key_servers).
	Notaries []string
	// Clock returns the current time. Nil means time.Now.
	Clock func() time.Time
	// Log receives fetch failures at debug level. Nil discards them.
	Log *slog.Logger

	FetchTimeout    time.Duration // one whole fetch, direct and through notaries
	MaxFetches      int
	RefetchInterval time.Duration
	MinBackoff      time.Duration
	MaxBackoff      time.Duration
}

// Ring is the keys of every server this one talks to: its own (Local), and remote servers'
// keys in a persistent cache that it fills by fetching from each server directly, then from
// the notaries. Keys already cached keep verifying while their server and the notaries are
// unreachable, for as long as they are valid.
//
// Concurrent lookups of one server share one fetch; fetches over all servers are bounded by
// MaxFetches; a failed fetch is not retried before a backoff, nor a successful one before
// RefetchInterval. A Ring is safe for concurrent use and owns no goroutines.
type Ring struct {
	db    *storage.DB
	local *Local
	opts  Options
	sem   chan struct{}

	mu       sync.Mutex
	notaries []string
	flights  map[string]*flight
	attempts map[string]attempt
}

// NewRing returns a Ring serving local's keys and caching remote keys in db.
func NewRing(db *storage.DB, local *Local, opts Options) *Ring {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = DefaultFetchTimeout
	}
	if opts.MaxFetches <= 0 {
		opts.MaxFetches = DefaultMaxFetches
	}
	if opts.RefetchInterval <= 0 {
		opts.RefetchInterval = DefaultRefetchInterval
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	return &Ring{
		db:       db,
		local:    local,
		opts:     opts,
		sem:      make(chan struct{}, opts.MaxFetches),
		notaries: append([]string(nil), opts.Notaries...),
		flights:  map[string]*flight{},
		attempts: map[string]attempt{},
	}
}

// Local returns this server's own keys.
func (r *Ring) Local() *Local { return r.local }

// SetNotaries replaces the notaries, e.g. after a configuration reload.
func (r *Ring) SetNotaries(names []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notaries = append([]string(nil), names...)
}

func (r *Ring) notaryList() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.notaries
}

func (r *Ring) now() time.Time { return r.opts.Clock() }

// VerifyKey returns serverName's public key keyID if it was valid at time at: for a current
// key, at is no later than its valid_until_ts (capped at MaxKeyValidity past its fetch); for
// an old key, no later than its expired_ts. Use the request's arrival for X-Matrix requests
// and origin_server_ts for events.
//
// A cached key valid at at is returned without touching the network. Otherwise the key is
// fetched, from serverName and then the notaries. The error wraps ErrKeyNotFound or
// ErrKeyExpired when the key is unknown or was not valid at at.
func (r *Ring) VerifyKey(ctx context.Context, serverName string, keyID id.KeyID, at time.Time) (ed25519.PublicKey, error) {
	k, err := r.lookup(ctx, serverName, keyID, at, true)
	if err != nil {
		return nil, err
	}
	if !validAt(k, at) {
		return nil, fmt.Errorf("%w: %s of %s was valid until %s, not at %s", ErrKeyExpired, keyID, serverName,
			time.UnixMilli(k.ValidUntilTS).UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	}
	return ed25519.PublicKey(k.PublicKey), nil
}

// KeyFunc adapts the Ring to mautrix's (*pdu.PDU).VerifySignature, doing lookups under ctx.
// As pdu.GetKeyFunc asks, an expired key is returned with its validity and no error (the
// room version decides whether validity matters), and an unknown key as "" and no error
// (the spec skips signatures from unknown keys). Errors are left for storage failures and
// ctx ending.
func (r *Ring) KeyFunc(ctx context.Context) pdu.GetKeyFunc {
	return func(serverName string, keyID id.KeyID, minValidUntil time.Time) (id.SigningKey, time.Time, error) {
		k, err := r.lookup(ctx, serverName, keyID, minValidUntil, true)
		if errors.Is(err, ErrKeyNotFound) {
			return "", time.Time{}, nil
		}
		if err != nil {
			return "", time.Time{}, err
		}
		return encodeKey(k.PublicKey), time.UnixMilli(k.ValidUntilTS), nil
	}
}

// lookup finds a key, fetching it if the cache has no copy valid at at. It may return a
// key that is not valid at at, when nothing better can be had; the caller judges validity.
// viaNotaries false fetches from serverName alone, as is done for the notaries' own keys.
func (r *Ring) lookup(ctx context.Context, serverName string, keyID id.KeyID, at time.Time, viaNotaries bool) (*storage.ServerKey, error) {
	if serverName == r.local.ServerName() {
		if k, ok := r.local.lookup(keyID, r.now()); ok {
			return k, nil
		}
		return nil, fmt.Errorf("%w: %s is not one of this server's keys", ErrKeyNotFound, keyID)
	}
	cached, err := r.db.ServerKey(ctx, serverName, keyID)
	switch {
	case err == nil && validAt(cached, at):
		return cached, nil
	case err != nil && !errors.Is(err, storage.ErrNotFound):
		return nil, fmt.Errorf("read key %s of %s: %w", keyID, serverName, err)
	}
	fetchErr := r.fetch(ctx, serverName, keyID, at, viaNotaries)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if fetchErr != nil {
		r.opts.Log.Debug("fetching server keys failed", "server", serverName, "key_id", keyID, "err", fetchErr)
	}
	// Read again even if this fetch failed: another caller's may have stored the key.
	k, err := r.db.ServerKey(ctx, serverName, keyID)
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("read key %s of %s: %w", keyID, serverName, err)
	}
	if fetchErr == nil {
		fetchErr = fmt.Errorf("%s does not publish it", serverName)
	}
	return nil, fmt.Errorf("%w: %s of %s: %w", ErrKeyNotFound, keyID, serverName, fetchErr)
}

// validAt reports whether signatures made at time at verify with k.
func validAt(k *storage.ServerKey, at time.Time) bool {
	return at.UnixMilli() <= k.ValidUntilTS
}

// ParseNotaries splits the federation.trusted_key_servers setting, comma-separated server
// names, into the names.
func ParseNotaries(setting string) []string {
	var out []string
	for _, name := range strings.Split(setting, ",") {
		if name = strings.TrimSpace(name); name != "" {
			out = append(out, name)
		}
	}
	return out
}
