package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation/signutil"
	"maunium.net/go/mautrix/id"

	"fyr/federation/keys"
	"fyr/server"
	"fyr/server/config"
	"fyr/server/servertest"
)

// TestKeygenRotates rotates a data directory's key, starts a server on it and checks that
// its key server publishes the new key and lists the old one under old_verify_keys.
func TestKeygenRotates(t *testing.T) {
	dir := t.TempDir()
	first, _, err := keys.LoadOrCreate(filepath.Join(dir, server.SigningKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	retiredAt := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	var out bytes.Buffer
	if err := keygen([]string{"--data-dir", dir}, &out, retiredAt); err != nil {
		t.Fatalf("fyr keygen: %v", err)
	}
	if !strings.Contains(out.String(), "retired "+string(first.ID)) {
		t.Errorf("output %q does not name the retired key %s", out.String(), first.ID)
	}

	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Client.Addr, cfg.Federation.Addr = "127.0.0.1:0", "127.0.0.1:0"
	srv := servertest.StartWith(t, cfg)
	client := fedClient(t, dir)
	base := "https://" + srv.FederationAddr().String()

	resp, body := get(t, client, "GET", base+"/_matrix/key/v2/server")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /_matrix/key/v2/server = %d %s", resp.StatusCode, body)
	}
	var got struct {
		VerifyKeys    map[id.KeyID]struct{ Key id.SigningKey } `json:"verify_keys"`
		OldVerifyKeys map[id.KeyID]struct {
			Key       id.SigningKey
			ExpiredTS int64 `json:"expired_ts"`
		} `json:"old_verify_keys"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	current := srv.SigningKey
	if _, ok := got.VerifyKeys[current.ID]; !ok || current.ID == first.ID || len(got.VerifyKeys) != 1 {
		t.Errorf("verify_keys = %v, want only the new key %s", got.VerifyKeys, current.ID)
	}
	if err := signutil.VerifyJSON("localhost", current.ID, id.SigningKey(base64.RawStdEncoding.EncodeToString(current.Public())), json.RawMessage(body)); err != nil {
		t.Errorf("self-signature: %v", err)
	}
	old, ok := got.OldVerifyKeys[first.ID]
	if wantKey := id.SigningKey(base64.RawStdEncoding.EncodeToString(first.Public())); !ok || old.Key != wantKey || old.ExpiredTS != retiredAt.UnixMilli() {
		t.Errorf("old_verify_keys[%s] = %+v (present %v), want key %s expired_ts %d", first.ID, old, ok, wantKey, retiredAt.UnixMilli())
	}

	// Everything else on the federation listener is M_UNRECOGNIZED.
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{"POST", "/_matrix/key/v2/server", http.StatusMethodNotAllowed},
		{"GET", "/_matrix/federation/v1/no/such/thing", http.StatusNotFound},
	} {
		resp, body := get(t, client, tt.method, base+tt.path)
		if resp.StatusCode != tt.want || !strings.Contains(string(body), `"M_UNRECOGNIZED"`) {
			t.Errorf("%s %s = %d %s, want %d M_UNRECOGNIZED", tt.method, tt.path, resp.StatusCode, body, tt.want)
		}
	}
}

func TestKeygenRefuses(t *testing.T) {
	dir := t.TempDir()
	err := keygen([]string{"--data-dir", dir}, io.Discard, time.Now())
	if err == nil || !strings.Contains(err.Error(), "no signing key") {
		t.Errorf("keygen without a key = %v, want an error about the missing key", err)
	}
	if _, err := os.Stat(filepath.Join(dir, server.SigningKeyFile)); err == nil {
		t.Errorf("keygen without a key created one")
	}
	if err := keygen([]string{"--data-dir", dir, "extra"}, io.Discard, time.Now()); !errors.Is(err, errUsage) {
		t.Errorf("keygen with an argument = %v, want a usage error", err)
	}
}

// fedClient trusts the federation certificate the server generated in dir.
func fedClient(t *testing.T, dir string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(dir, server.FedCertFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
}

func get(t *testing.T, c *http.Client, method, url string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}
