// Package userdata owns what a user keeps on their homeserver besides their account: account
// data (global and per room), room tags, filters, presence, and the ignored-user list derived
// from account data. Every change that sync must see takes a position in the storage stream
// in the same transaction, so sync asks storage for "changed since".
//
// It is not for HTTP or for deciding who may act: handlers in server/httpapi check that the
// caller is the user named in the path, call a Service method and map its sentinel errors to
// the spec's error codes. It knows nothing of rooms; the rooms engine answers through hooks.
package userdata

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// Errors returned by Service methods; httpapi maps each to a spec error.
var (
	ErrNotFound = errors.New("userdata: not found")
	// ErrServerManaged refuses a client write to account data the server manages
	// (m.fully_read, m.push_rules); the spec asks for 405 M_BAD_JSON.
	ErrServerManaged = errors.New("userdata: this type of account data is managed by the server and cannot be set by clients")
	ErrTooLarge      = fmt.Errorf("userdata: content is larger than %d bytes", MaxContentBytes)
	ErrInvalidRoomID = errors.New("userdata: invalid room ID")
	ErrUnknownRoom   = errors.New("userdata: unknown room")
	ErrInvalidParam  = errors.New("userdata: invalid parameter")
	ErrBadJSON       = errors.New("userdata: bad JSON")
	// ErrPresenceHidden means the observer may not see the user's presence.
	ErrPresenceHidden = errors.New("userdata: you may not see this user's presence")
)

// Limits on what clients store. The spec sets the tag name limit; the others are Fyr's,
// the same as the spec's limit on a whole profile.
const (
	// MaxContentBytes bounds one account data object (compacted JSON), one filter and one
	// status message.
	MaxContentBytes = 64 * 1024
	// MaxTypeBytes bounds an account data type.
	MaxTypeBytes = 255
	// MaxTagBytes bounds a tag name, as the spec's m.tag module says.
	MaxTagBytes = 255
)

// Options tune New. The zero value is ready to use.
type Options struct {
	// DisablePresence starts the Service with presence off; see SetPresenceEnabled.
	DisablePresence bool
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Service implements per-user data on top of storage. Create it with New; it is safe for
// concurrent use. The hook fields may be set after New but before the first method call,
// and not changed after.
type Service struct {
	// RoomExists reports whether roomID names a room this server knows. It is asked before
	// room account data or tags are written, not when they are read, so data stays readable
	// after a room is gone. Nil accepts any syntactically valid room ID.
	RoomExists func(ctx context.Context, roomID id.RoomID) bool
	// OnPresence, if set, is called after a committed presence change (local or remote),
	// after Notify: the server fans local users' presence out to other servers.
	OnPresence func(userID id.UserID)
	// CanSeePresence reports whether observer may see target's presence; the spec shares it
	// with users who share a room. It is not asked when the two are the same user. Nil lets
	// everyone see everyone's presence.
	CanSeePresence func(ctx context.Context, observer, target id.UserID) bool
	// Notify is called after a change that sync must see has committed, with the user whose
	// data changed and the change's stream position. It must not block. Nil tells nobody.
	Notify func(userID id.UserID, pos int64)

	db         *storage.DB
	serverName string
	now        func() time.Time
	presence   atomic.Bool

	ignoredMu      sync.Mutex
	ignored        map[id.UserID]map[id.UserID]bool
	ignoredVersion uint64
}

// New returns a Service for the server called serverName.
func New(db *storage.DB, serverName string, opts Options) *Service {
	s := &Service{db: db, serverName: serverName, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	s.presence.Store(!opts.DisablePresence)
	return s
}

// notify reports a committed change to the Notify hook.
func (s *Service) notify(userID id.UserID, pos int64) {
	if s.Notify != nil {
		s.Notify(userID, pos)
	}
}

// isLocal reports whether userID is a syntactically valid ID of this server's users.
func (s *Service) isLocal(userID id.UserID) bool {
	_, server, err := userID.Parse()
	return err == nil && server == s.serverName
}

// ValidRoomID checks the syntax of a room ID (see the appendix on identifiers): a '!', then
// an opaque part, then ":server" in room versions before 12; room version 12 drops the
// server and makes the opaque part an unpadded URL-safe base64 hash. At most 255 bytes.
func ValidRoomID(roomID id.RoomID) error {
	s := string(roomID)
	if len(s) > 255 || !strings.HasPrefix(s, "!") {
		return fmt.Errorf("%w: %q does not start with '!' or is longer than 255 bytes", ErrInvalidRoomID, s)
	}
	opaque, server, hasServer := strings.Cut(s[1:], ":")
	if opaque == "" {
		return fmt.Errorf("%w: %q has an empty opaque part", ErrInvalidRoomID, s)
	}
	if hasServer {
		if !id.ValidateServerName(server) {
			return fmt.Errorf("%w: %q has an invalid server name", ErrInvalidRoomID, s)
		}
		return nil
	}
	for _, c := range opaque {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: %q has neither a server name nor a URL-safe base64 hash", ErrInvalidRoomID, s)
		}
	}
	return nil
}

// checkRoomWrite validates a room ID for a write and asks the RoomExists hook.
func (s *Service) checkRoomWrite(ctx context.Context, roomID id.RoomID) error {
	if err := ValidRoomID(roomID); err != nil {
		return err
	}
	if s.RoomExists != nil && !s.RoomExists(ctx, roomID) {
		return fmt.Errorf("%w: %s", ErrUnknownRoom, roomID)
	}
	return nil
}

// Now is the service's clock (for turning stored presence into what clients see).
func (s *Service) Now() time.Time { return s.now() }
