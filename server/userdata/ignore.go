package userdata

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// IgnoredUserListType is the global account data type that lists the users a user ignores.
// See https://spec.matrix.org/v1.19/client-server-api/#ignoring-users
const IgnoredUserListType = "m.ignored_user_list"

// maxIgnoredCached bounds the users whose ignore lists are kept in memory; past it the cache
// starts over.
const maxIgnoredCached = 4096

// IgnoredUsers returns the set of users userID ignores, from their m.ignored_user_list
// account data: sync and /messages leave out those users' non-state events, and invites.
// The answer is cached until the list is set again, so calling it per request is cheap. The
// map is shared: callers must not modify it. A malformed list counts as empty; a user never
// ignores themself.
func (s *Service) IgnoredUsers(ctx context.Context, userID id.UserID) (map[id.UserID]bool, error) {
	s.ignoredMu.Lock()
	m, ok := s.ignored[userID]
	version := s.ignoredVersion
	s.ignoredMu.Unlock()
	if ok {
		return m, nil
	}
	d, err := s.db.AccountData(ctx, userID, "", IgnoredUserListType)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		m = map[id.UserID]bool{}
	case err != nil:
		return nil, err
	default:
		m = parseIgnored(userID, d.Content)
	}
	s.ignoredMu.Lock()
	defer s.ignoredMu.Unlock()
	// A list set while we read may be newer than what we read: then leave it uncached.
	if s.ignoredVersion == version {
		if s.ignored == nil || len(s.ignored) >= maxIgnoredCached {
			s.ignored = map[id.UserID]map[id.UserID]bool{}
		}
		s.ignored[userID] = m
	}
	return m, nil
}

// forgetIgnored drops a user's cached ignore list after a write to it, committed or not.
func (s *Service) forgetIgnored(userID id.UserID) {
	s.ignoredMu.Lock()
	delete(s.ignored, userID)
	s.ignoredVersion++
	s.ignoredMu.Unlock()
}

// parseIgnored reads the keys of content's ignored_users object that look like user IDs.
func parseIgnored(self id.UserID, content json.RawMessage) map[id.UserID]bool {
	var list struct {
		IgnoredUsers map[id.UserID]json.RawMessage `json:"ignored_users"`
	}
	m := map[id.UserID]bool{}
	if json.Unmarshal(content, &list) != nil {
		return m
	}
	for u := range list.IgnoredUsers {
		if u != self && strings.HasPrefix(string(u), "@") {
			m[u] = true
		}
	}
	return m
}
