package accounts_test

import (
	"errors"
	"testing"
	"time"

	"fyr/server/accounts"
)

func TestRefresh(t *testing.T) {
	s := newService(t)
	now := time.Unix(1_800_000_000, 0)
	s.SetClock(func() time.Time { return now })
	const life = 5 * time.Minute
	sess, err := s.Register(ctx, accounts.NewAccount{Localpart: "alice", Password: "pw", TokenLifetime: life})
	if err != nil {
		t.Fatal(err)
	}
	if sess.RefreshToken == "" || sess.ExpiresIn != life {
		t.Fatalf("Register with TokenLifetime = %+v, want a refresh token and ExpiresIn %v", sess, life)
	}
	plain, err := s.Login(ctx, accounts.Login{User: "alice", Password: "pw"})
	if err != nil || plain.RefreshToken != "" || plain.ExpiresIn != 0 {
		t.Fatalf("Login without TokenLifetime = %+v, %v; want no refresh token and no expiry", plain, err)
	}

	now = now.Add(life)
	if _, err := s.Authenticate(ctx, sess.AccessToken, ""); !errors.Is(err, accounts.ErrTokenExpired) {
		t.Errorf("Authenticate(expired) = %v, want ErrTokenExpired", err)
	}
	if c, err := s.AuthenticateExpired(ctx, sess.AccessToken, ""); err != nil || c.DeviceID != sess.DeviceID {
		t.Errorf("AuthenticateExpired(expired) = %+v, %v; want device %s", c, err, sess.DeviceID)
	}
	if _, err := s.Authenticate(ctx, plain.AccessToken, ""); err != nil {
		t.Errorf("Authenticate(token without lifetime) = %v", err)
	}

	next, err := s.Refresh(ctx, sess.RefreshToken, 2*life)
	if err != nil {
		t.Fatal(err)
	}
	if next.UserID != sess.UserID || next.DeviceID != sess.DeviceID || next.ExpiresIn != 2*life || next.RefreshToken == sess.RefreshToken {
		t.Errorf("Refresh = %+v, want new tokens for %s on %s living %v", next, sess.UserID, sess.DeviceID, 2*life)
	}
	if _, err := s.Authenticate(ctx, next.AccessToken, ""); err != nil {
		t.Errorf("Authenticate(refreshed) = %v", err)
	}
	if _, err := s.Refresh(ctx, sess.RefreshToken, life); !errors.Is(err, accounts.ErrUnknownToken) {
		t.Errorf("Refresh(replaced, after the new token was used) = %v, want ErrUnknownToken", err)
	}
	if _, err := s.Refresh(ctx, "fyr_unknown", life); !errors.Is(err, accounts.ErrUnknownToken) {
		t.Errorf("Refresh(unknown) = %v, want ErrUnknownToken", err)
	}
	if _, err := s.Refresh(ctx, next.RefreshToken, 0); !errors.Is(err, accounts.ErrInvalidParam) {
		t.Errorf("Refresh(lifetime 0) = %v, want ErrInvalidParam", err)
	}
}
