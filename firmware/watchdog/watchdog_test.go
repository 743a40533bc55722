package watchdog_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fyr/firmware/internal/fakeclock"
	"fyr/firmware/watchdog"
)

// fakeDevice counts what is done to it.
type fakeDevice struct {
	mu      sync.Mutex
	pings   int
	timeout time.Duration
	closed  bool
}

func (d *fakeDevice) Keepalive() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("closed")
	}
	d.pings++
	return nil
}

func (d *fakeDevice) SetTimeout(t time.Duration) (time.Duration, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.timeout = min(t, 15*time.Second) // like the Pi's, which cannot count past 15 s
	return d.timeout, nil
}

func (d *fakeDevice) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return nil
}

func (d *fakeDevice) Pings() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pings
}

// homeserver is an httptest server whose /health answers while healthy is set.
func homeserver(t *testing.T) (url string, healthy *atomic.Bool) {
	healthy = new(atomic.Bool)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" || !healthy.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("OK"))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/health", healthy
}

type run struct {
	dev    *fakeDevice
	clock  *fakeclock.Clock
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, w *watchdog.Watchdog) *run {
	t.Helper()
	r := &run{dev: &fakeDevice{}, clock: fakeclock.New(time.Unix(1e9, 0)), done: make(chan error, 1)}
	w.Open = func() (watchdog.Device, error) { return r.dev, nil }
	w.Clock = r.clock
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// step waits for the watchdog to go to sleep, then wakes it one interval later.
func (r *run) step() {
	r.clock.BlockUntil(1)
	r.clock.Advance(watchdog.DefaultInterval)
}

func TestPingsOnlyWhileHealthAnswers(t *testing.T) {
	url, healthy := homeserver(t)
	healthy.Store(true)
	r := start(t, &watchdog.Watchdog{Health: watchdog.HTTPHealth(url), Grace: -1})
	r.clock.BlockUntil(1)
	if got := r.dev.Pings(); got != 1 {
		t.Fatalf("pings after the first good answer = %d, want 1", got)
	}
	r.step()
	r.clock.BlockUntil(1)
	if got := r.dev.Pings(); got != 2 {
		t.Fatalf("pings after two good answers = %d, want 2", got)
	}
	healthy.Store(false)
	for range 3 {
		r.step()
	}
	r.clock.BlockUntil(1)
	if got := r.dev.Pings(); got != 2 {
		t.Fatalf("pings went on while /health failed: %d, want 2", got)
	}
	healthy.Store(true)
	r.step()
	r.clock.BlockUntil(1)
	if got := r.dev.Pings(); got != 3 {
		t.Fatalf("pings after /health answered again = %d, want 3", got)
	}
}

func TestGraceOutlastsARestart(t *testing.T) {
	url, healthy := homeserver(t)
	healthy.Store(true)
	r := start(t, &watchdog.Watchdog{Health: watchdog.HTTPHealth(url), Grace: 3 * watchdog.DefaultInterval})
	r.clock.BlockUntil(1)
	healthy.Store(false)
	// Three failed probes are within the grace: pinged. The fourth is past it: not.
	want := []int{2, 3, 4, 4, 4}
	for i, w := range want {
		r.step()
		r.clock.BlockUntil(1)
		if got := r.dev.Pings(); got != w {
			t.Fatalf("after %d failed probes: %d pings, want %d", i+1, got, w)
		}
	}
}

func TestStartGraceBeforeFirstAnswer(t *testing.T) {
	r := start(t, &watchdog.Watchdog{
		Health:     func(context.Context) error { return errors.New("connection refused") },
		StartGrace: 2 * watchdog.DefaultInterval,
	})
	want := []int{1, 2, 3, 3}
	for i, w := range want {
		r.clock.BlockUntil(1)
		if got := r.dev.Pings(); got != w {
			t.Fatalf("probe %d while starting: %d pings, want %d", i+1, got, w)
		}
		r.clock.Advance(watchdog.DefaultInterval)
	}
}

func TestDisarmsOnStopAndSetsTimeout(t *testing.T) {
	r := start(t, &watchdog.Watchdog{Health: func(context.Context) error { return nil }, Timeout: 30 * time.Second})
	r.clock.BlockUntil(1)
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	r.done <- nil // for the cleanup
	r.dev.mu.Lock()
	defer r.dev.mu.Unlock()
	if !r.dev.closed {
		t.Error("device not closed (magic close) when Run stopped")
	}
	if r.dev.timeout != 15*time.Second {
		t.Errorf("timeout asked = %v, want the hardware's 15s cap", r.dev.timeout)
	}
}

func TestNoDeviceIsNotFatal(t *testing.T) {
	w := &watchdog.Watchdog{
		Health: func(context.Context) error { return nil },
		Open:   func() (watchdog.Device, error) { return nil, errors.New("no such file or directory") },
	}
	if err := w.Run(context.Background()); err != nil {
		t.Fatalf("Run without a device = %v, want nil", err)
	}
}

func TestHTTPHealth(t *testing.T) {
	url, healthy := homeserver(t)
	check := watchdog.HTTPHealth(url)
	if err := check(context.Background()); err == nil {
		t.Error("HTTPHealth succeeded on a 503")
	}
	healthy.Store(true)
	if err := check(context.Background()); err != nil {
		t.Errorf("HTTPHealth on a 200 = %v", err)
	}
	if err := watchdog.HTTPHealth("http://127.0.0.1:1/health")(context.Background()); err == nil {
		t.Error("HTTPHealth succeeded with nothing listening")
	}
}

// TestHTTPHealthOverTLS: with TLS on the client port, the https:// URL answers.
func TestHTTPHealthOverTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("OK")) }))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")
	check := watchdog.HTTPHealth("http://"+host+"/health", "https://"+host+"/health")
	if err := check(context.Background()); err != nil {
		t.Errorf("HTTPHealth on a TLS port = %v", err)
	}
	if err := watchdog.HTTPHealth("http://" + host + "/health")(context.Background()); err == nil {
		t.Error("plain HTTP to a TLS port counted as healthy")
	}
}
