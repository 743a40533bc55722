package httpapi

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"fyr/server/config"
)

// TestPanicBecomes500 checks that a panicking handler answers 500 M_UNKNOWN, is logged with
// its request ID, and the server goes on serving.
func TestPanicBecomes500(t *testing.T) {
	var logs bytes.Buffer
	a := New(Engines{}, config.Default(), slog.New(slog.NewTextHandler(&logs, nil)))
	a.handle("GET /boom", func(http.ResponseWriter, *http.Request) error { panic("kaboom") })
	h := a.Handler()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/boom?access_token=secret-token", nil))
	var e struct{ Errcode, Error string }
	json.Unmarshal(rec.Body.Bytes(), &e)
	if rec.Code != 500 || e.Errcode != "M_UNKNOWN" {
		t.Errorf("panic = %d %+v, want 500 M_UNKNOWN", rec.Code, e)
	}
	if !strings.Contains(logs.String(), "kaboom") {
		t.Errorf("the panic was not logged: %s", logs.String())
	}
	if strings.Contains(logs.String(), "secret-token") {
		t.Error("the log contains the access token from the query string")
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/_matrix/client/versions", nil))
	if rec.Code != 200 {
		t.Errorf("after a panic, /versions = %d", rec.Code)
	}
}
