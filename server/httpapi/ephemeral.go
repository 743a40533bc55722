package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/server/ephemeral"
	"fyr/server/userdir"
)

// ephemeralRoutes are the room endpoints that send no room event: typing, receipts and read
// markers, reports of content, and the user directory.
func (a *API) ephemeralRoutes() {
	a.client("PUT /rooms/{roomID}/typing/{userID}", a.authed(a.setTyping))
	a.client("POST /rooms/{roomID}/receipt/{receiptType}/{eventID}", a.authed(a.postReceipt))
	a.client("POST /rooms/{roomID}/read_markers", a.authed(a.setReadMarkers))

	a.client("POST /rooms/{roomID}/report/{eventID}", a.authed(a.userLimited(a.reportEvent)))
	a.client("POST /rooms/{roomID}/report", a.authed(a.userLimited(a.reportRoom)))
	a.client("POST /users/{userID}/report", a.authed(a.userLimited(a.reportUser)))
	a.handle("GET /_synapse/admin/v1/event_reports", a.authed(a.eventReports))

	a.client("POST /user_directory/search", a.authed(a.searchUserDirectory))
}

// eventIDParam validates the {eventID} path parameter.
func eventIDParam(r *http.Request) (id.EventID, error) {
	s := r.PathValue("eventID")
	if !strings.HasPrefix(s, "$") || len(s) < 2 || len(s) > 255 {
		return "", errInvalidParam("event ID " + strconv.Quote(s) + " is not valid")
	}
	return id.EventID(s), nil
}

// userIDParam validates the {userID} path parameter.
func userIDParam(r *http.Request) (id.UserID, error) {
	s := r.PathValue("userID")
	if _, _, err := id.UserID(s).Parse(); err != nil || len(s) > 255 {
		return "", errInvalidParam("user ID " + strconv.Quote(s) + " is not valid")
	}
	return id.UserID(s), nil
}

// setTyping is PUT /rooms/{roomID}/typing/{userID}: {"typing": bool, "timeout": ms}.
func (a *API) setTyping(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	userID, err := userIDParam(r)
	if err != nil {
		return err
	}
	var body struct {
		Typing  *bool  `json:"typing"`
		Timeout *int64 `json:"timeout"`
	}
	if err := a.decode(w, r, &body, false); err != nil {
		return err
	}
	if body.Typing == nil {
		return errMissingParam("typing")
	}
	timeout := ephemeral.DefaultTypingTimeout
	if body.Timeout != nil {
		if *body.Timeout < 0 {
			return errInvalidParam("timeout must not be negative")
		}
		timeout = time.Duration(min(*body.Timeout, ephemeral.MaxTypingTimeout.Milliseconds())) * time.Millisecond
	}
	if err := a.ephemeral.SetTyping(r.Context(), caller(r).UserID, userID, roomID, *body.Typing, timeout); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// postReceipt is POST /rooms/{roomID}/receipt/{receiptType}/{eventID}: {"thread_id": …}.
func (a *API) postReceipt(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	eventID, err := eventIDParam(r)
	if err != nil {
		return err
	}
	switch typ := r.PathValue("receiptType"); typ {
	case ephemeral.ReceiptRead, ephemeral.ReceiptReadPrivate, ephemeral.FullyRead:
	default:
		return errInvalidParam("receipt type must be m.read, m.read.private or m.fully_read, not " + strconv.Quote(typ))
	}
	var body map[string]json.RawMessage
	if err := a.decode(w, r, &body, true); err != nil {
		return err
	}
	var threadID string
	if raw, ok := body["thread_id"]; ok {
		if json.Unmarshal(raw, &threadID) != nil || threadID == "" {
			return errInvalidParam("thread_id field must be a non-empty string")
		}
		if threadID != ephemeral.ThreadMain && !strings.HasPrefix(threadID, "$") {
			return errInvalidParam("thread_id must be \"main\" or a thread root's event ID")
		}
	}
	err = a.ephemeral.SetReceipt(r.Context(), caller(r).UserID, roomID, r.PathValue("receiptType"), eventID, threadID)
	if err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// setReadMarkers is POST /rooms/{roomID}/read_markers:
// {"m.fully_read": …, "m.read": …, "m.read.private": …}, each optional.
func (a *API) setReadMarkers(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	var body map[string]json.RawMessage
	if err := a.decode(w, r, &body, false); err != nil {
		return err
	}
	var rm ephemeral.ReadMarkers
	for _, f := range []struct {
		key string
		dst *id.EventID
	}{{ephemeral.FullyRead, &rm.FullyRead}, {ephemeral.ReceiptRead, &rm.Read}, {ephemeral.ReceiptReadPrivate, &rm.ReadPrivate}} {
		raw, ok := body[f.key]
		if !ok || string(raw) == "null" {
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return errInvalidParam(f.key + " must be a string if set")
		}
		if s != "" && !strings.HasPrefix(s, "$") {
			return errInvalidParam(f.key + ": event ID " + strconv.Quote(s) + " is not valid")
		}
		*f.dst = id.EventID(s)
	}
	if err := a.ephemeral.SetReadMarkers(r.Context(), caller(r).UserID, roomID, rm); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// searchUserDirectory is POST /user_directory/search: {"search_term": …, "limit": n}.
func (a *API) searchUserDirectory(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		SearchTerm *string `json:"search_term"`
		Limit      *int    `json:"limit"`
	}
	if err := a.decode(w, r, &body, false); err != nil {
		return err
	}
	if body.SearchTerm == nil {
		return errMissingParam("search_term")
	}
	limit := userdir.DefaultLimit
	if body.Limit != nil {
		limit = *body.Limit
	}
	results, limited, err := a.directory.Search(r.Context(), caller(r).UserID, *body.SearchTerm, limit)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"results": results, "limited": limited})
	return nil
}
