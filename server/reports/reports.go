// Package reports takes users' reports of events, rooms and other users and keeps them for
// this server's admins.
//
// It is not for acting on reports (admins do, through the admin API and the room engine)
// nor for HTTP: httpapi decodes the requests and maps the errors.
package reports

import (
	"context"
	"errors"
	"fmt"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
	"fyr/storage"
)

// Errors the API maps to the spec's codes.
var (
	ErrNotFound     = errors.New("reports: not found")
	ErrInvalidParam = errors.New("reports: invalid parameter")
)

// Score bounds of the deprecated score of event reports: -100 is the most offensive.
const (
	MinScore = -100
	MaxScore = 0
)

// Rooms is what reports asks of the room engine.
type Rooms interface {
	// Version returns a room's version, or rooms.ErrNotFound for an unknown room.
	Version(ctx context.Context, roomID id.RoomID) (id.RoomVersion, error)
	// Membership returns a user's current membership ("" for none or an unknown room).
	Membership(ctx context.Context, user id.UserID, roomID id.RoomID) (string, error)
	// Event returns an event of the room if the viewer may see it, or rooms.ErrNotFound.
	Event(ctx context.Context, v rooms.Viewer, roomID id.RoomID, eventID id.EventID) (*rooms.ClientEvent, error)
}

// Service stores reports. It is safe for concurrent use.
type Service struct {
	db         *storage.DB
	rooms      Rooms
	serverName string
	now        func() time.Time
}

// New returns a service over db for the server serverName.
func New(db *storage.DB, rm Rooms, serverName string) *Service {
	return &Service{db: db, rooms: rm, serverName: serverName, now: time.Now}
}

// ReportEvent records reporter's report of an event. The reporter must be joined to the room
// and able to see the event; otherwise, and for unknown rooms and events, the answer is
// ErrNotFound, so a report reveals nothing that /event would not. score, when given, must
// lie between MinScore and MaxScore.
//
// See https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3roomsroomidreporteventid
func (s *Service) ReportEvent(ctx context.Context, reporter id.UserID, roomID id.RoomID, eventID id.EventID, reason string, score *int) error {
	if score != nil && (*score < MinScore || *score > MaxScore) {
		return fmt.Errorf("%w: score must be an integer between %d and %d", ErrInvalidParam, MinScore, MaxScore)
	}
	const hidden = "the event was not found or you are not joined to the room"
	m, err := s.rooms.Membership(ctx, reporter, roomID)
	if err != nil {
		return err
	}
	if m != "join" {
		return fmt.Errorf("%w: %s", ErrNotFound, hidden)
	}
	ev, err := s.rooms.Event(ctx, rooms.Viewer{User: reporter}, roomID, eventID)
	if errors.Is(err, rooms.ErrNotFound) || errors.Is(err, rooms.ErrForbidden) {
		return fmt.Errorf("%w: %s", ErrNotFound, hidden)
	} else if err != nil {
		return err
	}
	return s.add(ctx, storage.Report{Kind: "event", Reporter: string(reporter), RoomID: string(roomID), EventID: string(eventID),
		TargetUser: string(ev.Sender), Reason: reason, Score: score})
}

// ReportRoom records reporter's report of a room this server knows (ErrNotFound otherwise);
// the reporter need not be in it.
//
// See https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3roomsroomidreport
func (s *Service) ReportRoom(ctx context.Context, reporter id.UserID, roomID id.RoomID, reason string) error {
	if _, err := s.rooms.Version(ctx, roomID); errors.Is(err, rooms.ErrNotFound) {
		return fmt.Errorf("%w: the room was not found", ErrNotFound)
	} else if err != nil {
		return err
	}
	return s.add(ctx, storage.Report{Kind: "room", Reporter: string(reporter), RoomID: string(roomID), Reason: reason})
}

// ReportUser records reporter's report of a user: a local user must exist (ErrNotFound);
// users of other servers are taken on trust, since asking their server would tell it who
// reported them.
//
// See https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3usersuseridreport
func (s *Service) ReportUser(ctx context.Context, reporter, user id.UserID, reason string) error {
	localpart, server, err := user.Parse()
	if err != nil {
		return fmt.Errorf("%w: %q is not a user ID", ErrInvalidParam, user)
	}
	if server == s.serverName {
		if _, err := s.db.User(ctx, localpart); errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%w: the user was not found", ErrNotFound)
		} else if err != nil {
			return err
		}
	}
	return s.add(ctx, storage.Report{Kind: "user", Reporter: string(reporter), TargetUser: string(user), Reason: reason})
}

func (s *Service) add(ctx context.Context, r storage.Report) error {
	r.ReceivedTS = s.now().UnixMilli()
	return s.db.Write(ctx, func(tx *storage.Tx) error {
		_, err := tx.AddReport(r)
		return err
	})
}

// List returns the reports of one kind ("event", "room" or "user"), newest first, skipping
// offset of them, and how many of that kind there are.
func (s *Service) List(ctx context.Context, kind string, offset, limit int) ([]storage.Report, int, error) {
	switch kind {
	case "event", "room", "user":
	default:
		return nil, 0, fmt.Errorf("%w: unknown kind of report %q", ErrInvalidParam, kind)
	}
	return s.db.Reports(ctx, kind, max(offset, 0), max(limit, 0))
}
