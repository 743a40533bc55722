package keys_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/federation/keys"
	"fyr/storage"
)

func TestVerifyKeyFetchesOnceThenCaches(t *testing.T) {
	ctx := context.Background()
	c, n := newClock(), newNet()
	a := newRemote(t, "a.test", c)
	n.Handle("a.test", a)
	ring, _ := newRing(t, "me.test", n, c)

	for i := range 3 {
		pub, err := ring.VerifyKey(ctx, "a.test", a.key.ID, c.Now())
		if err != nil {
			t.Fatalf("VerifyKey #%d: %v", i, err)
		}
		if !pub.Equal(a.key.Public()) {
			t.Fatalf("VerifyKey #%d = %x, want %x", i, pub, a.key.Public())
		}
	}
	if got, want := n.Calls("a.test"), 1; got != want {
		t.Errorf("requests to a.test = %d, want %d", got, want)
	}
}

func TestVerifyKeyOwnKeys(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	key, old := mustKey(t), mustKey(t)
	db := openDB(t, filepath.Join(t.TempDir(), "fyr.db"))
	ring := keys.NewRing(db, keys.NewLocal("me.test", key, []keys.OldKey{{ID: old.ID, Public: old.Public(), ExpiredTS: t0}}),
		keys.Options{Clock: c.Now})
	if pub, err := ring.VerifyKey(ctx, "me.test", key.ID, c.Now()); err != nil || !pub.Equal(key.Public()) {
		t.Errorf("VerifyKey(own current key) = %x, %v; want %x", pub, err, key.Public())
	}
	if _, err := ring.VerifyKey(ctx, "me.test", old.ID, t0.Add(-time.Minute)); err != nil {
		t.Errorf("VerifyKey(own old key, before it expired): %v", err)
	}
	if _, err := ring.VerifyKey(ctx, "me.test", old.ID, t0.Add(time.Minute)); !errors.Is(err, keys.ErrKeyExpired) {
		t.Errorf("VerifyKey(own old key, after it expired) = %v, want ErrKeyExpired", err)
	}
	if _, err := ring.VerifyKey(ctx, "me.test", "ed25519:nope", c.Now()); !errors.Is(err, keys.ErrKeyNotFound) {
		t.Errorf("VerifyKey(unknown own key) = %v, want ErrKeyNotFound", err)
	}
}

// TestCacheSurvivesRestartWhilePeerDown is the outage contract: a key seen before keeps
// verifying after a restart while its server and the notary are unreachable, until its
// validity (capped at seven days from the fetch) runs out.
func TestCacheSurvivesRestartWhilePeerDown(t *testing.T) {
	ctx := context.Background()
	c, n := newClock(), newNet()
	a := newRemote(t, "a.test", c)
	n.Handle("a.test", a)
	path := filepath.Join(t.TempDir(), "fyr.db")
	local := keys.NewLocal("me.test", mustKey(t), nil)

	db, err := storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ring := keys.NewRing(db, local, keys.Options{Getter: n, Clock: c.Now})
	if _, err := ring.VerifyKey(ctx, "a.test", a.key.ID, c.Now()); err != nil {
		t.Fatalf("VerifyKey before restart: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	n.SetDown("a.test", true)
	ring = keys.NewRing(openDB(t, path), local, keys.Options{Getter: n, Clock: c.Now, Notaries: []string{"notary.test"}})
	c.Advance(6 * 24 * time.Hour)
	if _, err := ring.VerifyKey(ctx, "a.test", a.key.ID, c.Now()); err != nil {
		t.Fatalf("VerifyKey after restart, peer down: %v", err)
	}
	if got, want := n.Calls("a.test"), 1; got != want {
		t.Errorf("requests to a.test = %d, want %d (a valid cached key needs none)", got, want)
	}

	c.Advance(2 * 24 * time.Hour) // past the seven-day cap
	if _, err := ring.VerifyKey(ctx, "a.test", a.key.ID, c.Now()); !errors.Is(err, keys.ErrKeyExpired) {
		t.Errorf("VerifyKey eight days on, peer down = %v, want ErrKeyExpired", err)
	}
	if _, err := ring.VerifyKey(ctx, "a.test", a.key.ID, t0.Add(time.Hour)); err != nil {
		t.Errorf("VerifyKey for an event from the first day, peer down: %v", err)
	}
}

func TestExpiredKeyRefused(t *testing.T) {
	ctx := context.Background()
	c, n := newClock(), newNet()
	a := newRemote(t, "a.test", c)
	n.Handle("a.test", a)
	old := mustKey(t)
	expired := t0.Add(-time.Hour)
	a.respond(t, a.key, map[string]any{
		"valid_until_ts":  t0.Add(30 * 24 * time.Hour).UnixMilli(), // more than the spec lets count
		"old_verify_keys": map[id.KeyID]any{old.ID: map[string]any{"key": encode(old.Public()), "expired_ts": expired.UnixMilli()}},
	})
	ring, _ := newRing(t, "me.test", n, c)
	if _, err := ring.VerifyKey(ctx, "a.test", a.key.ID, c.Now()); err != nil {
		t.Fatalf("VerifyKey(current key): %v", err)
	}
	n.SetDown("a.test", true)

	tests := []struct {
		name    string
		keyID   id.KeyID
		at      time.Time
		wantErr error
	}{
		{"current key now", a.key.ID, t0, nil},
		{"current key within seven days", a.key.ID, t0.Add(7 * 24 * time.Hour), nil},
		{"current key past seven days", a.key.ID, t0.Add(7*24*time.Hour + time.Millisecond), keys.ErrKeyExpired},
		{"old key before expired_ts", old.ID, expired.Add(-time.Minute), nil},
		{"old key at expired_ts", old.ID, expired, nil},
		{"old key after expired_ts", old.ID, expired.Add(time.Millisecond), keys.ErrKeyExpired},
		{"unknown key", "ed25519:other", t0, keys.ErrKeyNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ring.VerifyKey(ctx, "a.test", tt.keyID, tt.at)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("VerifyKey(%s, %s) = %v, want %v", tt.keyID, tt.at, err, tt.wantErr)
			}
		})
	}
}

func TestForgedResponseNotCached(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	other := mustKey(t)
	tests := []struct {
		name  string
		setup func(t *testing.T, a *remote)
	}{
		{"another key under the same ID", func(t *testing.T, a *remote) {
			a.respond(t, &keys.SigningKey{ID: a.key.ID, Private: other.Private}, nil)
		}},
		{"signed by a key it does not list", func(t *testing.T, a *remote) {
			a.respond(t, other, nil)
		}},
		{"unsigned", func(t *testing.T, a *remote) {
			a.respond(t, nil, nil)
		}},
		{"changed after signing", func(t *testing.T, a *remote) {
			a.respond(t, a.key, nil)
			signed := a.body()
			a.respond(t, nil, map[string]any{"signatures": parseResponse(t, signed).Signatures,
				"valid_until_ts": t0.Add(48 * time.Hour).UnixMilli()})
		}},
		{"another server's response", func(t *testing.T, a *remote) {
			a.respond(t, a.key, map[string]any{"server_name": "b.test"})
		}},
		{"no verify keys", func(t *testing.T, a *remote) {
			a.respond(t, a.key, map[string]any{"verify_keys": map[string]any{}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNet()
			a := newRemote(t, "a.test", c)
			tt.setup(t, a)
			n.Handle("a.test", a)
			ring, db := newRing(t, "me.test", n, c)
			if _, err := ring.VerifyKey(ctx, "a.test", a.key.ID, c.Now()); !errors.Is(err, keys.ErrKeyNotFound) {
				t.Errorf("VerifyKey = %v, want ErrKeyNotFound", err)
			}
			if k, err := db.ServerKey(ctx, "a.test", a.key.ID); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("cache holds %+v, %v; want nothing", k, err)
			}
			if rs, _ := db.KeyResponses(ctx, "a.test"); len(rs) != 0 {
				t.Errorf("cache holds %d responses, want 0", len(rs))
			}
		})
	}
}

func TestFetchFallsBackToNotary(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	a := newRemote(t, "a.test", c)
	notaryNet := newNet() // the notary can reach a.test …
	notaryNet.Handle("a.test", a)
	notary, _ := newRing(t, "notary.test", notaryNet, c)
	ourNet := newNet() // … we cannot
	ourNet.Handle("notary.test", mux(notary))
	ring, db := newRing(t, "me.test", ourNet, c, "unreachable.test", "notary.test")

	pub, err := ring.VerifyKey(ctx, "a.test", a.key.ID, c.Now())
	if err != nil {
		t.Fatalf("VerifyKey through the notary: %v", err)
	}
	if !pub.Equal(a.key.Public()) {
		t.Errorf("VerifyKey = %x, want %x", pub, a.key.Public())
	}
	for _, name := range []string{"a.test", "unreachable.test"} {
		if got := ourNet.Calls(name); got != 1 {
			t.Errorf("requests to %s = %d, want 1", name, got)
		}
	}
	// The cache keeps the response as a.test signed it, for re-serving as a notary.
	rs, err := db.KeyResponses(ctx, "a.test")
	if err != nil || len(rs) != 1 {
		t.Fatalf("KeyResponses(a.test) = %d, %v; want 1", len(rs), err)
	}
	sigs := parseResponse(t, rs[0].JSON).Signatures
	if _, ok := sigs["notary.test"]; ok || len(sigs) != 1 {
		t.Errorf("cached response signatures = %v, want only a.test's", sigs)
	}
	verifySigned(t, rs[0].JSON, "a.test", a.key.ID, a.key.Public())
}

func TestNotarySignatureChecked(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	a := newRemote(t, "a.test", c)
	notaryNet := newNet()
	notaryNet.Handle("a.test", a)
	// The notary publishes one key but signs its answers with another.
	published, _ := newRing(t, "notary.test", notaryNet, c)
	signing, _ := newRing(t, "notary.test", notaryNet, c)
	lying := http.NewServeMux()
	lying.Handle("/_matrix/key/v2/server", mux(published))
	lying.Handle("/_matrix/key/v2/query/", mux(signing))
	ourNet := newNet()
	ourNet.Handle("notary.test", lying)
	ring, db := newRing(t, "me.test", ourNet, c, "notary.test")

	if _, err := ring.VerifyKey(ctx, "a.test", a.key.ID, c.Now()); !errors.Is(err, keys.ErrKeyNotFound) || !errors.Is(err, keys.ErrBadSignature) {
		t.Errorf("VerifyKey through a notary with a bad signature = %v, want ErrKeyNotFound and ErrBadSignature", err)
	}
	if _, err := db.ServerKey(ctx, "a.test", a.key.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("cache holds a key vouched for by a bad notary signature")
	}
}

func TestFailedFetchBacksOff(t *testing.T) {
	ctx := context.Background()
	c, n := newClock(), newNet()
	a := newRemote(t, "a.test", c)
	n.Handle("a.test", a)
	n.SetDown("a.test", true)
	ring, _ := newRing(t, "me.test", n, c)

	verify := func() error { _, err := ring.VerifyKey(ctx, "a.test", a.key.ID, c.Now()); return err }
	steps := []struct {
		advance   time.Duration
		wantCalls int
		wantErr   error
	}{
		{0, 1, keys.ErrKeyNotFound},
		{0, 1, keys.ErrBackoff}, // remembered, not asked again
		{keys.DefaultMinBackoff - time.Millisecond, 1, keys.ErrBackoff},
		{time.Millisecond, 2, keys.ErrKeyNotFound}, // second failure: twice the wait
		{keys.DefaultMinBackoff, 2, keys.ErrBackoff},
		{keys.DefaultMinBackoff, 3, keys.ErrKeyNotFound},
	}
	for i, s := range steps {
		c.Advance(s.advance)
		err := verify()
		if !errors.Is(err, s.wantErr) {
			t.Errorf("step %d: VerifyKey = %v, want %v", i, err, s.wantErr)
		}
		if got := n.Calls("a.test"); got != s.wantCalls {
			t.Errorf("step %d: requests = %d, want %d", i, got, s.wantCalls)
		}
	}
	n.SetDown("a.test", false)
	c.Advance(keys.DefaultMaxBackoff)
	if err := verify(); err != nil {
		t.Errorf("VerifyKey after the peer came back: %v", err)
	}
}

func TestConcurrentLookupsShareOneFetch(t *testing.T) {
	ctx := context.Background()
	c, n := newClock(), newNet()
	a := newRemote(t, "a.test", c)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	n.Handle("a.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		a.ServeHTTP(w, r)
	}))
	ring, _ := newRing(t, "me.test", n, c)

	const callers = 20
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { _, errs[i] = ring.VerifyKey(ctx, "a.test", a.key.ID, c.Now()) })
	}
	<-entered
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
	}
	if got, want := n.Calls("a.test"), 1; got != want {
		t.Errorf("requests to a.test = %d, want %d", got, want)
	}
}

func TestNoGetterServesCacheOnly(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	db := openDB(t, filepath.Join(t.TempDir(), "fyr.db"))
	ring := keys.NewRing(db, keys.NewLocal("me.test", mustKey(t), nil), keys.Options{Clock: c.Now})
	if _, err := ring.VerifyKey(ctx, "a.test", "ed25519:x", c.Now()); !errors.Is(err, keys.ErrNoTransport) {
		t.Errorf("VerifyKey without a Getter = %v, want ErrNoTransport", err)
	}
}
