package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/server/accounts"
	e2ee "fyr/server/keys"
	"fyr/server/rooms"
)

// maxRemoteTimeout caps the timeout a client may ask /keys/query and /keys/claim to wait for
// other servers.
const maxRemoteTimeout = time.Minute

// e2eeRoutes are the end-to-end encryption endpoints: keys, cross-signing, send-to-device
// and key backup.
func (a *API) e2eeRoutes() {
	if a.e2ee == nil {
		return
	}
	a.client("POST /keys/upload", a.authed(a.uploadKeys))
	a.client("POST /keys/query", a.authed(a.queryKeys))
	a.client("POST /keys/claim", a.authed(a.claimKeys))
	a.client("GET /keys/changes", a.authed(a.keyChanges))
	a.client("POST /keys/device_signing/upload", a.authed(a.uploadCrossSigningKeys))
	a.client("POST /keys/signatures/upload", a.authed(a.uploadSignatures))
	a.client("PUT /sendToDevice/{eventType}/{txnID}", a.authed(a.sendToDevice))

	a.client("POST /room_keys/version", a.authed(a.createBackup))
	a.client("GET /room_keys/version", a.authed(a.getBackup))
	a.client("GET /room_keys/version/{version}", a.authed(a.getBackup))
	a.client("PUT /room_keys/version/{version}", a.authed(a.updateBackup))
	a.client("DELETE /room_keys/version/{version}", a.authed(a.deleteBackup))
	a.client("PUT /room_keys/keys", a.authed(a.putBackupKeys))
	a.client("PUT /room_keys/keys/{roomID}", a.authed(a.putBackupKeys))
	a.client("PUT /room_keys/keys/{roomID}/{sessionID}", a.authed(a.putBackupKeys))
	a.client("GET /room_keys/keys", a.authed(a.getBackupKeys))
	a.client("GET /room_keys/keys/{roomID}", a.authed(a.getBackupKeys))
	a.client("GET /room_keys/keys/{roomID}/{sessionID}", a.authed(a.getBackupKeys))
	a.client("DELETE /room_keys/keys", a.authed(a.deleteBackupKeys))
	a.client("DELETE /room_keys/keys/{roomID}", a.authed(a.deleteBackupKeys))
	a.client("DELETE /room_keys/keys/{roomID}/{sessionID}", a.authed(a.deleteBackupKeys))
}

// uploadKeys is POST /keys/upload.
func (a *API) uploadKeys(w http.ResponseWriter, r *http.Request) error {
	var req e2ee.Upload
	if err := a.decode(w, r, &req, true); err != nil {
		return err
	}
	c := caller(r)
	counts, err := a.e2ee.Upload(r.Context(), c.UserID, c.DeviceID, &req)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"one_time_key_counts": counts})
	return nil
}

// remoteTimeout reads the timeout of /keys/query and /keys/claim (milliseconds).
func remoteTimeout(ms *int64) time.Duration {
	if ms == nil || *ms <= 0 {
		return e2ee.DefaultRemoteTimeout
	}
	return min(time.Duration(*ms)*time.Millisecond, maxRemoteTimeout)
}

// checkUserIDs refuses map keys that are not user IDs.
func checkUserIDs[V any](m map[id.UserID]V, field string) error {
	for u := range m {
		if _, _, err := u.Parse(); err != nil {
			return errInvalidParam(field + ": " + string(u) + " is not a user ID")
		}
	}
	return nil
}

// queryKeys is POST /keys/query.
func (a *API) queryKeys(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		DeviceKeys map[id.UserID][]id.DeviceID `json:"device_keys"`
		Timeout    *int64                      `json:"timeout"`
	}
	if err := a.decode(w, r, &req, false); err != nil {
		return err
	}
	if req.DeviceKeys == nil {
		return errMissingParam("device_keys")
	}
	if err := checkUserIDs(req.DeviceKeys, "device_keys"); err != nil {
		return err
	}
	res, err := a.e2ee.Query(r.Context(), caller(r).UserID, req.DeviceKeys, remoteTimeout(req.Timeout))
	if err != nil {
		return err
	}
	writeJSON(w, 200, res)
	return nil
}

// claimKeys is POST /keys/claim.
func (a *API) claimKeys(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		OneTimeKeys map[id.UserID]map[id.DeviceID]string `json:"one_time_keys"`
		Timeout     *int64                               `json:"timeout"`
	}
	if err := a.decode(w, r, &req, false); err != nil {
		return err
	}
	if req.OneTimeKeys == nil {
		return errMissingParam("one_time_keys")
	}
	if err := checkUserIDs(req.OneTimeKeys, "one_time_keys"); err != nil {
		return err
	}
	res, err := a.e2ee.Claim(r.Context(), req.OneTimeKeys, remoteTimeout(req.Timeout))
	if err != nil {
		return err
	}
	writeJSON(w, 200, res)
	return nil
}

// keyChanges is GET /keys/changes. from and to are sync tokens; to may be left out, as
// Synapse allows, to mean now.
func (a *API) keyChanges(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if q.Get("from") == "" {
		return errMissingParam("from")
	}
	from, err := rooms.ParseToken(q.Get("from"))
	if err != nil {
		return errInvalidParam("from is not a sync token from this server")
	}
	var to int64
	if t := q.Get("to"); t != "" {
		if to, err = rooms.ParseToken(t); err != nil {
			return errInvalidParam("to is not a sync token from this server")
		}
	}
	changed, left, err := a.e2ee.KeyChanges(r.Context(), caller(r).UserID, from, to)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"changed": nonNil(changed), "left": nonNil(left)})
	return nil
}

func nonNil[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}

// uploadCrossSigningKeys is POST /keys/device_signing/upload. User-interactive auth is
// needed only to replace existing keys: the engine says so inside its write.
func (a *API) uploadCrossSigningKeys(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		e2ee.CrossSigningUpload
		Auth *accounts.AuthData `json:"auth"`
	}
	if err := a.decode(w, r, &req, true); err != nil {
		return err
	}
	user := caller(r).UserID
	err := a.e2ee.UploadCrossSigningKeys(r.Context(), user, &req.CrossSigningUpload, false)
	if errors.Is(err, e2ee.ErrAuthRequired) {
		if err := a.reauth(r, "device_signing_upload", req.Auth); err != nil {
			return err
		}
		err = a.e2ee.UploadCrossSigningKeys(r.Context(), user, &req.CrossSigningUpload, true)
	}
	if err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// uploadSignatures is POST /keys/signatures/upload.
func (a *API) uploadSignatures(w http.ResponseWriter, r *http.Request) error {
	var req map[id.UserID]map[string]json.RawMessage
	if err := a.decode(w, r, &req, false); err != nil {
		return err
	}
	if err := checkUserIDs(req, "signatures"); err != nil {
		return err
	}
	failures, err := a.e2ee.UploadSignatures(r.Context(), caller(r).UserID, req)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"failures": failures})
	return nil
}

// sendToDevice is PUT /sendToDevice/{eventType}/{txnID}.
func (a *API) sendToDevice(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Messages map[id.UserID]map[id.DeviceID]json.RawMessage `json:"messages"`
	}
	if err := a.decode(w, r, &req, false); err != nil {
		return err
	}
	if req.Messages == nil {
		return errMissingParam("messages")
	}
	if err := checkUserIDs(req.Messages, "messages"); err != nil {
		return err
	}
	c := caller(r)
	if err := a.e2ee.SendToDevice(r.Context(), c.UserID, c.DeviceID, r.PathValue("eventType"), r.PathValue("txnID"), req.Messages); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// devicesGone wraps the handlers that can delete devices (logout, device deletion, password
// change, deactivation): afterwards the E2EE engine drops the gone devices' keys and inboxes
// and announces the device-list change to the users who share rooms with the caller, and the
// gone devices' pushers are deleted.
func (a *API) devicesGone(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := h(w, r); err != nil {
			return err
		}
		if a.e2ee != nil {
			if err := a.e2ee.DevicesDeleted(r.Context(), caller(r).UserID); err != nil {
				a.log.Error("forgetting deleted devices' keys", "user", caller(r).UserID, "err", err)
			}
		}
		if a.push != nil {
			if err := a.push.DevicesDeleted(r.Context(), caller(r).UserID); err != nil {
				a.log.Error("deleting deleted devices' pushers", "user", caller(r).UserID, "err", err)
			}
		}
		return nil
	}
}
