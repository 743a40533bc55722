package accounts

import (
	"context"
	"errors"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// OpenIDTokenTTL is how long an OpenID token proves its user's identity.
const OpenIDTokenTTL = time.Hour

// NewOpenIDToken issues a token that another service can exchange, once or many times within
// OpenIDTokenTTL, for the caller's user ID. It is good for nothing else.
func (s *Service) NewOpenIDToken(ctx context.Context, c *Caller) (string, time.Duration, error) {
	token := newSecret(32)
	expires := s.clock().Add(OpenIDTokenTTL).UnixMilli()
	err := s.db.Write(ctx, func(tx *storage.Tx) error {
		return tx.AddOpenIDToken(HashToken(token), c.Localpart, expires)
	})
	return token, OpenIDTokenTTL, err
}

// OpenIDUser returns the user an OpenID token was issued to, or ErrUnknownToken.
func (s *Service) OpenIDUser(ctx context.Context, token string) (id.UserID, error) {
	localpart, err := s.db.OpenIDUser(ctx, HashToken(token), s.nowMS())
	if errors.Is(err, storage.ErrNotFound) {
		return "", ErrUnknownToken
	}
	if err != nil {
		return "", err
	}
	return s.UserID(localpart), nil
}

// forgetOpenIDTokens removes expired tokens.
func (s *Service) forgetOpenIDTokens(ctx context.Context) error {
	now := s.nowMS()
	return s.db.Write(ctx, func(tx *storage.Tx) error { return tx.ForgetOpenIDTokens(now) })
}
