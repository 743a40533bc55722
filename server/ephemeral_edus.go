package server

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/federation/outbound"
	"fyr/server/ephemeral"
	"fyr/storage"
)

// Typing notifications and read receipts between servers (m.typing and m.receipt EDUs).
// See https://spec.matrix.org/v1.19/server-server-api/#typing-notifications and
// https://spec.matrix.org/v1.19/server-server-api/#receipts

const (
	// typingEDUTTL is how long a queued typing notification stays worth sending: after an
	// outage a peer gets nothing stale, only the next change or ping.
	typingEDUTTL = ephemeral.DefaultTypingTimeout
	// typingPingInterval is how often a user who keeps typing is announced again. Receivers
	// forget a remote user's typing after ephemeral.DefaultTypingTimeout (Synapse after 60 s),
	// so this stays well below both.
	typingPingInterval = 20 * time.Second
	// receiptEDUTTL is how long a queued read receipt stays worth sending: a peer back from a
	// short outage still learns where its users' rooms were read up to; after a long one the
	// next receipt tells it.
	receiptEDUTTL = 24 * time.Hour
	// ephemeralEDUBacklog bounds the changes waiting for the fan-out goroutine; past it new
	// changes are dropped (and logged) rather than blocking the request or timer behind them.
	ephemeralEDUBacklog = 1024
	// maxReceiptEventIDs bounds the events one user's receipt may name (the spec allows one).
	maxReceiptEventIDs = 10
)

// ephemeralEDUs carries local users' typing notifications and public read receipts to the
// other servers with users joined to the room, one change at a time in the order they
// happened, so a start never overtakes its stop. The ephemeral engine's hooks post changes;
// run, owned by Server.Run, sends them through the durable outbound queue.
type ephemeralEDUs struct {
	s    *Server
	work chan func(context.Context)
	// announced is only touched by run.
	announced typingAnnouncements
}

type typingKey struct {
	room id.RoomID
	user id.UserID
}

// typingAnnouncements remembers when each local user typing in a room was last announced to
// other servers as typing, to decide which changes go out.
type typingAnnouncements map[typingKey]time.Time

// announce records a change at now and says whether to send it: a start, a renewal at least
// typingPingInterval after the last announcement, and a stop of an announced user.
func (a typingAnnouncements) announce(k typingKey, typing bool, now time.Time) bool {
	last, announced := a[k]
	switch {
	case typing && announced && now.Sub(last) < typingPingInterval:
		return false
	case typing:
		a[k] = now
		return true
	case !announced:
		return false
	default:
		delete(a, k)
		return true
	}
}

// due lists the users last announced typingPingInterval or longer before now.
func (a typingAnnouncements) due(now time.Time) []typingKey {
	var out []typingKey
	for k, last := range a {
		if now.Sub(last) >= typingPingInterval {
			out = append(out, k)
		}
	}
	return out
}

// wireEphemeralEDUs sends local typing and receipt changes to other servers.
func (s *Server) wireEphemeralEDUs() {
	x := &ephemeralEDUs{s: s, work: make(chan func(context.Context), ephemeralEDUBacklog), announced: typingAnnouncements{}}
	s.ephemeralEDUs = x
	s.Ephemeral.OnUserTyping = func(roomID id.RoomID, user id.UserID, typing bool) {
		if user.Homeserver() == s.cfg.ServerName {
			x.post(func(ctx context.Context) { x.sendTyping(ctx, roomID, user, typing) })
		}
	}
	prev := s.Ephemeral.OnReceipt
	s.Ephemeral.OnReceipt = func(roomID id.RoomID, user id.UserID, private bool, pos int64) {
		if prev != nil {
			prev(roomID, user, private, pos)
		}
		if !private && user.Homeserver() == s.cfg.ServerName {
			x.post(func(ctx context.Context) { x.sendReceipt(ctx, roomID, user, pos) })
		}
	}
}

// post queues a change for run without blocking.
func (x *ephemeralEDUs) post(f func(context.Context)) {
	select {
	case x.work <- f:
	default:
		x.s.log.Warn("typing or receipt not sent to other servers: too many waiting")
	}
}

// run sends the posted changes, and pings for users who keep typing, until ctx ends.
func (x *ephemeralEDUs) run(ctx context.Context) {
	tick := time.NewTicker(typingPingInterval / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-x.work:
			f(ctx)
		case <-tick.C:
			x.pingTyping(ctx)
		}
	}
}

// sendTyping announces that a local user started, still is, or stopped typing, when
// typingAnnouncements says so.
func (x *ephemeralEDUs) sendTyping(ctx context.Context, roomID id.RoomID, user id.UserID, typing bool) {
	now := time.Now()
	if !x.announced.announce(typingKey{roomID, user}, typing, now) {
		return
	}
	content := map[string]any{"room_id": roomID, "user_id": user, "typing": typing}
	x.send(ctx, roomID, "m.typing", content, now.Add(typingEDUTTL))
}

// pingTyping announces again the users still typing since their last announcement
// typingPingInterval ago: clients may set long timeouts, and receivers forget sooner. A user
// no longer typing is announced as stopped (their stop was dropped on the way).
func (x *ephemeralEDUs) pingTyping(ctx context.Context) {
	for _, k := range x.announced.due(time.Now()) {
		users, _ := x.s.Ephemeral.Typing(k.room)
		x.sendTyping(ctx, k.room, k.user, slices.Contains(users, k.user))
	}
}

// sendReceipt sends the public read receipt a local user stored at stream position pos.
func (x *ephemeralEDUs) sendReceipt(ctx context.Context, roomID id.RoomID, user id.UserID, pos int64) {
	rs, err := x.s.DB.ReceiptsSince(ctx, []string{string(roomID)}, pos-1, pos, "")
	if err != nil {
		x.s.log.Warn("receipt fan-out", "room_id", roomID, "err", err)
		return
	}
	for _, r := range rs {
		if r.UserID != string(user) || r.Type != storage.ReceiptRead {
			continue
		}
		data := map[string]any{"ts": r.TS}
		if r.ThreadID != "" {
			data["thread_id"] = r.ThreadID
		}
		content := map[id.RoomID]any{roomID: map[string]any{storage.ReceiptRead: map[id.UserID]any{
			user: map[string]any{"event_ids": []string{r.EventID}, "data": data}}}}
		x.send(ctx, roomID, "m.receipt", content, time.Now().Add(receiptEDUTTL))
	}
}

// send queues an EDU for the other servers with users joined to the room.
func (x *ephemeralEDUs) send(ctx context.Context, roomID id.RoomID, typ string, content any, expires time.Time) {
	servers, err := x.s.Rooms.JoinedServers(ctx, roomID)
	if err != nil {
		x.s.log.Warn(typ+" fan-out", "room_id", roomID, "err", err)
		return
	}
	dests := slices.DeleteFunc(servers, func(d string) bool { return d == x.s.cfg.ServerName })
	if len(dests) == 0 {
		return
	}
	body, err := json.Marshal(map[string]any{"edu_type": typ, "content": content})
	if err != nil {
		return
	}
	if err := x.s.Outbound.Enqueue(ctx, dests, outbound.Item{Kind: storage.OutboundEDU, Body: body, Expires: expires}); err != nil {
		x.s.log.Warn(typ+" fan-out", "room_id", roomID, "err", err)
	}
}

// receiveTyping applies another server's m.typing EDU: only for its own users, in rooms
// whose server ACL lets it in, where the user is joined.
func (s *Server) receiveTyping(ctx context.Context, origin string, content json.RawMessage) {
	var c struct {
		RoomID id.RoomID `json:"room_id"`
		UserID id.UserID `json:"user_id"`
		Typing bool      `json:"typing"`
	}
	if err := json.Unmarshal(content, &c); err != nil || !strings.HasPrefix(string(c.RoomID), "!") {
		s.log.Info("typing EDU ignored: malformed", "origin", origin)
		return
	}
	if _, server, err := c.UserID.Parse(); err != nil || server != origin {
		s.log.Info("typing EDU ignored: not a user of the sending server", "origin", origin, "user_id", c.UserID)
		return
	}
	if !s.Rooms.ServerAllowed(ctx, c.RoomID, origin) {
		return
	}
	if err := s.Ephemeral.SetRemoteTyping(ctx, c.UserID, c.RoomID, c.Typing); err != nil {
		s.log.Info("typing EDU ignored", "origin", origin, "room_id", c.RoomID, "user_id", c.UserID, "err", err)
	}
}

// remoteReceipt is one user's entry in an m.receipt EDU.
type remoteReceipt struct {
	EventIDs []id.EventID `json:"event_ids"`
	Data     struct {
		TS       int64  `json:"ts"`
		ThreadID string `json:"thread_id"`
	} `json:"data"`
}

// receiveReceipts applies another server's m.receipt EDU: m.read receipts of its own users,
// in rooms whose server ACL lets it in, where the user is joined and the event is in the
// room here. Receipts never move backwards.
func (s *Server) receiveReceipts(ctx context.Context, origin string, content json.RawMessage) {
	var c map[id.RoomID]map[string]map[id.UserID]json.RawMessage
	if err := json.Unmarshal(content, &c); err != nil {
		s.log.Info("receipt EDU ignored: malformed", "origin", origin)
		return
	}
	for roomID, types := range c {
		if !strings.HasPrefix(string(roomID), "!") || !s.Rooms.ServerAllowed(ctx, roomID, origin) {
			continue
		}
		for user, raw := range types[storage.ReceiptRead] {
			if _, server, err := user.Parse(); err != nil || server != origin {
				s.log.Info("receipt ignored: not a user of the sending server", "origin", origin, "user_id", user)
				continue
			}
			var r remoteReceipt
			if err := json.Unmarshal(raw, &r); err != nil {
				continue
			}
			for _, ev := range r.EventIDs[:min(len(r.EventIDs), maxReceiptEventIDs)] {
				if err := s.Ephemeral.SetRemoteReceipt(ctx, user, roomID, ev, r.Data.ThreadID, r.Data.TS); err != nil {
					s.log.Info("receipt ignored", "origin", origin, "room_id", roomID, "user_id", user, "event_id", ev, "err", err)
				}
			}
		}
	}
}
