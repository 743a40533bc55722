package accounts

import (
	"context"
	"errors"

	"fyr/storage"
)

// MaxRegTokenBytes is the spec's limit on a registration token's length.
const MaxRegTokenBytes = 64

// RegistrationTokenValid reports nil if token would admit one more registration now,
// ErrInvalidRegToken if not.
func (s *Service) RegistrationTokenValid(ctx context.Context, token string) error {
	if token == "" || len(token) > MaxRegTokenBytes {
		return ErrInvalidRegToken
	}
	t, err := s.db.RegistrationToken(ctx, HashToken(token))
	if errors.Is(err, storage.ErrNotFound) {
		return ErrInvalidRegToken
	}
	if err != nil {
		return err
	}
	if !t.Usable(s.nowMS()) {
		return ErrInvalidRegToken
	}
	return nil
}

// NewRegistrationToken creates a token admitting uses registrations (0: unlimited) until
// expiry (zero: never). Only its hash is stored, so the returned token is shown once.
func (s *Service) NewRegistrationToken(ctx context.Context, uses int64, expiry int64, grantsAdmin bool) (string, error) {
	token := newSecret(18) // 144 bits, 24 characters of the spec's [A-Za-z0-9._~-]
	err := s.db.Write(ctx, func(tx *storage.Tx) error {
		return tx.CreateRegistrationToken(storage.RegistrationToken{
			Hash: HashToken(token), UsesAllowed: uses, ExpiryTS: expiry, GrantsAdmin: grantsAdmin, CreatedTS: s.nowMS(),
		})
	})
	return token, err
}

// AdminBootstrapToken returns a fresh one-use token that makes its user a server admin, or ""
// if an admin already exists. Earlier bootstrap tokens stop working, so only the one printed
// last can be used.
func (s *Service) AdminBootstrapToken(ctx context.Context) (string, error) {
	has, err := s.db.HasAdmin(ctx)
	if err != nil || has {
		return "", err
	}
	token := newSecret(18)
	err = s.db.Write(ctx, func(tx *storage.Tx) error {
		if err := tx.DeleteAdminBootstrapTokens(); err != nil {
			return err
		}
		return tx.CreateRegistrationToken(storage.RegistrationToken{
			Hash: HashToken(token), UsesAllowed: 1, GrantsAdmin: true, CreatedTS: s.nowMS(),
		})
	})
	if err != nil {
		return "", err
	}
	return token, nil
}
