// Package httpapi is the client-server API over HTTP: the route table, authentication,
// JSON decoding and the spec's error responses, CORS, rate limits and request logging.
//
// It is not for business rules: each handler decodes and validates its request, calls an
// engine package (accounts, and later rooms, sync, keys, media …), and encodes the answer.
// Handlers return errors instead of writing them; see Error.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"

	"fyr/server/accounts"
	"fyr/server/config"
	"fyr/server/ephemeral"
	e2ee "fyr/server/keys"
	"fyr/server/media"
	"fyr/server/notices"
	"fyr/server/push"
	"fyr/server/reports"
	"fyr/server/rooms"
	"fyr/server/sync"
	"fyr/server/userdata"
	"fyr/server/userdir"
	"fyr/server/voip"
)

// Engines are the parts of the server the API calls into.
type Engines struct {
	Accounts *accounts.Service
	Media    *media.Service
	VoIP     *voip.Service // nil: /voip/turnServer offers no TURN server
	Rooms    *rooms.Engine
	// UserData serves account data, tags, filters and presence; nil: those routes are absent.
	UserData *userdata.Service
	// Ephemeral, Reports and Directory serve typing, receipts, reports and the user
	// directory; they are used only when Rooms is set.
	Ephemeral *ephemeral.Service
	Reports   *reports.Service
	Directory *userdir.Service
	E2EE      *e2ee.Engine
	// Sync serves /sync; nil: no /sync.
	Sync *sync.Engine
	// Push serves push rules, pushers and notifications; nil: those routes are absent.
	Push *push.Service
	// Notices serves Synapse's send_server_notice admin API; nil: it is absent.
	Notices *notices.Service
}

// API serves the client-server API. Create it with New and serve Handler().
type API struct {
	accounts *accounts.Service
	media    *media.Service
	voip     *voip.Service
	rooms    *rooms.Engine
	userdata *userdata.Service
	e2ee     *e2ee.Engine
	sync     *sync.Engine
	push     *push.Service
	notices  *notices.Service
	cfg      atomic.Pointer[config.Config]
	log      *slog.Logger
	mux      *http.ServeMux
	limits   *limiter

	// updates serves POST /_fyr/admin/v1/update once SetUpdater is called (update.go).
	updates updater

	// the engines of ephemeralRoutes
	ephemeral *ephemeral.Service
	reports   *reports.Service
	directory *userdir.Service
}

// New returns the API for one server. cfg is read on every request, so Reload takes effect
// at once for the settings marked reloadable.
func New(e Engines, cfg *config.Config, log *slog.Logger) *API {
	a := &API{accounts: e.Accounts, media: e.Media, voip: e.VoIP, rooms: e.Rooms, e2ee: e.E2EE, sync: e.Sync,
		ephemeral: e.Ephemeral, reports: e.Reports, directory: e.Directory, log: log, mux: http.NewServeMux(), limits: newLimiter()}
	a.cfg.Store(cfg)
	a.userdata = e.UserData
	a.push = e.Push
	a.notices = e.Notices
	a.routes()
	return a
}

// Reload swaps in a new configuration.
func (a *API) Reload(cfg *config.Config) { a.cfg.Store(cfg) }

// Mount serves h for a path prefix (a pattern ending in "/") behind the API's middleware:
// the server mounts the federation paths here so one listener can carry both.
func (a *API) Mount(prefix string, h http.Handler) { a.mux.Handle(prefix, h) }

// Handler is the whole client API with its middleware.
func (a *API) Handler() http.Handler {
	return a.middleware(http.HandlerFunc(a.dispatch))
}

// Run prunes idle rate-limit state until ctx ends.
func (a *API) Run(ctx context.Context) { a.limits.run(ctx) }

// handlerFunc is a handler that returns its error; serve writes it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle registers a handler for a route pattern.
func (a *API) handle(pattern string, h handlerFunc) {
	a.mux.Handle(pattern, a.serve(h))
}

// serve adapts a handlerFunc: an error is written as the spec's error and recorded for the
// request log.
func (a *API) serve(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			e := writeError(w, err)
			if info := requestInfoFrom(r.Context()); info != nil {
				info.err = e
			}
		}
	})
}

// dispatch routes through the API's mux; see Routed.
func (a *API) dispatch(w http.ResponseWriter, r *http.Request) {
	routed(a.mux, func(w http.ResponseWriter, r *http.Request, e *Error) {
		a.serve(func(http.ResponseWriter, *http.Request) error { return e }).ServeHTTP(w, r)
	}).ServeHTTP(w, r)
}

// Routed serves mux, answering an unknown path with 404 and a known path with the wrong
// method with 405 (and its Allow header), both M_UNRECOGNIZED as the spec asks. The
// federation listener uses it too.
func Routed(mux *http.ServeMux) http.Handler {
	return routed(mux, func(w http.ResponseWriter, _ *http.Request, e *Error) { writeError(w, e) })
}

func routed(mux *http.ServeMux, fail func(http.ResponseWriter, *http.Request, *Error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r) // not h: only ServeHTTP fills in r.PathValue
			return
		}
		// The mux's own 404/405 handler: learn which it is without letting it write.
		probe := &statusProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", probe.header.Get("Allow"))
			fail(w, r, errUnrecognized(405, "method "+r.Method+" is not allowed on "+r.URL.Path))
			return
		}
		fail(w, r, errUnrecognized(404, "unrecognized request: "+r.Method+" "+r.URL.Path))
	})
}

type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(status int)      { p.status = status }
