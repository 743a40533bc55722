package httpapi

import (
	"net/http"

	"maunium.net/go/mautrix/id"

	"fyr/server/rooms"
)

// roomEventFilter parses a /messages or /context filter (inline JSON or a filter ID).
// The full filter language arrives with the filter endpoints; until then only
// lazy_load_members is honoured and every event matches.
func (a *API) roomEventFilter(r *http.Request, raw string) (rooms.EventMatcher, bool, error) {
	if raw == "" {
		return nil, false, nil
	}
	var f struct {
		LazyLoadMembers bool `json:"lazy_load_members"`
	}
	if raw[0] == '{' {
		if err := decodeBytes([]byte(raw), &f); err != nil {
			return nil, false, errInvalidParam("filter is not a valid filter: " + err.Error())
		}
	}
	return nil, f.LazyLoadMembers, nil
}

// ignoredUsers are the users whose events the caller has chosen not to see.
func (a *API) ignoredUsers(r *http.Request) map[id.UserID]bool { return nil }
