package transport

import (
	"encoding/json"
	"net/http"

	"maunium.net/go/mautrix/federation"
)

// ServerSoftware is the implementation name GET /_matrix/federation/v1/version reports.
const ServerSoftware = "Fyr"

// VersionHandler serves GET /_matrix/federation/v1/version: {"server": {"name": "Fyr",
// "version": version}}. It needs no authentication.
// See https://spec.matrix.org/v1.19/server-server-api/#get_matrixfederationv1version
func VersionHandler(version string) http.Handler {
	body, _ := json.Marshal(federation.RespServerVersion{Server: federation.ServerVersion{Name: ServerSoftware, Version: version}})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
}
