package sync

import (
	"context"
	"errors"
	"log/slog"
	stdsync "sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// DefaultNotifierRooms is how many rooms' local members the notifier keeps in memory.
const DefaultNotifierRooms = 4096

// Notifier wakes the long-polls that a committed write concerns. A /sync that finds nothing
// to send waits on its user's channel (Listen); a write closes the channels of exactly the
// users it concerns, so a waiting request costs no CPU and wakes within a scheduler tick.
//
// The rooms engine calls RoomEvent after every committed timeline event; the other streams
// call Notify (to-device messages, account data, device lists: the users they name),
// NotifyRoom (receipts and typing: a room's members) or NotifyAll, after their commit.
//
// To know whom a room event concerns, the notifier keeps each recently active room's local
// joined and invited members, loaded from storage on the room's first event and kept up to
// date by the membership events that follow: the rooms engine hands over one room's events
// one at a time and in order. It is safe for concurrent use.
type Notifier struct {
	db       *storage.DB
	server   string
	log      *slog.Logger
	maxRooms int

	mu      stdsync.Mutex
	closed  atomic.Bool
	waiting map[id.UserID]chan struct{}
	// rooms maps a room to its local users whose membership is join or invite.
	rooms map[id.RoomID]map[id.UserID]struct{}
}

// NewNotifier returns a notifier for the users of server.
func NewNotifier(db *storage.DB, server string, log *slog.Logger) *Notifier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{db: db, server: server, log: log, maxRooms: DefaultNotifierRooms,
		waiting: map[id.UserID]chan struct{}{}, rooms: map[id.RoomID]map[id.UserID]struct{}{}}
}

// closedChan is what Listen hands out once the notifier is closed.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Listen returns a channel that is closed at the next write concerning user. Take it before
// reading what to send, so that no write between the read and the wait is missed.
func (n *Notifier) Listen(user id.UserID) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed.Load() {
		return closedChan
	}
	ch := n.waiting[user]
	if ch == nil {
		ch = make(chan struct{})
		n.waiting[user] = ch
	}
	return ch
}

// Closed says whether Close was called: long-polls should answer at once.
func (n *Notifier) Closed() bool { return n.closed.Load() }

// Notify wakes the long-polls of users.
func (n *Notifier) Notify(users ...id.UserID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, u := range users {
		n.wakeLocked(u)
	}
}

// NotifyAll wakes every long-poll.
func (n *Notifier) NotifyAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for u := range n.waiting {
		n.wakeLocked(u)
	}
}

// Close wakes every long-poll and makes later ones answer at once: the server is shutting
// down. It is safe to call more than once.
func (n *Notifier) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed.Store(true)
	for u := range n.waiting {
		n.wakeLocked(u)
	}
}

func (n *Notifier) wakeLocked(u id.UserID) {
	if ch := n.waiting[u]; ch != nil {
		close(ch)
		delete(n.waiting, u)
	}
}

// NotifyRoom wakes the long-polls of a room's local joined and invited members.
func (n *Notifier) NotifyRoom(roomID id.RoomID) {
	n.mu.Lock()
	members, ok := n.rooms[roomID]
	if ok {
		for u := range members {
			n.wakeLocked(u)
		}
	}
	n.mu.Unlock()
	if ok {
		return
	}
	// Not cached: read the members for this once. They are not kept, because only the
	// rooms engine's ordered events may keep the cache current.
	users, err := n.loadMembers(roomID, 0)
	if errors.Is(err, storage.ErrNotFound) {
		return
	} else if err != nil {
		n.log.Error("notifier: load room members; waking every long-poll", "room_id", roomID, "err", err)
		n.NotifyAll()
		return
	}
	n.mu.Lock()
	for u := range users {
		n.wakeLocked(u)
	}
	n.mu.Unlock()
}

// RoomEvent wakes the long-polls an event concerns: the room's local joined and invited
// members, and the target of a membership event. It implements rooms.Listener.
func (n *Notifier) RoomEvent(ev *storage.Event, roomID id.RoomID) {
	members, err := n.roomMembers(roomID, ev.RoomNID)
	if err != nil {
		n.log.Error("notifier: load room members; waking every long-poll", "room_id", roomID, "err", err)
		n.NotifyAll()
		return
	}
	var target id.UserID
	var membership string
	if ev.Type == "m.room.member" && ev.StateKey != nil {
		target = id.UserID(*ev.StateKey)
		membership = gjson.GetBytes(ev.JSON, "content.membership").Str
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for u := range members {
		n.wakeLocked(u)
	}
	if target == "" || target.Homeserver() != n.server {
		return
	}
	n.wakeLocked(target)
	// If the room was evicted meanwhile, this updates a set no one keeps: harmless, the
	// room reloads on its next event.
	if membership == "join" || membership == "invite" {
		members[target] = struct{}{}
	} else {
		delete(members, target)
	}
}

// roomMembers returns a room's local members, loading them unless they are cached. The
// rooms engine calls RoomEvent for one room at a time, so no other event of the room can
// slip between the load and the caller's update. The set is only read or changed under mu.
func (n *Notifier) roomMembers(roomID id.RoomID, roomNID int64) (map[id.UserID]struct{}, error) {
	n.mu.Lock()
	members, ok := n.rooms[roomID]
	n.mu.Unlock()
	if ok {
		return members, nil
	}
	users, err := n.loadMembers(roomID, roomNID)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if members, ok := n.rooms[roomID]; ok {
		return members, nil
	}
	if len(n.rooms) >= n.maxRooms {
		for k := range n.rooms { // evict an arbitrary room; it reloads on its next event
			delete(n.rooms, k)
			break
		}
	}
	n.rooms[roomID] = users
	return users, nil
}

// loadMembers reads a room's local joined and invited members from storage.
func (n *Notifier) loadMembers(roomID id.RoomID, roomNID int64) (map[id.UserID]struct{}, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if roomNID == 0 {
		r, err := n.db.RoomByID(ctx, string(roomID))
		if err != nil {
			return nil, err
		}
		roomNID = r.NID
	}
	ms, err := n.db.Members(ctx, roomNID, "join", "invite")
	if err != nil {
		return nil, err
	}
	users := map[id.UserID]struct{}{}
	for _, m := range ms {
		if u := id.UserID(m.UserID); u.Homeserver() == n.server {
			users[u] = struct{}{}
		}
	}
	return users, nil
}
