package keys_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"maunium.net/go/mautrix/id"

	"fyr/federation/keys"
)

// rfcSeed and rfcPublic are TEST 1 from RFC 8032 section 7.1.
const (
	rfcSeed   = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	rfcPublic = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeKeyFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "signing.key")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadOrCreateRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing.key")

	first, created, err := keys.LoadOrCreate(path)
	if err != nil {
		t.Fatalf("LoadOrCreate(new): %v", err)
	}
	if !created {
		t.Errorf("LoadOrCreate(new) created = false, want true")
	}
	if got := string(first.ID); !regexp.MustCompile(`^ed25519:a_[A-Za-z0-9]{4}$`).MatchString(got) {
		t.Errorf("ID = %q, want ed25519:a_ plus 4 alphanumerics", got)
	}

	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.Mode().Perm(), os.FileMode(0o600); got != want {
		t.Errorf("key file mode = %v, want %v", got, want)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^ed25519 a_[A-Za-z0-9]{4} [A-Za-z0-9+/]{43}\n$`).Match(data) {
		t.Errorf("key file is not one Synapse-format line: %d bytes", len(data))
	}

	second, created, err := keys.LoadOrCreate(path)
	if err != nil {
		t.Fatalf("LoadOrCreate(existing): %v", err)
	}
	if created {
		t.Errorf("LoadOrCreate(existing) created = true, want false")
	}
	if got, want := second.ID, first.ID; got != want {
		t.Errorf("reloaded ID = %q, want %q", got, want)
	}
	if !second.Public().Equal(first.Public()) {
		t.Errorf("reloaded public key differs from the created one")
	}

	msg := []byte("{\"hello\":\"world\"}")
	if !ed25519.Verify(first.Public(), msg, second.Sign(msg)) {
		t.Errorf("signature by reloaded key does not verify with the original public key")
	}
}

func TestLoadOrCreateSynapseFixture(t *testing.T) {
	want := ed25519.NewKeyFromSeed(mustHex(t, rfcSeed)).Public().(ed25519.PublicKey)
	if got := hex.EncodeToString(want); got != rfcPublic {
		t.Fatalf("RFC 8032 seed gives public key %s, want %s", got, rfcPublic)
	}

	key, created, err := keys.LoadOrCreate("testdata/synapse.signing.key")
	if err != nil {
		t.Fatalf("LoadOrCreate(fixture): %v", err)
	}
	if created {
		t.Errorf("LoadOrCreate(fixture) created = true, want false")
	}
	if got, want := key.ID, id.KeyID("ed25519:a_RFC1"); got != want {
		t.Errorf("ID = %q, want %q", got, want)
	}
	if !key.Public().Equal(want) {
		t.Errorf("public key = %x, want %x", key.Public(), want)
	}
}

func TestLoadOrCreateAcceptedVariants(t *testing.T) {
	seed := base64.RawStdEncoding.EncodeToString(mustHex(t, rfcSeed))
	other := base64.RawStdEncoding.EncodeToString(make([]byte, 32))
	want := ed25519.NewKeyFromSeed(mustHex(t, rfcSeed)).Public().(ed25519.PublicKey)

	tests := []struct {
		name    string
		content string
		wantID  id.KeyID
	}{
		{"no trailing newline", "ed25519 a_abcd " + seed, "ed25519:a_abcd"},
		{"trailing newline", "ed25519 a_abcd " + seed + "\n", "ed25519:a_abcd"},
		{"CRLF", "ed25519 a_abcd " + seed + "\r\n", "ed25519:a_abcd"},
		{"leading blank lines", "\n\n  \ned25519 auto " + seed + "\n", "ed25519:auto"},
		{"padded base64", "ed25519 a_abcd " + seed + "=\n", "ed25519:a_abcd"},
		{"multiple keys use the first", "ed25519 a_1 " + seed + "\ned25519 a_2 " + other + "\n", "ed25519:a_1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, created, err := keys.LoadOrCreate(writeKeyFile(t, tt.content))
			if err != nil {
				t.Fatalf("LoadOrCreate: %v", err)
			}
			if created {
				t.Errorf("created = true, want false")
			}
			if got, want := key.ID, tt.wantID; got != want {
				t.Errorf("ID = %q, want %q", got, want)
			}
			if !key.Public().Equal(want) {
				t.Errorf("public key = %x, want %x", key.Public(), want)
			}
		})
	}
}

func TestLoadOrCreateMalformed(t *testing.T) {
	seed := base64.RawStdEncoding.EncodeToString(mustHex(t, rfcSeed))
	short := base64.RawStdEncoding.EncodeToString(mustHex(t, rfcSeed)[:16])

	tests := []struct {
		name    string
		content string
		wantErr string
	}{
		{"empty", "", "no key in file"},
		{"only blank lines", "\n \n", "no key in file"},
		{"wrong algorithm", "curve25519 a_abcd " + seed, `unsupported key algorithm "curve25519"`},
		{"too few fields", "ed25519 " + seed, "want 3 fields"},
		{"too many fields", "ed25519 a_abcd " + seed + " extra", "want 3 fields"},
		{"bad version", "ed25519 a-b " + seed, `invalid key version "a-b"`},
		{"bad base64", "ed25519 a_abcd " + seed[:10] + "!" + seed[11:], "not valid base64"},
		{"short seed", "ed25519 a_abcd " + short, "seed is 16 bytes, want 32"},
		{"fields swapped", seed + " a_abcd ed25519", "unsupported key algorithm (43 characters, not shown)"},
		{"error on first key line", "\ned25519 a_abcd " + short + "\ned25519 a_ok " + seed, "line 2:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeKeyFile(t, tt.content)
			_, _, err := keys.LoadOrCreate(path)
			if err == nil {
				t.Fatalf("LoadOrCreate(%q) succeeded, want error containing %q", tt.content, tt.wantErr)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantErr) || !strings.Contains(msg, path) {
				t.Errorf("LoadOrCreate error = %q, want it to name %s and contain %q", msg, path, tt.wantErr)
			}
			if strings.Contains(msg, seed) || strings.Contains(msg, short) {
				t.Errorf("LoadOrCreate error leaks the seed: %q", msg)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != tt.content {
				t.Errorf("malformed key file was changed: %q, %v", got, err)
			}
		})
	}
}

func TestSigningKeyStringHidesSeed(t *testing.T) {
	key, _, err := keys.LoadOrCreate("testdata/synapse.signing.key")
	if err != nil {
		t.Fatal(err)
	}
	seed := base64.RawStdEncoding.EncodeToString(mustHex(t, rfcSeed))
	got := key.String()
	if want := "ed25519:a_RFC1 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if strings.Contains(got, seed) {
		t.Errorf("String() leaks the seed")
	}
}

func TestLoadOrCreateUnwritableDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "signing.key")
	_, _, err := keys.LoadOrCreate(path)
	if err == nil || !strings.Contains(err.Error(), "write signing key "+path) {
		t.Errorf("LoadOrCreate(%s) error = %v, want write signing key error", path, err)
	}
}
