package inbound

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/federation/transport"
	"fyr/server/rooms"
	"fyr/storage"
)

// maxMembershipBody bounds a membership event sent to us (the PDU limit plus headroom).
const maxMembershipBody = 2 * rooms.MaxPDUBytes

// Rooms serves the federation endpoints that read and join this server's rooms. Every
// route needs transport.Verifier in front of it: the origin comes from the context.
type Rooms struct {
	Engine *rooms.Engine
	Log    *slog.Logger
	// UserExists says whether a local user exists (invites to unknown users are refused).
	UserExists func(id.UserID) bool
}

// Routes registers the endpoints on mux, each behind authenticate.
func (h *Rooms) Routes(mux *http.ServeMux, authenticate func(http.Handler) http.Handler) {
	route := func(pattern string, f func(w http.ResponseWriter, r *http.Request, origin string) error) {
		mux.Handle(pattern, authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			origin := transport.Origin(r.Context())
			// A room's server ACL shuts banned servers out of every room endpoint.
			if room := r.PathValue("roomID"); room != "" && !h.Engine.ServerAllowed(r.Context(), id.RoomID(room), origin) {
				writeError(w, 403, "M_FORBIDDEN", "the room's server ACL bans "+origin)
				return
			}
			if err := f(w, r, origin); err != nil {
				h.fail(w, r, err)
			}
		})))
	}
	const v1, v2 = "/_matrix/federation/v1", "/_matrix/federation/v2"
	for _, m := range []string{"join", "leave", "knock"} {
		route("GET "+v1+"/make_"+m+"/{roomID}/{userID}", h.makeMembership(m))
	}
	route("PUT "+v2+"/send_join/{roomID}/{eventID}", h.sendMembership("join", false))
	route("PUT "+v1+"/send_join/{roomID}/{eventID}", h.sendMembership("join", true))
	route("PUT "+v2+"/send_leave/{roomID}/{eventID}", h.sendMembership("leave", false))
	route("PUT "+v1+"/send_leave/{roomID}/{eventID}", h.sendMembership("leave", true))
	route("PUT "+v1+"/send_knock/{roomID}/{eventID}", h.sendMembership("knock", false))
	route("GET "+v1+"/event/{eventID}", h.event)
	route("GET "+v1+"/state/{roomID}", h.state(false))
	route("GET "+v1+"/state_ids/{roomID}", h.state(true))
	route("GET "+v1+"/event_auth/{roomID}/{eventID}", h.eventAuth)
	route("GET "+v1+"/backfill/{roomID}", h.backfill)
	route("GET "+v1+"/timestamp_to_event/{roomID}", h.timestampToEvent)
	route("POST "+v1+"/get_missing_events/{roomID}", h.missingEvents)
	route("GET "+v1+"/query/directory", h.queryDirectory)
	route("GET "+v1+"/publicRooms", h.publicRoomsGet)
	route("POST "+v1+"/publicRooms", h.publicRoomsPost)
	route("GET "+v1+"/hierarchy/{roomID}", h.hierarchy)
	route("PUT "+v2+"/invite/{roomID}/{eventID}", h.invite)
}

// invite countersigns an invite for a local user (PUT /v2/invite).
func (h *Rooms) invite(w http.ResponseWriter, r *http.Request, origin string) error {
	var body struct {
		RoomVersion id.RoomVersion    `json:"room_version"`
		Event       json.RawMessage   `json:"event"`
		Stripped    []json.RawMessage `json:"invite_room_state"`
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4*rooms.MaxPDUBytes))
	if err != nil {
		return rooms.ErrTooLarge
	}
	if err := json.Unmarshal(raw, &body); err != nil || len(body.Event) == 0 {
		writeError(w, 400, "M_BAD_JSON", "expected room_version, event and invite_room_state")
		return nil
	}
	if body.RoomVersion == "" {
		body.RoomVersion = id.RoomV1
	}
	signed, err := h.Engine.ReceiveInvite(r.Context(), origin, id.RoomID(r.PathValue("roomID")), id.EventID(r.PathValue("eventID")),
		body.RoomVersion, body.Event, body.Stripped, h.UserExists)
	if err != nil {
		return err
	}
	return respond(w, map[string]any{"event": signed})
}

// queryDirectory resolves one of this server's aliases for another server.
func (h *Rooms) queryDirectory(w http.ResponseWriter, r *http.Request, origin string) error {
	alias := r.URL.Query().Get("room_alias")
	if alias == "" {
		writeError(w, 400, "M_MISSING_PARAM", "room_alias is required")
		return nil
	}
	if !strings.HasSuffix(alias, ":"+h.Engine.ServerName()) {
		writeError(w, 404, "M_NOT_FOUND", "the alias is not on this server")
		return nil
	}
	roomID, servers, err := h.Engine.LookupAlias(r.Context(), alias)
	if err != nil {
		return err
	}
	return respond(w, map[string]any{"room_id": roomID, "servers": servers})
}

// fail maps engine errors to the spec's federation errors.
func (h *Rooms) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code := 500, "M_UNKNOWN"
	switch {
	case errors.Is(err, rooms.ErrNotFound):
		status, code = 404, "M_NOT_FOUND"
	case errors.Is(err, rooms.ErrForbidden), errors.Is(err, rooms.ErrRejected):
		status, code = 403, "M_FORBIDDEN"
	case errors.Is(err, rooms.ErrIncompatibleVersion):
		status, code = 400, "M_INCOMPATIBLE_ROOM_VERSION"
	case errors.Is(err, rooms.ErrBadJSON), errors.Is(err, rooms.ErrBadPDU), errors.Is(err, rooms.ErrInvalidParam):
		status, code = 400, "M_BAD_JSON"
	case errors.Is(err, rooms.ErrBadSig):
		status, code = 403, "M_FORBIDDEN"
	case errors.Is(err, rooms.ErrTooLarge):
		status, code = 413, "M_TOO_LARGE"
	case errors.Is(err, rooms.ErrUnsupportedVersion):
		status, code = 400, "M_UNSUPPORTED_ROOM_VERSION"
	}
	msg := err.Error()
	if status == 500 {
		h.Log.Error("federation request failed", "path", r.URL.Path, "origin", transport.Origin(r.Context()), "err", err)
		msg = "internal server error"
	}
	if code == "M_INCOMPATIBLE_ROOM_VERSION" {
		body, _ := json.Marshal(map[string]string{"errcode": code, "error": msg, "room_version": ""})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
		return
	}
	writeError(w, status, code, msg)
}

func respond(w http.ResponseWriter, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	writeJSON(w, body)
	return nil
}

func (h *Rooms) makeMembership(membership string) func(http.ResponseWriter, *http.Request, string) error {
	return func(w http.ResponseWriter, r *http.Request, origin string) error {
		version, tmpl, err := h.Engine.MakeMembership(r.Context(), origin, id.RoomID(r.PathValue("roomID")),
			id.UserID(r.PathValue("userID")), membership, r.URL.Query()["ver"])
		if err != nil {
			return err
		}
		return respond(w, map[string]any{"room_version": version, "event": tmpl})
	}
}

func (h *Rooms) sendMembership(membership string, v1 bool) func(http.ResponseWriter, *http.Request, string) error {
	return func(w http.ResponseWriter, r *http.Request, origin string) error {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxMembershipBody))
		if err != nil {
			return rooms.ErrTooLarge
		}
		res, err := h.Engine.SendMembership(r.Context(), origin, id.RoomID(r.PathValue("roomID")),
			id.EventID(r.PathValue("eventID")), membership, body)
		if err != nil {
			return err
		}
		var out any = res
		if membership != "join" {
			out = struct{}{}
		}
		if v1 {
			// v1 answered [200, body], a quirk kept for old servers.
			return respond(w, []any{200, out})
		}
		return respond(w, out)
	}
}

func (h *Rooms) event(w http.ResponseWriter, r *http.Request, origin string) error {
	raw, err := h.Engine.RemoteEvent(r.Context(), origin, id.EventID(r.PathValue("eventID")))
	if err != nil {
		return err
	}
	return respond(w, map[string]any{"origin": h.Engine.ServerName(), "origin_server_ts": nowMillis(), "pdus": []json.RawMessage{raw}})
}

func (h *Rooms) state(idsOnly bool) func(http.ResponseWriter, *http.Request, string) error {
	return func(w http.ResponseWriter, r *http.Request, origin string) error {
		eventID := r.URL.Query().Get("event_id")
		if eventID == "" {
			writeError(w, 400, "M_MISSING_PARAM", "event_id is required")
			return nil
		}
		state, chain, err := h.Engine.RemoteState(r.Context(), origin, id.RoomID(r.PathValue("roomID")), id.EventID(eventID))
		if err != nil {
			return err
		}
		if idsOnly {
			return respond(w, map[string]any{"pdu_ids": eventIDs(state), "auth_chain_ids": eventIDs(chain)})
		}
		return respond(w, map[string]any{"pdus": pdusOf(state), "auth_chain": pdusOf(chain)})
	}
}

func (h *Rooms) eventAuth(w http.ResponseWriter, r *http.Request, origin string) error {
	chain, err := h.Engine.RemoteEventAuth(r.Context(), origin, id.RoomID(r.PathValue("roomID")), id.EventID(r.PathValue("eventID")))
	if err != nil {
		return err
	}
	return respond(w, map[string]any{"auth_chain": pdusOf(chain)})
}

func (h *Rooms) backfill(w http.ResponseWriter, r *http.Request, origin string) error {
	q := r.URL.Query()
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit < 1 {
		writeError(w, 400, "M_INVALID_PARAM", "limit must be a positive integer")
		return nil
	}
	var from []id.EventID
	for _, v := range q["v"] {
		from = append(from, id.EventID(v))
	}
	if len(from) == 0 {
		writeError(w, 400, "M_MISSING_PARAM", "v is required")
		return nil
	}
	pdus, err := h.Engine.Backfill(r.Context(), origin, id.RoomID(r.PathValue("roomID")), from, limit)
	if err != nil {
		return err
	}
	return respond(w, map[string]any{"origin": h.Engine.ServerName(), "origin_server_ts": nowMillis(), "pdus": pdus})
}

// timestampToEvent answers GET /timestamp_to_event: the event nearest ts in direction dir.
func (h *Rooms) timestampToEvent(w http.ResponseWriter, r *http.Request, origin string) error {
	q := r.URL.Query()
	ts, err := strconv.ParseInt(q.Get("ts"), 10, 64)
	if err != nil || ts < 0 {
		writeError(w, 400, "M_INVALID_PARAM", "ts must be a timestamp in milliseconds")
		return nil
	}
	var backwards bool
	switch q.Get("dir") {
	case "b":
		backwards = true
	case "f":
	default:
		writeError(w, 400, "M_INVALID_PARAM", "dir must be f or b")
		return nil
	}
	ev, err := h.Engine.RemoteTimestampToEvent(r.Context(), origin, id.RoomID(r.PathValue("roomID")), ts, backwards)
	if err != nil {
		return err
	}
	return respond(w, ev)
}

func (h *Rooms) missingEvents(w http.ResponseWriter, r *http.Request, origin string) error {
	var body struct {
		Earliest []id.EventID `json:"earliest_events"`
		Latest   []id.EventID `json:"latest_events"`
		Limit    int          `json:"limit"`
		MinDepth int64        `json:"min_depth"`
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil || json.Unmarshal(raw, &body) != nil {
		writeError(w, 400, "M_BAD_JSON", "expected earliest_events, latest_events, limit and min_depth")
		return nil
	}
	if body.Limit == 0 {
		body.Limit = 10
	}
	pdus, err := h.Engine.MissingEvents(r.Context(), origin, id.RoomID(r.PathValue("roomID")), body.Earliest, body.Latest, body.Limit, body.MinDepth)
	if err != nil {
		return err
	}
	return respond(w, map[string]any{"events": pdus})
}

func eventIDs(evs []*storage.Event) []string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

func pdusOf(evs []*storage.Event) []json.RawMessage {
	out := make([]json.RawMessage, 0, len(evs))
	for _, e := range evs {
		out = append(out, json.RawMessage(e.JSON))
	}
	return out
}

func nowMillis() int64 { return time.Now().UnixMilli() }
