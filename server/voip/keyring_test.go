package voip_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fyr/server/voip"
)

// clock is a settable time source for tests, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0)} }

func TestKeyringCreatesSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "turn.secret")
	k, err := voip.OpenKeyring(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("OpenKeyring wrote no secret: %v", err)
	}
	if got := k.Secret(time.Now().Add(time.Hour)); got != string(b) || len(got) < 32 {
		t.Errorf("Secret = %q, want the %d-byte file content", got, len(b))
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestKeyringRotation rotates the secret while credentials are out: those signed before stay
// valid until they expire, new ones use the new secret, and a restart keeps both.
func TestKeyringRotation(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "turn.secret")
	if err := os.WriteFile(path, []byte("old-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := voip.OpenKeyring(path, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	const ttl = time.Hour
	oldExp := k.Expiry(ttl)
	if got := k.Secret(oldExp); got != "old-secret" {
		t.Fatalf("Secret before rotation = %q, want the file's, trimmed", got)
	}
	if rotated, err := k.Reload(ttl); err != nil || rotated {
		t.Fatalf("Reload of an unchanged file = %v, %v; want no rotation", rotated, err)
	}

	clk.Advance(10 * time.Minute)
	if err := os.WriteFile(path, []byte("new-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if rotated, err := k.Reload(ttl); err != nil || !rotated {
		t.Fatalf("Reload after a change = %v, %v; want a rotation", rotated, err)
	}
	newExp := k.Expiry(ttl)
	if got, want := k.Secret(oldExp), "old-secret"; got != want {
		t.Errorf("Secret(credential issued before the rotation) = %q, want %q", got, want)
	}
	if got, want := k.Secret(newExp), "new-secret"; got != want {
		t.Errorf("Secret(credential issued after the rotation) = %q, want %q", got, want)
	}

	// A restart reads the previous secret back.
	k2, err := voip.OpenKeyring(path, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	if got := k2.Secret(oldExp); got != "old-secret" {
		t.Errorf("after restart, Secret(old credential) = %q, want old-secret", got)
	}
	// Once every old credential has expired the previous secret is dropped at start.
	clk.Advance(2 * ttl)
	k3, err := voip.OpenKeyring(path, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	if got := k3.Secret(oldExp); got != "new-secret" {
		t.Errorf("after the cutoff, Secret(old expiry) = %q, want new-secret", got)
	}

	// Deleting the file rotates to a fresh random secret.
	os.Remove(path)
	if rotated, err := k3.Reload(ttl); err != nil || !rotated {
		t.Fatalf("Reload after delete = %v, %v; want a rotation", rotated, err)
	}
	if got := k3.Secret(k3.Expiry(ttl)); got == "new-secret" || got == "" {
		t.Errorf("secret after delete = %q, want a fresh one", got)
	}
}

func TestKeyringBadPreviousFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "turn.secret")
	os.WriteFile(path, []byte("s"), 0o600)
	os.WriteFile(path+voip.PreviousSuffix, []byte("only-a-secret"), 0o600)
	_, err := voip.OpenKeyring(path, nil)
	if err == nil || !strings.Contains(err.Error(), "delete the file") {
		t.Errorf("OpenKeyring with a malformed previous file: %v, want an error with a hint", err)
	}
}
