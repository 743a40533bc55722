// Package notices sends server notices: messages from the server itself to one of its users
// (an update was installed, a limit was reached), each user in a notices room of their own.
// The notices come from a system account, @<localpart>:<server>, which the server creates the
// first time it needs it; nobody can register it or log in as it, and it is not in the user
// directory.
//
// A user's notices room is created by the system account, invite-only, with power levels
// under which the user cannot send anything, and tagged m.server_notice in the user's room
// account data so that clients show it as the notices room. The user is invited, not joined;
// they cannot reject the invite (RejectGuard), but once joined they may leave, and the next
// notice invites them back into the same room.
//
// It is not for HTTP (httpapi serves Synapse's admin API on top of Send) nor for deciding who
// may send notices: the caller checks that.
//
// See https://spec.matrix.org/v1.19/client-server-api/#server-notices
package notices

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"fyr/server/accounts"
	"fyr/server/rooms"
	"fyr/storage"
)

// Errors Send and the RejectGuard return; httpapi maps each to a spec error.
var (
	// ErrNotLocal is a notice to a user of another server.
	ErrNotLocal = errors.New("notices: server notices can only be sent to local users")
	// ErrUnknownUser is a notice to a local user who does not exist or is deactivated.
	ErrUnknownUser = errors.New("notices: user not found")
	// ErrInvalidParam is a malformed user ID, event type or state key, or a notice the
	// notices room cannot carry.
	ErrInvalidParam = errors.New("notices: invalid parameter")
	// ErrBadJSON is content that is not a JSON object.
	ErrBadJSON = errors.New("notices: bad JSON")
	// ErrTooLarge is content too large for one event.
	ErrTooLarge = errors.New("notices: too large")
	// ErrCannotReject refuses the rejection of an invite to a user's notices room: the spec's
	// M_CANNOT_LEAVE_SERVER_NOTICE_ROOM.
	ErrCannotReject = errors.New("notices: the invite to the server notices room cannot be rejected; join the room, then leave it if you wish")
)

// Defaults of Options, as Synapse's documentation suggests them.
const (
	DefaultLocalpart   = "notices"
	DefaultDisplayName = "Server notices"
	DefaultRoomName    = "Server notices"
)

// Tag is the room tag that marks a user's notices room, as the spec names it.
const Tag = "m.server_notice"

// purpose marks the system account in storage.
const purpose = "server_notices"

// Tagger puts a tag on a room for a user; userdata.Service is one.
type Tagger interface {
	SetTag(ctx context.Context, userID id.UserID, roomID id.RoomID, tag string, content json.RawMessage) (int64, error)
}

// Options configure a Service. Empty strings take the Default… values.
type Options struct {
	Localpart   string
	DisplayName string
	RoomName    string
	Log         *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// TxnKey makes a notice idempotent: a second Send with the same key returns the first
// notice's event ID and sends nothing. The zero value (empty ID) is no transaction.
type TxnKey struct {
	Admin  id.UserID
	Device id.DeviceID
	ID     string
}

// Service sends server notices. Create it with New. It is safe for concurrent use; notices
// are sent one at a time, so that two notices to one user cannot create two rooms.
type Service struct {
	db       *storage.DB
	accounts *accounts.Service
	rooms    *rooms.Engine
	tags     Tagger
	opt      Options
	log      *slog.Logger

	// mu serialises Send.
	mu sync.Mutex
	// ready is set, under mu, once the system account exists with its configured name.
	ready bool
}

// New returns a notices service. It reserves the system account's localpart with acc, so
// nobody can register it even before the first notice creates it; wire RejectGuard into
// the rooms engine with rooms.Engine.SetRejectGuard.
func New(db *storage.DB, acc *accounts.Service, re *rooms.Engine, tags Tagger, opt Options) *Service {
	if opt.Localpart == "" {
		opt.Localpart = DefaultLocalpart
	}
	if opt.DisplayName == "" {
		opt.DisplayName = DefaultDisplayName
	}
	if opt.RoomName == "" {
		opt.RoomName = DefaultRoomName
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	acc.Reserve(opt.Localpart)
	return &Service{db: db, accounts: acc, rooms: re, tags: tags, opt: opt, log: opt.Log}
}

// UserID is the system account notices come from.
func (s *Service) UserID() id.UserID { return s.accounts.UserID(s.opt.Localpart) }

// Send sends a notice to a local user: an event of eventType with content, a state event
// when stateKey is set, from the system account into the user's notices room, which it
// creates, or invites the user back into, as needed. It returns the event's ID.
//
// With a non-zero txn, a repeated key returns the first notice's event ID. Should the server
// stop between sending and recording the key, a retry sends the notice again.
func (s *Service) Send(ctx context.Context, user id.UserID, eventType string, content json.RawMessage, stateKey *string, txn TxnKey) (id.EventID, error) {
	if err := s.check(ctx, user, eventType, content, stateKey); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if txn.ID != "" {
		ev, err := s.db.NoticeTxn(ctx, string(txn.Admin), string(txn.Device), txn.ID)
		if err == nil {
			return id.EventID(ev), nil
		} else if !errors.Is(err, storage.ErrNotFound) {
			return "", err
		}
	}
	sys, err := s.systemUser(ctx)
	if err != nil {
		return "", err
	}
	roomID, err := s.room(ctx, sys, user)
	if err != nil {
		return "", err
	}
	from := rooms.Sender{User: sys}
	var eventID id.EventID
	if stateKey != nil {
		eventID, err = s.rooms.SendState(ctx, from, roomID, eventType, *stateKey, content)
	} else {
		eventID, err = s.rooms.Send(ctx, from, roomID, eventType, "", content)
	}
	if err != nil {
		return "", err
	}
	if txn.ID != "" {
		now := s.opt.Now().UnixMilli()
		if err := s.db.Write(ctx, func(tx *storage.Tx) error {
			return tx.AddNoticeTxn(string(txn.Admin), string(txn.Device), txn.ID, string(eventID), now)
		}); err != nil {
			// The notice is out; only a retry with this key would send it twice.
			s.log.Warn("server notice sent but its transaction ID not recorded", "user", user, "event_id", eventID, "err", err)
		}
	}
	s.log.Info("server notice sent", "user", user, "room_id", roomID, "event_id", eventID, "type", eventType)
	return eventID, nil
}

// check refuses a notice before anything is created for it.
func (s *Service) check(ctx context.Context, user id.UserID, eventType string, content json.RawMessage, stateKey *string) error {
	_, server, err := user.Parse()
	if err != nil || user == "" {
		return fmt.Errorf("%w: %q is not a user ID", ErrInvalidParam, user)
	}
	if server != s.accounts.ServerName() {
		return fmt.Errorf("%w, not %s", ErrNotLocal, user)
	}
	if user == s.UserID() {
		return fmt.Errorf("%w: %s sends the notices and cannot receive them", ErrInvalidParam, user)
	}
	if eventType == "" || len(eventType) > rooms.MaxTypeBytes {
		return fmt.Errorf("%w: type must be 1 to %d bytes", ErrInvalidParam, rooms.MaxTypeBytes)
	}
	if eventType == "m.room.member" {
		return fmt.Errorf("%w: memberships of the notices room are the server's to manage", ErrInvalidParam)
	}
	if stateKey != nil && len(*stateKey) > rooms.MaxStateKeyBytes {
		return fmt.Errorf("%w: state_key must be at most %d bytes", ErrInvalidParam, rooms.MaxStateKeyBytes)
	}
	if !gjson.ValidBytes(content) || !gjson.ParseBytes(content).IsObject() {
		return fmt.Errorf("%w: content must be a JSON object", ErrBadJSON)
	}
	if len(content) > rooms.MaxPDUBytes {
		return fmt.Errorf("%w: content is %d bytes; an event may be at most %d", ErrTooLarge, len(content), rooms.MaxPDUBytes)
	}
	if !s.accounts.Active(ctx, user) {
		return fmt.Errorf("%w: %s does not exist or is deactivated", ErrUnknownUser, user)
	}
	return nil
}

// systemUser makes sure the system account exists with its configured name. The caller
// holds s.mu.
func (s *Service) systemUser(ctx context.Context) (id.UserID, error) {
	if s.ready {
		return s.UserID(), nil
	}
	sys, err := s.accounts.EnsureSystemUser(ctx, s.opt.Localpart, purpose, s.opt.DisplayName)
	if err != nil {
		return "", fmt.Errorf("server notices account: %w", err)
	}
	s.ready = true
	return sys, nil
}
