package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"

	"maunium.net/go/mautrix/id"

	"fyr/server/config"
	e2ee "fyr/server/keys"
	syncapi "fyr/server/sync"
	"fyr/server/userdata"
	"fyr/storage"
)

// syncOptions connects /sync to the streams the other engines keep.
func (s *Server) syncOptions(cfg *config.Config, log *slog.Logger) syncapi.Options {
	src := syncSources{s}
	return syncapi.Options{
		ServerName:  cfg.ServerName,
		Log:         log,
		Filters:     src,
		Presence:    src,
		AccountData: src,
		Receipts:    src,
		Typing:      src,
		ToDevice:    src,
		DeviceLists: src,
		Keys:        src,
		// Notifications counts unread notifications from push rules (server/push).
		Notifications: src,
		Ignored: func(ctx context.Context, user id.UserID) map[id.UserID]bool {
			m, err := s.UserData.IgnoredUsers(ctx, user)
			if err != nil {
				log.Warn("ignored users unavailable for sync", "user", user, "err", err)
			}
			return m
		},
	}
}

// syncSources adapts the engines to sync's source interfaces.
type syncSources struct{ s *Server }

func (x syncSources) Filter(ctx context.Context, user id.UserID, filterID string) (json.RawMessage, bool, error) {
	raw, err := x.s.UserData.FilterJSON(ctx, user, filterID)
	if errors.Is(err, userdata.ErrNotFound) {
		return nil, false, nil
	}
	return raw, err == nil, err
}

// Syncing marks a syncing user present as set_presence asks: online (the default) or
// unavailable; offline leaves their presence alone.
func (x syncSources) Syncing(ctx context.Context, user id.UserID, _ id.DeviceID, state string) {
	if state == "offline" || !x.s.UserData.PresenceEnabled() {
		return
	}
	if state == "" {
		state = userdata.Online
	}
	msg := ""
	if st, err := x.s.UserData.Presence(ctx, user, user); err == nil {
		msg = st.StatusMsg
		if st.Presence == state {
			x.s.UserData.MarkActive(ctx, user)
			return
		}
	}
	if _, err := x.s.UserData.SetPresence(ctx, user, state, msg); err != nil {
		x.s.log.Warn("presence from sync", "user", user, "err", err)
	}
}

func (x syncSources) Presence(ctx context.Context, user id.UserID, since, to int64) ([]json.RawMessage, error) {
	users, err := x.s.DB.UsersSharingRooms(ctx, string(user))
	if err != nil {
		return nil, err
	}
	ids := make([]id.UserID, len(users))
	for i, u := range users {
		ids[i] = id.UserID(u)
	}
	ps, err := x.s.UserData.PresenceSince(ctx, ids, since, to)
	if err != nil {
		return nil, err
	}
	if since > 0 {
		// Users who came to share a room in the range: their presence is new to the client
		// even when it has not changed.
		met, err := x.s.DB.UsersMet(ctx, user, since, to)
		if err != nil {
			return nil, err
		}
		sharing := map[id.UserID]bool{}
		for _, u := range ids {
			sharing[u] = true
		}
		for _, p := range ps {
			delete(sharing, p.UserID)
		}
		var fresh []id.UserID
		for _, u := range met {
			if sharing[u] {
				fresh = append(fresh, u)
				delete(sharing, u)
			}
		}
		if len(fresh) > 0 {
			more, err := x.s.UserData.PresenceSince(ctx, fresh, 0, to)
			if err != nil {
				return nil, err
			}
			ps = append(ps, more...)
		}
	}
	out := make([]json.RawMessage, 0, len(ps))
	now := x.s.UserData.Now()
	for _, p := range ps {
		b, _ := json.Marshal(map[string]any{"type": "m.presence", "sender": p.UserID, "content": userdata.StatusAt(p, now)})
		out = append(out, b)
	}
	return out, nil
}

func (x syncSources) AccountData(ctx context.Context, user id.UserID, since, to int64) ([]json.RawMessage, map[id.RoomID][]json.RawMessage, error) {
	global, rooms, err := x.s.UserData.AccountDataSince(ctx, user, since, to)
	if err != nil {
		return nil, nil, err
	}
	ev := func(a storage.AccountData) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"type": a.Type, "content": a.Content})
		return b
	}
	var g []json.RawMessage
	for _, a := range global {
		g = append(g, ev(a))
	}
	if g, err = x.s.Push.AccountData(ctx, user, since == 0, g); err != nil {
		return nil, nil, err
	}
	r := map[id.RoomID][]json.RawMessage{}
	for room, as := range rooms {
		for _, a := range as {
			r[room] = append(r[room], ev(a))
		}
	}
	return g, r, nil
}

func (x syncSources) Receipts(ctx context.Context, user id.UserID, since, to int64) (map[id.RoomID]json.RawMessage, error) {
	rooms, err := x.s.Rooms.JoinedRooms(ctx, user)
	if err != nil || len(rooms) == 0 {
		return nil, err
	}
	got, err := x.s.Ephemeral.ReceiptsSince(ctx, rooms, since, to, user)
	if err != nil {
		return nil, err
	}
	out := make(map[id.RoomID]json.RawMessage, len(got))
	for room, content := range got {
		b, _ := json.Marshal(map[string]any{"type": "m.receipt", "content": content})
		out[room] = b
	}
	return out, nil
}

func (x syncSources) TypingPos() int64 { return x.s.Ephemeral.TypingSerial() }

func (x syncSources) Typing(ctx context.Context, user id.UserID, since, to int64) (map[id.RoomID]json.RawMessage, error) {
	rooms, err := x.s.Rooms.JoinedRooms(ctx, user)
	if err != nil {
		return nil, err
	}
	out := map[id.RoomID]json.RawMessage{}
	for _, room := range rooms {
		users, serial := x.s.Ephemeral.Typing(room)
		if serial <= since || (since == 0 && len(users) == 0) {
			continue
		}
		ignored, _ := x.s.UserData.IgnoredUsers(ctx, user)
		shown := []id.UserID{}
		for _, u := range users {
			if !ignored[u] {
				shown = append(shown, u)
			}
		}
		b, _ := json.Marshal(map[string]any{"type": "m.typing", "content": map[string]any{"user_ids": shown}})
		out[room] = b
	}
	return out, nil
}

// ToDevice hands out a device's messages; those at or before since were received (the
// client came back with a later token) and are deleted first.
func (x syncSources) ToDevice(ctx context.Context, user id.UserID, device id.DeviceID, since, to int64, limit int) ([]json.RawMessage, int64, error) {
	if since > 0 {
		if err := x.s.E2EE.AckToDevice(ctx, user, device, since); err != nil {
			return nil, 0, err
		}
	}
	return x.s.E2EE.ToDevice(ctx, user, device, since, to, limit)
}

func (x syncSources) DeviceLists(ctx context.Context, user id.UserID, since, to int64) ([]id.UserID, []id.UserID, error) {
	return x.s.E2EE.DeviceListChanges(ctx, user, since, to)
}

func (x syncSources) KeyCounts(ctx context.Context, user id.UserID, device id.DeviceID) (map[string]int, []string, error) {
	counts, err := x.s.E2EE.OTKCounts(ctx, user, device)
	if err != nil {
		return nil, nil, err
	}
	fallback, err := x.s.E2EE.UnusedFallbackKeyTypes(ctx, user, device)
	return counts, fallback, err
}

func (x syncSources) UnreadCounts(ctx context.Context, user id.UserID, rooms []id.RoomID) (map[id.RoomID]syncapi.RoomCounts, error) {
	got, err := x.s.Push.UnreadCounts(ctx, user, rooms)
	if err != nil {
		return nil, err
	}
	out := make(map[id.RoomID]syncapi.RoomCounts, len(got))
	for room, c := range got {
		rc := syncapi.RoomCounts{Main: syncapi.UnreadCounts{NotificationCount: c.Main.Notifications, HighlightCount: c.Main.Highlights}}
		for root, t := range c.Threads {
			if rc.Threads == nil {
				rc.Threads = map[id.EventID]syncapi.UnreadCounts{}
			}
			rc.Threads[root] = syncapi.UnreadCounts{NotificationCount: t.Notifications, HighlightCount: t.Highlights}
		}
		out[room] = rc
	}
	return out, nil
}

// onTyping wakes the syncs of a room's members when its typing users change.
func (s *Server) onTyping(room id.RoomID) {
	if s.Sync != nil {
		s.Sync.Notifier().NotifyRoom(room)
	}
}

// onReceipt wakes the syncs that will see a new receipt: the room's members, or only the
// reader for a private one.
func (s *Server) onReceipt(room id.RoomID, user id.UserID, private bool, _ int64) {
	if s.Sync == nil {
		return
	}
	if private {
		s.Sync.Notifier().Notify(user)
		return
	}
	s.Sync.Notifier().NotifyRoom(room)
}

// e2eeWaker wakes the syncs of the users a to-device message or device-list change is for.
type e2eeWaker struct{ n *syncapi.Notifier }

func (w e2eeWaker) E2EEUpdate(_ int64, users []id.UserID) { w.n.Notify(users...) }

var _ e2ee.Listener = e2eeWaker{}
