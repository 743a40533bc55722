package httpapi

import (
	"net/http"

	"fyr/server/accounts"
)

// sharedSecretNonce is GET /_synapse/admin/v1/register. When no secret is configured the
// endpoint does not exist, so tools report it as unsupported rather than failing later.
func (a *API) sharedSecretNonce(w http.ResponseWriter, r *http.Request) error {
	if a.cfg.Load().Register.SharedSecret == "" {
		return errUnrecognized(404, "shared-secret registration is disabled on this server")
	}
	writeJSON(w, 200, map[string]string{"nonce": a.accounts.NewNonce()})
	return nil
}

// sharedSecretRegister is POST /_synapse/admin/v1/register, as Synapse implements it.
func (a *API) sharedSecretRegister(w http.ResponseWriter, r *http.Request) error {
	secret := a.cfg.Load().Register.SharedSecret
	if secret == "" {
		return errUnrecognized(404, "shared-secret registration is disabled on this server")
	}
	var req struct {
		Nonce       string `json:"nonce"`
		Username    string `json:"username"`
		Password    string `json:"password"`
		Admin       bool   `json:"admin"`
		MAC         string `json:"mac"`
		DisplayName string `json:"displayname"`
	}
	if err := a.decode(w, r, &req, false); err != nil {
		return err
	}
	for _, p := range []struct{ name, v string }{{"nonce", req.Nonce}, {"username", req.Username}, {"password", req.Password}, {"mac", req.MAC}} {
		if p.v == "" {
			return errMissingParam(p.name)
		}
	}
	sess, err := a.accounts.RegisterWithSharedSecret(r.Context(), secret, accounts.SharedSecretRegistration{
		Nonce: req.Nonce, Username: req.Username, Password: req.Password, Admin: req.Admin, MAC: req.MAC, DisplayName: req.DisplayName,
	}, clientIP(r))
	switch err {
	case nil:
	case accounts.ErrUnknownSession:
		return errInvalidParam("unrecognised nonce; fetch a new one with GET")
	case accounts.ErrForbidden:
		return errForbidden("HMAC incorrect")
	default:
		return err
	}
	writeJSON(w, 200, sessionJSON(sess, a.accounts.ServerName()))
	return nil
}
