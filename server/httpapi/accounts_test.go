package httpapi_test

import (
	"context"
	"errors"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"fyr/server/servertest"
)

var ctx = context.Background()

// passwordAuth is the m.login.password UIA stage for a user.
func passwordAuth(user, password, session string) map[string]any {
	return map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]string{"type": "m.id.user", "user": user},
		"password":   password,
		"session":    session,
	}
}

// TestAccountLifecycle walks a user through what a real client does: register with the
// printed admin token, whoami, log in on a second device, manage devices, change password,
// log out, deactivate.
func TestAccountLifecycle(t *testing.T) {
	srv := servertest.Start(t)
	if srv.AdminToken == "" {
		t.Fatal("a fresh server printed no admin registration token")
	}
	alice := srv.Client(t)

	// Registration without auth: 401 with the token flow and a session.
	_, uia, err := alice.Register(ctx, &mautrix.ReqRegister[any]{Username: "Alice", Password: "correct horse", InitialDeviceDisplayName: "Laptop"})
	if uia == nil || uia.Session == "" {
		t.Fatalf("first register: uia %+v, err %v; want a 401 challenge", uia, err)
	}
	if len(uia.Flows) != 1 || len(uia.Flows[0].Stages) != 1 || uia.Flows[0].Stages[0] != "m.login.registration_token" {
		t.Fatalf("closed registration offers flows %+v, want only m.login.registration_token", uia.Flows)
	}
	resp, _, err := alice.Register(ctx, &mautrix.ReqRegister[any]{
		Username: "Alice", Password: "correct horse", InitialDeviceDisplayName: "Laptop",
		Auth: map[string]any{"type": "m.login.registration_token", "token": srv.AdminToken, "session": uia.Session},
	})
	if err != nil {
		t.Fatalf("register with token: %v", err)
	}
	if got, want := resp.UserID, srv.UserID("alice"); got != want {
		t.Errorf("registered %s, want %s (the name is lower-cased)", got, want)
	}
	alice.SetCredentials(resp.UserID, resp.AccessToken)
	alice.DeviceID = resp.DeviceID
	if u, err := srv.DB.User(ctx, "alice"); err != nil || !u.Admin {
		t.Errorf("bootstrap token user: %+v, %v; want an admin", u, err)
	}

	// The one-time token is spent.
	_, _, err = srv.Client(t).Register(ctx, &mautrix.ReqRegister[any]{
		Username: "mallory", Password: "x",
		Auth: map[string]any{"type": "m.login.registration_token", "token": srv.AdminToken},
	})
	if !isErr(err, "M_FORBIDDEN", 401) {
		t.Errorf("second use of the one-time token: %v, want a 401 challenge with M_FORBIDDEN", err)
	}

	who, err := alice.Whoami(ctx)
	if err != nil || who.UserID != resp.UserID || who.DeviceID != resp.DeviceID {
		t.Fatalf("whoami = %+v, %v; want %s on %s", who, err, resp.UserID, resp.DeviceID)
	}

	// A second device, then rename and list.
	phone := srv.Client(t)
	if _, err := phone.Login(ctx, &mautrix.ReqLogin{
		Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "@ALICE:localhost"},
		Password: "correct horse", DeviceID: "PHONE", InitialDeviceDisplayName: "Phone", StoreCredentials: true,
	}); err != nil {
		t.Fatalf("login with a full, upper-case user ID: %v", err)
	}
	if phone.DeviceID != "PHONE" {
		t.Errorf("login kept device ID %q, want PHONE", phone.DeviceID)
	}
	if err := alice.SetDeviceInfo(ctx, "PHONE", &mautrix.ReqDeviceInfo{DisplayName: "Old phone"}); err != nil {
		t.Fatalf("rename device: %v", err)
	}
	devices, err := alice.GetDevicesInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := map[id.DeviceID]string{}
	for _, d := range devices.Devices {
		names[d.DeviceID] = d.DisplayName
	}
	if len(names) != 2 || names[resp.DeviceID] != "Laptop" || names["PHONE"] != "Old phone" {
		t.Errorf("devices = %v, want Laptop and Old phone", names)
	}
	if _, err := alice.GetDeviceInfo(ctx, "NOSUCH"); !isErr(err, "M_NOT_FOUND", 404) {
		t.Errorf("GET unknown device: %v, want 404 M_NOT_FOUND", err)
	}

	// Change password: the other device is logged out, this one stays.
	_, err = alice.MakeRequest(ctx, "POST", alice.BuildClientURL("v3", "account", "password"), map[string]any{
		"new_password": "battery staple",
		"auth":         passwordAuth("alice", "correct horse", ""),
	}, nil)
	if err != nil {
		t.Fatalf("change password: %v", err)
	}
	if _, err := phone.Whoami(ctx); !isErr(err, "M_UNKNOWN_TOKEN", 401) {
		t.Errorf("other device after password change: %v, want 401 M_UNKNOWN_TOKEN", err)
	}
	if _, err := alice.Whoami(ctx); err != nil {
		t.Errorf("own device after password change: %v", err)
	}
	if _, err := srv.Client(t).Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: "correct horse"}); !isErr(err, "M_FORBIDDEN", 403) {
		t.Errorf("login with the old password: %v, want 403 M_FORBIDDEN", err)
	}

	// Delete a device behind UIA: first a challenge, then the password.
	tablet := srv.Login(t, "alice", "battery staple")
	err = alice.DeleteDevice(ctx, tablet.DeviceID, &mautrix.ReqDeleteDevice[any]{})
	var herr mautrix.HTTPError
	if !errors.As(err, &herr) || herr.Response.StatusCode != 401 {
		t.Fatalf("delete device without auth: %v, want a 401 challenge", err)
	}
	if err := alice.DeleteDevice(ctx, tablet.DeviceID, &mautrix.ReqDeleteDevice[any]{Auth: passwordAuth("alice", "battery staple", "")}); err != nil {
		t.Fatalf("delete device with password: %v", err)
	}
	if _, err := tablet.Whoami(ctx); !isErr(err, "M_UNKNOWN_TOKEN", 401) {
		t.Errorf("deleted device's token: %v, want 401", err)
	}

	// Logout ends this device only; logout/all ends the rest.
	second := srv.Login(t, "alice", "battery staple")
	if _, err := alice.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Whoami(ctx); !isErr(err, "M_UNKNOWN_TOKEN", 401) {
		t.Errorf("after logout: %v, want 401", err)
	}
	if _, err := second.Whoami(ctx); err != nil {
		t.Errorf("another device after logout: %v", err)
	}
	third := srv.Login(t, "alice", "battery staple")
	if _, err := third.LogoutAll(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := second.Whoami(ctx); !isErr(err, "M_UNKNOWN_TOKEN", 401) {
		t.Errorf("after logout/all: %v, want 401", err)
	}
}

func isErr(err error, code string, status int) bool {
	gotCode, gotStatus := servertest.ErrCode(err)
	return gotCode == code && gotStatus == status
}

func TestDeactivate(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration)
	bob := srv.Register(t, "bob", "pw-bob-123")
	if err := bob.SetDisplayName(ctx, "Bob"); err != nil {
		t.Fatal(err)
	}
	url := bob.BuildClientURL("v3", "account", "deactivate")
	_, err := bob.MakeRequest(ctx, "POST", url, map[string]any{"auth": passwordAuth("bob", "wrong", "")}, nil)
	if !isErr(err, "M_FORBIDDEN", 401) {
		t.Fatalf("deactivate with a wrong password: %v, want 401 M_FORBIDDEN", err)
	}
	if _, err := bob.MakeRequest(ctx, "POST", url, map[string]any{"auth": passwordAuth("bob", "pw-bob-123", "")}, nil); err != nil {
		t.Fatalf("deactivate: %v", err)
	}
	if _, err := bob.Whoami(ctx); !isErr(err, "M_UNKNOWN_TOKEN", 401) {
		t.Errorf("token after deactivation: %v, want 401", err)
	}
	if _, err := srv.Client(t).Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "bob"}, Password: "pw-bob-123"}); !isErr(err, "M_FORBIDDEN", 403) {
		t.Errorf("login after deactivation: %v, want 403", err)
	}
	if _, err := srv.Client(t).RegisterAvailable(ctx, "bob"); !isErr(err, "M_USER_IN_USE", 400) {
		t.Errorf("register/available for a deactivated name: %v, want M_USER_IN_USE", err)
	}
	c := srv.Client(t)
	if _, err := c.MakeRequest(ctx, "GET", c.BuildClientURL("v3", "profile", srv.UserID("bob"), "displayname"), nil, nil); !isErr(err, "M_NOT_FOUND", 404) {
		t.Errorf("display name after deactivation: %v, want it erased (404)", err)
	}
}

func TestDeleteDeviceAsOtherUserIsForbidden(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration)
	alice := srv.Register(t, "alice", "alice-pw")
	srv.Register(t, "bob", "bob-pw")
	err := alice.DeleteDevice(ctx, alice.DeviceID, &mautrix.ReqDeleteDevice[any]{Auth: passwordAuth("bob", "bob-pw", "")})
	if !isErr(err, "M_FORBIDDEN", 403) {
		t.Fatalf("UIA as another user: %v, want 403 M_FORBIDDEN", err)
	}
	if _, err := alice.Whoami(ctx); err != nil {
		t.Errorf("device survived? %v", err)
	}
}

func TestProfile(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration)
	alice := srv.Register(t, "alice", "pw")
	bob := srv.Register(t, "bob", "pw")
	if err := alice.SetDisplayName(ctx, "Alice Liddell"); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetAvatarURL(ctx, id.ContentURI{Homeserver: "localhost", FileID: "abc"}); err != nil {
		t.Fatal(err)
	}
	p, err := srv.Client(t).GetProfile(ctx, alice.UserID)
	if err != nil || p.DisplayName != "Alice Liddell" || p.AvatarURL.String() != "mxc://localhost/abc" {
		t.Fatalf("profile = %+v, %v", p, err)
	}
	// A custom field (extended profiles, v1.16), then delete it.
	fieldURL := alice.BuildClientURL("v3", "profile", alice.UserID, "org.example.job")
	if _, err := alice.MakeRequest(ctx, "PUT", fieldURL, map[string]any{"org.example.job": map[string]string{"title": "Queen"}}, nil); err != nil {
		t.Fatalf("set custom field: %v", err)
	}
	var job map[string]map[string]string
	if _, err := srv.Client(t).MakeRequest(ctx, "GET", fieldURL, nil, &job); err != nil || job["org.example.job"]["title"] != "Queen" {
		t.Fatalf("get custom field = %v, %v", job, err)
	}
	if _, err := alice.MakeRequest(ctx, "DELETE", fieldURL, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client(t).MakeRequest(ctx, "GET", fieldURL, nil, nil); !isErr(err, "M_NOT_FOUND", 404) {
		t.Errorf("deleted field: %v, want 404", err)
	}

	for _, tc := range []struct {
		name, key string
		body      any
		code      string
		status    int
	}{
		{"someone else's profile", "displayname", map[string]string{"displayname": "x"}, "M_FORBIDDEN", 403},
		{"bad key", "Bad-Key", map[string]string{"Bad-Key": "x"}, "M_INVALID_PARAM", 400},
		{"missing key in body", "displayname", map[string]string{"other": "x"}, "M_MISSING_PARAM", 400},
		{"avatar not mxc", "avatar_url", map[string]string{"avatar_url": "https://example.com/a.png"}, "M_INVALID_PARAM", 400},
		{"displayname not a string", "displayname", map[string]int{"displayname": 5}, "M_INVALID_PARAM", 400},
		{"too large", "org.example.big", map[string]string{"org.example.big": string(make([]byte, 70_000))}, "M_PROFILE_TOO_LARGE", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := bob.UserID
			if tc.name == "someone else's profile" {
				target = alice.UserID
			}
			_, err := bob.MakeRequest(ctx, "PUT", bob.BuildClientURL("v3", "profile", target, tc.key), tc.body, nil)
			if !isErr(err, tc.code, tc.status) {
				code, status := servertest.ErrCode(err)
				t.Errorf("PUT %s = %d %s, want %d %s", tc.key, status, code, tc.status, tc.code)
			}
		})
	}
	if p, _ := srv.Client(t).GetProfile(ctx, alice.UserID); p.DisplayName != "Alice Liddell" {
		t.Errorf("a refused write changed alice's profile: %+v", p)
	}
}

func TestRegisterAvailable(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration)
	srv.Register(t, "taken", "pw")
	c := srv.Client(t)
	for _, tc := range []struct {
		name, code string
	}{
		{"free", ""},
		{"Taken", "M_USER_IN_USE"},
		{"bad:name", "M_INVALID_USERNAME"},
		{"é", "M_INVALID_USERNAME"},
	} {
		_, err := c.RegisterAvailable(ctx, tc.name)
		if code, _ := servertest.ErrCode(err); code != tc.code {
			t.Errorf("available(%q) = %v, want %q", tc.name, err, tc.code)
		}
	}
}

func TestRegisterDummyOnlyWhenOpen(t *testing.T) {
	srv := servertest.Start(t)
	_, err := srv.Client(t).RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "eve", Password: "pw"})
	if err == nil {
		t.Fatal("m.login.dummy registered an account on a closed server")
	}
	if _, err := srv.DB.User(ctx, "eve"); err == nil {
		t.Error("a refused registration stored the user")
	}
	// An unlimited operator token admits several users.
	token, err := srv.Accounts.NewRegistrationToken(ctx, 0, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"u1", "u2"} {
		resp, _, err := srv.Client(t).Register(ctx, &mautrix.ReqRegister[any]{Username: name, Password: "pw",
			Auth: map[string]any{"type": "m.login.registration_token", "token": token}})
		if err != nil || resp.UserID != srv.UserID(name) {
			t.Errorf("register %s with token: %+v, %v", name, resp, err)
		}
	}
	if u, _ := srv.DB.User(ctx, "u1"); u == nil || u.Admin {
		t.Errorf("an ordinary token made an admin: %+v", u)
	}
}
