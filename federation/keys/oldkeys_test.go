package keys_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyr/federation/keys"
)

func TestRotateKeepsOldKeys(t *testing.T) {
	dir := t.TempDir()
	keyPath, oldPath := filepath.Join(dir, "signing.key"), filepath.Join(dir, "old_signing.keys")
	first, _, err := keys.LoadOrCreate(keyPath)
	if err != nil {
		t.Fatal(err)
	}

	second, retired, err := keys.Rotate(keyPath, oldPath, t0)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if retired.ID != first.ID || !retired.Public.Equal(first.Public()) || !retired.ExpiredTS.Equal(t0) {
		t.Errorf("retired = %s expired %s, want %s expired %s", retired.ID, retired.ExpiredTS, first.ID, t0)
	}
	if second.ID == first.ID {
		t.Errorf("new key has the old ID %s", first.ID)
	}
	loaded, created, err := keys.LoadOrCreate(keyPath)
	if err != nil || created || loaded.ID != second.ID {
		t.Fatalf("LoadOrCreate after Rotate = %v, created %v, %v; want %s", loaded, created, err, second.ID)
	}

	later := t0.Add(24 * time.Hour)
	third, _, err := keys.Rotate(keyPath, oldPath, later)
	if err != nil {
		t.Fatalf("second Rotate: %v", err)
	}
	old, err := keys.LoadOldKeys(oldPath)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(old), 2; got != want {
		t.Fatalf("LoadOldKeys: %d keys, want %d", got, want)
	}
	if old[0].ID != first.ID || !old[0].ExpiredTS.Equal(t0) || old[1].ID != second.ID || !old[1].ExpiredTS.Equal(later) {
		t.Errorf("old keys = %s@%s, %s@%s; want %s@%s, %s@%s", old[0].ID, old[0].ExpiredTS, old[1].ID, old[1].ExpiredTS,
			first.ID, t0, second.ID, later)
	}
	data := mustRead(t, oldPath)
	for _, k := range []*keys.SigningKey{first, second} {
		if strings.Contains(data, base64.RawStdEncoding.EncodeToString(k.Private.Seed())) {
			t.Errorf("old-keys file contains the private seed of %s", k.ID)
		}
	}

	// The key server lists both retired keys under old_verify_keys.
	r := parseResponse(t, mustResponse(t, keys.NewLocal("a.test", third, old)))
	for _, k := range old {
		got, ok := r.OldVerifyKeys[k.ID]
		if !ok || got.Key != encode(k.Public) || got.ExpiredTS != k.ExpiredTS.UnixMilli() {
			t.Errorf("old_verify_keys[%s] = %+v (present %v), want key %s expired_ts %d", k.ID, got, ok, encode(k.Public), k.ExpiredTS.UnixMilli())
		}
	}
	if _, ok := r.VerifyKeys[third.ID]; !ok || len(r.VerifyKeys) != 1 {
		t.Errorf("verify_keys = %v, want only %s", r.VerifyKeys, third.ID)
	}
}

func TestRotateWithoutKey(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := keys.Rotate(filepath.Join(dir, "signing.key"), filepath.Join(dir, "old_signing.keys"), t0); err == nil {
		t.Errorf("Rotate without a key file succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "signing.key")); err == nil {
		t.Errorf("Rotate without a key file created one")
	}
}

func TestLoadOldKeys(t *testing.T) {
	const pub = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo" // RFC 8032 TEST 1
	tests := []struct {
		name    string
		content string
		want    int
		wantErr string
	}{
		{"missing file", "", 0, ""},
		{"comments and blanks", "# header\n\n", 0, ""},
		{"one key", "ed25519 a_old " + pub + " 1700000000000\n", 1, ""},
		{"padded key", "ed25519 a_old " + pub + "= 1700000000000\n", 1, ""},
		{"three fields", "ed25519 a_old " + pub + "\n", 0, "want 4 fields"},
		{"bad algorithm", "curve25519 a_old " + pub + " 1\n", 0, "unsupported key algorithm"},
		{"bad version", "ed25519 a-old " + pub + " 1\n", 0, "invalid key version"},
		{"short key", "ed25519 a_old AAAA 1\n", 0, "not 32 bytes"},
		{"bad time", "ed25519 a_old " + pub + " yesterday\n", 0, "expired_ts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "old_signing.keys")
			if tt.content != "" {
				if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := keys.LoadOldKeys(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadOldKeys(%q) error = %v, want one containing %q", tt.content, err, tt.wantErr)
				}
				return
			}
			if err != nil || len(got) != tt.want {
				t.Fatalf("LoadOldKeys(%q) = %d keys, %v; want %d keys", tt.content, len(got), err, tt.want)
			}
		})
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustResponse(t *testing.T, l *keys.Local) []byte {
	t.Helper()
	raw, err := l.Response(t0)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
