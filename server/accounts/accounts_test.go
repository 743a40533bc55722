package accounts_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyr/server/accounts"
	"fyr/storage"
)

var ctx = context.Background()

func newService(t *testing.T) *accounts.Service {
	t.Helper()
	db, err := storage.Open(ctx, filepath.Join(t.TempDir(), "fyr.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return accounts.New(db, "example.org")
}

func TestPasswordHash(t *testing.T) {
	h, err := accounts.HashPassword("hunter2")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q is not an argon2id PHC string with the expected parameters", h)
	}
	for _, tc := range []struct {
		password string
		want     bool
	}{{"hunter2", true}, {"hunter3", false}, {"", false}} {
		if got, err := accounts.VerifyPassword(h, tc.password); got != tc.want || err != nil {
			t.Errorf("VerifyPassword(%q) = %v, %v; want %v", tc.password, got, err, tc.want)
		}
	}
	h2, _ := accounts.HashPassword("hunter2")
	if h == h2 {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	for _, bad := range []string{"", "plain", "$argon2i$v=19$m=1,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=0,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=8,t=1,p=1$!!$AAAA"} {
		if _, err := accounts.VerifyPassword(bad, "x"); err == nil {
			t.Errorf("VerifyPassword(%q) accepted a malformed hash", bad)
		}
	}
}

func TestValidateLocalpart(t *testing.T) {
	s := newService(t)
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"alice", true}, {"a.b_c=d-e/f+g", true}, {"q3._=-/", true},
		{"", false}, {"Alice", false}, {"al ice", false}, {"al:ice", false}, {"é", false},
		{strings.Repeat("a", 240), true}, {strings.Repeat("a", 250), false},
	} {
		err := s.ValidateLocalpart(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateLocalpart(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
		if err != nil && !errors.Is(err, accounts.ErrInvalidUsername) {
			t.Errorf("ValidateLocalpart(%q) = %v, want ErrInvalidUsername", tc.in, err)
		}
	}
}

func TestLocalpartOf(t *testing.T) {
	s := newService(t)
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"alice", "alice", nil},
		{"ALICE", "alice", nil},
		{"@Alice:example.org", "alice", nil},
		{"@alice:elsewhere.org", "", accounts.ErrNotLocal},
	} {
		got, err := s.LocalpartOf(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("LocalpartOf(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestInteractivePassword(t *testing.T) {
	s := newService(t)
	if _, err := s.Register(ctx, accounts.NewAccount{Localpart: "alice", Password: "pw", InhibitLogin: true}); err != nil {
		t.Fatal(err)
	}
	op := accounts.UIA{Op: "delete_devices", Flows: accounts.Flows{{accounts.AuthPassword}}, Localpart: "alice"}
	pw := func(user, password, session string) *accounts.AuthData {
		return &accounts.AuthData{Type: accounts.AuthPassword, User: user, Password: password, Session: session}
	}

	_, err := s.Interactive(ctx, op, nil)
	var ch *accounts.Challenge
	if !errors.As(err, &ch) || ch.Session == "" || ch.Err != nil {
		t.Fatalf("no auth: %v, want a fresh challenge", err)
	}
	_, err = s.Interactive(ctx, op, pw("alice", "wrong", ch.Session))
	var ch2 *accounts.Challenge
	if !errors.As(err, &ch2) || !errors.Is(ch2.Err, accounts.ErrForbidden) || ch2.Session != ch.Session {
		t.Fatalf("wrong password: %v, want a challenge with ErrForbidden on the same session", err)
	}
	if _, err := s.Interactive(ctx, accounts.UIA{Op: "password", Flows: op.Flows, Localpart: "alice"}, pw("alice", "pw", ch.Session)); !errors.Is(err, accounts.ErrUnknownSession) {
		t.Errorf("session reused for another operation: %v, want ErrUnknownSession", err)
	}
	if _, err := s.Interactive(ctx, op, pw("alice", "pw", ch.Session)); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if _, err := s.Interactive(ctx, op, pw("alice", "pw", ch.Session)); !errors.Is(err, accounts.ErrUnknownSession) {
		t.Errorf("completed session used again: %v, want ErrUnknownSession", err)
	}
	if _, err := s.Interactive(ctx, op, &accounts.AuthData{Type: accounts.AuthDummy}); err == nil {
		t.Error("m.login.dummy passed a password-only flow")
	}
}

func TestSharedSecretRegistration(t *testing.T) {
	s := newService(t)
	nonce := s.NewNonce()
	mac := accounts.SharedSecretMAC("s3cret", nonce, "bot", "pw", true)
	if _, err := s.RegisterWithSharedSecret(ctx, "s3cret", accounts.SharedSecretRegistration{Nonce: nonce, Username: "bot", Password: "pw", Admin: false, MAC: mac}, ""); !errors.Is(err, accounts.ErrForbidden) {
		t.Fatalf("MAC for admin used for a non-admin: %v, want ErrForbidden", err)
	}
	if _, err := s.RegisterWithSharedSecret(ctx, "s3cret", accounts.SharedSecretRegistration{Nonce: nonce, Username: "bot", Password: "pw", Admin: true, MAC: mac}, ""); !errors.Is(err, accounts.ErrUnknownSession) {
		t.Fatalf("spent nonce: %v, want ErrUnknownSession", err)
	}
	nonce = s.NewNonce()
	mac = accounts.SharedSecretMAC("s3cret", nonce, "Bot", "pw", true)
	sess, err := s.RegisterWithSharedSecret(ctx, "s3cret", accounts.SharedSecretRegistration{Nonce: nonce, Username: "Bot", Password: "pw", Admin: true, MAC: mac, DisplayName: "The Bot"}, "")
	if err != nil || sess.UserID != "@bot:example.org" || sess.AccessToken == "" {
		t.Fatalf("register = %+v, %v", sess, err)
	}
	if p, _ := s.Profile(ctx, sess.UserID); string(p["displayname"]) != `"The Bot"` {
		t.Errorf("display name = %s", p["displayname"])
	}
}

func TestRegistrationTokenUses(t *testing.T) {
	s := newService(t)
	tok, err := s.NewRegistrationToken(ctx, 2, time.Now().Add(time.Hour).UnixMilli(), false)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"a", "b", "c"} {
		_, err := s.Register(ctx, accounts.NewAccount{Localpart: name, RegToken: tok, InhibitLogin: true})
		if wantOK := i < 2; (err == nil) != wantOK {
			t.Errorf("registration %d with a 2-use token: %v", i+1, err)
		}
	}
	if err := s.RegistrationTokenValid(ctx, tok); !errors.Is(err, accounts.ErrInvalidRegToken) {
		t.Errorf("used-up token valid? %v", err)
	}
	expired, _ := s.NewRegistrationToken(ctx, 0, time.Now().Add(-time.Second).UnixMilli(), false)
	if err := s.RegistrationTokenValid(ctx, expired); !errors.Is(err, accounts.ErrInvalidRegToken) {
		t.Errorf("expired token valid? %v", err)
	}
}

func TestAdminBootstrapToken(t *testing.T) {
	s := newService(t)
	first, err := s.AdminBootstrapToken(ctx)
	if err != nil || first == "" {
		t.Fatalf("first token %q, %v", first, err)
	}
	second, _ := s.AdminBootstrapToken(ctx)
	if err := s.RegistrationTokenValid(ctx, first); err == nil {
		t.Error("an older bootstrap token still works after a new one was printed")
	}
	if _, err := s.Register(ctx, accounts.NewAccount{Localpart: "root", RegToken: second, InhibitLogin: true}); err != nil {
		t.Fatal(err)
	}
	if tok, err := s.AdminBootstrapToken(ctx); tok != "" || err != nil {
		t.Errorf("with an admin present: token %q, %v; want none", tok, err)
	}
}

func TestLastSeenIsFlushed(t *testing.T) {
	s := newService(t)
	sess, err := s.Register(ctx, accounts.NewAccount{Localpart: "alice", Password: "pw", IP: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, sess.AccessToken, "198.51.100.7"); err != nil {
		t.Fatal(err)
	}
	c := &accounts.Caller{Localpart: "alice"}
	if d, _ := s.Device(ctx, c, sess.DeviceID); d.LastSeenIP != "192.0.2.1" {
		t.Errorf("before the flush last_seen_ip = %q, want the registration address", d.LastSeenIP)
	}
	if err := s.FlushSeen(ctx); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.Device(ctx, c, sess.DeviceID); d.LastSeenIP != "198.51.100.7" || d.LastSeenTS == 0 {
		t.Errorf("after the flush device = %+v, want the request's address", d)
	}
}
