package inbound

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"maunium.net/go/mautrix/id"

	"fyr/federation/transport"
	e2ee "fyr/server/keys"
)

// Keys serves the federation endpoints of end-to-end encryption: other servers query and
// claim this server's users' keys and fetch their device lists. Every route needs
// transport.Verifier in front of it.
//
// See https://spec.matrix.org/v1.19/server-server-api/#end-to-end-encryption
type Keys struct {
	Engine *e2ee.Engine
	Log    *slog.Logger
}

// Routes registers the endpoints on mux, each behind authenticate.
func (h *Keys) Routes(mux *http.ServeMux, authenticate func(http.Handler) http.Handler) {
	route := func(pattern string, f func(w http.ResponseWriter, r *http.Request) error) {
		mux.Handle(pattern, authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := f(w, r); err != nil {
				h.fail(w, r, err)
			}
		})))
	}
	const v1 = "/_matrix/federation/v1"
	route("POST "+v1+"/user/keys/query", h.query)
	route("POST "+v1+"/user/keys/claim", h.claim)
	route("GET "+v1+"/user/devices/{userID}", h.devices)
}

// query is POST /user/keys/query. Users of other servers are left out of the answer.
func (h *Keys) query(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		DeviceKeys map[id.UserID][]id.DeviceID `json:"device_keys"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, 400, "M_BAD_JSON", "expected device_keys: a map from user IDs to lists of device IDs")
		return nil
	}
	if req.DeviceKeys == nil {
		writeError(w, 400, "M_MISSING_PARAM", "device_keys is required")
		return nil
	}
	res, err := h.Engine.FederationQuery(r.Context(), req.DeviceKeys)
	if err != nil {
		return err
	}
	return respond(w, map[string]any{"device_keys": res.DeviceKeys, "master_keys": res.MasterKeys, "self_signing_keys": res.SelfSigningKeys})
}

// claim is POST /user/keys/claim. Claims for users of other servers are left out.
func (h *Keys) claim(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		OneTimeKeys map[id.UserID]map[id.DeviceID]string `json:"one_time_keys"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, 400, "M_BAD_JSON", "expected one_time_keys: a map from user IDs to device IDs to algorithms")
		return nil
	}
	if req.OneTimeKeys == nil {
		writeError(w, 400, "M_MISSING_PARAM", "one_time_keys is required")
		return nil
	}
	keys, err := h.Engine.FederationClaim(r.Context(), req.OneTimeKeys)
	if err != nil {
		return err
	}
	return respond(w, map[string]any{"one_time_keys": keys})
}

// devices is GET /user/devices/{userId}.
func (h *Keys) devices(w http.ResponseWriter, r *http.Request) error {
	res, err := h.Engine.UserDevices(r.Context(), id.UserID(r.PathValue("userID")))
	if err != nil {
		return err
	}
	return respond(w, res)
}

func (h *Keys) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, e2ee.ErrInvalidParam) {
		writeError(w, 400, "M_INVALID_PARAM", err.Error())
		return
	}
	h.Log.Error("federation key request failed", "path", r.URL.Path, "origin", transport.Origin(r.Context()), "err", err)
	writeError(w, 500, "M_UNKNOWN", "internal server error")
}
