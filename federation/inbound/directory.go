package inbound

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
)

// publicRoomsGet is GET /_matrix/federation/v1/publicRooms: this server's published rooms,
// the same list its clients get.
// See https://spec.matrix.org/v1.19/server-server-api/#get_matrixfederationv1publicrooms
func (h *Rooms) publicRoomsGet(w http.ResponseWriter, r *http.Request, origin string) error {
	q := r.URL.Query()
	req := rooms.PublicRoomsRequest{Since: q.Get("since"), ThirdPartyInstanceID: q.Get("third_party_instance_id")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			writeError(w, 400, "M_INVALID_PARAM", "limit must be a non-negative integer")
			return nil
		}
		req.Limit = n
	}
	if q.Get("include_all_networks") == "true" && req.ThirdPartyInstanceID != "" {
		writeError(w, 400, "M_INVALID_PARAM", "include_all_networks cannot be used with third_party_instance_id")
		return nil
	}
	return h.publicRooms(w, r, req)
}

// publicRoomsPost is POST /_matrix/federation/v1/publicRooms, with a filter.
// See https://spec.matrix.org/v1.19/server-server-api/#post_matrixfederationv1publicrooms
func (h *Rooms) publicRoomsPost(w http.ResponseWriter, r *http.Request, origin string) error {
	var body struct {
		Limit  *int   `json:"limit"`
		Since  string `json:"since"`
		Filter struct {
			GenericSearchTerm string    `json:"generic_search_term"`
			RoomTypes         []*string `json:"room_types"`
		} `json:"filter"`
		IncludeAllNetworks   bool   `json:"include_all_networks"`
		ThirdPartyInstanceID string `json:"third_party_instance_id"`
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		return rooms.ErrTooLarge
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			writeError(w, 400, "M_BAD_JSON", "expected limit, since, filter, include_all_networks or third_party_instance_id")
			return nil
		}
	}
	req := rooms.PublicRoomsRequest{Since: body.Since, SearchTerm: body.Filter.GenericSearchTerm,
		ThirdPartyInstanceID: body.ThirdPartyInstanceID}
	if body.Limit != nil {
		if *body.Limit < 0 {
			writeError(w, 400, "M_INVALID_PARAM", "limit must not be negative")
			return nil
		}
		req.Limit = *body.Limit
	}
	if len(body.Filter.RoomTypes) > 0 {
		req.RoomTypes = body.Filter.RoomTypes
	}
	if body.IncludeAllNetworks && body.ThirdPartyInstanceID != "" {
		writeError(w, 400, "M_INVALID_PARAM", "include_all_networks cannot be used with third_party_instance_id")
		return nil
	}
	return h.publicRooms(w, r, req)
}

// publicRooms lists this server's own directory: never another server's, as the spec asks.
func (h *Rooms) publicRooms(w http.ResponseWriter, r *http.Request, req rooms.PublicRoomsRequest) error {
	req.Server = h.Engine.ServerName()
	resp, err := h.Engine.PublicRooms(r.Context(), req)
	if err != nil {
		return err
	}
	return respond(w, resp)
}

// hierarchy is GET /_matrix/federation/v1/hierarchy/{roomId}: a space on this server and its
// children, as the asking server may see them.
// See https://spec.matrix.org/v1.19/server-server-api/#get_matrixfederationv1hierarchyroomid
func (h *Rooms) hierarchy(w http.ResponseWriter, r *http.Request, origin string) error {
	var suggested bool
	switch r.URL.Query().Get("suggested_only") {
	case "", "false":
	case "true":
		suggested = true
	default:
		writeError(w, 400, "M_INVALID_PARAM", "suggested_only must be true or false")
		return nil
	}
	resp, err := h.Engine.ServerHierarchy(r.Context(), origin, id.RoomID(r.PathValue("roomID")), suggested)
	if err != nil {
		return err
	}
	return respond(w, resp)
}
