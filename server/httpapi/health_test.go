package httpapi

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"fyr/server/config"
)

// TestHealth checks GET /health answers 200 OK and that probes stay out of the info log,
// which on a box is a bounded ring the probes would otherwise fill.
func TestHealth(t *testing.T) {
	var logs bytes.Buffer
	a := New(Engines{}, config.Default(), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	h := a.Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
	if rec.Code != 200 || rec.Body.String() != "OK" {
		t.Errorf("GET /health = %d %q, want 200 \"OK\"", rec.Code, rec.Body.String())
	}
	if strings.Contains(logs.String(), "/health") {
		t.Errorf("a health probe was logged at info level: %s", logs.String())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/health", nil))
	if rec.Code != 405 {
		t.Errorf("POST /health = %d, want 405", rec.Code)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/_matrix/client/versions", nil))
	if !strings.Contains(logs.String(), "/_matrix/client/versions") {
		t.Errorf("other requests are no longer logged: %s", logs.String())
	}
}
