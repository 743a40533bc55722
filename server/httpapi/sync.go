package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"fyr/server/sync"
)

// syncRoutes are the sync endpoints.
func (a *API) syncRoutes() {
	if a.sync == nil {
		return
	}
	a.client("GET /sync", a.authed(a.getSync))
}

// getSync serves GET /sync. Query parameters are checked as Synapse checks them: a
// malformed since, timeout, full_state, use_state_after or set_presence is 400
// M_INVALID_PARAM.
func (a *API) getSync(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	c := caller(r)
	req := sync.Request{User: c.UserID, Device: c.DeviceID, Filter: q.Get("filter"), SetPresence: q.Get("set_presence")}
	if q.Has("since") {
		tok, err := sync.ParseToken(q.Get("since"))
		if err != nil {
			return errInvalidParam("since: " + strconv.Quote(q.Get("since")) + " is not a sync token from this server")
		}
		req.Since = &tok
	}
	if q.Has("timeout") {
		ms, err := strconv.ParseInt(q.Get("timeout"), 10, 64)
		if err != nil {
			return errInvalidParam("timeout must be an integer number of milliseconds")
		}
		// The engine caps it further; clamp first so the conversion cannot overflow.
		req.Timeout = time.Duration(min(max(ms, 0), int64(time.Hour/time.Millisecond))) * time.Millisecond
	}
	for _, b := range []struct {
		name string
		to   *bool
	}{{"full_state", &req.FullState}, {"use_state_after", &req.UseStateAfter}} {
		switch q.Get(b.name) {
		case "true":
			*b.to = true
		case "false":
		default:
			if q.Has(b.name) {
				return errInvalidParam(b.name + " must be true or false")
			}
		}
	}
	resp, err := a.sync.Sync(r.Context(), req)
	if err != nil {
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			return nil // the client went away while waiting; nobody reads an answer
		}
		return err
	}
	writeJSON(w, 200, resp)
	return nil
}
