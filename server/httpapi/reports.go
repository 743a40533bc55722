package httpapi

import "net/http"

// reportBody is the body of the report endpoints. Score is the deprecated score of event
// reports (removed from the spec in v1.18, still sent by some clients).
type reportBody struct {
	Reason *string `json:"reason"`
	Score  *int    `json:"score"`
}

// reportEvent is POST /rooms/{roomID}/report/{eventID}.
func (a *API) reportEvent(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	eventID, err := eventIDParam(r)
	if err != nil {
		return err
	}
	var body reportBody
	if err := a.decode(w, r, &body, false); err != nil {
		return err
	}
	var reason string
	if body.Reason != nil {
		reason = *body.Reason
	}
	if err := a.reports.ReportEvent(r.Context(), caller(r).UserID, roomID, eventID, reason, body.Score); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// reportRoom is POST /rooms/{roomID}/report: {"reason": …}, the reason required but possibly
// blank.
func (a *API) reportRoom(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	var body reportBody
	if err := a.decode(w, r, &body, false); err != nil {
		return err
	}
	if body.Reason == nil {
		return errMissingParam("reason")
	}
	if err := a.reports.ReportRoom(r.Context(), caller(r).UserID, roomID, *body.Reason); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// reportUser is POST /users/{userID}/report: {"reason": …}, as for rooms.
func (a *API) reportUser(w http.ResponseWriter, r *http.Request) error {
	userID, err := userIDParam(r)
	if err != nil {
		return err
	}
	var body reportBody
	if err := a.decode(w, r, &body, false); err != nil {
		return err
	}
	if body.Reason == nil {
		return errMissingParam("reason")
	}
	if err := a.reports.ReportUser(r.Context(), caller(r).UserID, userID, *body.Reason); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// eventReport is one entry of the admin API's event_reports, in Synapse's shape.
type eventReport struct {
	ID         int64  `json:"id"`
	ReceivedTS int64  `json:"received_ts"`
	RoomID     string `json:"room_id"`
	EventID    string `json:"event_id"`
	UserID     string `json:"user_id"`
	Sender     string `json:"sender"`
	Reason     string `json:"reason"`
	Score      *int   `json:"score"`
}

// eventReports is Synapse's admin API GET /_synapse/admin/v1/event_reports: the event reports,
// newest first, paged by offset (from, limit; next_token when more follow). Admins only.
func (a *API) eventReports(w http.ResponseWriter, r *http.Request) error {
	if !caller(r).Admin {
		return errForbidden("you are not a server admin")
	}
	from, err := intParam(r, "from", 0)
	if err != nil {
		return err
	}
	limit, err := intParam(r, "limit", 100)
	if err != nil {
		return err
	}
	rs, total, err := a.reports.List(r.Context(), "event", from, limit)
	if err != nil {
		return err
	}
	out := make([]eventReport, len(rs))
	for i, rep := range rs {
		out[i] = eventReport{ID: rep.ID, ReceivedTS: rep.ReceivedTS, RoomID: rep.RoomID, EventID: rep.EventID,
			UserID: rep.Reporter, Sender: rep.TargetUser, Reason: rep.Reason, Score: rep.Score}
	}
	resp := map[string]any{"event_reports": out, "total": total}
	if next := from + len(rs); next < total {
		resp["next_token"] = next
	}
	writeJSON(w, 200, resp)
	return nil
}
