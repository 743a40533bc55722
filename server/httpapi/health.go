package httpapi

import "net/http"

// healthRoutes serve GET /health, as Synapse does: 200 "OK" while the server answers
// requests. The box's supervisor and hardware watchdog probe it every few seconds
// (firmware/supervisor, firmware/watchdog), so its answers are logged at debug level only.
func (a *API) healthRoutes() {
	a.handle("GET /health", a.health)
}

func (a *API) health(w http.ResponseWriter, r *http.Request) error {
	if info := requestInfoFrom(r.Context()); info != nil {
		info.quiet = true
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte("OK"))
	return nil
}
