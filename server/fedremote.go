package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"maunium.net/go/mautrix/id"

	"fyr/federation/transport"
	"fyr/server/rooms"
)

// fedRemote lets the rooms engine fetch events and state from other servers.
type fedRemote struct{ c *transport.Client }

func (f fedRemote) Event(ctx context.Context, server string, eventID id.EventID) (json.RawMessage, error) {
	var resp struct {
		PDUs []json.RawMessage `json:"pdus"`
	}
	if err := f.c.Do(ctx, server, "GET", "/_matrix/federation/v1/event/"+url.PathEscape(string(eventID)), nil, &resp); err != nil {
		return nil, err
	}
	if len(resp.PDUs) != 1 {
		return nil, fmt.Errorf("%s answered /event/%s with %d PDUs", server, eventID, len(resp.PDUs))
	}
	return resp.PDUs[0], nil
}

func (f fedRemote) MissingEvents(ctx context.Context, server string, roomID id.RoomID, earliest, latest []id.EventID, limit int, minDepth int64) ([]json.RawMessage, error) {
	req := map[string]any{"earliest_events": earliest, "latest_events": latest, "limit": limit, "min_depth": minDepth}
	var resp struct {
		Events []json.RawMessage `json:"events"`
	}
	err := f.c.Do(ctx, server, "POST", "/_matrix/federation/v1/get_missing_events/"+url.PathEscape(string(roomID)), req, &resp)
	return resp.Events, err
}

func (f fedRemote) StateIDs(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) (state, authChain []id.EventID, err error) {
	var resp struct {
		PDUIDs       []id.EventID `json:"pdu_ids"`
		AuthChainIDs []id.EventID `json:"auth_chain_ids"`
	}
	err = f.c.Do(ctx, server, "GET", "/_matrix/federation/v1/state_ids/"+url.PathEscape(string(roomID))+"?event_id="+url.QueryEscape(string(eventID)), nil, &resp)
	return resp.PDUIDs, resp.AuthChainIDs, err
}

func (f fedRemote) MakeMembership(ctx context.Context, server, membership string, roomID id.RoomID, user id.UserID, versions []string) (id.RoomVersion, json.RawMessage, error) {
	q := url.Values{}
	if membership != "leave" {
		q["ver"] = versions
	}
	path := "/_matrix/federation/v1/make_" + membership + "/" + url.PathEscape(string(roomID)) + "/" + url.PathEscape(string(user))
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var resp struct {
		RoomVersion id.RoomVersion  `json:"room_version"`
		Event       json.RawMessage `json:"event"`
	}
	if err := f.c.Do(ctx, server, "GET", path, nil, &resp); err != nil {
		return "", nil, remoteErr(err)
	}
	if resp.RoomVersion == "" {
		resp.RoomVersion = id.RoomV1
	}
	return resp.RoomVersion, resp.Event, nil
}

func (f fedRemote) SendMembership(ctx context.Context, server, membership string, roomID id.RoomID, eventID id.EventID, event json.RawMessage) (*rooms.SendJoinResult, error) {
	version := "v2"
	if membership == "knock" {
		version = "v1"
	}
	path := "/_matrix/federation/" + version + "/send_" + membership + "/" + url.PathEscape(string(roomID)) + "/" + url.PathEscape(string(eventID))
	var res rooms.SendJoinResult
	if err := f.c.Do(ctx, server, "PUT", path, event, &res); err != nil {
		return nil, remoteErr(err)
	}
	return &res, nil
}

// QueryAlias asks an alias's server which room it names (GET /query/directory).
func (f fedRemote) QueryAlias(ctx context.Context, server, alias string) (id.RoomID, []string, error) {
	var resp struct {
		RoomID  id.RoomID `json:"room_id"`
		Servers []string  `json:"servers"`
	}
	err := f.c.Do(ctx, server, "GET", "/_matrix/federation/v1/query/directory?room_alias="+url.QueryEscape(alias), nil, &resp)
	if err != nil {
		return "", nil, remoteErr(err)
	}
	return resp.RoomID, resp.Servers, nil
}

// remoteErr turns another server's refusal into the engine's errors.
func remoteErr(err error) error {
	var re *transport.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case 403:
			return fmt.Errorf("%w: %v", rooms.ErrForbidden, err)
		case 404:
			return fmt.Errorf("%w: %v", rooms.ErrNotFound, err)
		}
		if re.StatusCode >= 400 && re.StatusCode < 500 {
			return &rooms.RemoteError{Server: re.Destination, Status: re.StatusCode, Code: re.ErrCode, Message: re.Message, Err: err}
		}
	}
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	// The other server failed or could not be reached: the client's request was fine, so it
	// is a bad gateway (502), not an internal error.
	return fmt.Errorf("%w: %w", rooms.ErrRemote, err)
}

func (f fedRemote) Invite(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID, version id.RoomVersion, event json.RawMessage, stripped []json.RawMessage) (json.RawMessage, error) {
	body := map[string]any{"room_version": version, "event": event, "invite_room_state": stripped}
	var resp struct {
		Event json.RawMessage `json:"event"`
	}
	path := "/_matrix/federation/v2/invite/" + url.PathEscape(string(roomID)) + "/" + url.PathEscape(string(eventID))
	if err := f.c.Do(ctx, server, "PUT", path, body, &resp); err != nil {
		return nil, remoteErr(err)
	}
	return resp.Event, nil
}

func (f fedRemote) Backfill(ctx context.Context, server string, roomID id.RoomID, from []id.EventID, limit int) ([]json.RawMessage, error) {
	q := url.Values{"limit": {fmt.Sprint(limit)}}
	for _, x := range from {
		q.Add("v", string(x))
	}
	var resp struct {
		PDUs []json.RawMessage `json:"pdus"`
	}
	err := f.c.Do(ctx, server, "GET", "/_matrix/federation/v1/backfill/"+url.PathEscape(string(roomID))+"?"+q.Encode(), nil, &resp)
	return resp.PDUs, remoteErr(err)
}

// TimestampToEvent asks server for the event nearest ts (GET /timestamp_to_event).
func (f fedRemote) TimestampToEvent(ctx context.Context, server string, roomID id.RoomID, ts int64, backwards bool) (*rooms.TimestampEvent, error) {
	dir := "f"
	if backwards {
		dir = "b"
	}
	q := url.Values{"ts": {fmt.Sprint(ts)}, "dir": {dir}}
	var resp rooms.TimestampEvent
	err := f.c.Do(ctx, server, "GET", "/_matrix/federation/v1/timestamp_to_event/"+url.PathEscape(string(roomID))+"?"+q.Encode(), nil, &resp)
	if err != nil {
		return nil, remoteErr(err)
	}
	if !strings.HasPrefix(string(resp.EventID), "$") {
		return nil, fmt.Errorf("%w: %s answered timestamp_to_event without an event ID", rooms.ErrRemote, server)
	}
	return &resp, nil
}

// PublicRooms asks server for its published room directory: GET /publicRooms, or POST when
// the request filters, as Synapse does.
func (f fedRemote) PublicRooms(ctx context.Context, server string, req rooms.PublicRoomsRequest) (*rooms.PublicRoomsResponse, error) {
	const path = "/_matrix/federation/v1/publicRooms"
	var resp rooms.PublicRoomsResponse
	if req.SearchTerm == "" && req.RoomTypes == nil && req.ThirdPartyInstanceID == "" {
		q := url.Values{}
		if req.Limit > 0 {
			q.Set("limit", fmt.Sprint(req.Limit))
		}
		if req.Since != "" {
			q.Set("since", req.Since)
		}
		p := path
		if len(q) > 0 {
			p += "?" + q.Encode()
		}
		if err := f.c.Do(ctx, server, "GET", p, nil, &resp); err != nil {
			return nil, err
		}
		return &resp, nil
	}
	body := map[string]any{}
	if req.Limit > 0 {
		body["limit"] = req.Limit
	}
	if req.Since != "" {
		body["since"] = req.Since
	}
	filter := map[string]any{}
	if req.SearchTerm != "" {
		filter["generic_search_term"] = req.SearchTerm
	}
	if req.RoomTypes != nil {
		filter["room_types"] = req.RoomTypes
	}
	body["filter"] = filter
	if req.ThirdPartyInstanceID != "" {
		body["third_party_instance_id"] = req.ThirdPartyInstanceID
	}
	if err := f.c.Do(ctx, server, "POST", path, body, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Hierarchy asks server for a space and its children (GET /hierarchy/{roomId}).
func (f fedRemote) Hierarchy(ctx context.Context, server string, roomID id.RoomID, suggestedOnly bool) (*rooms.SpaceHierarchy, error) {
	path := "/_matrix/federation/v1/hierarchy/" + url.PathEscape(string(roomID))
	if suggestedOnly {
		path += "?suggested_only=true"
	}
	var resp rooms.SpaceHierarchy
	if err := f.c.Do(ctx, server, "GET", path, nil, &resp); err != nil {
		return nil, remoteErr(err)
	}
	return &resp, nil
}
