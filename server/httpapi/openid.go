package httpapi

import (
	"net/http"

	"maunium.net/go/mautrix/id"
)

// openIDToken is POST /user/{userID}/openid/request_token.
func (a *API) openIDToken(w http.ResponseWriter, r *http.Request) error {
	c := caller(r)
	if id.UserID(r.PathValue("userID")) != c.UserID {
		return errForbidden("you can only request OpenID tokens for yourself")
	}
	var body struct{}
	if err := a.decode(w, r, &body, true); err != nil {
		return err
	}
	token, ttl, err := a.accounts.NewOpenIDToken(r.Context(), c)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{
		"access_token":       token,
		"token_type":         "Bearer",
		"matrix_server_name": a.accounts.ServerName(),
		"expires_in":         int(ttl.Seconds()),
	})
	return nil
}
