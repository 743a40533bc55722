// Package servertest starts real Fyr homeservers for integration tests: the same wiring as
// `fyr serve`, on loopback ports the kernel picks, with a fresh data directory per test, and
// hands out logged-in mautrix-go clients.
//
// It is for tests only; nothing in the server imports it.
package servertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"fyr/server"
	"fyr/server/config"
)

// Server is a running test homeserver.
type Server struct {
	*server.Server
	Config *config.Config
	URL    string // client API base URL
	stop   func()
}

// Option changes the configuration before the server starts.
type Option func(*config.Config)

// OpenRegistration lets clients register with m.login.dummy.
func OpenRegistration(c *config.Config) { c.Register.Open = true }

// WithConfig applies an arbitrary change.
func WithConfig(f func(*config.Config)) Option { return f }

// Start runs a homeserver named "localhost" until the test ends. Rate limits are off unless
// an Option turns them on; logs go to t.Log.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Client.Addr = "127.0.0.1:0"
	cfg.Federation.Addr = "127.0.0.1:0"
	cfg.RateLimits.LoginPerSecond = 0
	cfg.RateLimits.MessagesPerSecond = 0
	for _, o := range opts {
		o(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("servertest: %v", err)
	}
	return StartWith(t, cfg)
}

// StartWith runs a homeserver with exactly this configuration until the test ends.
func StartWith(t testing.TB, cfg *config.Config) *Server {
	t.Helper()
	return start(t, cfg, nil)
}

// start runs a homeserver; setup, if set, sees it after New and before it serves.
func start(t testing.TB, cfg *config.Config, setup func(*Server)) *Server {
	t.Helper()
	tw := &testWriter{t: t}
	t.Cleanup(tw.stop) // runs after the shutdown below: cleanups run last-registered first
	log := slog.New(slog.NewTextHandler(tw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("servertest: start: %v", err)
	}
	s := &Server{Server: srv, Config: cfg, URL: srv.ClientURL()}
	if setup != nil {
		setup(s)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	s.stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("servertest: shutdown: %v", err)
		}
	})
	t.Cleanup(s.stop)
	s.waitReady(t)
	return s
}

// waitReady polls /versions, as Complement does, until it answers or a deadline passes.
func (s *Server) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/_matrix/client/versions")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("servertest: server at %s not ready: %v", s.URL, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Client returns an unauthenticated mautrix client for this server.
func (s *Server) Client(t testing.TB) *mautrix.Client {
	t.Helper()
	c, err := mautrix.NewClient(s.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Register creates an account through the real /register flow (m.login.dummy, so the
// server needs OpenRegistration) and returns a client logged in as it.
func (s *Server) Register(t testing.TB, localpart, password string) *mautrix.Client {
	t.Helper()
	c := s.Client(t)
	resp, err := c.RegisterDummy(context.Background(), &mautrix.ReqRegister[any]{Username: localpart, Password: password})
	if err != nil {
		t.Fatalf("servertest: register %s: %v", localpart, err)
	}
	c.SetCredentials(resp.UserID, resp.AccessToken)
	c.DeviceID = resp.DeviceID
	return c
}

// Login logs an existing user in on a new device.
func (s *Server) Login(t testing.TB, localpart, password string) *mautrix.Client {
	t.Helper()
	c := s.Client(t)
	_, err := c.Login(context.Background(), &mautrix.ReqLogin{
		Type:             mautrix.AuthTypePassword,
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
		Password:         password,
		StoreCredentials: true,
	})
	if err != nil {
		t.Fatalf("servertest: login %s: %v", localpart, err)
	}
	return c
}

// UserID is the full ID of a local user.
func (s *Server) UserID(localpart string) id.UserID {
	return id.NewUserID(localpart, s.Config.ServerName)
}

// ErrCode extracts the Matrix errcode and HTTP status from a mautrix error.
func ErrCode(err error) (code string, status int) {
	var herr mautrix.HTTPError
	if errors.As(err, &herr) {
		if herr.RespError != nil {
			code = herr.RespError.ErrCode
		}
		if herr.Response != nil {
			status = herr.Response.StatusCode
		}
	}
	return code, status
}

// testWriter sends log lines to t.Log, and drops them once the test has finished (a
// goroutine logging after that would otherwise panic).
type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// Do sends a raw request and returns status and body, for tests of malformed input that a
// typed client cannot produce.
func (s *Server) Do(t testing.TB, method, path, token string, body io.Reader, header ...string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// String names the server in failure messages.
func (s *Server) String() string { return fmt.Sprintf("fyr(%s)", s.URL) }
