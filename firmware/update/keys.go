package update

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// BuiltinKeys are the update keys every Fyr binary trusts: comma-separated base64 ed25519
// public keys, stamped at build time with
//
//	-ldflags "-X fyr/firmware/update.BuiltinKeys=KEY1,KEY2"
//
// (make release UPDATE_KEYS=… does it). Ship two, so that one can be retired by a bundle
// signed with the other.
var BuiltinKeys = ""

// KeyID names a public key: the first eight bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Keyring is the set of public keys a box accepts bundle signatures from. The zero value
// trusts nothing; it is not safe for concurrent modification.
type Keyring struct {
	keys map[string]ed25519.PublicKey
}

// NewKeyring trusts the given keys.
func NewKeyring(keys ...ed25519.PublicKey) *Keyring {
	k := &Keyring{}
	for _, pub := range keys {
		k.Add(pub)
	}
	return k
}

// Add trusts pub and returns its ID.
func (k *Keyring) Add(pub ed25519.PublicKey) string {
	if k.keys == nil {
		k.keys = make(map[string]ed25519.PublicKey)
	}
	id := KeyID(pub)
	k.keys[id] = slices.Clone(pub)
	return id
}

// IDs lists the trusted key IDs, sorted.
func (k *Keyring) IDs() []string {
	ids := make([]string, 0, len(k.keys))
	for id := range k.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Len is the number of trusted keys.
func (k *Keyring) Len() int { return len(k.keys) }

// verify checks sig over msg with the key named id.
func (k *Keyring) verify(id string, msg, sig []byte) error {
	pub, ok := k.keys[id]
	if !ok {
		return fmt.Errorf("%w: key %s (trusted: %s)", ErrUntrustedKey, id, strings.Join(k.IDs(), ", "))
	}
	if !ed25519.Verify(pub, msg, sig) {
		return fmt.Errorf("%w: key %s", ErrBadSignature, id)
	}
	return nil
}

// LoadKeyring trusts the BuiltinKeys and the PEM public keys in file, if it exists (an
// operator's extra keys; empty file name: none).
func LoadKeyring(file string) (*Keyring, error) {
	k := &Keyring{}
	for _, s := range strings.Split(BuiltinKeys, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("update: built-in key %q is not a base64 ed25519 public key", s)
		}
		k.Add(b)
	}
	if file == "" {
		return k, nil
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	keys, err := ParsePublicKeys(b)
	if err != nil {
		return nil, fmt.Errorf("update: %s: %w", file, err)
	}
	for _, pub := range keys {
		k.Add(pub)
	}
	return k, nil
}

// GenerateKey makes a signing key and returns it as PEM: the private key (PKCS #8, as
// `openssl genpkey -algorithm ed25519` writes it) and the public key (PKIX).
func GenerateKey() (private, public []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), nil
}

// ParsePrivateKey reads a PEM PKCS #8 ed25519 private key.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM PRIVATE KEY")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an ed25519 key", key)
	}
	return priv, nil
}

// ParsePublicKeys reads one or more PEM PKIX ed25519 public keys.
func ParsePublicKeys(b []byte) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("a PEM %s, not a PUBLIC KEY", block.Type)
		}
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		pub, ok := key.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("a %T, not an ed25519 key", key)
		}
		keys = append(keys, pub)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM PUBLIC KEY found")
	}
	return keys, nil
}
