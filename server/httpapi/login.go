package httpapi

import (
	"net/http"

	"maunium.net/go/mautrix/id"

	"fyr/server/accounts"
)

// loginFlows is GET /login: password login is the only flow.
func (a *API) loginFlows(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, 200, map[string]any{"flows": []map[string]string{{"type": accounts.AuthPassword}}})
	return nil
}

type loginRequest struct {
	Type                     string               `json:"type"`
	Identifier               *accounts.Identifier `json:"identifier"`
	User                     string               `json:"user"` // deprecated form of identifier
	Password                 string               `json:"password"`
	DeviceID                 id.DeviceID          `json:"device_id"`
	InitialDeviceDisplayName string               `json:"initial_device_display_name"`
	// RefreshToken: the client supports refresh tokens (spec v1.3).
	RefreshToken bool `json:"refresh_token"`
}

// login is POST /login. See https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3login
func (a *API) login(w http.ResponseWriter, r *http.Request) error {
	var req loginRequest
	if err := a.decode(w, r, &req, false); err != nil {
		return err
	}
	if req.Type != accounts.AuthPassword {
		return newErr(400, "M_UNKNOWN", "login type %q is not supported; use %s", req.Type, accounts.AuthPassword)
	}
	user, err := accounts.UserOf(req.Identifier, req.User)
	if err != nil {
		return newErr(400, "M_UNKNOWN", "%s", clientMessage(err))
	}
	if user == "" {
		return errMissingParam("identifier.user")
	}
	if err := validDeviceFields(req.DeviceID, req.InitialDeviceDisplayName); err != nil {
		return err
	}
	sess, err := a.accounts.Login(r.Context(), accounts.Login{
		User: user, Password: req.Password, DeviceID: req.DeviceID, DeviceName: req.InitialDeviceDisplayName, IP: clientIP(r),
		TokenLifetime: a.tokenLifetime(req.RefreshToken),
	})
	if err != nil {
		return err
	}
	writeJSON(w, 200, sessionJSON(sess, a.accounts.ServerName()))
	return nil
}

func sessionJSON(s *accounts.Session, serverName string) map[string]any {
	out := map[string]any{"user_id": s.UserID, "home_server": serverName}
	if s.AccessToken != "" {
		out["access_token"] = s.AccessToken
		out["device_id"] = s.DeviceID
	}
	if s.RefreshToken != "" {
		out["refresh_token"] = s.RefreshToken
		out["expires_in_ms"] = s.ExpiresIn.Milliseconds()
	}
	return out
}

// maxDeviceIDBytes bounds client-chosen device IDs.
const maxDeviceIDBytes = 255

func validDeviceFields(deviceID id.DeviceID, name string) error {
	if len(deviceID) > maxDeviceIDBytes {
		return errInvalidParam("device_id is longer than 255 bytes")
	}
	if len(name) > accounts.MaxDeviceNameBytes {
		return errInvalidParam("initial_device_display_name is longer than 256 bytes")
	}
	return nil
}

// logout is POST /logout: the caller's device and its tokens go. An expired access token
// may log out, as on Synapse.
func (a *API) logout(w http.ResponseWriter, r *http.Request) error {
	if err := a.accounts.Logout(r.Context(), caller(r)); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// logoutAll is POST /logout/all: every device of the caller goes, with their tokens.
func (a *API) logoutAll(w http.ResponseWriter, r *http.Request) error {
	if err := a.accounts.LogoutAll(r.Context(), caller(r)); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}
