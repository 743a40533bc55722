package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"maunium.net/go/mautrix/id"

	"fyr/storage/atomicfile"
)

// keyVersionAlphabet is what a generated key version is drawn from after its "a_" prefix,
// the same shape Synapse gives its keys (a_AbC1).
const keyVersionAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// SigningKey is this server's ed25519 federation signing key.
//
// Its String method prints only the key ID and public key, so a SigningKey passed to a logger
// does not leak the private seed.
type SigningKey struct {
	// ID is the key ID, "ed25519:" followed by the key version, e.g. "ed25519:a_Xyz1".
	ID      id.KeyID
	Private ed25519.PrivateKey
}

// Public returns the public half of the key.
func (k *SigningKey) Public() ed25519.PublicKey {
	return k.Private.Public().(ed25519.PublicKey)
}

// Sign returns the ed25519 signature of msg.
func (k *SigningKey) Sign(msg []byte) []byte {
	return ed25519.Sign(k.Private, msg)
}

// String returns the key ID and the unpadded base64 public key, never the private key.
func (k *SigningKey) String() string {
	return fmt.Sprintf("%s %s", k.ID, base64.RawStdEncoding.EncodeToString(k.Public()))
}

// LoadOrCreate reads the signing key file at path, or creates it if it does not exist.
//
// The file uses Synapse's format, which Synapse's and Dendrite's tools also read: one line per
// key, "ed25519 <version> <unpadded standard base64 of the 32-byte seed>". Blank lines are
// ignored and only the first key is used. A file that exists but cannot be parsed is an error
// and is never overwritten.
//
// A new key gets a version "a_" plus four random alphanumeric characters and is written
// atomically with mode 0600; created reports whether that happened.
func LoadOrCreate(path string) (key *SigningKey, created bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = generate()
		if err := atomicfile.WriteFile(path, key.marshal(), 0o600); err != nil {
			return nil, false, fmt.Errorf("write signing key %s: %w", path, err)
		}
		return key, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read signing key: %w", err)
	}
	key, err = parse(data)
	if err != nil {
		return nil, false, fmt.Errorf("read signing key %s: %w", path, err)
	}
	return key, false, nil
}

// parse decodes the first key in a Synapse signing key file. Its errors never contain the seed.
func parse(data []byte) (*SigningKey, error) {
	for i, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		key, err := parseLine(fields)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		return key, nil
	}
	return nil, errors.New("no key in file")
}

func parseLine(fields []string) (*SigningKey, error) {
	if len(fields) != 3 {
		return nil, fmt.Errorf("want 3 fields \"ed25519 <version> <seed>\", got %d", len(fields))
	}
	alg, version, seedB64 := fields[0], fields[1], fields[2]
	if alg != string(id.KeyAlgorithmEd25519) {
		return nil, fmt.Errorf("unsupported key algorithm %s, want %q", quoteShort(alg), id.KeyAlgorithmEd25519)
	}
	if !validVersion(version) {
		return nil, fmt.Errorf("invalid key version %s, want one or more of [a-zA-Z0-9_]", quoteShort(version))
	}
	// Synapse writes the seed unpadded but also reads it padded.
	seed, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(seedB64, "="))
	if err != nil {
		var corrupt base64.CorruptInputError
		if errors.As(err, &corrupt) {
			return nil, fmt.Errorf("seed is not valid base64 (at byte %d)", int64(corrupt))
		}
		return nil, errors.New("seed is not valid base64")
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return &SigningKey{
		ID:      id.NewKeyID(id.KeyAlgorithmEd25519, version),
		Private: ed25519.NewKeyFromSeed(seed),
	}, nil
}

// quoteShort quotes a field for an error message unless it is long enough to be a seed that
// ended up in the wrong column.
func quoteShort(s string) string {
	if len(s) > 16 {
		return fmt.Sprintf("(%d characters, not shown)", len(s))
	}
	return fmt.Sprintf("%q", s)
}

// validVersion reports whether v is a key version the spec allows: [a-zA-Z0-9_]+.
// See https://spec.matrix.org/v1.16/appendices/#key-ids
func validVersion(v string) bool {
	if v == "" {
		return false
	}
	for _, c := range []byte(v) {
		if c != '_' && strings.IndexByte(keyVersionAlphabet, c) < 0 {
			return false
		}
	}
	return true
}

// generate returns a fresh key with a random version.
func generate() *SigningKey {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		// crypto/rand does not fail on supported platforms.
		panic(fmt.Sprintf("generate ed25519 key: %v", err))
	}
	return &SigningKey{
		ID:      id.NewKeyID(id.KeyAlgorithmEd25519, "a_"+randomAlphanumeric(4)),
		Private: priv,
	}
}

// randomAlphanumeric returns n characters drawn uniformly from keyVersionAlphabet.
func randomAlphanumeric(n int) string {
	const limit = 256 - 256%len(keyVersionAlphabet) // reject bytes that would bias the draw
	var out bytes.Buffer
	b := make([]byte, 1)
	for out.Len() < n {
		rand.Read(b)
		if int(b[0]) < limit {
			out.WriteByte(keyVersionAlphabet[int(b[0])%len(keyVersionAlphabet)])
		}
	}
	return out.String()
}

// marshal encodes k as a one-line Synapse signing key file.
func (k *SigningKey) marshal() []byte {
	alg, version := k.ID.Parse()
	return fmt.Appendf(nil, "%s %s %s\n", alg, version, base64.RawStdEncoding.EncodeToString(k.Private.Seed()))
}
