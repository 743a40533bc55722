package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"maunium.net/go/mautrix/id"

	e2ee "fyr/server/keys"
)

// backupError turns a write to a backup that is not the current one into the spec's 403
// M_WRONG_ROOM_KEYS_VERSION with current_version.
func backupError(err error) error {
	var wrong *e2ee.WrongVersionError
	if errors.As(err, &wrong) {
		e := newErr(http.StatusForbidden, "M_WRONG_ROOM_KEYS_VERSION", "wrong backup version; the current one is %s", wrong.Current)
		e.Extra = map[string]any{"current_version": wrong.Current}
		return e
	}
	return err
}

// createBackup is POST /room_keys/version.
func (a *API) createBackup(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Algorithm string          `json:"algorithm"`
		AuthData  json.RawMessage `json:"auth_data"`
	}
	if err := a.decode(w, r, &req, false); err != nil {
		return err
	}
	v, err := a.e2ee.CreateBackup(r.Context(), caller(r).UserID, req.Algorithm, req.AuthData)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]string{"version": v})
	return nil
}

// getBackup is GET /room_keys/version and GET /room_keys/version/{version}.
func (a *API) getBackup(w http.ResponseWriter, r *http.Request) error {
	info, err := a.e2ee.Backup(r.Context(), caller(r).UserID, r.PathValue("version"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, info)
	return nil
}

// updateBackup is PUT /room_keys/version/{version}.
func (a *API) updateBackup(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Algorithm string          `json:"algorithm"`
		AuthData  json.RawMessage `json:"auth_data"`
		Version   string          `json:"version"`
	}
	if err := a.decode(w, r, &req, false); err != nil {
		return err
	}
	if err := a.e2ee.UpdateBackup(r.Context(), caller(r).UserID, r.PathValue("version"), req.Version, req.Algorithm, req.AuthData); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// deleteBackup is DELETE /room_keys/version/{version}.
func (a *API) deleteBackup(w http.ResponseWriter, r *http.Request) error {
	if err := a.e2ee.DeleteBackup(r.Context(), caller(r).UserID, r.PathValue("version")); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// sessionKeyJSON is KeyBackupData as a client sends it; every field is required.
type sessionKeyJSON struct {
	FirstMessageIndex *int64          `json:"first_message_index"`
	ForwardedCount    *int64          `json:"forwarded_count"`
	IsVerified        *bool           `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

func (k sessionKeyJSON) key(where string) (e2ee.SessionKey, error) {
	switch {
	case k.FirstMessageIndex == nil:
		return e2ee.SessionKey{}, errBadJSON(where + ": first_message_index is required")
	case k.ForwardedCount == nil:
		return e2ee.SessionKey{}, errBadJSON(where + ": forwarded_count is required")
	case k.IsVerified == nil:
		return e2ee.SessionKey{}, errBadJSON(where + ": is_verified is required")
	case len(k.SessionData) == 0 || string(k.SessionData) == "null":
		return e2ee.SessionKey{}, errBadJSON(where + ": session_data is required")
	}
	return e2ee.SessionKey{FirstMessageIndex: *k.FirstMessageIndex, ForwardedCount: *k.ForwardedCount,
		IsVerified: *k.IsVerified, SessionData: k.SessionData}, nil
}

type roomSessionsJSON struct {
	Sessions map[id.SessionID]sessionKeyJSON `json:"sessions"`
}

// backupVersionParam reads the required ?version= of the room_keys/keys endpoints.
func backupVersionParam(r *http.Request) (string, error) {
	v := r.URL.Query().Get("version")
	if v == "" {
		return "", errMissingParam("version")
	}
	return v, nil
}

// putBackupKeys is PUT /room_keys/keys, /room_keys/keys/{roomID} and
// /room_keys/keys/{roomID}/{sessionID}: all rooms, one room's sessions, or one session.
func (a *API) putBackupKeys(w http.ResponseWriter, r *http.Request) error {
	version, err := backupVersionParam(r)
	if err != nil {
		return err
	}
	body, err := a.readBody(w, r)
	if err != nil {
		return err
	}
	room, session := id.RoomID(r.PathValue("roomID")), id.SessionID(r.PathValue("sessionID"))
	keys := e2ee.BackupKeys{}
	add := func(room id.RoomID, sessions map[id.SessionID]sessionKeyJSON) error {
		keys[room] = map[id.SessionID]e2ee.SessionKey{}
		for s, k := range sessions {
			sk, err := k.key(string(room) + " " + string(s))
			if err != nil {
				return err
			}
			keys[room][s] = sk
		}
		return nil
	}
	switch {
	case session != "":
		var k sessionKeyJSON
		if err := decodeBytes(body, &k); err != nil {
			return err
		}
		if err := add(room, map[id.SessionID]sessionKeyJSON{session: k}); err != nil {
			return err
		}
	case room != "":
		var req roomSessionsJSON
		if err := decodeBytes(body, &req); err != nil {
			return err
		}
		if req.Sessions == nil {
			return errMissingParam("sessions")
		}
		if err := add(room, req.Sessions); err != nil {
			return err
		}
	default:
		var req struct {
			Rooms map[id.RoomID]roomSessionsJSON `json:"rooms"`
		}
		if err := decodeBytes(body, &req); err != nil {
			return err
		}
		if req.Rooms == nil {
			return errMissingParam("rooms")
		}
		for room, rs := range req.Rooms {
			if err := add(room, rs.Sessions); err != nil {
				return err
			}
		}
	}
	res, err := a.e2ee.PutBackupKeys(r.Context(), caller(r).UserID, version, keys)
	if err != nil {
		return backupError(err)
	}
	writeJSON(w, 200, res)
	return nil
}

// getBackupKeys is GET /room_keys/keys and its per-room and per-session forms.
func (a *API) getBackupKeys(w http.ResponseWriter, r *http.Request) error {
	version, err := backupVersionParam(r)
	if err != nil {
		return err
	}
	room, session := id.RoomID(r.PathValue("roomID")), id.SessionID(r.PathValue("sessionID"))
	keys, err := a.e2ee.BackupKeys(r.Context(), caller(r).UserID, version, room, session)
	if err != nil {
		return err
	}
	switch {
	case session != "":
		writeJSON(w, 200, keys[room][session])
	case room != "":
		writeJSON(w, 200, map[string]any{"sessions": nonNilMap(keys[room])})
	default:
		rooms := map[id.RoomID]any{}
		for room, sessions := range keys {
			rooms[room] = map[string]any{"sessions": sessions}
		}
		writeJSON(w, 200, map[string]any{"rooms": rooms})
	}
	return nil
}

func nonNilMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return m
}

// deleteBackupKeys is DELETE /room_keys/keys and its per-room and per-session forms.
func (a *API) deleteBackupKeys(w http.ResponseWriter, r *http.Request) error {
	version, err := backupVersionParam(r)
	if err != nil {
		return err
	}
	room, session := id.RoomID(r.PathValue("roomID")), id.SessionID(r.PathValue("sessionID"))
	res, err := a.e2ee.DeleteBackupKeys(r.Context(), caller(r).UserID, version, room, session)
	if err != nil {
		return err
	}
	writeJSON(w, 200, res)
	return nil
}
