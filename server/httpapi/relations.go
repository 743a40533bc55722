package httpapi

import (
	"net/http"
	"strconv"

	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
)

// relationRoutes are the endpoints of event relationships, threads and jumping to a date:
// all new enough to exist only under /v1.
func (a *API) relationRoutes() {
	const v1 = "GET /_matrix/client/v1/rooms/{roomID}"
	a.handle(v1+"/relations/{eventID}", a.authed(a.relations))
	a.handle(v1+"/relations/{eventID}/{relType}", a.authed(a.relations))
	a.handle(v1+"/relations/{eventID}/{relType}/{eventType}", a.authed(a.relations))
	a.handle(v1+"/threads", a.authed(a.threads))
	a.handle(v1+"/timestamp_to_event", a.authed(a.timestampToEvent))
}

func (a *API) relations(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	req := rooms.RelationsRequest{RelType: r.PathValue("relType"), EventType: r.PathValue("eventType"),
		From: q.Get("from"), To: q.Get("to"), Ignored: a.ignoredUsers(r)}
	switch q.Get("dir") {
	case "", "b":
	case "f":
		req.Forwards = true
	default:
		return errInvalidParam("dir must be b or f")
	}
	if req.Limit, err = intParam(r, "limit", rooms.DefaultRelationsLimit); err != nil {
		return err
	}
	if q.Has("recurse") {
		rec := q.Get("recurse") == "true"
		if !rec && q.Get("recurse") != "false" {
			return errInvalidParam("recurse must be true or false")
		}
		req.Recurse = &rec
	}
	resp, err := a.rooms.Relations(r.Context(), viewer(r), roomID, id.EventID(r.PathValue("eventID")), req)
	if err != nil {
		return err
	}
	writeJSON(w, 200, resp)
	return nil
}

func (a *API) threads(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	req := rooms.ThreadsRequest{From: q.Get("from"), Ignored: a.ignoredUsers(r)}
	switch q.Get("include") {
	case "", "all":
	case "participated":
		req.Participated = true
	default:
		return errInvalidParam("include must be all or participated")
	}
	if req.Limit, err = intParam(r, "limit", rooms.DefaultRelationsLimit); err != nil {
		return err
	}
	if req.Limit == 0 {
		return errInvalidParam("limit must be greater than zero")
	}
	resp, err := a.rooms.Threads(r.Context(), viewer(r), roomID, req)
	if err != nil {
		return err
	}
	writeJSON(w, 200, resp)
	return nil
}

func (a *API) timestampToEvent(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if !q.Has("ts") {
		return errMissingParam("ts")
	}
	ts, err := strconv.ParseInt(q.Get("ts"), 10, 64)
	if err != nil {
		return errInvalidParam("ts must be an integer timestamp in milliseconds")
	}
	var backwards bool
	switch q.Get("dir") {
	case "f":
	case "b":
		backwards = true
	case "":
		return errMissingParam("dir")
	default:
		return errInvalidParam("dir must be f or b")
	}
	resp, err := a.rooms.TimestampToEvent(r.Context(), viewer(r), roomID, ts, backwards)
	if err != nil {
		return err
	}
	writeJSON(w, 200, resp)
	return nil
}
