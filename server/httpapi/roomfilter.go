package httpapi

import (
	"net/http"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
	"fyr/server/userdata"
)

// roomEventFilter parses the filter parameter of /messages and /context: a JSON
// RoomEventFilter. It returns the matcher and whether members are lazy-loaded.
func (a *API) roomEventFilter(r *http.Request, raw string) (rooms.EventMatcher, bool, error) {
	if raw == "" {
		return nil, false, nil
	}
	f, err := userdata.ParseRoomEventFilter([]byte(raw))
	if err != nil {
		return nil, false, err
	}
	match := func(ev *rooms.ClientEvent) bool {
		hasURL := gjson.GetBytes(ev.Content, "url").Exists()
		return f.Match(ev.Type, ev.Sender, ev.RoomID, hasURL)
	}
	return match, f.LazyLoadMembers, nil
}

// ignoredUsers are the users whose events the caller has chosen not to see
// (m.ignored_user_list). The map is shared: read only.
func (a *API) ignoredUsers(r *http.Request) map[id.UserID]bool {
	if a.userdata == nil {
		return nil
	}
	m, err := a.userdata.IgnoredUsers(r.Context(), caller(r).UserID)
	if err != nil {
		a.log.Warn("ignored users unavailable", "err", err)
		return nil
	}
	return m
}
