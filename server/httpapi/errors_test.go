package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"

	"fyr/server/config"
	"fyr/server/servertest"
)

// TestErrorResponses checks that every kind of bad request gets the spec's status and errcode.
func TestErrorResponses(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration, servertest.WithConfig(func(c *config.Config) {
		c.Client.MaxBodyBytes = 4096
	}))
	alice := srv.Register(t, "alice", "pw")
	token := alice.AccessToken
	v3 := "/_matrix/client/v3"
	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"unknown endpoint", "GET", v3 + "/no/such/thing", token, "", 404, "M_UNRECOGNIZED"},
		{"unknown endpoint elsewhere", "GET", "/_matrix/unknown", token, "", 404, "M_UNRECOGNIZED"},
		{"unknown federation path on the client port", "GET", "/_matrix/federation/unknown", "", "", 404, "M_UNRECOGNIZED"},
		{"federation path, wrong method", "PUT", "/_matrix/federation/v1/version", "", "", 405, "M_UNRECOGNIZED"},
		{"key path, wrong method", "PUT", "/_matrix/key/v2/query", "", "", 405, "M_UNRECOGNIZED"},
		{"unknown key path", "GET", "/_matrix/key/unknown", "", "", 404, "M_UNRECOGNIZED"},
		{"wrong method", "PUT", v3 + "/login", "", "{}", 405, "M_UNRECOGNIZED"},
		{"wrong method on r0", "DELETE", "/_matrix/client/r0/account/whoami", token, "", 405, "M_UNRECOGNIZED"},
		{"malformed JSON", "POST", v3 + "/login", "", `{"type":`, 400, "M_NOT_JSON"},
		{"invalid UTF-8", "POST", v3 + "/register", "", "{\"username\":\"\x81\"}", 400, "M_NOT_JSON"},
		{"empty body", "POST", v3 + "/login", "", "", 400, "M_NOT_JSON"},
		{"not an object", "POST", v3 + "/login", "", `["m.login.password"]`, 400, "M_BAD_JSON"},
		{"wrong field type", "POST", v3 + "/login", "", `{"type":"m.login.password","password":12}`, 400, "M_BAD_JSON"},
		{"wrong nested type", "POST", v3 + "/login", "", `{"type":"m.login.password","identifier":"alice"}`, 400, "M_BAD_JSON"},
		{"unknown login type", "POST", v3 + "/login", "", `{"type":"m.login.magic"}`, 400, "M_UNKNOWN"},
		{"missing user", "POST", v3 + "/login", "", `{"type":"m.login.password","password":"pw"}`, 400, "M_MISSING_PARAM"},
		{"missing token", "GET", v3 + "/account/whoami", "", "", 401, "M_MISSING_TOKEN"},
		{"unknown token", "GET", v3 + "/account/whoami", "fyt_nope", "", 401, "M_UNKNOWN_TOKEN"},
		{"capabilities need a token", "GET", v3 + "/capabilities", "", "", 401, "M_MISSING_TOKEN"},
		{"oversized body", "POST", v3 + "/login", "", `{"type":"` + strings.Repeat("x", 5000) + `"}`, 413, "M_TOO_LARGE"},
		{"guest registration", "POST", v3 + "/register?kind=guest", "", "{}", 403, "M_GUEST_ACCESS_FORBIDDEN"},
		{"bad username", "POST", v3 + "/register", "", `{"username":"bad name","auth":{"type":"m.login.dummy"}}`, 400, "M_INVALID_USERNAME"},
		{"taken username", "POST", v3 + "/register", "", `{"username":"alice","auth":{"type":"m.login.dummy"}}`, 400, "M_USER_IN_USE"},
		{"unknown UIA session", "POST", v3 + "/register", "", `{"username":"x1","auth":{"type":"m.login.dummy","session":"nope"}}`, 400, "M_UNKNOWN"},
		{"delete_devices without list", "POST", v3 + "/delete_devices", token, `{}`, 400, "M_MISSING_PARAM"},
		{"no well-known server by default", "GET", "/.well-known/matrix/server", "", "", 404, "M_NOT_FOUND"},
		{"shared secret unset", "GET", "/_synapse/admin/v1/register", "", "", 404, "M_UNRECOGNIZED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, hdr := srv.Do(t, tc.method, tc.path, tc.token, strings.NewReader(tc.body))
			var e struct {
				Errcode string `json:"errcode"`
				Error   string `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("%s %s: body %q is not JSON", tc.method, tc.path, body)
			}
			if status != tc.status || e.Errcode != tc.code {
				t.Errorf("%s %s = %d %s (%s), want %d %s", tc.method, tc.path, status, e.Errcode, e.Error, tc.status, tc.code)
			}
			if e.Error == "" {
				t.Errorf("%s %s: empty error message", tc.method, tc.path)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			if hdr.Get("Access-Control-Allow-Origin") != "*" {
				t.Error("error response lacks CORS headers")
			}
		})
	}
	// Nothing of the refused registrations reached the database.
	for _, name := range []string{"x1", "bad name"} {
		if _, err := srv.DB.User(ctx, name); err == nil {
			t.Errorf("refused registration stored %q", name)
		}
	}
}

func TestAccessTokenInQuery(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration)
	alice := srv.Register(t, "alice", "pw")
	status, body, _ := srv.Do(t, "GET", "/_matrix/client/v3/account/whoami?access_token="+alice.AccessToken, "", nil)
	if status != 200 || !strings.Contains(string(body), `"@alice:localhost"`) {
		t.Errorf("whoami with ?access_token = %d %s", status, body)
	}
}

func TestCORSPreflight(t *testing.T) {
	srv := servertest.Start(t)
	status, _, hdr := srv.Do(t, "OPTIONS", "/_matrix/client/v3/account/whoami", "", nil)
	if status != 200 {
		t.Errorf("OPTIONS = %d, want 200 without authentication", status)
	}
	for k, want := range map[string]string{
		"Access-Control-Allow-Origin":  "*",
		"Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
		"Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
	} {
		if got := hdr.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestLoginRateLimit(t *testing.T) {
	srv := servertest.Start(t, servertest.WithConfig(func(c *config.Config) {
		c.RateLimits.LoginPerSecond = 0.01
		c.RateLimits.LoginBurst = 3
	}))
	body := `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"nobody"},"password":"x"}`
	for i := range 3 {
		if status, b, _ := srv.Do(t, "POST", "/_matrix/client/v3/login", "", strings.NewReader(body)); status != 403 {
			t.Fatalf("attempt %d within the burst = %d %s, want 403", i+1, status, b)
		}
	}
	status, b, hdr := srv.Do(t, "POST", "/_matrix/client/v3/login", "", strings.NewReader(body))
	var e struct {
		Errcode      string `json:"errcode"`
		RetryAfterMS int64  `json:"retry_after_ms"`
	}
	json.Unmarshal(b, &e)
	if status != 429 || e.Errcode != "M_LIMIT_EXCEEDED" || e.RetryAfterMS <= 0 || hdr.Get("Retry-After") == "" {
		t.Errorf("over the limit = %d %s (Retry-After %q), want 429 M_LIMIT_EXCEEDED with retry_after_ms", status, b, hdr.Get("Retry-After"))
	}
	// A reload that lifts the limit applies at once.
	next := *srv.Config
	next.RateLimits.LoginPerSecond = 0
	srv.Reload(&next)
	if status, _, _ := srv.Do(t, "POST", "/_matrix/client/v3/login", "", strings.NewReader(body)); status != 403 {
		t.Errorf("after reload without limits = %d, want 403", status)
	}
}

func TestReloadOpensRegistration(t *testing.T) {
	srv := servertest.Start(t)
	reg := `{"username":"carol","password":"pw","auth":{"type":"m.login.dummy"}}`
	if status, _, _ := srv.Do(t, "POST", "/_matrix/client/v3/register", "", strings.NewReader(reg)); status != 401 {
		t.Fatalf("dummy registration on a closed server = %d, want 401", status)
	}
	next := *srv.Config
	next.Register.Open = true
	srv.Reload(&next)
	if status, b, _ := srv.Do(t, "POST", "/_matrix/client/v3/register", "", strings.NewReader(reg)); status != 200 {
		t.Fatalf("after reload with open registration = %d %s", status, b)
	}
}

func TestDiscoveryEndpoints(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration, servertest.WithConfig(func(c *config.Config) {
		c.Federation.WellKnown = "matrix.example.org:443"
	}))
	alice := srv.Register(t, "alice", "pw")
	versions, err := srv.Client(t).Versions(ctx)
	if err != nil || len(versions.Versions) == 0 {
		t.Fatalf("versions = %+v, %v", versions, err)
	}
	caps, err := alice.Capabilities(ctx)
	if err != nil || caps.RoomVersions == nil || caps.RoomVersions.Default != "12" || caps.ChangePassword == nil || !caps.ChangePassword.Enabled {
		t.Fatalf("capabilities = %+v, %v", caps, err)
	}
	_, body, _ := srv.Do(t, "GET", "/.well-known/matrix/client", "", nil)
	if !strings.Contains(string(body), `"base_url":"`+srv.URL+`"`) {
		t.Errorf("well-known client = %s, want base_url %s", body, srv.URL)
	}
	_, body, _ = srv.Do(t, "GET", "/.well-known/matrix/server", "", nil)
	if string(body) != `{"m.server":"matrix.example.org:443"}` {
		t.Errorf("well-known server = %s", body)
	}
	status, body, _ := srv.Do(t, "GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=nope", "", nil)
	if status != 200 || string(body) != `{"valid":false}` {
		t.Errorf("validity of an unknown token = %d %s", status, body)
	}
}

func TestSharedSecretRegistrationHTTP(t *testing.T) {
	srv := servertest.Start(t, servertest.WithConfig(func(c *config.Config) { c.Register.SharedSecret = "complement" }))
	_, body, _ := srv.Do(t, "GET", "/_synapse/admin/v1/register", "", nil)
	var n struct{ Nonce string }
	if json.Unmarshal(body, &n); n.Nonce == "" {
		t.Fatalf("nonce response %s", body)
	}
	mac := sharedMAC("complement", n.Nonce, "Admin1", "pw", true)
	req := `{"nonce":"` + n.Nonce + `","username":"Admin1","password":"pw","admin":true,"mac":"` + mac + `"}`
	status, body, _ := srv.Do(t, "POST", "/_synapse/admin/v1/register", "", strings.NewReader(req))
	if status != 200 || !strings.Contains(string(body), `"user_id":"@admin1:localhost"`) || !strings.Contains(string(body), `"access_token"`) {
		t.Fatalf("shared-secret registration = %d %s", status, body)
	}
	if u, _ := srv.DB.User(ctx, "admin1"); u == nil || !u.Admin {
		t.Errorf("admin flag not stored: %+v", u)
	}
	// The nonce is single use.
	status, _, _ = srv.Do(t, "POST", "/_synapse/admin/v1/register", "", strings.NewReader(req))
	if status != 400 {
		t.Errorf("replayed nonce = %d, want 400", status)
	}
}
