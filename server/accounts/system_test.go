package accounts_test

import (
	"encoding/json"
	"errors"
	"testing"

	"maunium.net/go/mautrix/id"

	"fyr/server/accounts"
)

func TestSystemUser(t *testing.T) {
	s := newService(t)
	s.Reserve("notices")
	var renamed []id.UserID
	s.OnProfileChange(func(u id.UserID) { renamed = append(renamed, u) })

	// The reserved localpart cannot be registered, before or after the account exists.
	if err := s.Available(ctx, "notices"); !errors.Is(err, accounts.ErrUserInUse) {
		t.Errorf("Available(notices) = %v, want ErrUserInUse", err)
	}
	if _, err := s.Register(ctx, accounts.NewAccount{Localpart: "notices", Password: "pw"}); !errors.Is(err, accounts.ErrUserInUse) {
		t.Errorf("Register(notices) = %v, want ErrUserInUse", err)
	}
	got, err := s.EnsureSystemUser(ctx, "notices", "server_notices", "Server notices")
	if err != nil || got != "@notices:example.org" {
		t.Fatalf("EnsureSystemUser = %q, %v", got, err)
	}
	if _, err := s.Register(ctx, accounts.NewAccount{Localpart: "notices", Password: "pw"}); !errors.Is(err, accounts.ErrUserInUse) {
		t.Errorf("Register(notices) once it exists = %v, want ErrUserInUse", err)
	}
	// Nobody logs in as it: it has no password.
	if _, err := s.Login(ctx, accounts.Login{User: "notices", Password: ""}); !errors.Is(err, accounts.ErrForbidden) {
		t.Errorf("Login(notices) = %v, want ErrForbidden", err)
	}
	name := func() string {
		t.Helper()
		p, err := s.Profile(ctx, got)
		if err != nil {
			t.Fatal(err)
		}
		var n string
		json.Unmarshal(p["displayname"], &n)
		return n
	}
	if n := name(); n != "Server notices" {
		t.Errorf("display name = %q, want Server notices", n)
	}
	if len(renamed) != 0 {
		t.Errorf("creating the account announced a profile change for %v", renamed)
	}
	// Calling again changes nothing; a new configured name renames it.
	if _, err := s.EnsureSystemUser(ctx, "notices", "server_notices", "Server notices"); err != nil || len(renamed) != 0 {
		t.Fatalf("EnsureSystemUser again = %v, profile changes %v", err, renamed)
	}
	if _, err := s.EnsureSystemUser(ctx, "notices", "server_notices", "Fyr"); err != nil {
		t.Fatal(err)
	}
	if n := name(); n != "Fyr" || len(renamed) != 1 {
		t.Errorf("after renaming: display name %q, profile changes %v", n, renamed)
	}

	// An ordinary account's localpart cannot become a system account.
	if _, err := s.Register(ctx, accounts.NewAccount{Localpart: "alice", Password: "pw", InhibitLogin: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnsureSystemUser(ctx, "alice", "server_notices", "x"); !errors.Is(err, accounts.ErrSystemLocalpart) {
		t.Errorf("EnsureSystemUser(alice) = %v, want ErrSystemLocalpart", err)
	}
}
