package httpapi

import (
	"net/http"

	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
)

// searchRoutes is server-side search.
// See https://spec.matrix.org/v1.19/client-server-api/#server-side-search
func (a *API) searchRoutes() {
	a.client("POST /search", a.authed(a.search))
}

// searchBody is POST /search's body. Categories other than room_events are ignored.
type searchBody struct {
	SearchCategories *struct {
		RoomEvents *roomEventsCriteria `json:"room_events"`
	} `json:"search_categories"`
}

type roomEventsCriteria struct {
	SearchTerm   *string           `json:"search_term"`
	Keys         []string          `json:"keys"`
	Filter       *searchFilterJSON `json:"filter"`
	OrderBy      string            `json:"order_by"`
	EventContext *struct {
		BeforeLimit    *int `json:"before_limit"`
		AfterLimit     *int `json:"after_limit"`
		IncludeProfile bool `json:"include_profile"`
	} `json:"event_context"`
	IncludeState bool `json:"include_state"`
	Groupings    struct {
		GroupBy []struct {
			Key string `json:"key"`
		} `json:"group_by"`
	} `json:"groupings"`
}

// searchFilterJSON is the room event filter as search reads it.
type searchFilterJSON struct {
	Rooms       []id.RoomID `json:"rooms"`
	NotRooms    []id.RoomID `json:"not_rooms"`
	Types       []string    `json:"types"`
	NotTypes    []string    `json:"not_types"`
	Senders     []id.UserID `json:"senders"`
	NotSenders  []id.UserID `json:"not_senders"`
	ContainsURL *bool       `json:"contains_url"`
	Limit       int         `json:"limit"`
}

func (a *API) search(w http.ResponseWriter, r *http.Request) error {
	var body searchBody
	if err := a.decode(w, r, &body, false); err != nil {
		return err
	}
	if body.SearchCategories == nil {
		return errMissingParam("search_categories")
	}
	crit := body.SearchCategories.RoomEvents
	if crit == nil {
		writeJSON(w, 200, map[string]any{"search_categories": map[string]any{}})
		return nil
	}
	if crit.SearchTerm == nil {
		return errMissingParam("search_categories.room_events.search_term")
	}
	req := rooms.SearchRequest{
		Term:         *crit.SearchTerm,
		Keys:         crit.Keys,
		OrderBy:      crit.OrderBy,
		IncludeState: crit.IncludeState,
		NextBatch:    r.URL.Query().Get("next_batch"),
		Ignored:      a.ignoredUsers(r),
	}
	if f := crit.Filter; f != nil {
		req.Filter = rooms.SearchFilter{Rooms: f.Rooms, NotRooms: f.NotRooms, Types: f.Types, NotTypes: f.NotTypes,
			Senders: f.Senders, NotSenders: f.NotSenders, ContainsURL: f.ContainsURL, Limit: f.Limit}
	}
	if c := crit.EventContext; c != nil {
		req.Context = &rooms.SearchContextRequest{BeforeLimit: rooms.DefaultContextLimit, AfterLimit: rooms.DefaultContextLimit,
			IncludeProfile: c.IncludeProfile}
		if c.BeforeLimit != nil {
			req.Context.BeforeLimit = *c.BeforeLimit
		}
		if c.AfterLimit != nil {
			req.Context.AfterLimit = *c.AfterLimit
		}
	}
	for _, g := range crit.Groupings.GroupBy {
		req.GroupBy = append(req.GroupBy, g.Key)
	}
	resp, err := a.rooms.Search(r.Context(), viewer(r), req)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"search_categories": map[string]any{"room_events": resp}})
	return nil
}
