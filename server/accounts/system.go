package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// ErrSystemLocalpart is a system account's localpart that an ordinary account already holds.
var ErrSystemLocalpart = errors.New("accounts: the localpart belongs to an ordinary account")

// Reserve keeps localparts for the server's own accounts: registering one is refused with
// ErrUserInUse, whether or not the account exists yet. Call it before serving; it is not safe
// to call concurrently with other methods.
func (s *Service) Reserve(localparts ...string) {
	if s.reserved == nil {
		s.reserved = map[string]bool{}
	}
	for _, lp := range localparts {
		s.reserved[lp] = true
	}
}

// EnsureSystemUser creates, unless it exists, an account the server itself speaks as for
// purpose (e.g. "server_notices"): it has no password and no devices, so nobody can log in
// as it, and it is left out of the user directory. A new account gets displayName; an
// existing one whose display name differs is renamed (its rooms hear of it through
// OnProfileChange). A localpart an ordinary account holds is ErrSystemLocalpart.
func (s *Service) EnsureSystemUser(ctx context.Context, localpart, purpose, displayName string) (id.UserID, error) {
	userID := s.UserID(localpart)
	name, err := json.Marshal(displayName)
	if err != nil {
		return "", err
	}
	var created bool
	err = s.db.Write(ctx, func(tx *storage.Tx) error {
		var err error
		created, err = tx.CreateSystemUser(localpart, purpose, name, s.nowMS())
		return err
	})
	if errors.Is(err, storage.ErrNotSystemUser) {
		return "", fmt.Errorf("%w: %v; choose another localpart for the server's %s account", ErrSystemLocalpart, err, purpose)
	}
	if err != nil || created {
		return userID, err
	}
	p, err := s.db.Profile(ctx, localpart)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return "", err
	}
	var had string
	json.Unmarshal(p["displayname"], &had)
	if had != displayName {
		if err := s.SetDisplayName(ctx, localpart, displayName); err != nil {
			return "", err
		}
	}
	return userID, nil
}
