package notices

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
	"fyr/storage"
)

// powerLevels are a notices room's changes to the default power levels: everyone but the
// system account, which created the room, is below the level needed for any event, so the
// user reads notices but cannot answer them, as in Synapse.
var powerLevels = map[string]json.RawMessage{"users_default": json.RawMessage(`-10`)}

// room returns the user's notices room with the user invited or joined: the room kept for
// them, or a new one when there is none or the system account is no longer in it. The
// caller holds s.mu.
func (s *Service) room(ctx context.Context, sys, user id.UserID) (id.RoomID, error) {
	kept, err := s.db.NoticeRoom(ctx, string(user), string(sys))
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return "", err
	}
	if err == nil {
		roomID := id.RoomID(kept)
		ok, err := s.reuse(ctx, sys, user, roomID)
		if err != nil || ok {
			return roomID, err
		}
		s.log.Info("server notices room no longer usable; creating another", "user", user, "room_id", roomID)
	}
	return s.create(ctx, sys, user)
}

// reuse brings the user back into their kept notices room if they left it. It reports false
// when the room cannot carry notices to them any more.
func (s *Service) reuse(ctx context.Context, sys, user id.UserID, roomID id.RoomID) (bool, error) {
	if m, err := s.rooms.Membership(ctx, sys, roomID); err != nil || m != "join" {
		return false, err
	}
	m, err := s.rooms.Membership(ctx, user, roomID)
	if err != nil {
		return false, err
	}
	switch m {
	case "join", "invite":
		return true, nil
	case "ban":
		return false, nil
	}
	if err := s.rooms.Invite(ctx, sys, roomID, rooms.MemberChange{Target: user}); err != nil {
		return false, fmt.Errorf("invite %s back to their notices room %s: %w", user, roomID, err)
	}
	// The user may have taken the tag off while away; clients find the room by it.
	return true, s.tag(ctx, user, roomID)
}

// create makes a new notices room for the user, invites them and tags it for them.
func (s *Service) create(ctx context.Context, sys, user id.UserID) (id.RoomID, error) {
	name := s.opt.RoomName
	roomID, err := s.rooms.CreateRoom(ctx, sys, &rooms.CreateRequest{
		Preset:        "private_chat",
		Name:          &name,
		Invite:        []id.UserID{user},
		PowerOverride: powerLevels,
	})
	if err != nil {
		return "", fmt.Errorf("create notices room for %s: %w", user, err)
	}
	now := s.opt.Now().UnixMilli()
	if err := s.db.Write(ctx, func(tx *storage.Tx) error {
		return tx.SetNoticeRoom(string(user), string(sys), string(roomID), now)
	}); err != nil {
		return "", err
	}
	return roomID, s.tag(ctx, user, roomID)
}

func (s *Service) tag(ctx context.Context, user id.UserID, roomID id.RoomID) error {
	if _, err := s.tags.SetTag(ctx, user, roomID, Tag, json.RawMessage(`{}`)); err != nil {
		return fmt.Errorf("tag %s's notices room %s: %w", user, roomID, err)
	}
	return nil
}

// RejectGuard refuses the rejection of an invite to a user's notices room; install it with
// rooms.Engine.SetRejectGuard. The spec lets servers keep users from rejecting it, and
// clients expect M_CANNOT_LEAVE_SERVER_NOTICE_ROOM (ErrCannotReject) when they try. Once the
// user has joined, they may leave.
func (s *Service) RejectGuard(ctx context.Context, roomID id.RoomID, user id.UserID) error {
	is, err := s.db.IsNoticeRoomOf(ctx, string(roomID), string(user))
	if err != nil {
		return err
	}
	if is {
		return ErrCannotReject
	}
	return nil
}
