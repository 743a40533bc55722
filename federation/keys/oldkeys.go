package keys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/storage/atomicfile"
)

// OldKey is a signing key this server no longer signs with. Its public half stays published
// under old_verify_keys so that events it signed keep verifying.
type OldKey struct {
	ID        id.KeyID
	Public    ed25519.PublicKey
	ExpiredTS time.Time // when the key stopped being used
}

// oldKeysHeader starts a new old-keys file.
const oldKeysHeader = "# Retired Fyr signing keys, public halves only, written by fyr keygen:\n" +
	"# ed25519 <version> <unpadded base64 public key> <expired_ts in Unix milliseconds>\n"

// LoadOldKeys reads an old-keys file written by Rotate. A missing file means no old keys.
//
// The format is one key per line, "ed25519 <version> <unpadded base64 public key>
// <expired_ts>", with expired_ts in Unix milliseconds; blank lines and lines starting with #
// are ignored. The file holds no secrets.
func LoadOldKeys(path string) ([]OldKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read old signing keys: %w", err)
	}
	var out []OldKey
	for i, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		k, err := parseOldKey(fields)
		if err != nil {
			return nil, fmt.Errorf("read old signing keys %s: line %d: %w", path, i+1, err)
		}
		out = append(out, k)
	}
	return out, nil
}

func parseOldKey(fields []string) (OldKey, error) {
	if len(fields) != 4 {
		return OldKey{}, fmt.Errorf("want 4 fields \"ed25519 <version> <public key> <expired_ts>\", got %d", len(fields))
	}
	if fields[0] != string(id.KeyAlgorithmEd25519) {
		return OldKey{}, fmt.Errorf("unsupported key algorithm %s, want %q", quoteShort(fields[0]), id.KeyAlgorithmEd25519)
	}
	if !validVersion(fields[1]) {
		return OldKey{}, fmt.Errorf("invalid key version %s, want one or more of [a-zA-Z0-9_]", quoteShort(fields[1]))
	}
	pub, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(fields[2], "="))
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return OldKey{}, fmt.Errorf("public key is not %d bytes of unpadded base64", ed25519.PublicKeySize)
	}
	ms, err := strconv.ParseInt(fields[3], 10, 64)
	if err != nil || ms <= 0 {
		return OldKey{}, fmt.Errorf("expired_ts %s is not a positive Unix time in milliseconds", quoteShort(fields[3]))
	}
	return OldKey{
		ID:        id.NewKeyID(id.KeyAlgorithmEd25519, fields[1]),
		Public:    ed25519.PublicKey(pub),
		ExpiredTS: time.UnixMilli(ms),
	}, nil
}

func (k OldKey) marshal() string {
	_, version := k.ID.Parse()
	return fmt.Sprintf("%s %s %s %d\n", id.KeyAlgorithmEd25519, version,
		base64.RawStdEncoding.EncodeToString(k.Public), k.ExpiredTS.UnixMilli())
}

// Rotate retires the signing key at keyPath and writes a new one in its place. The retired
// key's public half is appended to the old-keys file at oldPath with expired_ts now, so the
// key server keeps listing it under old_verify_keys. The new key's version differs from
// every earlier one.
//
// The old-keys file is written first: a crash in between leaves the current key listed as
// both current and old, which Local ignores, never a key that is lost. A running server
// picks up the new key when it restarts.
func Rotate(keyPath, oldPath string, now time.Time) (next *SigningKey, retired OldKey, err error) {
	data, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, OldKey{}, fmt.Errorf("read signing key: %w", err)
	}
	current, err := parse(data)
	if err != nil {
		return nil, OldKey{}, fmt.Errorf("read signing key %s: %w", keyPath, err)
	}
	old, err := LoadOldKeys(oldPath)
	if err != nil {
		return nil, OldKey{}, err
	}
	retired = OldKey{ID: current.ID, Public: current.Public(), ExpiredTS: now}
	used := []id.KeyID{current.ID}
	var buf bytes.Buffer
	if existing, err := os.ReadFile(oldPath); err == nil {
		buf.Write(existing)
		if len(existing) > 0 && existing[len(existing)-1] != '\n' {
			buf.WriteByte('\n')
		}
	} else {
		buf.WriteString(oldKeysHeader)
	}
	for _, k := range old {
		used = append(used, k.ID)
	}
	buf.WriteString(retired.marshal())
	next = generate()
	for slices.Contains(used, next.ID) {
		next = generate()
	}
	if err := atomicfile.WriteFile(oldPath, buf.Bytes(), 0o600); err != nil {
		return nil, OldKey{}, fmt.Errorf("write old signing keys %s: %w", oldPath, err)
	}
	if err := atomicfile.WriteFile(keyPath, next.marshal(), 0o600); err != nil {
		return nil, OldKey{}, fmt.Errorf("write signing key %s: %w", keyPath, err)
	}
	return next, retired, nil
}
