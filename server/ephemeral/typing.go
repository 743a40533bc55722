package ephemeral

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"
)

// SetTyping marks target as typing in roomID for timeout, or as no longer typing. Only the
// caller's own state may be set (ErrForbidden), only in a room they are joined to
// (ErrForbidden; ErrNotFound for an unknown room). A timeout above MaxTypingTimeout is cut
// to it; a timeout of zero ends the typing at once. The set of users typing changes, and
// OnTyping hears of it, only when a user starts or stops: renewing a timeout changes nothing
// that clients see.
//
// See https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3roomsroomidtypinguserid
func (s *Service) SetTyping(ctx context.Context, caller, target id.UserID, roomID id.RoomID, typing bool, timeout time.Duration) error {
	if caller != target {
		return fmt.Errorf("%w: you may only set your own typing state", ErrForbidden)
	}
	if timeout < 0 {
		return fmt.Errorf("%w: timeout must not be negative", ErrInvalidParam)
	}
	if err := s.joined(ctx, caller, roomID); err != nil {
		return err
	}
	s.typing.set(roomID, target, typing, min(timeout, MaxTypingTimeout))
	return nil
}

// SetRemoteTyping records what another server said about one of its users: typing in
// roomID for DefaultTypingTimeout (the server renews it while the user types on), or no
// longer typing. The user must be joined to the room (ErrForbidden; ErrNotFound for an
// unknown room). That the user belongs to the server that said so is the caller's to check.
//
// See https://spec.matrix.org/v1.19/server-server-api/#typing-notifications
func (s *Service) SetRemoteTyping(ctx context.Context, user id.UserID, roomID id.RoomID, typing bool) error {
	if err := s.joined(ctx, user, roomID); err != nil {
		return err
	}
	s.typing.set(roomID, user, typing, DefaultTypingTimeout)
	return nil
}

// Typing returns the users typing in a room now, sorted, and the room's typing serial: the
// serial of its latest change (0 if nobody ever typed there). Sync keeps the serial it last
// sent and asks again when Serial has moved past it; a room whose serial is above the one a
// client has seen gets a new m.typing event.
func (s *Service) Typing(roomID id.RoomID) (users []id.UserID, serial int64) {
	return s.typing.get(roomID)
}

// TypingSerial returns the newest typing serial of any room. Serials start at the clock's
// Unix milliseconds when the server starts, so that they keep growing across restarts and a
// serial from before one never looks newer than the current state.
func (s *Service) TypingSerial() int64 {
	s.typing.mu.Lock()
	defer s.typing.mu.Unlock()
	return s.typing.serial
}

// typing is the in-memory set of users typing in each room, with their deadlines.
type typing struct {
	mu     sync.Mutex
	now    func() time.Time
	serial int64
	rooms  map[id.RoomID]*roomTyping
	// notify is called, outside mu, for every room whose set changed.
	notify func(id.RoomID)
	// user, if set, is called outside mu for each user who starts, renews or stops typing
	// (typing false, also when a timeout runs out), after notify.
	user func(roomID id.RoomID, user id.UserID, typing bool)
	// wake tells run that a deadline was added or the clock changed.
	wake chan struct{}
}

type roomTyping struct {
	until map[id.UserID]time.Time
	// serial is the typing serial of the room's latest change. Rooms keep it after everyone
	// stopped typing, so that a client that saw someone typing learns that they stopped.
	serial int64
}

func newTyping(now func() time.Time, notify func(id.RoomID)) *typing {
	return &typing{now: now, serial: now().UnixMilli(), rooms: map[id.RoomID]*roomTyping{}, notify: notify, wake: make(chan struct{}, 1)}
}

func (t *typing) set(roomID id.RoomID, user id.UserID, typing bool, timeout time.Duration) {
	t.mu.Lock()
	now := t.now()
	stopped := t.expireLocked(roomID, now)
	changed := len(stopped) > 0
	rt := t.rooms[roomID]
	if rt == nil {
		if !typing {
			t.mu.Unlock()
			return
		}
		rt = &roomTyping{until: map[id.UserID]time.Time{}}
		t.rooms[roomID] = rt
	}
	_, was := rt.until[user]
	typed := false // user starts or renews
	if typing && timeout > 0 {
		rt.until[user] = now.Add(timeout)
		changed = changed || !was
		typed = true
	} else if was {
		delete(rt.until, user)
		changed = true
		stopped = append(stopped, user)
	}
	if changed {
		t.serial++
		rt.serial = t.serial
	}
	t.mu.Unlock()
	if changed {
		t.notify(roomID)
	}
	t.tell(roomID, stopped, false)
	if typed {
		t.tell(roomID, []id.UserID{user}, true)
	}
	t.poke()
}

// tell calls the user hook for each of users.
func (t *typing) tell(roomID id.RoomID, users []id.UserID, typing bool) {
	if t.user == nil {
		return
	}
	for _, u := range users {
		t.user(roomID, u, typing)
	}
}

func (t *typing) get(roomID id.RoomID) ([]id.UserID, int64) {
	t.mu.Lock()
	stopped := t.expireLocked(roomID, t.now())
	changed := len(stopped) > 0
	if changed {
		t.serial++
		t.rooms[roomID].serial = t.serial
	}
	rt := t.rooms[roomID]
	var users []id.UserID
	var serial int64
	if rt != nil {
		for u := range rt.until {
			users = append(users, u)
		}
		serial = rt.serial
	}
	t.mu.Unlock()
	if changed {
		t.notify(roomID)
	}
	t.tell(roomID, stopped, false)
	slices.Sort(users)
	if users == nil {
		users = []id.UserID{}
	}
	return users, serial
}

// expireLocked drops the room's users whose deadline has passed and returns them. The
// caller bumps the serial when there are any.
func (t *typing) expireLocked(roomID id.RoomID, now time.Time) (expired []id.UserID) {
	rt := t.rooms[roomID]
	if rt == nil {
		return nil
	}
	for u, until := range rt.until {
		if !until.After(now) {
			delete(rt.until, u)
			expired = append(expired, u)
		}
	}
	return expired
}

// expireAll expires every room, announces the rooms that changed, and returns the earliest
// deadline still pending (zero if none) and the time it measured from.
func (t *typing) expireAll() (next, now time.Time) {
	t.mu.Lock()
	now = t.now()
	var changed []id.RoomID
	stopped := map[id.RoomID][]id.UserID{}
	for roomID, rt := range t.rooms {
		if expired := t.expireLocked(roomID, now); len(expired) > 0 {
			t.serial++
			rt.serial = t.serial
			changed = append(changed, roomID)
			stopped[roomID] = expired
		}
		for _, until := range rt.until {
			if next.IsZero() || until.Before(next) {
				next = until
			}
		}
	}
	t.mu.Unlock()
	for _, roomID := range changed {
		t.notify(roomID)
		t.tell(roomID, stopped[roomID], false)
	}
	return next, now
}

// run expires deadlines as they pass until ctx ends.
func (t *typing) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next, now := t.expireAll()
		wait := time.Hour
		if !next.IsZero() {
			wait = next.Sub(now)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.wake:
		case <-timer.C:
		}
	}
}

// poke wakes run to look at the deadlines again.
func (t *typing) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *typing) setClock(now func() time.Time) {
	t.mu.Lock()
	t.now = now
	t.mu.Unlock()
	t.poke()
}

// clock reads the current clock.
func (t *typing) clock() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.now()
}
