package httpapi

import (
	"net/http"
	"strings"

	"maunium.net/go/mautrix/id"

	"fyr/server/accounts"
)

type registerRequest struct {
	Auth                     *accounts.AuthData `json:"auth"`
	Username                 string             `json:"username"`
	Password                 string             `json:"password"`
	DeviceID                 id.DeviceID        `json:"device_id"`
	InitialDeviceDisplayName string             `json:"initial_device_display_name"`
	InhibitLogin             bool               `json:"inhibit_login"`
	// RefreshToken: the client supports refresh tokens (spec v1.3).
	RefreshToken bool `json:"refresh_token"`
}

// registrationFlows: a token always works; m.login.dummy only when registration is open.
func (a *API) registrationFlows() accounts.Flows {
	if a.cfg.Load().Register.Open {
		return accounts.Flows{{accounts.AuthDummy}, {accounts.AuthRegistrationToken}}
	}
	return accounts.Flows{{accounts.AuthRegistrationToken}}
}

// register is POST /register. See https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3register
func (a *API) register(w http.ResponseWriter, r *http.Request) error {
	switch kind := r.URL.Query().Get("kind"); kind {
	case "", "user":
	case "guest":
		return newErr(403, "M_GUEST_ACCESS_FORBIDDEN", "guest accounts are not available on this server")
	default:
		return errInvalidParam("kind must be user or guest, not " + kind)
	}
	var req registerRequest
	if err := a.decode(w, r, &req, true); err != nil {
		return err
	}
	localpart := strings.ToLower(req.Username)
	if req.Username != "" {
		// Refuse a bad or taken name before the client walks through the auth flow.
		if err := a.accounts.Available(r.Context(), localpart); err != nil {
			return err
		}
	}
	if len(req.Password) > accounts.MaxPasswordBytes {
		return errInvalidParam("password is too long")
	}
	if err := validDeviceFields(req.DeviceID, req.InitialDeviceDisplayName); err != nil {
		return err
	}
	done, err := a.accounts.Interactive(r.Context(), accounts.UIA{Op: "register", Flows: a.registrationFlows()}, req.Auth)
	if err != nil {
		return err
	}
	sess, err := a.accounts.Register(r.Context(), accounts.NewAccount{
		Localpart:    localpart,
		Password:     req.Password,
		RegToken:     done.RegToken,
		InhibitLogin: req.InhibitLogin,
		DeviceID:     req.DeviceID,
		DeviceName:   req.InitialDeviceDisplayName,
		IP:           clientIP(r),
		// With inhibit_login no token is made, so none expires.
		TokenLifetime: a.tokenLifetime(req.RefreshToken),
	})
	if err != nil {
		return err
	}
	writeJSON(w, 200, sessionJSON(sess, a.accounts.ServerName()))
	return nil
}

// registerAvailable is GET /register/available?username=…
func (a *API) registerAvailable(w http.ResponseWriter, r *http.Request) error {
	username := r.URL.Query().Get("username")
	if username == "" {
		return errMissingParam("username")
	}
	if err := a.accounts.Available(r.Context(), strings.ToLower(username)); err != nil {
		return err
	}
	writeJSON(w, 200, map[string]bool{"available": true})
	return nil
}

// registrationTokenValidity is GET /v1/register/m.login.registration_token/validity?token=…
func (a *API) registrationTokenValidity(w http.ResponseWriter, r *http.Request) error {
	token := r.URL.Query().Get("token")
	if token == "" {
		return errMissingParam("token")
	}
	err := a.accounts.RegistrationTokenValid(r.Context(), token)
	if err != nil && err != accounts.ErrInvalidRegToken {
		return err
	}
	writeJSON(w, 200, map[string]bool{"valid": err == nil})
	return nil
}
