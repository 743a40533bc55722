package push

import (
	"context"
	"slices"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
	"fyr/storage"
)

// ThreadMain is the thread ID of a room's main timeline.
const ThreadMain = "main"

// maxThreadHops is how many relations up an event may be from the one with the m.thread
// relation and still count as in that thread, as the spec recommends.
//
// See https://spec.matrix.org/v1.19/client-server-api/#marking-notifications-as-read
const maxThreadHops = 3

var _ rooms.EventHook = (*Service)(nil)

// PrepareEvent evaluates a new event against the rules of every local user it concerns:
// the room's joined local members other than the sender, and a local user the event
// invites, unless they ignore the sender. Those it notifies get a notification in the
// event's own write. A local sender's message (not state, so that a profile change sent to
// every room reads nothing) becomes their read position in its thread, and a local user's
// join reads all that came before it.
func (s *Service) PrepareEvent(ctx context.Context, room *rooms.RoomView, eventID id.EventID, p *pdu.PDU) rooms.HookWrite {
	sender := p.Sender
	var users []id.UserID
	for _, u := range room.LocalJoined() {
		if u != sender {
			users = append(users, u)
		}
	}
	if p.Type == "m.room.member" && p.StateKey != nil && gjson.GetBytes(p.Content, "membership").Str == "invite" {
		if t := id.UserID(*p.StateKey); t != sender && room.IsLocal(t) && !slices.Contains(users, t) {
			users = append(users, t)
		}
	}
	w := &eventWrite{s: s, sender: sender, ts: s.opt.Now().UnixMilli(), ownRead: p.StateKey == nil && room.IsLocal(sender)}
	if p.Type == "m.room.member" && p.StateKey != nil && gjson.GetBytes(p.Content, "membership").Str == "join" {
		if t := id.UserID(*p.StateKey); room.IsLocal(t) && room.Membership(t) != "join" {
			w.joined = t
		}
	}
	if len(users) == 0 && !w.ownRead && w.joined == "" {
		return nil
	}
	if len(users) > 0 {
		ev := NewEvent(eventID, room.ID(), p)
		info := &roomInfo{ctx: ctx, room: room, sender: sender, members: room.JoinedCount(), canNotify: map[string]bool{}}
		for _, u := range users {
			if s.ignores(ctx, u, sender) {
				continue
			}
			rules, err := s.compiled(ctx, u)
			if err != nil {
				s.log.Warn("push rules unavailable; the event does not notify", "user", u, "event_id", eventID, "err", err)
				continue
			}
			info.user, info.name, info.nameKnown = u, "", false
			r := rules.match(ev, info)
			if r == nil || !r.actions.Notify {
				continue
			}
			w.notes = append(w.notes, note{user: u, actions: r.actions})
		}
	}
	if len(w.notes) == 0 && !w.ownRead && w.joined == "" {
		return nil
	}
	w.thread = s.threadOf(ctx, room.NID(), p)
	w.push = s.gatewayNotes(ctx, room, eventID, p, w.notes)
	return w
}

// note is one user an event notifies.
type note struct {
	user    id.UserID
	actions Actions
}

// eventWrite is the push engine's part of one event's write.
type eventWrite struct {
	s      *Service
	sender id.UserID
	// ownRead: the event is a local user's message, which reads its thread up to it.
	ownRead bool
	// joined is a local user the event joins to the room; it reads every thread up to it.
	joined id.UserID
	thread string
	ts     int64
	notes  []note
	// push are the notifications for users with pushers, delivered after the commit.
	push []*gatewayNote
}

// Write stores the notifications and the read positions the event moves. A failure is
// logged and the event written all the same: a message matters more than its count.
func (w *eventWrite) Write(tx *storage.Tx, ev *storage.Event) error {
	for _, n := range w.notes {
		err := tx.AddNotification(storage.Notification{UserID: string(n.user), EventNID: ev.NID, RoomNID: ev.RoomNID,
			StreamPos: ev.StreamPos, ThreadID: w.thread, Highlight: n.actions.Highlight, Actions: n.actions.Raw, TS: w.ts})
		if err != nil {
			w.s.log.Error("storing a notification", "user", n.user, "event_id", ev.ID, "err", err)
		}
	}
	if w.ownRead {
		if err := tx.MarkOwnRead(string(w.sender), ev.RoomNID, w.thread, ev.StreamPos); err != nil {
			w.s.log.Error("moving the sender's read position", "user", w.sender, "event_id", ev.ID, "err", err)
		}
	}
	if w.joined != "" {
		if err := tx.MarkOwnRead(string(w.joined), ev.RoomNID, "", ev.StreamPos); err != nil {
			w.s.log.Error("moving a joining user's read position", "user", w.joined, "event_id", ev.ID, "err", err)
		}
	}
	return nil
}

// Committed hands the notifications for users with pushers to the gateway queue.
func (w *eventWrite) Committed(*storage.Event) {
	for _, n := range w.push {
		w.s.gateway.Enqueue(n)
	}
}

// ignores says whether user ignores sender.
func (s *Service) ignores(ctx context.Context, user, sender id.UserID) bool {
	if s.opt.Ignored == nil {
		return false
	}
	ignored, err := s.opt.Ignored(ctx, user)
	if err != nil {
		s.log.Warn("ignored users unavailable for push rules", "user", user, "err", err)
	}
	return ignored[sender]
}

// threadOf is the thread an event belongs to: the root it or an event it relates to, at
// most maxThreadHops relations up and within the room, names with an m.thread relation; or
// the main timeline.
func (s *Service) threadOf(ctx context.Context, roomNID int64, p *pdu.PDU) string {
	rel := gjson.GetBytes(p.Content, `m\.relates_to`)
	if !rel.IsObject() {
		return ThreadMain
	}
	relType, parent := rel.Get("rel_type").Str, rel.Get("event_id").Str
	for hop := 0; parent != ""; hop++ {
		if relType == "m.thread" {
			return parent
		}
		if hop == maxThreadHops {
			break
		}
		ev, err := s.db.EventByID(ctx, parent)
		if err != nil || (roomNID != 0 && ev.RoomNID != roomNID) {
			break
		}
		relType, parent = ev.RelType, ev.RelatesTo
	}
	return ThreadMain
}

// roomInfo answers matching's questions about the room for one user at a time; display
// names and power levels are read only when a condition asks.
type roomInfo struct {
	ctx     context.Context
	room    *rooms.RoomView
	sender  id.UserID
	members int
	// canNotify caches the sender's permission per key.
	canNotify map[string]bool
	user      id.UserID
	name      string
	nameKnown bool
}

func (r *roomInfo) MemberCount() int { return r.members }

func (r *roomInfo) DisplayName() string {
	if !r.nameKnown {
		r.name, r.nameKnown = r.room.DisplayName(r.ctx, r.user), true
	}
	return r.name
}

func (r *roomInfo) SenderCanNotify(key string) bool {
	ok, known := r.canNotify[key]
	if !known {
		ok = r.room.CanNotify(r.ctx, r.sender, key)
		r.canNotify[key] = ok
	}
	return ok
}
