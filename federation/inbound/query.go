package inbound

import (
	"context"
	"encoding/json"
	"net/http"

	"maunium.net/go/mautrix/id"
)

// ProfileSource looks up a local user's profile; found is false for an unknown user.
type ProfileSource func(ctx context.Context, userID id.UserID) (fields map[string]json.RawMessage, found bool, err error)

// ProfileQuery serves GET /_matrix/federation/v1/query/profile?user_id=…[&field=…].
type ProfileQuery struct {
	ServerName string
	Profiles   ProfileSource
}

func (q *ProfileQuery) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	userID := id.UserID(r.URL.Query().Get("user_id"))
	if userID == "" {
		writeError(w, 400, "M_MISSING_PARAM", "user_id is required")
		return
	}
	if _, server, err := userID.Parse(); err != nil || server != q.ServerName {
		writeError(w, 400, "M_INVALID_PARAM", "user_id must be a user of "+q.ServerName)
		return
	}
	fields, found, err := q.Profiles(r.Context(), userID)
	if err != nil {
		writeError(w, 500, "M_UNKNOWN", "internal server error")
		return
	}
	if !found {
		writeError(w, 404, "M_NOT_FOUND", "user does not exist")
		return
	}
	if f := r.URL.Query().Get("field"); f != "" {
		v, ok := fields[f]
		if !ok {
			writeError(w, 404, "M_NOT_FOUND", "the user has no "+f)
			return
		}
		fields = map[string]json.RawMessage{f: v}
	}
	body, _ := json.Marshal(fields)
	writeJSON(w, body)
}
