package accounts

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"sync"
	"time"
)

// Shared-secret registration is Synapse's admin API (POST /_synapse/admin/v1/register), kept
// compatible so existing provisioning tools work: the client fetches a nonce, then sends
// HMAC-SHA1(secret, nonce NUL user NUL password NUL "admin"|"notadmin") in hex.
const (
	nonceTTL      = 60 * time.Second
	nonceMaxLive  = 1000
	nonceByteSize = 16
)

type nonceStore struct {
	mu     sync.Mutex
	clock  func() time.Time
	nonces map[string]time.Time
}

func newNonceStore(clock func() time.Time) *nonceStore {
	return &nonceStore{clock: clock, nonces: map[string]time.Time{}}
}

// NewNonce returns a single-use nonce valid for a minute.
func (s *Service) NewNonce() string {
	n := s.nonces
	now := n.clock()
	nonce := newSecret(nonceByteSize)
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.nonces) >= nonceMaxLive {
		for k, exp := range n.nonces {
			if now.After(exp) {
				delete(n.nonces, k)
			}
		}
	}
	for k := range n.nonces {
		if len(n.nonces) < nonceMaxLive {
			break
		}
		delete(n.nonces, k)
	}
	n.nonces[nonce] = now.Add(nonceTTL)
	return nonce
}

// takeNonce consumes a nonce, reporting whether it was live.
func (n *nonceStore) take(nonce string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	exp, ok := n.nonces[nonce]
	delete(n.nonces, nonce)
	return ok && !n.clock().After(exp)
}

// SharedSecretRegistration is a request to /_synapse/admin/v1/register.
type SharedSecretRegistration struct {
	Nonce       string
	Username    string
	Password    string
	Admin       bool
	MAC         string
	DisplayName string
}

// SharedSecretMAC computes the hex MAC a client must send; exported for tests and the CLI.
func SharedSecretMAC(secret, nonce, username, password string, admin bool) string {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(nonce + "\x00" + username + "\x00" + password + "\x00"))
	if admin {
		m.Write([]byte("admin"))
	} else {
		m.Write([]byte("notadmin"))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// RegisterWithSharedSecret checks nonce and MAC against secret, then creates the account with
// a device and token. The nonce is spent whether or not the MAC matches.
func (s *Service) RegisterWithSharedSecret(ctx context.Context, secret string, r SharedSecretRegistration, ip string) (*Session, error) {
	if secret == "" {
		return nil, ErrSharedSecretUnset
	}
	if !s.nonces.take(r.Nonce) {
		return nil, ErrUnknownSession
	}
	want := SharedSecretMAC(secret, r.Nonce, r.Username, r.Password, r.Admin)
	if !hmac.Equal([]byte(want), []byte(r.MAC)) {
		return nil, ErrForbidden
	}
	localpart, err := s.LocalpartOf(r.Username)
	if err != nil {
		return nil, ErrInvalidUsername
	}
	sess, err := s.Register(ctx, NewAccount{Localpart: localpart, Password: r.Password, Admin: r.Admin, IP: ip})
	if err != nil {
		return nil, err
	}
	if r.DisplayName != "" {
		err = s.SetDisplayName(ctx, localpart, r.DisplayName)
	}
	return sess, err
}
