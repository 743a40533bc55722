package httpapi

import (
	"net/http"
	"strconv"
	"strings"

	"maunium.net/go/mautrix/id"

	"fyr/server/accounts"
	"fyr/server/rooms"
)

func init() {
	// Clients look for these before using the endpoints' unstable paths.
	unstableFeatures["uk.half-shot.msc2666.query_mutual_rooms"] = true
	unstableFeatures["im.nheko.summary"] = true
}

// directoryRoutes are the room directory (aliases and the published room list), room
// summaries, space hierarchies, room upgrades and mutual rooms.
func (a *API) directoryRoutes() {
	a.client("GET /directory/room/{roomAlias}", a.getAlias)
	a.client("PUT /directory/room/{roomAlias}", a.authed(a.putAlias))
	a.client("DELETE /directory/room/{roomAlias}", a.authed(a.deleteAlias))
	a.client("GET /rooms/{roomID}/aliases", a.authed(a.roomAliases))

	a.client("GET /directory/list/room/{roomID}", a.getVisibility)
	a.client("PUT /directory/list/room/{roomID}", a.authed(a.putVisibility))
	a.client("GET /publicRooms", a.optionalAuth(a.publicRoomsGet))
	a.client("POST /publicRooms", a.authed(a.publicRoomsPost))

	a.handle("GET /_matrix/client/v1/rooms/{roomID}/hierarchy", a.authed(a.hierarchy))
	a.client("POST /rooms/{roomID}/upgrade", a.authed(a.userLimited(a.upgrade)))

	a.handle("GET /_matrix/client/v1/room_summary/{roomIDOrAlias}", a.optionalAuth(a.roomSummary))
	a.handle("GET /_matrix/client/unstable/im.nheko.summary/summary/{roomIDOrAlias}", a.optionalAuth(a.roomSummary))
	a.handle("GET /_matrix/client/unstable/im.nheko.summary/rooms/{roomIDOrAlias}/summary", a.optionalAuth(a.roomSummary))

	a.handle("GET /_matrix/client/v1/mutual_rooms", a.authed(a.mutualRooms))
	a.handle("GET /_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms", a.authed(a.mutualRooms))
}

// optionalAuth wraps a handler that serves anonymous clients too: a request that carries an
// access token is authenticated (and refused when the token is bad); one without is served
// with no caller (see maybeCaller).
func (a *API) optionalAuth(h handlerFunc) handlerFunc {
	authed := a.authed(h)
	return func(w http.ResponseWriter, r *http.Request) error {
		if r.Header.Get("Authorization") == "" && !r.URL.Query().Has("access_token") {
			return h(w, r)
		}
		return authed(w, r)
	}
}

// maybeCaller is the caller of a request wrapped by optionalAuth, or nil when anonymous.
func maybeCaller(r *http.Request) *accounts.Caller {
	c, _ := r.Context().Value(callerKey{}).(*accounts.Caller)
	return c
}

func (a *API) getAlias(w http.ResponseWriter, r *http.Request) error {
	roomID, servers, err := a.rooms.AliasServers(r.Context(), r.PathValue("roomAlias"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"room_id": roomID, "servers": servers})
	return nil
}

func (a *API) putAlias(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		RoomID *id.RoomID `json:"room_id"`
	}
	if err := a.decode(w, r, &body, false); err != nil {
		return err
	}
	if body.RoomID == nil {
		return errMissingParam("room_id")
	}
	if !strings.HasPrefix(string(*body.RoomID), "!") {
		return errInvalidParam("room_id " + strconv.Quote(string(*body.RoomID)) + " is not a room ID")
	}
	c := caller(r)
	if err := a.rooms.CreateAlias(r.Context(), c.UserID, c.Admin, r.PathValue("roomAlias"), *body.RoomID); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

func (a *API) deleteAlias(w http.ResponseWriter, r *http.Request) error {
	c := caller(r)
	if err := a.rooms.DeleteAlias(r.Context(), c.UserID, c.Admin, r.PathValue("roomAlias")); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

func (a *API) roomAliases(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	c := caller(r)
	aliases, err := a.rooms.LocalAliases(r.Context(), c.UserID, c.Admin, roomID)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"aliases": aliases})
	return nil
}

func (a *API) getVisibility(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	v, err := a.rooms.RoomVisibility(r.Context(), roomID)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"visibility": v})
	return nil
}

func (a *API) putVisibility(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	body := struct {
		Visibility string `json:"visibility"`
	}{Visibility: "public"}
	if err := a.decode(w, r, &body, true); err != nil {
		return err
	}
	c := caller(r)
	if err := a.rooms.SetRoomVisibility(r.Context(), c.UserID, c.Admin, roomID, body.Visibility); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

// serverParam reads the server query parameter of /publicRooms.
func serverParam(r *http.Request) (string, error) {
	s := r.URL.Query().Get("server")
	if s != "" && !validServerName(s) {
		return "", errInvalidParam("invalid server name " + strconv.Quote(s))
	}
	return s, nil
}

// validServerName checks the characters of a server name (host, IPv6 literal, optional port).
func validServerName(s string) bool {
	if len(s) > 255 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c)) {
			return false
		}
	}
	return true
}

func (a *API) publicRoomsGet(w http.ResponseWriter, r *http.Request) error {
	server, err := serverParam(r)
	if err != nil {
		return err
	}
	// Anyone may read this server's list; asking another server on someone's behalf needs
	// an account, as in Synapse.
	if server != "" && server != a.rooms.ServerName() && maybeCaller(r) == nil {
		return newErr(http.StatusUnauthorized, "M_MISSING_TOKEN", "listing another server's rooms needs an access token")
	}
	limit, err := intParam(r, "limit", 0)
	if err != nil {
		return err
	}
	resp, err := a.rooms.PublicRooms(r.Context(), rooms.PublicRoomsRequest{Limit: limit, Since: r.URL.Query().Get("since"), Server: server})
	if err != nil {
		return err
	}
	writeJSON(w, 200, resp)
	return nil
}

func (a *API) publicRoomsPost(w http.ResponseWriter, r *http.Request) error {
	server, err := serverParam(r)
	if err != nil {
		return err
	}
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
	if err := a.decode(w, r, &body, true); err != nil {
		return err
	}
	req := rooms.PublicRoomsRequest{Limit: 100, Since: body.Since, Server: server,
		SearchTerm: body.Filter.GenericSearchTerm, ThirdPartyInstanceID: body.ThirdPartyInstanceID}
	if body.Limit != nil {
		if *body.Limit < 0 {
			return errInvalidParam("limit must not be negative")
		}
		req.Limit = *body.Limit
	}
	if len(body.Filter.RoomTypes) > 0 {
		req.RoomTypes = body.Filter.RoomTypes
	}
	if body.IncludeAllNetworks && body.ThirdPartyInstanceID != "" {
		return errInvalidParam("include_all_networks cannot be used with third_party_instance_id")
	}
	resp, err := a.rooms.PublicRooms(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, 200, resp)
	return nil
}

func (a *API) hierarchy(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	req := rooms.HierarchyRequest{MaxDepth: -1, From: q.Get("from")}
	switch q.Get("suggested_only") {
	case "", "false":
	case "true":
		req.SuggestedOnly = true
	default:
		return errInvalidParam("suggested_only must be true or false")
	}
	if q.Has("max_depth") {
		if req.MaxDepth, err = intParam(r, "max_depth", 0); err != nil {
			return err
		}
	}
	if q.Has("limit") {
		if req.Limit, err = intParam(r, "limit", 0); err != nil {
			return err
		}
		if req.Limit == 0 {
			return errInvalidParam("limit must be greater than zero")
		}
	}
	resp, err := a.rooms.Hierarchy(r.Context(), caller(r).UserID, roomID, req)
	if err != nil {
		return err
	}
	writeJSON(w, 200, resp)
	return nil
}

func (a *API) upgrade(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	var body rooms.UpgradeRequest
	if err := a.decode(w, r, &body, false); err != nil {
		return err
	}
	if body.NewVersion == "" {
		return errMissingParam("new_version")
	}
	newID, err := a.rooms.UpgradeRoom(r.Context(), caller(r).UserID, roomID, body)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"replacement_room": newID})
	return nil
}

func (a *API) roomSummary(w http.ResponseWriter, r *http.Request) error {
	roomID, err := a.resolveRoom(r, r.PathValue("roomIDOrAlias"))
	if err != nil {
		return err
	}
	var user id.UserID
	if c := maybeCaller(r); c != nil {
		user = c.UserID
	}
	s, err := a.rooms.Summary(r.Context(), user, roomID)
	if err != nil {
		return err
	}
	writeJSON(w, 200, s)
	return nil
}

func (a *API) mutualRooms(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	users := q["user_id"]
	switch {
	case len(users) == 0:
		return errMissingParam("user_id")
	case len(users) > 1:
		return errInvalidParam("give user_id once")
	}
	resp, err := a.rooms.MutualRooms(r.Context(), caller(r).UserID, id.UserID(users[0]), q.Get("from"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, resp)
	return nil
}
