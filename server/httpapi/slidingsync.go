package httpapi

import (
	"context"
	"errors"
	"net/http"

	"fyr/server/sync"
)

func init() {
	// Element X looks for this before it uses simplified sliding sync.
	unstableFeatures["org.matrix.simplified_msc3575"] = true
}

// slidingSyncRoutes is simplified sliding sync (MSC4186) under its unstable path.
func (a *API) slidingSyncRoutes() {
	if a.sync == nil {
		return
	}
	a.handle("POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync", a.authed(a.slidingSync))
}

// slidingSync serves POST …/org.matrix.simplified_msc3575/sync. pos, timeout and
// set_presence come in the query string (the unstable API) or the body (the MSC's newer
// text); the query string wins. A malformed pos, timeout or set_presence is 400
// M_INVALID_PARAM; a pos the server no longer knows is 400 M_UNKNOWN_POS.
func (a *API) slidingSync(w http.ResponseWriter, r *http.Request) error {
	c := caller(r)
	req := sync.SlidingRequest{User: c.UserID, Device: c.DeviceID}
	if err := a.decode(w, r, &req.Body, false); err != nil {
		return err
	}
	q := r.URL.Query()
	pos := req.Body.Pos
	if q.Has("pos") {
		p := q.Get("pos")
		pos = &p
	}
	if pos != nil && *pos != "" {
		p, err := sync.ParseSlidingPos(*pos)
		if err != nil {
			return err
		}
		req.Pos = &p
	}
	switch {
	case q.Has("timeout"):
		t, err := sync.ParseSlidingTimeout(q.Get("timeout"))
		if err != nil {
			return err
		}
		req.Timeout = t
	case req.Body.Timeout != nil:
		t, err := sync.SlidingTimeout(*req.Body.Timeout)
		if err != nil {
			return err
		}
		req.Timeout = t
	}
	if q.Has("set_presence") {
		req.SetPresence = q.Get("set_presence")
	} else if req.Body.SetPresence != nil {
		req.SetPresence = *req.Body.SetPresence
	}
	resp, err := a.sync.SlidingSync(r.Context(), req)
	switch {
	case errors.Is(err, sync.ErrUnknownPos):
		return newErr(http.StatusBadRequest, "M_UNKNOWN_POS", "unknown pos: start the connection again without one")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return nil // the client went away while waiting
	case err != nil:
		return err
	}
	writeJSON(w, 200, resp)
	return nil
}
