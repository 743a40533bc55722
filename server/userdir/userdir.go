// Package userdir answers user directory searches: local users found by user ID or display
// name, among the users the searcher may see through rooms.
//
// It is not for profiles (accounts keeps them; the directory's index follows them through
// triggers in storage) nor for remote users, whom this server does not index.
package userdir

import (
	"context"
	"strings"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// Limits of a search, as Synapse has them.
const (
	DefaultLimit = 10
	MaxLimit     = 50
)

// Result is one user found, as /user_directory/search returns it.
type Result struct {
	UserID      id.UserID `json:"user_id"`
	DisplayName string    `json:"display_name,omitempty"`
	AvatarURL   string    `json:"avatar_url,omitempty"`
}

// Service searches the user directory. It is safe for concurrent use.
type Service struct {
	db *storage.DB
}

// New returns a service over db.
func New(db *storage.DB) *Service { return &Service{db: db} }

// Search finds up to limit local users (capped at MaxLimit) whose user ID or display name
// has, for every word of term, a word starting with it, ignoring case and diacritics. The
// searcher finds the users they share a joined room with, and the users joined to rooms that
// are public or world-readable: the minimum the spec asks for, and what Synapse shows by
// default. limited says more users matched.
//
// See https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3user_directorysearch
func (s *Service) Search(ctx context.Context, searcher id.UserID, term string, limit int) (results []Result, limited bool, err error) {
	limit = min(max(limit, 0), MaxLimit)
	found, err := s.db.SearchUserDirectory(ctx, string(searcher), strings.Fields(term), limit+1)
	if err != nil {
		return nil, false, err
	}
	if len(found) > limit {
		found, limited = found[:limit], true
	}
	results = make([]Result, len(found))
	for i, u := range found {
		results[i] = Result{UserID: id.UserID(u.UserID), DisplayName: u.DisplayName, AvatarURL: u.AvatarURL}
	}
	return results, limited, nil
}
