package voip

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"fyr/storage/atomicfile"
)

// PreviousSuffix names the file that keeps the secret in use before the last rotation, beside
// the secret file: turn.secret.previous. It holds the secret on its first line and, on the
// second, the Unix time by which every credential it signed has expired.
const PreviousSuffix = ".previous"

// Keyring holds the TURN shared secret and, after a rotation, the previous one for as long as
// credentials it signed are still valid. It is safe for concurrent use.
//
// TURN can only check a credential against one key, so the keyring tells them apart by
// expiry: credentials that expire at or before the previous secret's cutoff were signed with
// it, later ones with the current secret, and Expiry never hands out a new credential that
// expires at or before the cutoff.
//
// To rotate, replace or delete the secret file while the server runs, then reload (SIGHUP, or
// save the configuration file): Reload notices, keeps the old secret as the previous one and,
// if the file is gone, writes a fresh secret. Only one previous secret is kept, so a second
// rotation within one credential lifetime cuts the oldest credentials short.
type Keyring struct {
	path string
	now  func() time.Time

	mu       sync.RWMutex
	current  string
	previous string    // empty: none
	cutoff   time.Time // last expiry signed with previous
}

// OpenKeyring loads the secret at path, creating it with 256 random bits if missing, and the
// previous secret beside it if one is still in use. now is the clock; nil means time.Now.
func OpenKeyring(path string, now func() time.Time) (*Keyring, error) {
	if now == nil {
		now = time.Now
	}
	k := &Keyring{path: path, now: now}
	cur, _, err := loadOrCreate(path)
	if err != nil {
		return nil, err
	}
	k.current = cur
	b, err := os.ReadFile(path + PreviousSuffix)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return k, nil
	case err != nil:
		return nil, fmt.Errorf("read previous turn secret: %w", err)
	}
	secret, at, ok := strings.Cut(strings.TrimSpace(string(b)), "\n")
	sec, perr := strconv.ParseInt(strings.TrimSpace(at), 10, 64)
	if !ok || perr != nil || strings.TrimSpace(secret) == "" {
		return nil, fmt.Errorf("read previous turn secret %s: want the secret, then its cutoff as Unix time, on two lines; delete the file if no old credentials need to stay valid", path+PreviousSuffix)
	}
	if cutoff := time.Unix(sec, 0); cutoff.After(now()) {
		k.previous, k.cutoff = strings.TrimSpace(secret), cutoff
	}
	return k, nil
}

// loadOrCreate reads a secret file, or writes a new random secret there if it is missing.
func loadOrCreate(path string) (secret string, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, false, nil
		}
		return "", false, fmt.Errorf("turn secret file %s is empty; delete it to generate a new one", path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("read turn secret: %w", err)
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	secret = base64.RawURLEncoding.EncodeToString(raw)
	if err := atomicfile.WriteFile(path, []byte(secret), 0o600); err != nil {
		return "", false, fmt.Errorf("write turn secret: %w", err)
	}
	return secret, true, nil
}

// Reload re-reads the secret file. If the secret changed (or the file was deleted, in which
// case a new one is written), the old secret becomes the previous one, valid for credentials
// expiring within ttl from now: ttl must be the longest lifetime credentials were issued
// with. It reports whether a rotation happened.
func (k *Keyring) Reload(ttl time.Duration) (rotated bool, err error) {
	next, _, err := loadOrCreate(k.path)
	if err != nil {
		return false, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if next == k.current {
		return false, nil
	}
	cutoff := k.now().Add(ttl).Truncate(time.Second)
	body := fmt.Sprintf("%s\n%d\n", k.current, cutoff.Unix())
	if err := atomicfile.WriteFile(k.path+PreviousSuffix, []byte(body), 0o600); err != nil {
		return false, fmt.Errorf("write previous turn secret: %w", err)
	}
	k.previous, k.cutoff, k.current = k.current, cutoff, next
	return true, nil
}

// Expiry is when a credential issued now for ttl expires: whole seconds, and always after the
// previous secret's cutoff so that it is checked against the current secret.
func (k *Keyring) Expiry(ttl time.Duration) time.Time {
	exp := k.now().Add(ttl).Truncate(time.Second)
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.previous != "" && !exp.After(k.cutoff) {
		exp = k.cutoff.Add(time.Second)
	}
	return exp
}

// Secret returns the secret that signs (and verifies) a credential expiring at expiry.
func (k *Keyring) Secret(expiry time.Time) string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.previous != "" && !expiry.After(k.cutoff) {
		return k.previous
	}
	return k.current
}
