package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
)

// Counts are unread notification counts.
type Counts struct {
	Notifications int
	Highlights    int
}

// RoomCounts are a room's unread counts: Main for its main timeline, Threads by root.
type RoomCounts struct {
	Main    Counts
	Threads map[id.EventID]Counts
}

// Total is the room's counts over the main timeline and every thread.
func (c RoomCounts) Total() Counts {
	t := c.Main
	for _, x := range c.Threads {
		t.Notifications += x.Notifications
		t.Highlights += x.Highlights
	}
	return t
}

// UnreadCounts returns a user's unread notifications in each of rooms that has any.
//
// See https://spec.matrix.org/v1.19/client-server-api/#receiving-notifications
func (s *Service) UnreadCounts(ctx context.Context, user id.UserID, roomIDs []id.RoomID) (map[id.RoomID]RoomCounts, error) {
	ids := make([]string, len(roomIDs))
	for i, r := range roomIDs {
		ids[i] = string(r)
	}
	got, err := s.db.UnreadCounts(ctx, string(user), ids)
	if err != nil {
		return nil, err
	}
	out := map[id.RoomID]RoomCounts{}
	for _, c := range got {
		rc := out[id.RoomID(c.RoomID)]
		n := Counts{Notifications: c.Notifications, Highlights: c.Highlights}
		if c.ThreadID == ThreadMain {
			rc.Main = n
		} else {
			if rc.Threads == nil {
				rc.Threads = map[id.EventID]Counts{}
			}
			rc.Threads[id.EventID(c.ThreadID)] = n
		}
		out[id.RoomID(c.RoomID)] = rc
	}
	return out, nil
}

// Limits of GET /notifications.
const (
	DefaultNotificationsLimit = 20
	MaxNotificationsLimit     = 100
)

// Notification is one entry of GET /notifications.
type Notification struct {
	Actions json.RawMessage    `json:"actions"`
	Event   *rooms.ClientEvent `json:"event"`
	Read    bool               `json:"read"`
	RoomID  id.RoomID          `json:"room_id"`
	TS      int64              `json:"ts"`
}

// NotificationsPage is the answer of GET /notifications.
type NotificationsPage struct {
	Notifications []Notification `json:"notifications"`
	// NextToken continues the list; empty at its end.
	NextToken string `json:"next_token,omitempty"`
}

// Notifications lists a user's notifications, newest first, from a next_token of an earlier
// page (from "" for the newest); limit 0 means DefaultNotificationsLimit. onlyHighlight keeps
// those that highlighted. Events the user can no longer see are left out.
//
// See https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3notifications
func (s *Service) Notifications(ctx context.Context, user id.UserID, from string, limit int, onlyHighlight bool) (*NotificationsPage, error) {
	var before int64
	if from != "" {
		var err error
		if before, err = strconv.ParseInt(from, 10, 64); err != nil || before <= 0 {
			return nil, fmt.Errorf("%w: from is not a token from this endpoint", ErrInvalidParam)
		}
	}
	switch {
	case limit < 0:
		return nil, fmt.Errorf("%w: limit must not be negative", ErrInvalidParam)
	case limit == 0:
		limit = DefaultNotificationsLimit
	case limit > MaxNotificationsLimit:
		limit = MaxNotificationsLimit
	}
	ns, err := s.db.Notifications(ctx, string(user), before, limit+1, onlyHighlight)
	if err != nil {
		return nil, err
	}
	page := &NotificationsPage{Notifications: []Notification{}}
	if len(ns) > limit {
		ns = ns[:limit]
		page.NextToken = strconv.FormatInt(ns[limit-1].StreamPos, 10)
	}
	for _, n := range ns {
		ce, err := s.rooms.Event(ctx, rooms.Viewer{User: user}, id.RoomID(n.RoomID), id.EventID(n.EventID))
		if errors.Is(err, rooms.ErrNotFound) || errors.Is(err, rooms.ErrForbidden) {
			continue
		} else if err != nil {
			return nil, err
		}
		ce.RoomID = "" // the spec's ClientEventWithoutRoomID: room_id is beside it
		page.Notifications = append(page.Notifications, Notification{Actions: n.Actions, Event: ce, Read: n.Read,
			RoomID: id.RoomID(n.RoomID), TS: n.TS})
	}
	return page, nil
}
