// Package keys is the end-to-end encryption engine: device identity keys, one-time and
// fallback keys, cross-signing keys and signatures, device-list tracking, send-to-device
// messaging and server-side key backups, as the spec's "End-to-end encryption",
// "Send-to-device messaging" and "Server-side key backups" modules describe them.
//
// The server never sees a private key or a plaintext message: it stores what clients upload,
// checks every signature it can, and hands keys out under the spec's rules. /sync reads from
// it through ToDevice, AckToDevice, DeviceListChanges, OTKCounts and UnusedFallbackKeyTypes.
//
// It is not for HTTP, nor for federation transport: other servers are reached through the
// RemoteKeys and Outbox interfaces. Importers call it e2ee, since federation/keys holds the
// server's signing keys.
//
// See https://spec.matrix.org/v1.19/client-server-api/#end-to-end-encryption
package keys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// Errors the API maps to the spec's codes.
var (
	ErrBadJSON          = errors.New("keys: bad JSON")
	ErrInvalidParam     = errors.New("keys: invalid parameter")
	ErrMissingParam     = errors.New("keys: missing parameter")
	ErrInvalidSignature = errors.New("keys: invalid signature")
	ErrForbidden        = errors.New("keys: forbidden")
	ErrNotFound         = errors.New("keys: not found")
	// ErrAuthRequired means the request replaces existing cross-signing keys: the caller must
	// complete user-interactive auth and repeat it with authenticated set.
	ErrAuthRequired = errors.New("keys: user-interactive auth required")
	// ErrNoFederation is what a remote server's users get until federation is wired in.
	ErrNoFederation = errors.New("keys: keys of users on other servers are not available yet")
)

// WrongVersionError refuses a write to a key backup that is not the current one. The API
// answers 403 M_WRONG_ROOM_KEYS_VERSION with current_version.
type WrongVersionError struct {
	Current string
}

func (e *WrongVersionError) Error() string {
	return "keys: wrong backup version; the current version is " + e.Current
}

// Defaults for Options.
const (
	// DefaultMaxInbox bounds each device's to-device inbox. Synapse keeps every message; a
	// device that never syncs again (a lost phone never logged out) would grow its inbox without
	// end, so past the bound the oldest messages are dropped: old room keys are the least
	// useful, and a client that missed one can ask its other devices or the key backup.
	DefaultMaxInbox = 10_000
	// DefaultToDeviceLimit is how many to-device messages one sync hands out, as the spec
	// recommends.
	DefaultToDeviceLimit = 100
	// DefaultRemoteTimeout bounds a query or claim to other servers, as the spec recommends.
	DefaultRemoteTimeout = 10 * time.Second
)

// Options configure an Engine.
type Options struct {
	// ServerName is this server's name: users under it are local.
	ServerName string
	// Log receives what is dropped or fails in the background; nil discards.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxInbox bounds each device's to-device inbox. Zero means DefaultMaxInbox.
	MaxInbox int
}

// Listener hears, after the commit, about changes that the syncs of local users must
// deliver: to-device messages and device-list changes at stream position pos. Sync's
// notifier implements it to wake long-polls.
type Listener interface {
	E2EEUpdate(pos int64, users []id.UserID)
}

// Engine is the end-to-end encryption engine of one server. It is safe for concurrent use.
type Engine struct {
	db  *storage.DB
	opt Options
	log *slog.Logger

	mu       sync.RWMutex
	listener Listener
	remote   RemoteKeys
	outbox   Outbox

	// prunedToDeviceIDs is when (Unix ms) old message IDs of received to-device EDUs were
	// last forgotten.
	prunedToDeviceIDs atomic.Int64
}

// New returns an engine over db.
func New(db *storage.DB, opt Options) *Engine {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.MaxInbox <= 0 {
		opt.MaxInbox = DefaultMaxInbox
	}
	return &Engine{db: db, opt: opt, log: opt.Log}
}

// SetListener sets who hears about changes for sync.
func (e *Engine) SetListener(l Listener) {
	e.mu.Lock()
	e.listener = l
	e.mu.Unlock()
}

// SetRemote sets how keys of users on other servers are queried and claimed. Until it is
// set, those users are reported in the responses' failures.
func (e *Engine) SetRemote(r RemoteKeys) {
	e.mu.Lock()
	e.remote = r
	e.mu.Unlock()
}

// SetOutbox sets how to-device messages reach users on other servers. Until it is set, such
// messages are dropped and logged.
func (e *Engine) SetOutbox(o Outbox) {
	e.mu.Lock()
	e.outbox = o
	e.mu.Unlock()
}

func (e *Engine) isLocal(u id.UserID) bool { return u.Homeserver() == e.opt.ServerName }

func (e *Engine) nowMS() int64 { return e.opt.Now().UnixMilli() }

// notify tells the listener about a change for these users, keeping the local ones.
func (e *Engine) notify(pos int64, users []id.UserID) {
	e.mu.RLock()
	l := e.listener
	e.mu.RUnlock()
	if l == nil || pos == 0 {
		return
	}
	var local []id.UserID
	for _, u := range users {
		if e.isLocal(u) {
			local = append(local, u)
		}
	}
	if len(local) > 0 {
		l.E2EEUpdate(pos, local)
	}
}

// notifySharing tells the listener that user's keys changed: user and everyone sharing a
// room with them must hear of it.
func (e *Engine) notifySharing(ctx context.Context, pos int64, user id.UserID) {
	e.mu.RLock()
	l := e.listener
	e.mu.RUnlock()
	if l == nil || pos == 0 {
		return
	}
	users, err := e.db.UsersSharingRoom(ctx, user)
	if err != nil {
		// The change is committed; syncs still see it on their next wake-up.
		e.log.Warn("e2ee: listing users to notify of a device-list change", "user", user, "err", err)
	}
	e.notify(pos, append(users, user))
}

// formatVersion and parseVersion convert backup versions between the wire (opaque strings)
// and storage (integers). A version that does not parse names no backup.
func formatVersion(v int64) string { return strconv.FormatInt(v, 10) }

func parseVersion(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%w: unknown backup version %q", ErrNotFound, s)
	}
	return v, nil
}
