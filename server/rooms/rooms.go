// Package rooms is the room engine: it builds events as signed PDUs (mautrix federation/pdu),
// authorises them against the room's state (mautrix federation/eventauth), persists each
// event with its state delta, extremities and stream position in one write, and answers
// every read a client makes of a room: timelines, state, members, context and relations,
// with history visibility applied.
//
// Writes to one room are ordered by that room's lock; different rooms proceed in parallel
// and share the storage writer's group commits. The current state of rooms in use is cached.
//
// It is not for HTTP, sync long-polls or federation transport: httpapi decodes requests,
// a Listener (sync's notifier) hears about every new event, and an Outbox carries events
// to other servers.
package rooms

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"sync"
	"time"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/federation/keys"
	"fyr/storage"
)

// Errors the API maps to the spec's codes.
var (
	ErrNotFound           = errors.New("rooms: not found")
	ErrForbidden          = errors.New("rooms: forbidden")
	ErrInvalidParam       = errors.New("rooms: invalid parameter")
	ErrBadJSON            = errors.New("rooms: bad JSON")
	ErrTooLarge           = errors.New("rooms: too large")
	ErrUnsupportedVersion = errors.New("rooms: unsupported room version")
	ErrRoomInUse          = errors.New("rooms: room alias in use")
	ErrRemote             = errors.New("rooms: needs federation")
	ErrLimitExceeded      = errors.New("rooms: limit exceeded")
	// ErrStillMember is forgetting a room one has not left (400 M_UNKNOWN, as Synapse).
	ErrStillMember = errors.New("rooms: still a member")
)

// Limits from the spec.
const (
	MaxPDUBytes      = 65536
	MaxTypeBytes     = 255
	MaxStateKeyBytes = 255
)

// Room versions this server knows, creates rooms in, and the default.
var (
	// KnownVersions are the versions this server can read and join.
	KnownVersions = []id.RoomVersion{id.RoomV1, id.RoomV2, id.RoomV3, id.RoomV4, id.RoomV5, id.RoomV6,
		id.RoomV7, id.RoomV8, id.RoomV9, id.RoomV10, id.RoomV11, id.RoomV12}
	// CreatableVersions are the versions createRoom and upgrades accept: every known one,
	// as Synapse does.
	CreatableVersions = KnownVersions
	DefaultVersion    = id.RoomV12
)

// Listener hears about every event that enters a room's timeline, after it is committed.
type Listener interface {
	RoomEvent(ev *storage.Event, roomID id.RoomID)
}

// Outbox delivers PDUs to other servers: Enqueue runs inside the event's own write, so an
// event and its delivery promise are committed together; Notify runs after the commit.
type Outbox interface {
	EnqueuePDU(tx *storage.Tx, destinations []string, pdu []byte) error
	Notify(destinations []string)
}

// Options configure an Engine.
type Options struct {
	ServerName string
	Key        *keys.SigningKey
	Log        *slog.Logger
	// Profile returns a local user's display name and avatar for their membership events.
	Profile func(ctx context.Context, user id.UserID) (displayName, avatarURL string)
	// KeyFunc fetches other servers' keys (for restricted joins authorised elsewhere).
	KeyFunc pdu.GetKeyFunc
	Now     func() time.Time
}

// Engine is the room engine of one server.
type Engine struct {
	db     *storage.DB
	opt    Options
	log    *slog.Logger
	locks  sync.Map // room ID → *sync.Mutex
	cache  *stateCache
	events *eventCache
	// summaries caches rooms' directory summaries (summary.go); its zero value is ready.
	summaries summaryCache
	// hierarchies caches other servers' space hierarchies (fedhierarchy.go); zero is ready.
	hierarchies hierarchyCache

	// aggregator adds bundled aggregations (m.relations) to events; nil: none.
	aggregator func(ctx context.Context, v Viewer, ces []*ClientEvent) error

	mu       sync.RWMutex
	listener Listener
	outbox   Outbox
	hook     EventHook
	remote   Remote
	resolve  Resolver
	// rejectGuard may refuse turning an invite into a leave (rejectguard.go).
	rejectGuard RejectGuard
}

// New returns an engine over db.
func New(db *storage.DB, opt Options) *Engine {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	e := withRelations(&Engine{db: db, opt: opt, log: opt.Log, cache: newStateCache(256), events: newEventCache(8192)})
	e.resolve = e.stateResolver
	return e
}

// SetListener sets who hears about new timeline events.
func (e *Engine) SetListener(l Listener) {
	e.mu.Lock()
	e.listener = l
	e.mu.Unlock()
}

// SetOutbox sets how events reach other servers.
func (e *Engine) SetOutbox(o Outbox) {
	e.mu.Lock()
	e.outbox = o
	e.mu.Unlock()
}

// ServerName is this server's name.
func (e *Engine) ServerName() string { return e.opt.ServerName }

// lock takes a room's write lock.
func (e *Engine) lock(roomID id.RoomID) func() {
	m, _ := e.locks.LoadOrStore(roomID, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

func (e *Engine) now() int64 { return e.opt.Now().UnixMilli() }

// isLocal says whether a user belongs to this server.
func (e *Engine) isLocal(u id.UserID) bool { return u.Homeserver() == e.opt.ServerName }

func b64(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }
