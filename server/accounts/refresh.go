package accounts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// ExpiredTokenGrace is how long after its expiry an access token is still recognised once
// its device has refreshed: until then it answers ErrTokenExpired (soft logout, keep the
// session), afterwards ErrUnknownToken. A device's newest access token is kept however long
// ago it expired, so a client that was away for days is told to refresh, not that it was
// logged out.
const ExpiredTokenGrace = time.Hour

// tokens are the credentials of a new login or refresh, made before the write that stores
// them so that no crypto runs on the writer goroutine.
type tokens struct {
	access, refresh         string
	accessHash, refreshHash []byte
	// lifetime is how long the access token lives; 0 (no refresh token): for ever.
	lifetime  time.Duration
	expiresTS int64
}

// newTokens makes an access token, and when lifetime is positive a refresh token and the
// access token's expiry, lifetime from now.
func newTokens(lifetime time.Duration, now time.Time) tokens {
	var t tokens
	t.access, t.accessHash = newAccessToken()
	if lifetime > 0 {
		t.refresh, t.refreshHash = newRefreshToken()
		t.lifetime = lifetime
		t.expiresTS = now.Add(lifetime).UnixMilli()
	}
	return t
}

func (t tokens) fill(s *Session) {
	s.AccessToken, s.RefreshToken, s.ExpiresIn = t.access, t.refresh, t.lifetime
}

func (t tokens) row(localpart string, deviceID id.DeviceID, now int64) storage.RefreshableToken {
	return storage.RefreshableToken{AccessHash: t.accessHash, RefreshHash: t.refreshHash,
		Localpart: localpart, DeviceID: deviceID, CreatedTS: now, ExpiresTS: t.expiresTS}
}

// store saves the tokens for an existing device.
func (t tokens) store(tx *storage.Tx, localpart string, deviceID id.DeviceID, now int64) error {
	if t.refresh == "" {
		return tx.AddAccessToken(t.accessHash, localpart, deviceID, now)
	}
	return tx.AddRefreshableToken(t.row(localpart, deviceID, now))
}

// Refresh exchanges a refresh token for a new access token, which expires after lifetime,
// and a new refresh token, both bound to the same device: its transaction IDs, to-device
// messages and keys stay. The old refresh token stays valid until the new access or refresh
// token is first used, so a client that lost the answer can ask again; asking again revokes
// the unused answer. An unknown or revoked refresh token gives ErrUnknownToken.
//
// See https://spec.matrix.org/v1.19/client-server-api/#refreshing-access-tokens
func (s *Service) Refresh(ctx context.Context, refreshToken string, lifetime time.Duration) (*Session, error) {
	if lifetime <= 0 {
		return nil, fmt.Errorf("%w: access token lifetime %v is not positive", ErrInvalidParam, lifetime)
	}
	hash := HashToken(refreshToken)
	clock := s.clock()
	now := clock.UnixMilli()
	toks := newTokens(lifetime, clock)
	sess := &Session{}
	err := s.db.Write(ctx, func(tx *storage.Tx) error {
		localpart, deviceID, err := tx.RefreshTokenDevice(hash)
		if errors.Is(err, storage.ErrNotFound) {
			return ErrUnknownToken
		}
		if err != nil {
			return err
		}
		// Using this refresh token is the first use of it: its predecessor goes.
		if err := tx.FinishRefresh(hash, now-ExpiredTokenGrace.Milliseconds()); err != nil {
			return err
		}
		sess.UserID, sess.DeviceID = s.UserID(localpart), deviceID
		return tx.ReplaceRefreshToken(hash, toks.row(localpart, deviceID, now))
	})
	if err != nil {
		return nil, err
	}
	toks.fill(sess)
	return sess, nil
}

// finishRefresh revokes the refresh token that refreshHash replaced, on the first use of
// refreshHash's access token.
func (s *Service) finishRefresh(ctx context.Context, refreshHash []byte) error {
	expiredBefore := s.nowMS() - ExpiredTokenGrace.Milliseconds()
	return s.db.Write(ctx, func(tx *storage.Tx) error {
		err := tx.FinishRefresh(refreshHash, expiredBefore)
		if errors.Is(err, storage.ErrNotFound) {
			return nil // revoked meanwhile, by a logout or a repeated refresh
		}
		return err
	})
}
