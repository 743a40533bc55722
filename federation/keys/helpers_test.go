package keys_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/signutil"
	"maunium.net/go/mautrix/id"

	"fyr/federation/keys"
	"fyr/storage"
)

// t0 is when every test starts; clocks only move forward from it.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable time source for Ring.Options.Clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeNet is an in-memory federation: GetJSON hands each request to the http.Handler
// registered for the server name, as the real client would over TLS.
type fakeNet struct {
	mu       sync.Mutex
	handlers map[string]http.Handler
	down     map[string]bool
	calls    map[string]int
}

var _ keys.Getter = (*fakeNet)(nil)

func newNet() *fakeNet {
	return &fakeNet{handlers: map[string]http.Handler{}, down: map[string]bool{}, calls: map[string]int{}}
}

func (n *fakeNet) Handle(serverName string, h http.Handler) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.handlers[serverName] = h
}

func (n *fakeNet) SetDown(serverName string, down bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down[serverName] = down
}

func (n *fakeNet) Calls(serverName string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[serverName]
}

func (n *fakeNet) GetJSON(ctx context.Context, serverName, path string, into any) error {
	n.mu.Lock()
	n.calls[serverName]++
	h, down := n.handlers[serverName], n.down[serverName]
	n.mu.Unlock()
	if h == nil || down {
		return fmt.Errorf("connect to %s: connection refused", serverName)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil).WithContext(ctx))
	if rec.Code != http.StatusOK {
		return fmt.Errorf("%s answered %d: %s", serverName, rec.Code, rec.Body)
	}
	return json.Unmarshal(rec.Body.Bytes(), into)
}

// remote is a server whose key responses a test controls.
type remote struct {
	name  string
	key   *keys.SigningKey
	local *keys.Local
	clock *clock
	// body, if set, replaces the response the key server would give.
	body func() []byte
}

func newRemote(t *testing.T, name string, c *clock, old ...keys.OldKey) *remote {
	t.Helper()
	key := mustKey(t)
	return &remote{name: name, key: key, clock: c, local: keys.NewLocal(name, key, old)}
}

func (r *remote) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/_matrix/key/v2/server" {
		http.NotFound(w, req)
		return
	}
	var js []byte
	if r.body != nil {
		js = r.body()
	} else {
		var err error
		if js, err = r.local.Response(r.clock.Now()); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(js)
}

// mustKey makes a fresh signing key.
func mustKey(t *testing.T) *keys.SigningKey {
	t.Helper()
	k, _, err := keys.LoadOrCreate(filepath.Join(t.TempDir(), "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// openDB opens a database at path and closes it when the test ends.
func openDB(t *testing.T, path string) *storage.DB {
	t.Helper()
	db, err := storage.Open(context.Background(), path, storage.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newRing starts a Ring for serverName with a fresh database, fetching through net.
func newRing(t *testing.T, serverName string, net keys.Getter, c *clock, notaries ...string) (*keys.Ring, *storage.DB) {
	t.Helper()
	db := openDB(t, filepath.Join(t.TempDir(), "fyr.db"))
	return keys.NewRing(db, keys.NewLocal(serverName, mustKey(t), nil),
		keys.Options{Getter: net, Notaries: notaries, Clock: c.Now}), db
}

// respond makes r serve a key response built from fields (server_name, verify_keys and
// valid_until_ts are filled in unless fields sets them), signed by signer as r's name.
func (r *remote) respond(t *testing.T, signer *keys.SigningKey, fields map[string]any) {
	t.Helper()
	body := map[string]any{
		"server_name":    r.name,
		"verify_keys":    map[id.KeyID]any{r.key.ID: map[string]any{"key": encode(r.key.Public())}},
		"valid_until_ts": r.clock.Now().Add(24 * time.Hour).UnixMilli(),
	}
	for k, v := range fields {
		body[k] = v
	}
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	if signer != nil {
		if raw, err = keys.NewLocal(r.name, signer, nil).Sign(raw); err != nil {
			t.Fatal(err)
		}
	}
	r.body = func() []byte { return raw }
}

// mux serves a Ring's routes.
func mux(r *keys.Ring) *http.ServeMux {
	m := http.NewServeMux()
	r.Routes(m)
	return m
}

// verifySigned checks, with mautrix's signature check, that serverName signed raw with pub.
func verifySigned(t *testing.T, raw []byte, serverName string, keyID id.KeyID, pub []byte) {
	t.Helper()
	if err := signutil.VerifyJSON(serverName, keyID, encode(pub), json.RawMessage(raw)); err != nil {
		t.Errorf("signature of %s (%s) on %s: %v", serverName, keyID, raw, err)
	}
}

func encode(pub []byte) id.SigningKey {
	return id.SigningKey(base64.RawStdEncoding.EncodeToString(pub))
}

// checkSelfSigned runs mautrix's own check of a key response's self-signature.
func checkSelfSigned(t *testing.T, raw []byte) {
	t.Helper()
	var skr federation.ServerKeyResponse
	if err := json.Unmarshal(raw, &skr); err != nil {
		t.Fatalf("parse %s: %v", raw, err)
	}
	if err := skr.VerifySelfSignature(); err != nil {
		t.Errorf("VerifySelfSignature: %v", err)
	}
}
