package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"

	"maunium.net/go/mautrix/id"

	"fyr/server/userdata"
)

// userdataRoutes are the endpoints of what users keep on the server: account data, room
// tags, filters and presence. See https://spec.matrix.org/v1.19/client-server-api/#client-config
func (a *API) userdataRoutes() {
	if a.userdata == nil {
		return
	}
	a.client("GET /user/{userID}/account_data/{type}", a.authed(a.getAccountData))
	a.client("PUT /user/{userID}/account_data/{type}", a.authed(a.setAccountData))
	a.client("GET /user/{userID}/rooms/{roomID}/account_data/{type}", a.authed(a.getAccountData))
	a.client("PUT /user/{userID}/rooms/{roomID}/account_data/{type}", a.authed(a.setAccountData))

	a.client("GET /user/{userID}/rooms/{roomID}/tags", a.authed(a.getTags))
	a.client("PUT /user/{userID}/rooms/{roomID}/tags/{tag}", a.authed(a.setTag))
	a.client("DELETE /user/{userID}/rooms/{roomID}/tags/{tag}", a.authed(a.deleteTag))

	a.client("POST /user/{userID}/filter", a.authed(a.createFilter))
	a.client("GET /user/{userID}/filter/{filterID}", a.authed(a.getFilter))

	a.client("GET /presence/{userID}/status", a.authed(a.getPresence))
	a.client("PUT /presence/{userID}/status", a.authed(a.setPresence))
}

// ownData checks that the caller is the user in the path: nobody reads or writes another
// user's account data, tags or filters.
func ownData(r *http.Request, what string) error {
	if id.UserID(r.PathValue("userID")) != caller(r).UserID {
		return errForbidden("you cannot access another user's " + what)
	}
	return nil
}

// decodeObject reads a request body that must be a JSON object and returns it as sent.
func (a *API) decodeObject(w http.ResponseWriter, r *http.Request) (json.RawMessage, error) {
	body, err := a.readBody(w, r)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errNotJSON("request body is empty; expected a JSON object")
	}
	var obj map[string]json.RawMessage
	if err := decodeBytes(body, &obj); err != nil {
		return nil, err
	}
	return body, nil
}

// getAccountData is GET /user/{userID}/account_data/{type} and its per-room twin under
// /rooms/{roomID}.
func (a *API) getAccountData(w http.ResponseWriter, r *http.Request) error {
	if err := ownData(r, "account data"); err != nil {
		return err
	}
	content, err := a.userdata.AccountData(r.Context(), caller(r).UserID, id.RoomID(r.PathValue("roomID")), r.PathValue("type"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, content)
	return nil
}

// setAccountData is PUT /user/{userID}/account_data/{type} and its per-room twin.
func (a *API) setAccountData(w http.ResponseWriter, r *http.Request) error {
	if err := ownData(r, "account data"); err != nil {
		return err
	}
	content, err := a.decodeObject(w, r)
	if err != nil {
		return err
	}
	if _, err := a.userdata.SetAccountData(r.Context(), caller(r).UserID, id.RoomID(r.PathValue("roomID")), r.PathValue("type"), content); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// getTags is GET /user/{userID}/rooms/{roomID}/tags.
func (a *API) getTags(w http.ResponseWriter, r *http.Request) error {
	if err := ownData(r, "tags"); err != nil {
		return err
	}
	tags, err := a.userdata.Tags(r.Context(), caller(r).UserID, id.RoomID(r.PathValue("roomID")))
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"tags": tags})
	return nil
}

// setTag is PUT /user/{userID}/rooms/{roomID}/tags/{tag} with the tag's object, e.g.
// {"order": 0.5}.
func (a *API) setTag(w http.ResponseWriter, r *http.Request) error {
	if err := ownData(r, "tags"); err != nil {
		return err
	}
	content, err := a.decodeObject(w, r)
	if err != nil {
		return err
	}
	if _, err := a.userdata.SetTag(r.Context(), caller(r).UserID, id.RoomID(r.PathValue("roomID")), r.PathValue("tag"), content); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// deleteTag is DELETE /user/{userID}/rooms/{roomID}/tags/{tag}.
func (a *API) deleteTag(w http.ResponseWriter, r *http.Request) error {
	if err := ownData(r, "tags"); err != nil {
		return err
	}
	if _, err := a.userdata.DeleteTag(r.Context(), caller(r).UserID, id.RoomID(r.PathValue("roomID")), r.PathValue("tag")); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// createFilter is POST /user/{userID}/filter.
func (a *API) createFilter(w http.ResponseWriter, r *http.Request) error {
	if err := ownData(r, "filters"); err != nil {
		return err
	}
	body, err := a.decodeObject(w, r)
	if err != nil {
		return err
	}
	// Decoding into the filter's type first reports fields of the wrong type like any
	// other request body; CreateFilter then checks what types cannot.
	if err := decodeBytes(body, new(userdata.Filter)); err != nil {
		return err
	}
	fid, err := a.userdata.CreateFilter(r.Context(), caller(r).UserID, body)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]string{"filter_id": fid})
	return nil
}

// getFilter is GET /user/{userID}/filter/{filterID}.
func (a *API) getFilter(w http.ResponseWriter, r *http.Request) error {
	if err := ownData(r, "filters"); err != nil {
		return err
	}
	f, err := a.userdata.FilterJSON(r.Context(), caller(r).UserID, r.PathValue("filterID"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, f)
	return nil
}

// getPresence is GET /presence/{userID}/status.
func (a *API) getPresence(w http.ResponseWriter, r *http.Request) error {
	st, err := a.userdata.Presence(r.Context(), caller(r).UserID, id.UserID(r.PathValue("userID")))
	if err != nil {
		return err
	}
	writeJSON(w, 200, st)
	return nil
}

// setPresence is PUT /presence/{userID}/status. A missing or null status_msg clears it, as
// in Synapse.
func (a *API) setPresence(w http.ResponseWriter, r *http.Request) error {
	if id.UserID(r.PathValue("userID")) != caller(r).UserID {
		return errForbidden("you can only set your own presence")
	}
	var req struct {
		Presence  *string `json:"presence"`
		StatusMsg *string `json:"status_msg"`
	}
	if err := a.decode(w, r, &req, false); err != nil {
		return err
	}
	if req.Presence == nil {
		return errMissingParam("presence")
	}
	var msg string
	if req.StatusMsg != nil {
		msg = *req.StatusMsg
	}
	if _, err := a.userdata.SetPresence(r.Context(), caller(r).UserID, *req.Presence, msg); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}
