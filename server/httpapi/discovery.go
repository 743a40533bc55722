package httpapi

import (
	"net/http"
	"strings"
)

// specVersions are the spec versions whose behaviour for the endpoints served here Fyr
// follows. Features outside them that a client probes answer M_UNRECOGNIZED, never a wrong
// success. unstableFeatures lists only MSCs that are implemented end to end: none yet.
var (
	specVersions = []string{
		"v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10",
		"v1.11", "v1.12", "v1.13", "v1.14", "v1.15", "v1.16", "v1.17", "v1.18", "v1.19",
	}
	unstableFeatures = map[string]bool{}
)

// versions is GET /_matrix/client/versions. See
// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientversions
func (a *API) versions(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, 200, map[string]any{"versions": specVersions, "unstable_features": unstableFeatures})
	return nil
}

// roomVersions are the versions this server creates, joins and reads: 1 to 12, all stable
// as the spec and Synapse list them. New rooms default to 12.
var roomVersions = map[string]string{
	"1": "stable", "2": "stable", "3": "stable", "4": "stable", "5": "stable", "6": "stable",
	"7": "stable", "8": "stable", "9": "stable", "10": "stable", "11": "stable", "12": "stable",
}

const defaultRoomVersion = "12"

// capabilities is GET /_matrix/client/v3/capabilities.
func (a *API) capabilities(w http.ResponseWriter, r *http.Request) error {
	enabled := func(b bool) map[string]bool { return map[string]bool{"enabled": b} }
	writeJSON(w, 200, map[string]any{"capabilities": map[string]any{
		"m.change_password": enabled(true),
		"m.room_versions":   map[string]any{"default": defaultRoomVersion, "available": roomVersions},
		"m.set_displayname": enabled(true),
		"m.set_avatar_url":  enabled(true),
		"m.3pid_changes":    enabled(false),
		"m.get_login_token": enabled(false),
		"m.profile_fields":  enabled(true),
	}})
	return nil
}

// wellKnownClient is GET /.well-known/matrix/client: where clients find the client API.
func (a *API) wellKnownClient(w http.ResponseWriter, r *http.Request) error {
	base := a.cfg.Load().Client.PublicURL
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	writeJSON(w, 200, map[string]any{"m.homeserver": map[string]string{"base_url": strings.TrimSuffix(base, "/")}})
	return nil
}

// wellKnownServer is GET /.well-known/matrix/server: federation delegation, when configured.
func (a *API) wellKnownServer(w http.ResponseWriter, r *http.Request) error {
	target := a.cfg.Load().Federation.WellKnown
	if target == "" {
		return errNotFound("no federation delegation is configured")
	}
	writeJSON(w, 200, map[string]string{"m.server": target})
	return nil
}
