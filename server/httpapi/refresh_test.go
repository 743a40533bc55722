package httpapi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"fyr/server/accounts"
	"fyr/server/config"
	"fyr/server/servertest"
)

// respRefresh is the answer of POST /refresh (mautrix only speaks OAuth's refresh grant).
type respRefresh struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresInMS  int64  `json:"expires_in_ms"`
}

// refreshVia calls POST /_matrix/client/{version}/refresh with a refresh token.
func refreshVia(t *testing.T, s *servertest.Server, version, refreshToken string) (*respRefresh, error) {
	t.Helper()
	c := s.Client(t)
	var resp respRefresh
	_, err := c.MakeRequest(ctx, "POST", c.BuildClientURL(version, "refresh"), map[string]string{"refresh_token": refreshToken}, &resp)
	if err != nil {
		return nil, err
	}
	return &resp, nil
}

// mustRefresh refreshes through v3 and checks that the answer carries both tokens.
func mustRefresh(t *testing.T, s *servertest.Server, refreshToken string) *respRefresh {
	t.Helper()
	r, err := refreshVia(t, s, "v3", refreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if r.AccessToken == "" || r.RefreshToken == "" || r.RefreshToken == refreshToken {
		t.Fatalf("refresh answered %+v, want a new access token and a new refresh token", r)
	}
	return r
}

// loginRefreshing logs in with refresh_token: true (on deviceID if set) and returns a client
// holding the new access token, and the answer.
func loginRefreshing(t *testing.T, s *servertest.Server, localpart, password string, deviceID id.DeviceID) (*mautrix.Client, *mautrix.RespLogin) {
	t.Helper()
	c := s.Client(t)
	resp, err := c.Login(ctx, &mautrix.ReqLogin{
		Type:       mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
		Password:   password, DeviceID: deviceID, RefreshToken: true, StoreCredentials: true,
	})
	if err != nil {
		t.Fatalf("login %s with refresh_token: %v", localpart, err)
	}
	if resp.RefreshToken == "" || resp.ExpiresInMS <= 0 {
		t.Fatalf("login with refresh_token answered refresh token %q, expires_in_ms %d", resp.RefreshToken, resp.ExpiresInMS)
	}
	return c, resp
}

// withToken is a client of s that sends token.
func withToken(t *testing.T, s *servertest.Server, user id.UserID, token string) *mautrix.Client {
	c := s.Client(t)
	c.SetCredentials(user, token)
	return c
}

// wantUnknownToken checks for 401 M_UNKNOWN_TOKEN with the given soft_logout.
func wantUnknownToken(t *testing.T, what string, err error, softLogout bool) {
	t.Helper()
	if !isErr(err, "M_UNKNOWN_TOKEN", 401) {
		t.Errorf("%s: %v, want 401 M_UNKNOWN_TOKEN", what, err)
		return
	}
	var herr mautrix.HTTPError
	errors.As(err, &herr)
	if got, ok := herr.RespError.ExtraData["soft_logout"].(bool); !ok || got != softLogout {
		t.Errorf("%s: soft_logout = %v (present %v), want %v", what, got, ok, softLogout)
	}
}

// wantDevice checks that c's token works and belongs to device.
func wantDevice(t *testing.T, what string, c *mautrix.Client, device id.DeviceID) {
	t.Helper()
	who, err := c.Whoami(ctx)
	if err != nil {
		t.Errorf("%s: whoami: %v", what, err)
		return
	}
	if who.DeviceID != device {
		t.Errorf("%s: whoami device %s, want %s", what, who.DeviceID, device)
	}
}

// TestRefreshTokens walks a refreshing client through expiry, refreshes, repeated refreshes
// and the revocation of what it exchanged, on a clock that moves only when told.
func TestRefreshTokens(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration)
	clock := newFakeClock()
	srv.Accounts.SetClock(clock.Now)
	const pw = "correct horse battery"
	alice := srv.Register(t, "alice", pw)

	// Login with refresh_token: true, in the spec's shape.
	loginBody := func(refresh bool) string {
		return fmt.Sprintf(`{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":%q,"refresh_token":%v}`, pw, refresh)
	}
	status, body, _ := srv.Do(t, "POST", "/_matrix/client/v3/login", "", strings.NewReader(loginBody(true)))
	if status != 200 {
		t.Fatalf("login with refresh_token: %d %s", status, body)
	}
	servertest.CheckShape(t, "login.yaml", "POST", "/login", 200, body)
	var login mautrix.RespLogin
	if err := json.Unmarshal(body, &login); err != nil {
		t.Fatal(err)
	}
	if want := config.DefaultAccessTokenLifetime.Milliseconds(); login.ExpiresInMS != want || login.RefreshToken == "" {
		t.Fatalf("login answered refresh token %q, expires_in_ms %d; want a token and %d", login.RefreshToken, login.ExpiresInMS, want)
	}
	device := login.DeviceID
	a1 := withToken(t, srv, login.UserID, login.AccessToken)

	// Without the flag: neither field, and a token that never expires.
	status, body, _ = srv.Do(t, "POST", "/_matrix/client/v3/login", "", strings.NewReader(loginBody(false)))
	var plainLogin map[string]any
	json.Unmarshal(body, &plainLogin)
	if status != 200 || plainLogin["refresh_token"] != nil || plainLogin["expires_in_ms"] != nil {
		t.Fatalf("login without refresh_token: %d %s; want neither refresh_token nor expires_in_ms", status, body)
	}
	plain := withToken(t, srv, login.UserID, plainLogin["access_token"].(string))
	plain.DeviceID = id.DeviceID(plainLogin["device_id"].(string))

	// The access token works until its lifetime is over, then asks for a refresh.
	clock.Advance(config.DefaultAccessTokenLifetime - time.Millisecond)
	wantDevice(t, "access token a moment before expiry", a1, device)
	clock.Advance(time.Millisecond)
	_, err := a1.Whoami(ctx)
	wantUnknownToken(t, "expired access token", err, true)
	_, err = a1.SendText(ctx, "!nowhere:localhost", "hi")
	wantUnknownToken(t, "expired access token sending", err, true)
	wantDevice(t, "token of a login without refresh_token", plain, plain.DeviceID)
	wantDevice(t, "the registration's token", alice, alice.DeviceID)

	// Refresh: new tokens on the same device, in the spec's shape.
	status, body, _ = srv.Do(t, "POST", "/_matrix/client/v3/refresh", "", strings.NewReader(fmt.Sprintf(`{"refresh_token":%q}`, login.RefreshToken)))
	if status != 200 {
		t.Fatalf("refresh: %d %s", status, body)
	}
	servertest.CheckShape(t, "refresh.yaml", "POST", "/refresh", 200, body)
	var r2 respRefresh
	json.Unmarshal(body, &r2)
	if r2.AccessToken == login.AccessToken || r2.RefreshToken == login.RefreshToken || r2.ExpiresInMS != config.DefaultAccessTokenLifetime.Milliseconds() {
		t.Fatalf("refresh answered %+v; want new tokens that live %v", r2, config.DefaultAccessTokenLifetime)
	}
	// The old refresh token stays valid until the new token is used: were the answer lost,
	// the client could ask again. Using the new access token revokes it.
	a2 := withToken(t, srv, login.UserID, r2.AccessToken)
	wantDevice(t, "refreshed access token", a2, device)
	_, err = refreshVia(t, srv, "v3", login.RefreshToken)
	wantUnknownToken(t, "old refresh token after the new access token was used", err, false)
	_, err = a1.Whoami(ctx)
	wantUnknownToken(t, "the first access token, expired within the grace", err, true)

	// Asking twice before using the answer (v1 is Synapse's path): the first answer is
	// revoked, the second works.
	lost, err := refreshVia(t, srv, "v1", r2.RefreshToken)
	if err != nil || lost.AccessToken == "" || lost.RefreshToken == "" {
		t.Fatalf("refresh through v1: %+v, %v", lost, err)
	}
	r3 := mustRefresh(t, srv, r2.RefreshToken)
	_, err = withToken(t, srv, login.UserID, lost.AccessToken).Whoami(ctx)
	wantUnknownToken(t, "access token of a refresh asked again", err, false)
	_, err = refreshVia(t, srv, "v3", lost.RefreshToken)
	wantUnknownToken(t, "refresh token of a refresh asked again", err, false)
	wantDevice(t, "access token of the repeated refresh", withToken(t, srv, login.UserID, r3.AccessToken), device)
	_, err = refreshVia(t, srv, "v3", r2.RefreshToken)
	wantUnknownToken(t, "replaced refresh token after its successor was used", err, false)

	// Using the new refresh token revokes the old one too.
	r4 := mustRefresh(t, srv, r3.RefreshToken)
	r5 := mustRefresh(t, srv, r4.RefreshToken)
	_, err = refreshVia(t, srv, "v3", r3.RefreshToken)
	wantUnknownToken(t, "refresh token whose successor was refreshed", err, false)
	_, err = refreshVia(t, srv, "v3", r4.RefreshToken)
	if err != nil {
		t.Errorf("refresh token whose successor is still unused: %v", err)
	}
	// That refresh revoked r5, which was never used.
	_, err = withToken(t, srv, login.UserID, r5.AccessToken).Whoami(ctx)
	wantUnknownToken(t, "unused answer replaced by asking again", err, false)

	// A device that keeps refreshing forgets access tokens that expired over
	// ExpiredTokenGrace ago; until its next refresh is used, they still ask for a refresh.
	r6 := mustRefresh(t, srv, r4.RefreshToken)
	a6 := withToken(t, srv, login.UserID, r6.AccessToken)
	wantDevice(t, "a6", a6, device)
	clock.Advance(accounts.ExpiredTokenGrace + config.DefaultAccessTokenLifetime + time.Millisecond)
	_, err = a1.Whoami(ctx)
	wantUnknownToken(t, "long expired token before the next refresh", err, true)
	_, err = a6.Whoami(ctx)
	wantUnknownToken(t, "the device's newest token, long expired", err, true)
	r7 := mustRefresh(t, srv, r6.RefreshToken)
	wantDevice(t, "after a long absence", withToken(t, srv, login.UserID, r7.AccessToken), device)
	_, err = a1.Whoami(ctx)
	wantUnknownToken(t, "long expired token after the next refresh", err, false)
	_, err = a6.Whoami(ctx)
	wantUnknownToken(t, "the device's previous token after the next refresh", err, false)
	wantDevice(t, "token of a login without refresh_token, days later", plain, plain.DeviceID)

	devices, err := alice.GetDevicesInfo(ctx)
	if err != nil || len(devices.Devices) != 3 {
		t.Errorf("devices after many refreshes: %+v, %v; want 3 (registration, refreshing login, plain login)", devices, err)
	}
}

// TestRefreshRefusals checks the errors of POST /refresh.
func TestRefreshRefusals(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration)
	alice := srv.Register(t, "alice", "correct horse battery")
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"empty body", "", 400, "M_NOT_JSON"},
		{"no refresh_token", `{}`, 400, "M_MISSING_PARAM"},
		{"refresh_token not a string", `{"refresh_token":5}`, 400, "M_BAD_JSON"},
		{"unknown refresh token", `{"refresh_token":"fyr_nosuchtoken"}`, 401, "M_UNKNOWN_TOKEN"},
		{"empty refresh token", `{"refresh_token":""}`, 401, "M_UNKNOWN_TOKEN"},
		{"an access token", fmt.Sprintf(`{"refresh_token":%q}`, alice.AccessToken), 401, "M_UNKNOWN_TOKEN"},
	} {
		status, body, _ := srv.Do(t, "POST", "/_matrix/client/v3/refresh", "", strings.NewReader(tc.body))
		var e map[string]any
		json.Unmarshal(body, &e)
		if status != tc.status || e["errcode"] != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, body, tc.status, tc.code)
		}
		if tc.status == 401 && e["soft_logout"] != false {
			t.Errorf("%s: soft_logout = %v, want false", tc.name, e["soft_logout"])
		}
	}
}

// TestRefreshTokenEndsWithDevice: whatever ends a device ends its refresh token, and the
// refresh tokens of the user's other devices only when it ends those too.
func TestRefreshTokenEndsWithDevice(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration)
	clock := newFakeClock()
	srv.Accounts.SetClock(clock.Now)
	const pw = "correct horse battery"
	changePassword := func(c *mautrix.Client, logout bool) error {
		_, err := c.MakeRequest(ctx, "POST", c.BuildClientURL("v3", "account", "password"), map[string]any{
			"new_password": "battery staple", "logout_devices": logout, "auth": passwordAuth(c.UserID.Localpart(), pw, ""),
		}, nil)
		return err
	}
	for i, tc := range []struct {
		name string
		// end acts on the refreshing device r, or through the user's first device main.
		end func(t *testing.T, main, r *mautrix.Client) error
		// survives: r's refresh token still works; otherSurvives: so does that of a third
		// device of the same user that also refreshes.
		survives, otherSurvives bool
	}{
		{"logout", func(t *testing.T, main, r *mautrix.Client) error { _, err := r.Logout(ctx); return err }, false, true},
		{"logout with an expired access token", func(t *testing.T, main, r *mautrix.Client) error {
			clock.Advance(config.DefaultAccessTokenLifetime)
			_, err := r.Whoami(ctx)
			wantUnknownToken(t, "whoami with the expired token", err, true)
			_, err = r.Logout(ctx)
			return err
		}, false, true},
		{"logout all from another device", func(t *testing.T, main, r *mautrix.Client) error { _, err := main.LogoutAll(ctx); return err }, false, false},
		{"device deleted", func(t *testing.T, main, r *mautrix.Client) error {
			return main.DeleteDevice(ctx, r.DeviceID, &mautrix.ReqDeleteDevice[any]{Auth: passwordAuth(main.UserID.Localpart(), pw, "")})
		}, false, true},
		{"devices deleted", func(t *testing.T, main, r *mautrix.Client) error {
			return main.DeleteDevices(ctx, &mautrix.ReqDeleteDevices[any]{Devices: []id.DeviceID{r.DeviceID}, Auth: passwordAuth(main.UserID.Localpart(), pw, "")})
		}, false, true},
		{"password changed on another device", func(t *testing.T, main, r *mautrix.Client) error { return changePassword(main, true) }, false, false},
		{"password changed, devices kept", func(t *testing.T, main, r *mautrix.Client) error { return changePassword(main, false) }, true, true},
		{"same device logged in again", func(t *testing.T, main, r *mautrix.Client) error {
			_, err := srv.Client(t).Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
				Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: r.UserID.Localpart()}, Password: pw, DeviceID: r.DeviceID})
			return err
		}, false, true},
		{"account deactivated", func(t *testing.T, main, r *mautrix.Client) error {
			_, err := main.MakeRequest(ctx, "POST", main.BuildClientURL("v3", "account", "deactivate"),
				map[string]any{"auth": passwordAuth(main.UserID.Localpart(), pw, "")}, nil)
			return err
		}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user := fmt.Sprintf("user%d", i)
			main := srv.Register(t, user, pw)
			_, other := loginRefreshing(t, srv, user, pw, "")
			r, login := loginRefreshing(t, srv, user, pw, "")
			if err := tc.end(t, main, r); err != nil {
				t.Fatal(err)
			}
			_, err := refreshVia(t, srv, "v3", login.RefreshToken)
			if tc.survives && err != nil {
				t.Errorf("refresh: %v, want it to work", err)
			}
			if !tc.survives {
				wantUnknownToken(t, "refresh", err, false)
				_, err = withToken(t, srv, r.UserID, login.AccessToken).Whoami(ctx)
				wantUnknownToken(t, "the device's access token", err, false)
			}
			_, err = refreshVia(t, srv, "v3", other.RefreshToken)
			if tc.otherSurvives && err != nil {
				t.Errorf("refresh on the other device: %v, want it to work", err)
			}
			if !tc.otherSurvives {
				wantUnknownToken(t, "refresh on the other device", err, false)
			}
		})
	}
}

// TestTxnIdWithRefreshToken follows Complement's test of the same name, and checks that the
// rest of what belongs to the device stays with it too: its to-device inbox and its keys.
func TestTxnIdWithRefreshToken(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration)
	const pw = "correct horse battery"
	srv.Register(t, "alice", pw)
	bob := srv.Register(t, "bob", pw)
	c, login := loginRefreshing(t, srv, "alice", pw, "")

	room := mustCreate(t, c, &mautrix.ReqCreateRoom{})
	content := map[string]any{"msgtype": "m.text", "body": "first"}
	sent, err := c.SendMessageEvent(ctx, room, event.EventMessage, content, mautrix.ReqSendEvent{TransactionID: "abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	pub, priv := e2eeKeyPair()
	otk := e2eeSign(t, map[string]any{"key": e2eeCurve25519(t)}, c.UserID, "ed25519:"+string(c.DeviceID), priv)
	st, body := e2eeCall(t, srv, c, "POST", "/keys/upload", map[string]any{
		"device_keys": e2eeDeviceKeys(t, c, pub, priv), "one_time_keys": map[string]any{"signed_curve25519:1": otk},
	})
	e2eeWant(t, "key upload", st, body, 200, "")
	msgs := map[string]any{"messages": map[string]any{string(c.UserID): map[string]any{string(c.DeviceID): map[string]any{"n": 1}}}}
	st, body = e2eeCall(t, srv, bob, "PUT", "/sendToDevice/m.fyr.test/t1", msgs)
	e2eeWant(t, "to-device message for alice", st, body, 200, "")

	r := mustRefresh(t, srv, login.RefreshToken)
	c.AccessToken = r.AccessToken

	// /sync with the new token shows the transaction ID and the to-device message.
	resp, err := c.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	var txn string
	for _, ev := range resp.Rooms.Join[room].Timeline.Events {
		if ev.ID == sent.EventID {
			txn = ev.Unsigned.TransactionID
		}
	}
	if txn != "abcdef" {
		t.Errorf("sync after refresh: the event's transaction_id is %q, want abcdef", txn)
	}
	if evs := resp.ToDevice.Events; len(evs) != 1 || evs[0].Type.Type != "m.fyr.test" || evs[0].Sender != bob.UserID {
		t.Errorf("sync after refresh: to-device events %+v, want bob's m.fyr.test", evs)
	}

	// The same transaction ID again is the same request.
	again, err := c.SendMessageEvent(ctx, room, event.EventMessage, content, mautrix.ReqSendEvent{TransactionID: "abcdef"})
	if err != nil || again.EventID != sent.EventID {
		t.Errorf("send with the same transaction ID after refresh: %v, %v; want %s", again, err, sent.EventID)
	}

	// The device's keys are still there.
	st, body = e2eeCall(t, srv, c, "POST", "/keys/upload", map[string]any{})
	if st != 200 || fmt.Sprint(body["one_time_key_counts"]) != "map[signed_curve25519:1]" {
		t.Errorf("one-time keys after refresh: %d %v", st, body)
	}
	q, err := bob.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{c.UserID: {}}})
	if _, ok := q.DeviceKeys[c.UserID][c.DeviceID]; err != nil || !ok {
		t.Errorf("alice's device keys after refresh: %+v, %v", q, err)
	}
}

// TestRegisterWithRefreshToken: /register honours refresh_token like /login, with the
// configured lifetime; inhibit_login gives no tokens at all.
func TestRegisterWithRefreshToken(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration, servertest.WithConfig(func(c *config.Config) {
		c.Auth.AccessTokenLifetime = time.Hour
	}))
	clock := newFakeClock()
	srv.Accounts.SetClock(clock.Now)

	status, body, _ := srv.Do(t, "POST", "/_matrix/client/v3/register", "", strings.NewReader(
		`{"username":"alice","password":"correct horse battery","auth":{"type":"m.login.dummy"},"refresh_token":true}`))
	if status != 200 {
		t.Fatalf("register with refresh_token: %d %s", status, body)
	}
	servertest.CheckShape(t, "registration.yaml", "POST", "/register", 200, body)
	var reg mautrix.RespRegister
	json.Unmarshal(body, &reg)
	if reg.RefreshToken == "" || reg.ExpiresInMS != time.Hour.Milliseconds() {
		t.Fatalf("register answered refresh token %q, expires_in_ms %d; want a token and %d", reg.RefreshToken, reg.ExpiresInMS, time.Hour.Milliseconds())
	}
	c := withToken(t, srv, reg.UserID, reg.AccessToken)
	clock.Advance(time.Hour)
	_, err := c.Whoami(ctx)
	wantUnknownToken(t, "registration's access token after its hour", err, true)
	r := mustRefresh(t, srv, reg.RefreshToken)
	if r.ExpiresInMS != time.Hour.Milliseconds() {
		t.Errorf("refresh: expires_in_ms %d, want %d", r.ExpiresInMS, time.Hour.Milliseconds())
	}
	wantDevice(t, "refreshed registration", withToken(t, srv, reg.UserID, r.AccessToken), reg.DeviceID)

	// A lifetime changed by a reload applies to the next tokens.
	cfg := *srv.Config
	cfg.Auth.AccessTokenLifetime = 2 * time.Minute
	srv.Reload(&cfg)
	if r := mustRefresh(t, srv, r.RefreshToken); r.ExpiresInMS != (2 * time.Minute).Milliseconds() {
		t.Errorf("refresh after reload: expires_in_ms %d, want %d", r.ExpiresInMS, (2 * time.Minute).Milliseconds())
	}

	status, body, _ = srv.Do(t, "POST", "/_matrix/client/v3/register", "", strings.NewReader(
		`{"username":"bob","password":"correct horse battery","auth":{"type":"m.login.dummy"},"refresh_token":true,"inhibit_login":true}`))
	var inhibited map[string]any
	json.Unmarshal(body, &inhibited)
	if status != 200 || inhibited["access_token"] != nil || inhibited["refresh_token"] != nil || inhibited["expires_in_ms"] != nil {
		t.Errorf("register with inhibit_login and refresh_token: %d %s; want no tokens", status, body)
	}
}
