package httpapi

import (
	"errors"
	"net/http"
	"time"

	"fyr/server/accounts"
)

// refreshRoutes serves POST /refresh under v3, where spec v1.3 put it, and v1, where
// MSC2918 clients and Synapse have it. Like Synapse, it has no rate limit: a refresh token
// has 256 random bits, and the login limit would lock out offices whose clients share one
// address and refresh every few minutes.
func (a *API) refreshRoutes() {
	a.handle("POST /_matrix/client/v3/refresh", a.refresh)
	a.handle("POST /_matrix/client/v1/refresh", a.refresh)
}

// tokenLifetime is the lifetime of a new access token: the configured one when the client
// supports refresh tokens, else 0 (for ever).
func (a *API) tokenLifetime(clientRefreshes bool) time.Duration {
	if !clientRefreshes {
		return 0
	}
	return a.cfg.Load().Auth.AccessTokenLifetime
}

// refresh is POST /refresh: a refresh token buys a new access token and refresh token for
// the same device. It needs no access token.
// See https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3refresh
func (a *API) refresh(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		RefreshToken *string `json:"refresh_token"`
	}
	if err := a.decode(w, r, &req, false); err != nil {
		return err
	}
	if req.RefreshToken == nil {
		return errMissingParam("refresh_token")
	}
	sess, err := a.accounts.Refresh(r.Context(), *req.RefreshToken, a.tokenLifetime(true))
	if errors.Is(err, accounts.ErrUnknownToken) {
		// Unknown, already replaced, or its device was logged out: the session is over.
		return errUnknownToken("unknown or already used refresh token", false)
	}
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{
		"access_token":  sess.AccessToken,
		"refresh_token": sess.RefreshToken,
		"expires_in_ms": sess.ExpiresIn.Milliseconds(),
	})
	return nil
}
