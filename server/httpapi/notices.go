package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"

	"maunium.net/go/mautrix/id"

	"fyr/server/notices"
)

// noticeRoutes serve Synapse's admin API for server notices, which admin tools and
// Complement call: POST sends a notice, PUT with a transaction ID sends it once.
func (a *API) noticeRoutes() {
	if a.notices == nil {
		return
	}
	a.handle("POST /_synapse/admin/v1/send_server_notice", a.authed(a.userLimited(a.sendServerNotice)))
	a.handle("PUT /_synapse/admin/v1/send_server_notice/{txnID}", a.authed(a.userLimited(a.sendServerNotice)))
}

// serverNoticeRequest is the body of send_server_notice. Type defaults to m.room.message; a
// state_key makes the notice a state event.
type serverNoticeRequest struct {
	UserID   *string         `json:"user_id"`
	Content  json.RawMessage `json:"content"`
	Type     *string         `json:"type"`
	StateKey *string         `json:"state_key"`
}

// sendServerNotice is POST /_synapse/admin/v1/send_server_notice and its PUT …/{txnId}, as
// Synapse serves them: a server admin sends a notice to a local user, who finds it in their
// server notices room. See https://element-hq.github.io/synapse/latest/admin_api/server_notices.html
func (a *API) sendServerNotice(w http.ResponseWriter, r *http.Request) error {
	c := caller(r)
	if !c.Admin {
		return errForbidden("only server admins may send server notices")
	}
	var req serverNoticeRequest
	if err := a.decode(w, r, &req, false); err != nil {
		return err
	}
	if req.UserID == nil {
		return errMissingParam("user_id")
	}
	if len(req.Content) == 0 || bytes.Equal(req.Content, []byte("null")) {
		return errMissingParam("content")
	}
	typ := "m.room.message"
	if req.Type != nil {
		typ = *req.Type
	}
	var txn notices.TxnKey
	if t := r.PathValue("txnID"); t != "" {
		txn = notices.TxnKey{Admin: c.UserID, Device: c.DeviceID, ID: t}
	}
	eventID, err := a.notices.Send(r.Context(), id.UserID(*req.UserID), typ, req.Content, req.StateKey, txn)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"event_id": eventID})
	return nil
}
