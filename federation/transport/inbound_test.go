package transport_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"fyr/federation/transport"
)

// echoOrigin answers with the authenticated origin and the body the handler could read.
var echoOrigin = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	json.NewEncoder(w).Encode(map[string]string{"origin": transport.Origin(r.Context()), "body": string(body)})
})

// TestVerifierAcceptsSignedClient: server A's Client signs, server B's Verifier accepts, over
// real TLS from a test CA.
func TestVerifierAcceptsSignedClient(t *testing.T) {
	ca := newCA(t, "ecdsa-sec1", time.Hour)
	a := newServerKey("a.test")
	v := transport.NewVerifier("b.test", fakeKeys{"a.test": {a.keyID: a.public()}})
	var seen []string
	v.Authenticated = func(origin string) { seen = append(seen, origin) }
	b := startPeer(t, ca, "b.test", v.Authenticate(echoOrigin), true)

	r := transport.NewResolver()
	r.DNS = &fakeDNS{}
	r.StaticPeers = transport.StaticPeers{"b.test": {b.addr()}}
	r.RootCAs = ca.pool()
	c := transport.NewClient("a.test", a.keyID, a.priv, r)
	t.Cleanup(c.CloseIdleConnections)

	for _, tc := range []struct {
		method, path string
		body         any
		wantBody     string
	}{
		{"PUT", "/_matrix/federation/v1/send/txn1", map[string]any{"pdus": []any{}, "edus": []any{map[string]any{"edu_type": "m.typing"}}}, `{"edus":[{"edu_type":"m.typing"}],"pdus":[]}`},
		{"PUT", "/_matrix/federation/v1/send/txn2", nil, `{}`},
		{"GET", "/_matrix/federation/v1/query/profile?user_id=%40bob%3Ab.test&field=displayname", nil, ``},
		{"POST", "/_matrix/federation/v1/user/keys/query", json.RawMessage(`{"device_keys": {"@bob:b.test": []}}`), `{"device_keys":{"@bob:b.test":[]}}`},
	} {
		var got map[string]string
		if err := c.Do(context.Background(), "b.test", tc.method, tc.path, tc.body, &got); err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		if got["origin"] != "a.test" || got["body"] != tc.wantBody {
			t.Errorf("%s %s: handler saw origin %q body %q, want a.test and %q", tc.method, tc.path, got["origin"], got["body"], tc.wantBody)
		}
	}
	if len(seen) != 4 || seen[0] != "a.test" {
		t.Errorf("Authenticated called with %q, want a.test four times", seen)
	}

	// The same client's requests are refused by a server that does not know A's key.
	stranger := startPeer(t, ca, "c.test", transport.NewVerifier("c.test", fakeKeys{}).Authenticate(echoOrigin), true)
	r2 := transport.NewResolver()
	r2.DNS = &fakeDNS{}
	r2.StaticPeers = transport.StaticPeers{"c.test": {stranger.addr()}}
	r2.RootCAs = ca.pool()
	c2 := transport.NewClient("a.test", a.keyID, a.priv, r2)
	t.Cleanup(c2.CloseIdleConnections)
	err := c2.Do(context.Background(), "c.test", "GET", "/_matrix/federation/v1/version", nil, nil)
	if re, ok := err.(*transport.ResponseError); !ok || re.StatusCode != 401 || re.ErrCode != "M_UNAUTHORIZED" {
		t.Errorf("request with a key unknown to the destination: error = %v, want 401 M_UNAUTHORIZED", err)
	}
}

func TestVerifierRefuses(t *testing.T) {
	a := newServerKey("a.test")
	forger := newServerKey("a.test") // same name and key ID, different private key
	d := newServerKey("d.test")
	keys := fakeKeys{"a.test": {a.keyID: a.public()}, "d.test": {d.keyID: d.public()}}
	const uri = "/_matrix/federation/v1/send/txn1"
	const body = `{"pdus":[]}`

	// header signs a request as k with the given header destination and signed destination.
	header := func(k serverKey, origin, headerDest, signedDest, method, uri, body string) string {
		var content json.RawMessage
		if body != "" {
			content = json.RawMessage(body)
		}
		auth, err := transport.SignRequest(k.priv, k.keyID, origin, signedDest, method, uri, content)
		if err != nil {
			t.Fatal(err)
		}
		auth.Destination = headerDest
		return auth.String()
	}
	valid := header(a, "a.test", "b.test", "b.test", "PUT", uri, body)

	tests := []struct {
		name        string
		method      string
		body        string
		headers     []string
		wantStatus  int
		wantErrcode string
	}{
		{"valid", "PUT", body, []string{valid}, 200, ""},
		{"valid without destination parameter", "PUT", body, []string{header(a, "a.test", "", "b.test", "PUT", uri, body)}, 200, ""},
		{"valid among other schemes", "PUT", body, []string{"Bearer x", valid}, 200, ""},
		{"missing header", "PUT", body, nil, 401, "M_UNAUTHORIZED"},
		{"other scheme only", "PUT", body, []string{"Bearer syt_abc"}, 401, "M_UNAUTHORIZED"},
		{"unknown key", "PUT", body, []string{strings.Replace(valid, `key="ed25519:a_test"`, `key="ed25519:other"`, 1)}, 401, "M_UNAUTHORIZED"},
		{"unknown origin", "PUT", body, []string{header(newServerKey("e.test"), "e.test", "b.test", "b.test", "PUT", uri, body)}, 401, "M_UNAUTHORIZED"},
		{"forged signature", "PUT", body, []string{header(forger, "a.test", "b.test", "b.test", "PUT", uri, body)}, 401, "M_UNAUTHORIZED"},
		{"wrong destination", "PUT", body, []string{header(a, "a.test", "c.test", "c.test", "PUT", uri, body)}, 401, "M_UNAUTHORIZED"},
		{"signed for another destination", "PUT", body, []string{header(a, "a.test", "", "c.test", "PUT", uri, body)}, 401, "M_UNAUTHORIZED"},
		{"body changed", "PUT", `{"pdus":[{}]}`, []string{valid}, 401, "M_UNAUTHORIZED"},
		{"method changed", "POST", body, []string{valid}, 401, "M_UNAUTHORIZED"},
		{"malformed header", "PUT", body, []string{`X-Matrix origin="a.test",key=`}, 401, "M_UNAUTHORIZED"},
		{"origin not a server name", "PUT", body, []string{header(a, "a test", "b.test", "b.test", "PUT", uri, body)}, 401, "M_UNAUTHORIZED"},
		{"unsupported algorithm", "PUT", body, []string{strings.Replace(valid, `key="ed25519:a_test"`, `key="rsa:a_test"`, 1)}, 401, "M_UNAUTHORIZED"},
		{"second header forged", "PUT", body, []string{valid, header(forger, "a.test", "b.test", "b.test", "PUT", uri, body)}, 401, "M_UNAUTHORIZED"},
		{"headers from two origins", "PUT", body, []string{valid, header(d, "d.test", "b.test", "b.test", "PUT", uri, body)}, 401, "M_UNAUTHORIZED"},
		{"body not JSON", "PUT", `{"pdus":`, []string{valid}, 400, "M_NOT_JSON"},
		{"body too large", "PUT", `{"pad":"` + strings.Repeat("x", 2048) + `"}`, []string{valid}, 413, "M_TOO_LARGE"},
	}
	v := transport.NewVerifier("b.test", keys)
	v.MaxBodyBytes = 1024
	v.Log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := v.Authenticate(echoOrigin)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, uri, strings.NewReader(tt.body))
			for _, hdr := range tt.headers {
				req.Header.Add("Authorization", hdr)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body, tt.wantStatus)
			}
			var got map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("response %q is not JSON: %v", rec.Body, err)
			}
			if tt.wantStatus == 200 {
				if got["origin"] != "a.test" || got["body"] != tt.body {
					t.Errorf("handler saw origin %q body %q, want a.test and the body", got["origin"], got["body"])
				}
				return
			}
			if got["errcode"] != tt.wantErrcode || rec.Header().Get("Content-Type") != "application/json" {
				t.Errorf("response %s (%s), want errcode %s as JSON", rec.Body, rec.Header().Get("Content-Type"), tt.wantErrcode)
			}
		})
	}
}

func TestOriginOutsideAuthenticate(t *testing.T) {
	if got := transport.Origin(context.Background()); got != "" {
		t.Errorf("Origin(background) = %q, want empty", got)
	}
	if got := transport.Origin(transport.WithOrigin(context.Background(), "a.test")); got != "a.test" {
		t.Errorf("Origin(WithOrigin(a.test)) = %q", got)
	}
}

// TestVerifierAsksForKeyAtNow: keys are looked up for the time of the request, so an expired
// key (one the key store no longer vouches for now) is refused.
func TestVerifierAsksForKeyAtNow(t *testing.T) {
	a := newServerKey("a.test")
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	var askedAt time.Time
	v := transport.NewVerifier("b.test", keyFunc(func(server string, keyID id.KeyID, at time.Time) ([]byte, error) {
		askedAt = at
		return nil, io.EOF
	}))
	v.Now = func() time.Time { return now }
	auth, _ := transport.SignRequest(a.priv, a.keyID, "a.test", "b.test", "GET", "/_matrix/federation/v1/version", nil)
	req := httptest.NewRequest("GET", "/_matrix/federation/v1/version", nil)
	req.Header.Set("Authorization", auth.String())
	rec := httptest.NewRecorder()
	v.Authenticate(echoOrigin).ServeHTTP(rec, req)
	if rec.Code != 401 || !askedAt.Equal(now) {
		t.Errorf("status %d, key asked for at %v; want 401 and %v", rec.Code, askedAt, now)
	}
}

type keyFunc func(server string, keyID id.KeyID, at time.Time) ([]byte, error)

func (f keyFunc) VerifyKey(_ context.Context, server string, keyID id.KeyID, at time.Time) (ed25519.PublicKey, error) {
	b, err := f(server, keyID, at)
	return ed25519.PublicKey(b), err
}

func TestVersionHandler(t *testing.T) {
	rec := httptest.NewRecorder()
	transport.VersionHandler("0.4.1").ServeHTTP(rec, httptest.NewRequest("GET", "/_matrix/federation/v1/version", nil))
	var got federation.RespServerVersion
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != 200 {
		t.Fatalf("status %d body %q: %v", rec.Code, rec.Body, err)
	}
	if got.Server.Name != "Fyr" || got.Server.Version != "0.4.1" || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("version = %+v (%s), want Fyr 0.4.1 as JSON", got.Server, rec.Header().Get("Content-Type"))
	}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
