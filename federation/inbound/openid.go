package inbound

import (
	"context"
	"encoding/json"
	"net/http"

	"maunium.net/go/mautrix/id"
)

// OpenIDUserInfo serves GET /_matrix/federation/v1/openid/userinfo?access_token=…: another
// service exchanges a user's OpenID token for their user ID. The token is the authentication;
// the request is not signed.
type OpenIDUserInfo struct {
	// Lookup returns the user the token belongs to; ok is false for unknown or expired tokens.
	Lookup func(ctx context.Context, token string) (user id.UserID, ok bool, err error)
}

func (o *OpenIDUserInfo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("access_token")
	if token == "" {
		writeError(w, 401, "M_MISSING_TOKEN", "access_token is required")
		return
	}
	user, ok, err := o.Lookup(r.Context(), token)
	switch {
	case err != nil:
		writeError(w, 500, "M_UNKNOWN", "internal server error")
	case !ok:
		writeError(w, 401, "M_UNKNOWN_TOKEN", "access token unknown or expired")
	default:
		body, _ := json.Marshal(map[string]id.UserID{"sub": user})
		writeJSON(w, body)
	}
}
