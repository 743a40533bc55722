package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"fyr/server/accounts"
)

type callerKey struct{}

// caller returns the authenticated caller of a request wrapped by authed.
func caller(r *http.Request) *accounts.Caller {
	return r.Context().Value(callerKey{}).(*accounts.Caller)
}

// accessToken finds the token in the Authorization header or, as older clients send it, the
// access_token query parameter.
func accessToken(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") && token != "" {
			return strings.TrimSpace(token), true
		}
		return "", false
	}
	if t := r.URL.Query().Get("access_token"); t != "" {
		return t, true
	}
	return "", false
}

// authed wraps a handler that needs an access token.
func (a *API) authed(h handlerFunc) handlerFunc { return a.authedBy(a.accounts.Authenticate, h) }

// authedExpired is authed that also accepts an expired access token, for logout.
func (a *API) authedExpired(h handlerFunc) handlerFunc {
	return a.authedBy(a.accounts.AuthenticateExpired, h)
}

func (a *API) authedBy(authenticate func(ctx context.Context, token, ip string) (*accounts.Caller, error), h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		token, ok := accessToken(r)
		if !ok {
			return newErr(http.StatusUnauthorized, "M_MISSING_TOKEN", "missing access token")
		}
		c, err := authenticate(r.Context(), token, clientIP(r))
		if errors.Is(err, accounts.ErrUnknownToken) {
			return errUnknownToken("unknown access token", false)
		}
		if errors.Is(err, accounts.ErrTokenExpired) {
			// The session lives on: the client refreshes, or logs in again on the same device.
			return errUnknownToken("access token expired", true)
		}
		if err != nil {
			return err
		}
		if info := requestInfoFrom(r.Context()); info != nil {
			info.user = string(c.UserID)
		}
		return h(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	}
}

// errUnknownToken is the spec's 401 M_UNKNOWN_TOKEN. softLogout true tells the client that
// its session (device, keys) survives; false, that it was logged out for good.
func errUnknownToken(msg string, softLogout bool) *Error {
	e := newErr(http.StatusUnauthorized, "M_UNKNOWN_TOKEN", "%s", msg)
	e.Extra = map[string]any{"soft_logout": softLogout}
	return e
}
