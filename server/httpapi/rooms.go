package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
)

// roomRoutes are the room endpoints: creation, membership, sending, state and reading.
func (a *API) roomRoutes() {
	a.client("POST /createRoom", a.authed(a.userLimited(a.createRoom)))
	a.client("POST /join/{roomIDOrAlias}", a.authed(a.joinRoomOrAlias))
	a.client("POST /rooms/{roomID}/join", a.authed(a.joinRoom))
	a.client("POST /knock/{roomIDOrAlias}", a.authed(a.knock))
	a.client("POST /rooms/{roomID}/invite", a.authed(a.memberChange(a.rooms.Invite)))
	a.client("POST /rooms/{roomID}/kick", a.authed(a.memberChange(a.rooms.Kick)))
	a.client("POST /rooms/{roomID}/ban", a.authed(a.memberChange(a.rooms.Ban)))
	a.client("POST /rooms/{roomID}/unban", a.authed(a.memberChange(a.rooms.Unban)))
	a.client("POST /rooms/{roomID}/leave", a.authed(a.leave))
	a.client("POST /rooms/{roomID}/forget", a.authed(a.forget))
	a.client("GET /joined_rooms", a.authed(a.joinedRooms))

	a.client("PUT /rooms/{roomID}/send/{eventType}/{txnID}", a.authed(a.userLimited(a.send)))
	a.client("PUT /rooms/{roomID}/state/{eventType}", a.authed(a.userLimited(a.putState)))
	a.client("PUT /rooms/{roomID}/state/{eventType}/{stateKey...}", a.authed(a.userLimited(a.putState)))
	a.client("PUT /rooms/{roomID}/redact/{eventID}/{txnID}", a.authed(a.userLimited(a.redact)))

	a.client("GET /rooms/{roomID}/state", a.authed(a.getState))
	a.client("GET /rooms/{roomID}/state/{eventType}", a.authed(a.getStateEvent))
	a.client("GET /rooms/{roomID}/state/{eventType}/{stateKey...}", a.authed(a.getStateEvent))
	a.client("GET /rooms/{roomID}/members", a.authed(a.members))
	a.client("GET /rooms/{roomID}/joined_members", a.authed(a.joinedMembers))
	a.client("GET /rooms/{roomID}/messages", a.authed(a.messages))
	a.client("GET /rooms/{roomID}/event/{eventID}", a.authed(a.event))
	a.client("GET /rooms/{roomID}/context/{eventID}", a.authed(a.context))
}

func viewer(r *http.Request) rooms.Viewer {
	c := caller(r)
	return rooms.Viewer{User: c.UserID, Device: c.DeviceID}
}

// roomIDParam validates the {roomID} path parameter.
func roomIDParam(r *http.Request) (id.RoomID, error) {
	s := r.PathValue("roomID")
	if !strings.HasPrefix(s, "!") || len(s) < 2 || len(s) > 255 {
		return "", errInvalidParam("room ID " + strconv.Quote(s) + " is not valid")
	}
	return id.RoomID(s), nil
}

func (a *API) createRoom(w http.ResponseWriter, r *http.Request) error {
	var req rooms.CreateRequest
	if err := a.decode(w, r, &req, true); err != nil {
		return err
	}
	roomID, err := a.rooms.CreateRoom(r.Context(), caller(r).UserID, &req)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"room_id": roomID})
	return nil
}

// joinBody is the body of the join and knock endpoints.
type joinBody struct {
	Reason string `json:"reason"`
}

func (a *API) joinRoomOrAlias(w http.ResponseWriter, r *http.Request) error {
	roomID, via, err := a.roomAndVia(r)
	if err != nil {
		return err
	}
	return a.doJoin(w, r, roomID, via)
}

// roomAndVia reads the {roomIDOrAlias} of the join and knock endpoints and their via (and
// deprecated server_name) parameters: an alias, if need be asked of its own server, adds
// the servers it names to those to ask.
func (a *API) roomAndVia(r *http.Request) (id.RoomID, []string, error) {
	target := r.PathValue("roomIDOrAlias")
	via := append(r.URL.Query()["via"], r.URL.Query()["server_name"]...)
	switch {
	case strings.HasPrefix(target, "!"):
		return id.RoomID(target), via, nil
	case strings.HasPrefix(target, "#"):
		roomID, servers, err := a.rooms.LookupAlias(r.Context(), target)
		if err != nil {
			return "", nil, err
		}
		return roomID, append(via, servers...), nil
	}
	return "", nil, errInvalidParam(strconv.Quote(target) + " is neither a room ID nor a room alias")
}

func (a *API) joinRoom(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	return a.doJoin(w, r, roomID, nil)
}

func (a *API) doJoin(w http.ResponseWriter, r *http.Request, roomID id.RoomID, via []string) error {
	var body map[string]json.RawMessage
	if err := a.decode(w, r, &body, true); err != nil {
		return err
	}
	var reason string
	if raw, ok := body["reason"]; ok {
		if err := json.Unmarshal(raw, &reason); err != nil {
			return errBadJSON("reason must be a string")
		}
	}
	// Extra keys ride along on the join event (clients put profile overrides there), except
	// those the server decides.
	extra := map[string]json.RawMessage{}
	for k, v := range body {
		switch k {
		case "membership", "reason", "join_authorised_via_users_server", "third_party_signed":
		default:
			extra[k] = v
		}
	}
	joined, err := a.rooms.JoinVia(r.Context(), caller(r).UserID, roomID, via, reason, extra)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"room_id": joined})
	return nil
}

// resolveRoom turns "!room" or "#alias" into a room ID.
func (a *API) resolveRoom(r *http.Request, target string) (id.RoomID, error) {
	switch {
	case strings.HasPrefix(target, "!"):
		return id.RoomID(target), nil
	case strings.HasPrefix(target, "#"):
		return a.rooms.ResolveAlias(r.Context(), target)
	}
	return "", errInvalidParam(strconv.Quote(target) + " is neither a room ID nor a room alias")
}

func (a *API) knock(w http.ResponseWriter, r *http.Request) error {
	roomID, via, err := a.roomAndVia(r)
	if err != nil {
		return err
	}
	var body joinBody
	if err := a.decode(w, r, &body, true); err != nil {
		return err
	}
	got, err := a.rooms.Knock(r.Context(), caller(r).UserID, roomID, body.Reason, via...)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"room_id": got})
	return nil
}

// memberChange serves invite, kick, ban and unban: {"user_id": …, "reason": …}.
func (a *API) memberChange(op func(ctx context.Context, sender id.UserID, roomID id.RoomID, c rooms.MemberChange) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		roomID, err := roomIDParam(r)
		if err != nil {
			return err
		}
		var body struct {
			UserID *id.UserID `json:"user_id"`
			Reason string     `json:"reason"`
		}
		if err := a.decode(w, r, &body, false); err != nil {
			return err
		}
		if body.UserID == nil {
			return errMissingParam("user_id")
		}
		if err := op(r.Context(), caller(r).UserID, roomID, rooms.MemberChange{Target: *body.UserID, Reason: body.Reason}); err != nil {
			return err
		}
		writeJSON(w, 200, struct{}{})
		return nil
	}
}

func (a *API) leave(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	var body joinBody
	if err := a.decode(w, r, &body, true); err != nil {
		return err
	}
	if err := a.rooms.Leave(r.Context(), caller(r).UserID, roomID, body.Reason); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

func (a *API) forget(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	if err := a.rooms.Forget(r.Context(), caller(r).UserID, roomID); err != nil {
		return err
	}
	writeJSON(w, 200, struct{}{})
	return nil
}

func (a *API) joinedRooms(w http.ResponseWriter, r *http.Request) error {
	rs, err := a.rooms.JoinedRooms(r.Context(), caller(r).UserID)
	if err != nil {
		return err
	}
	if rs == nil {
		rs = []id.RoomID{}
	}
	writeJSON(w, 200, map[string]any{"joined_rooms": rs})
	return nil
}

// eventBody reads an event's content: any JSON object.
func (a *API) eventBody(w http.ResponseWriter, r *http.Request) (json.RawMessage, error) {
	body, err := a.readBody(w, r)
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := decodeBytes(body, &obj); err != nil {
		return nil, err
	}
	return body, nil
}

// send is PUT /send: a message event, idempotent per transaction ID.
func (a *API) send(w http.ResponseWriter, r *http.Request) error {
	return a.sendEvent(w, r, func(roomID id.RoomID, content json.RawMessage) (id.EventID, error) {
		return a.rooms.Send(r.Context(), viewer(r), roomID, r.PathValue("eventType"), r.PathValue("txnID"), content)
	})
}

// putState is PUT /state: a state event.
func (a *API) putState(w http.ResponseWriter, r *http.Request) error {
	return a.sendEvent(w, r, func(roomID id.RoomID, content json.RawMessage) (id.EventID, error) {
		return a.rooms.SendState(r.Context(), viewer(r), roomID, r.PathValue("eventType"), r.PathValue("stateKey"), content)
	})
}

// sendEvent reads the room and the event content, sends, and answers the event ID.
func (a *API) sendEvent(w http.ResponseWriter, r *http.Request, send func(id.RoomID, json.RawMessage) (id.EventID, error)) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	content, err := a.eventBody(w, r)
	if err != nil {
		return err
	}
	eventID, err := send(roomID, content)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"event_id": eventID})
	return nil
}

func (a *API) redact(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	var body struct {
		Reason *string `json:"reason"`
	}
	if err := a.decode(w, r, &body, true); err != nil {
		return err
	}
	content := json.RawMessage(`{}`)
	if body.Reason != nil {
		content, _ = json.Marshal(map[string]string{"reason": *body.Reason})
	}
	eventID, err := a.rooms.Redact(r.Context(), viewer(r), roomID, id.EventID(r.PathValue("eventID")), r.PathValue("txnID"), content)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"event_id": eventID})
	return nil
}

func (a *API) getState(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	evs, err := a.rooms.State(r.Context(), viewer(r), roomID)
	if err != nil {
		return err
	}
	writeJSON(w, 200, evs)
	return nil
}

func (a *API) getStateEvent(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	ev, err := a.rooms.StateEvent(r.Context(), viewer(r), roomID, r.PathValue("eventType"), r.PathValue("stateKey"))
	if err != nil {
		return err
	}
	if r.URL.Query().Get("format") == "event" {
		writeJSON(w, 200, ev)
		return nil
	}
	writeJSON(w, 200, ev.Content)
	return nil
}

func (a *API) members(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	evs, err := a.rooms.Members(r.Context(), viewer(r), roomID, rooms.MembersFilter{
		At: q.Get("at"), Membership: q.Get("membership"), NotMembership: q.Get("not_membership")})
	if err != nil {
		return err
	}
	if evs == nil {
		evs = []*rooms.ClientEvent{}
	}
	writeJSON(w, 200, map[string]any{"chunk": evs})
	return nil
}

func (a *API) joinedMembers(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	m, err := a.rooms.JoinedMembers(r.Context(), caller(r).UserID, roomID)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"joined": m})
	return nil
}

// intParam reads an optional non-negative integer query parameter.
func intParam(r *http.Request, name string, def int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, errInvalidParam(name + " must be a non-negative integer")
	}
	return n, nil
}

func (a *API) messages(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	req := rooms.MessagesRequest{From: q.Get("from"), To: q.Get("to")}
	switch q.Get("dir") {
	case "b":
		req.Backwards = true
	case "f", "":
		// The spec requires dir; without one Synapse pages forwards, and so do we.
	default:
		return errInvalidParam("dir must be b or f")
	}
	if req.Limit, err = intParam(r, "limit", 10); err != nil {
		return err
	}
	if req.Filter, req.LazyMembers, err = a.roomEventFilter(r, q.Get("filter")); err != nil {
		return err
	}
	req.Ignored = a.ignoredUsers(r)
	resp, err := a.rooms.Messages(r.Context(), viewer(r), roomID, req)
	if err != nil {
		return err
	}
	writeJSON(w, 200, resp)
	return nil
}

func (a *API) event(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	ev, err := a.rooms.Event(r.Context(), viewer(r), roomID, id.EventID(r.PathValue("eventID")))
	if err != nil {
		return err
	}
	writeJSON(w, 200, ev)
	return nil
}

func (a *API) context(w http.ResponseWriter, r *http.Request) error {
	roomID, err := roomIDParam(r)
	if err != nil {
		return err
	}
	limit, err := intParam(r, "limit", 10)
	if err != nil {
		return err
	}
	filter, lazy, err := a.roomEventFilter(r, r.URL.Query().Get("filter"))
	if err != nil {
		return err
	}
	resp, err := a.rooms.Context(r.Context(), viewer(r), roomID, id.EventID(r.PathValue("eventID")), limit, filter, lazy)
	if err != nil {
		return err
	}
	writeJSON(w, 200, resp)
	return nil
}
