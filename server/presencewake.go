package server

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// presenceChanged runs after a user's presence changed: a local user's goes out to the
// servers sharing a room with them, and the long-polls of the local users sharing a room
// with the user, local or remote, wake, since their /sync carries it (syncSources.Presence);
// without the wake it would wait for the poll's timeout.
func (s *Server) presenceChanged(user id.UserID) {
	ctx := context.Background()
	s.sendPresence(ctx, user)
	users, err := s.DB.UsersSharingRooms(ctx, string(user))
	if err != nil {
		s.log.Warn("presence wake", "user", user, "err", err)
		return
	}
	local := make([]id.UserID, 0, len(users))
	for _, u := range users {
		if uid := id.UserID(u); uid.Homeserver() == s.cfg.ServerName {
			local = append(local, uid)
		}
	}
	s.Sync.Notifier().Notify(local...)
}
