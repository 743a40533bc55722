// Package ephemeral keeps what a room's members tell each other outside the room's
// timeline: who is typing (in memory only, gone after a restart), read receipts (m.read and
// the owner-only m.read.private, stored, each move with a stream position) and the fully-read
// marker behind the m.fully_read room account data. Sync reads both through Typing and
// ReceiptsSince and hears about changes through OnTyping and OnReceipt.
//
// Other servers' users are kept here too (SetRemoteTyping, SetRemoteReceipt), and
// OnUserTyping and OnReceipt tell who carries local users' changes to other servers.
//
// It is not for HTTP, for storing account data (the SetRoomAccountData hook does that) or
// for federation's wire formats: the server's EDU handlers decode and check what other
// servers send and build what goes out.
package ephemeral

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
	"fyr/storage"
)

// Errors the API maps to the spec's codes.
var (
	ErrNotFound     = errors.New("ephemeral: not found")
	ErrForbidden    = errors.New("ephemeral: forbidden")
	ErrInvalidParam = errors.New("ephemeral: invalid parameter")
	// ErrUnavailable means a part this needs is not wired in (see SetRoomAccountData).
	ErrUnavailable = errors.New("ephemeral: not available on this server")
)

// Rooms is what the service asks of the room engine.
type Rooms interface {
	// Version returns a room's version, or rooms.ErrNotFound for an unknown room.
	Version(ctx context.Context, roomID id.RoomID) (id.RoomVersion, error)
	// Membership returns a user's current membership ("" for none or an unknown room).
	Membership(ctx context.Context, user id.UserID, roomID id.RoomID) (string, error)
	// Event returns an event of the room if the viewer may see it, or rooms.ErrNotFound.
	Event(ctx context.Context, v rooms.Viewer, roomID id.RoomID, eventID id.EventID) (*rooms.ClientEvent, error)
}

// SetRoomAccountDataFunc stores an entry of a user's room account data on the server's
// behalf and returns its stream position (userdata's SetServerAccountData has this shape).
type SetRoomAccountDataFunc func(ctx context.Context, user id.UserID, roomID id.RoomID, typ string, content json.RawMessage) (int64, error)

// Defaults for Options.
const (
	// DefaultTypingTimeout is how long a user types when the request names no timeout.
	DefaultTypingTimeout = 30 * time.Second
	// MaxTypingTimeout caps a requested timeout, as Synapse does, so a client that vanishes
	// mid-sentence is not shown typing for long.
	MaxTypingTimeout = 120 * time.Second
)

// Options configure New. The zero value is ready to use.
type Options struct {
	Log *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Service holds typing notifications and receipts. Create it with New; it is safe for
// concurrent use. The hook fields may be set after New, before the first method call, and
// must not be changed after.
type Service struct {
	// OnTyping is called after the set of users typing in a room changed, including when a
	// timeout ran out. It must not block. Nil tells nobody.
	OnTyping func(roomID id.RoomID)
	// OnUserTyping is called after a user started typing in a room or renewed their timeout
	// (typing true), and after they stopped or their timeout ran out (typing false), for
	// local and remote users alike. It must not block. Nil tells nobody.
	OnUserTyping func(roomID id.RoomID, user id.UserID, typing bool)
	// OnReceipt is called after a receipt was stored at stream position pos; a private
	// receipt only concerns its owner, user. It must not block. Nil tells nobody.
	OnReceipt func(roomID id.RoomID, user id.UserID, private bool, pos int64)

	db    *storage.DB
	rooms Rooms
	log   *slog.Logger

	typing *typing

	// hookMu guards setAccountData, which the server sets once account data is wired in.
	hookMu         sync.RWMutex
	setAccountData SetRoomAccountDataFunc

	// markerLocks serialise fully-read marker moves per user, so the check that a marker
	// only moves forwards and the account data write happen in one order.
	markerLocks [64]sync.Mutex
}

// New returns a service over db that asks rm about rooms.
func New(db *storage.DB, rm Rooms, opt Options) *Service {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	s := &Service{db: db, rooms: rm, log: opt.Log}
	s.typing = newTyping(opt.Now, func(roomID id.RoomID) {
		if s.OnTyping != nil {
			s.OnTyping(roomID)
		}
	})
	s.typing.user = func(roomID id.RoomID, user id.UserID, typing bool) {
		if s.OnUserTyping != nil {
			s.OnUserTyping(roomID, user, typing)
		}
	}
	return s
}

// SetRoomAccountData installs how the m.fully_read marker reaches the user's room account
// data. Until it is set, moving the marker fails with ErrUnavailable.
func (s *Service) SetRoomAccountData(f SetRoomAccountDataFunc) {
	s.hookMu.Lock()
	s.setAccountData = f
	s.hookMu.Unlock()
}

// SetClock replaces the clock typing timeouts are measured by; tests use it to let time
// pass without sleeping.
func (s *Service) SetClock(now func() time.Time) { s.typing.setClock(now) }

// Run expires typing notifications as their timeouts run out, so that OnTyping announces
// the change, until ctx ends.
func (s *Service) Run(ctx context.Context) { s.typing.run(ctx) }

// joined checks that user is joined to roomID: ErrNotFound for an unknown room, ErrForbidden
// for a room the user is not joined to.
func (s *Service) joined(ctx context.Context, user id.UserID, roomID id.RoomID) error {
	if _, err := s.rooms.Version(ctx, roomID); errors.Is(err, rooms.ErrNotFound) {
		return fmt.Errorf("%w: unknown room %s", ErrNotFound, roomID)
	} else if err != nil {
		return err
	}
	m, err := s.rooms.Membership(ctx, user, roomID)
	if err != nil {
		return err
	}
	if m != "join" {
		return fmt.Errorf("%w: you are not joined to this room", ErrForbidden)
	}
	return nil
}
