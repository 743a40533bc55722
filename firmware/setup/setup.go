// Package setup is a Fyr box's first boot: while the server has no admin, a small web page on
// the LAN asks for the server name, the first admin's name and password, and how clients
// should reach the box (TLS mode). Only someone who can read the claim code printed on the
// box's console may submit it. The answers are validated, written to fyr.yaml (through
// firmware/configfile, so the file always loads) and the admin is created with the same
// accounts code as fyr user add; then the page goes away for good.
//
// The package also holds the factory reset (reset.go): a marker file on the boot partition
// that wipes the data partition at the next boot.
//
// It is not the homeserver's own registration (server/accounts) and serves nothing once an
// admin exists.
package setup

import (
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"fyr/firmware/configfile"
)

// TLS modes offered by the page.
const (
	// TLSSelfSigned serves the client API over HTTPS with the certificate fyr serve generates
	// for federation (federation.crt in the data directory); clients must accept it once.
	TLSSelfSigned = "self-signed"
	// TLSCustom serves it with a certificate and key already on the box.
	TLSCustom = "custom"
	// TLSOff serves plain HTTP, for a box behind a reverse proxy that terminates TLS.
	TLSOff = "http"
)

// Files in the data directory that TLSSelfSigned points the client API at: the ones
// fyr serve creates for federation (server.FedCertFile and server.FedKeyFile).
const (
	selfSignedCert = "federation.crt"
	selfSignedKey  = "federation.key"
)

// Password bounds for the first admin.
const (
	MinPasswordLen = 10
	maxPasswordLen = 512 // accounts.MaxPasswordBytes
	maxFormBytes   = 64 << 10
)

// Admins is the account store the page creates the first admin in.
type Admins interface {
	// HasAdmin reports whether an admin exists; the page is then gone.
	HasAdmin(ctx context.Context) (bool, error)
	// CreateAdmin creates the first admin of the server named serverName. A name the
	// server cannot use is a *FieldError.
	CreateAdmin(ctx context.Context, serverName, name, password string) error
}

// FieldError is a form field the operator must correct.
type FieldError struct {
	Field, Msg string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Result is what the operator chose.
type Result struct {
	ServerName string
	Admin      string
	TLSMode    string
}

// Setup serves the first-boot page. Set the fields, then serve it with Serve or as an
// http.Handler; its fields may not change afterwards. It is safe for concurrent use.
type Setup struct {
	// ClaimCode is the code printed on the console (NewClaimCode). Required.
	ClaimCode string
	// ConfigPath is fyr.yaml. Required.
	ConfigPath string
	// DataDir is the data directory, where TLSSelfSigned's certificate lives. Required.
	DataDir string
	// Admins creates the first admin. Required.
	Admins Admins
	// Done is called once, after the page that confirms success has been written.
	Done func(Result)
	// Now tells the time, for the limit on wrong claim codes. Nil: time.Now.
	Now func() time.Time
	// Log receives what happens, without secrets. Nil: slog.Default().
	Log *slog.Logger

	once   sync.Once
	limits *limiter
	// mu lets one submission through at a time; done is set once one succeeded.
	mu   sync.Mutex
	done bool
}

//go:embed page.html
var pageHTML string

var page = template.Must(template.New("setup").Parse(pageHTML))

// form is what the page shows and posts.
type form struct {
	ServerName, Admin, TLSMode, TLSCert, TLSKey string
	// Errors maps a field (or "" for the whole form) to what is wrong with it.
	Errors map[string]string
	// Done: setup succeeded; the page says how to sign in.
	Done bool
}

func (s *Setup) init() {
	s.once.Do(func() {
		s.limits = newLimiter(s.now)
	})
}

func (s *Setup) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Setup) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// ServeHTTP serves GET / (the form) and POST / (its submission); everything else is 404.
func (s *Setup) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.init()
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	has, err := s.Admins.HasAdmin(r.Context())
	if err != nil {
		s.log().Error("setup: cannot tell whether an admin exists", "err", err)
		http.Error(w, "the box cannot read its database; see its console", http.StatusInternalServerError)
		return
	}
	if has {
		http.Error(w, "this box is set up already; sign in with a Matrix client", http.StatusNotFound)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.render(w, http.StatusOK, &form{TLSMode: TLSSelfSigned})
	case http.MethodPost:
		s.submit(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (s *Setup) render(w http.ResponseWriter, status int, f *form) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := page.Execute(w, f); err != nil {
		s.log().Warn("setup: render the page", "err", err)
	}
}

func (s *Setup) submit(w http.ResponseWriter, r *http.Request) {
	ip := clientIP(r)
	if wait := s.limits.blocked(ip); wait > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
		s.render(w, http.StatusTooManyRequests, &form{TLSMode: TLSSelfSigned, Errors: map[string]string{
			"": fmt.Sprintf("Too many wrong claim codes. Try again in %d minutes.", int(wait.Minutes())+1)}})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the form could not be read", http.StatusBadRequest)
		return
	}
	f := &form{
		ServerName: strings.TrimSpace(r.PostForm.Get("server_name")),
		Admin:      strings.TrimSpace(r.PostForm.Get("admin")),
		TLSMode:    r.PostForm.Get("tls_mode"),
		TLSCert:    strings.TrimSpace(r.PostForm.Get("tls_cert")),
		TLSKey:     strings.TrimSpace(r.PostForm.Get("tls_key")),
		Errors:     map[string]string{},
	}
	if !checkClaim(r.PostForm.Get("claim_code"), s.ClaimCode) {
		s.limits.fail(ip)
		s.log().Warn("setup: wrong claim code", "client", ip)
		f.Errors["claim_code"] = "That is not the code on the box's console."
		s.render(w, http.StatusForbidden, f)
		return
	}
	password := r.PostForm.Get("password")
	s.validate(f, password, r.PostForm.Get("password_confirm"))
	if len(f.Errors) > 0 {
		s.render(w, http.StatusBadRequest, f)
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		http.Error(w, "this box is set up already", http.StatusConflict)
		return
	}
	if err := s.apply(r.Context(), f, password); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			f.Errors[fe.Field] = fe.Msg
			s.render(w, http.StatusBadRequest, f)
			return
		}
		s.log().Error("setup: failed", "err", err)
		f.Errors[""] = "Setup failed: " + err.Error()
		s.render(w, http.StatusInternalServerError, f)
		return
	}
	s.done = true
	s.log().Info("setup: done", "server_name", f.ServerName, "admin", f.Admin, "tls", f.TLSMode)
	f.Done = true
	s.render(w, http.StatusOK, f)
	if s.Done != nil {
		s.Done(Result{ServerName: f.ServerName, Admin: f.Admin, TLSMode: f.TLSMode})
	}
}

// validate checks what can be checked before anything is written.
func (s *Setup) validate(f *form, password, confirm string) {
	if f.ServerName == "" {
		f.Errors["server_name"] = "Give the server a name, such as matrix.example.org."
	}
	if f.Admin == "" {
		f.Errors["admin"] = "Give the admin account a name, such as admin."
	}
	switch {
	case len(password) < MinPasswordLen:
		f.Errors["password"] = fmt.Sprintf("Use at least %d characters.", MinPasswordLen)
	case len(password) > maxPasswordLen:
		f.Errors["password"] = fmt.Sprintf("Use at most %d bytes.", maxPasswordLen)
	case password != confirm:
		f.Errors["password_confirm"] = "The two passwords differ."
	}
	switch f.TLSMode {
	case TLSSelfSigned, TLSOff:
	case TLSCustom:
		if f.TLSCert == "" || f.TLSKey == "" {
			f.Errors["tls_cert"] = "Give the paths of both the certificate and its key on the box."
		} else if _, err := tls.LoadX509KeyPair(f.TLSCert, f.TLSKey); err != nil {
			f.Errors["tls_cert"] = "The certificate and key do not load: " + err.Error()
		}
	default:
		f.Errors["tls_mode"] = "Choose how clients reach the box."
	}
}

// apply writes the configuration, then creates the admin.
func (s *Setup) apply(ctx context.Context, f *form, password string) error {
	values := map[string]any{"server_name": f.ServerName}
	switch f.TLSMode {
	case TLSSelfSigned:
		values["client.tls_cert"] = filepath.Join(s.DataDir, selfSignedCert)
		values["client.tls_key"] = filepath.Join(s.DataDir, selfSignedKey)
	case TLSCustom:
		values["client.tls_cert"], values["client.tls_key"] = f.TLSCert, f.TLSKey
	case TLSOff:
		values["client.tls_cert"], values["client.tls_key"] = nil, nil
	}
	if _, err := configfile.Set(s.ConfigPath, values); err != nil {
		field := ""
		if strings.Contains(err.Error(), "server_name") {
			field = "server_name"
		}
		return &FieldError{Field: field, Msg: err.Error()}
	}
	return s.Admins.CreateAdmin(ctx, f.ServerName, f.Admin, password)
}

// Serve serves the page on ln until setup succeeds (it then returns the result, once the
// confirmation page has gone out) or ctx ends (ctx's error).
func (s *Setup) Serve(ctx context.Context, ln net.Listener) (Result, error) {
	results := make(chan Result, 1)
	inner := s.Done
	s.Done = func(r Result) {
		if inner != nil {
			inner(r)
		}
		results <- r
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log().Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var res Result
	var err error
	select {
	case res = <-results:
	case <-ctx.Done():
		err = ctx.Err()
	case err = <-errc:
		return Result{}, err
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
	return res, err
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
