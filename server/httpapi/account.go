package httpapi

import (
	"net/http"

	"fyr/server/accounts"
)

// whoami is GET /account/whoami.
func (a *API) whoami(w http.ResponseWriter, r *http.Request) error {
	c := caller(r)
	writeJSON(w, 200, map[string]any{"user_id": c.UserID, "device_id": c.DeviceID, "is_guest": false})
	return nil
}

// passwordFlows protect password change, deactivation and device deletion.
var passwordFlows = accounts.Flows{{accounts.AuthPassword}}

// reauth runs user-interactive auth proving the caller knows their password.
func (a *API) reauth(r *http.Request, op string, auth *accounts.AuthData) error {
	_, err := a.accounts.Interactive(r.Context(), accounts.UIA{Op: op, Flows: passwordFlows, Localpart: caller(r).Localpart}, auth)
	return err
}

// changePassword is POST /account/password.
func (a *API) changePassword(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Auth          *accounts.AuthData `json:"auth"`
		NewPassword   string             `json:"new_password"`
		LogoutDevices *bool              `json:"logout_devices"`
	}
	if err := a.decode(w, r, &req, true); err != nil {
		return err
	}
	if err := a.reauth(r, "password", req.Auth); err != nil {
		return err
	}
	if req.NewPassword == "" {
		return errMissingParam("new_password")
	}
	logout := req.LogoutDevices == nil || *req.LogoutDevices
	if err := a.accounts.ChangePassword(r.Context(), caller(r), req.NewPassword, logout); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// deactivate is POST /account/deactivate.
func (a *API) deactivate(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Auth *accounts.AuthData `json:"auth"`
	}
	if err := a.decode(w, r, &req, true); err != nil {
		return err
	}
	if err := a.reauth(r, "deactivate", req.Auth); err != nil {
		return err
	}
	if err := a.accounts.Deactivate(r.Context(), caller(r).Localpart); err != nil {
		return err
	}
	// Fyr binds no third-party IDs to identity servers, so there is nothing to unbind.
	writeJSON(w, 200, map[string]string{"id_server_unbind_result": "success"})
	return nil
}
