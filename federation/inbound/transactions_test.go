package inbound_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"maunium.net/go/mautrix/id"

	"fyr/federation/inbound"
	"fyr/federation/transport"
	"fyr/storage"
)

type countingPDUs struct{ n int }

func (c *countingPDUs) HandlePDUs(_ context.Context, _ string, pdus []json.RawMessage) map[id.EventID]string {
	c.n += len(pdus)
	return map[id.EventID]string{"$ok": "", "$bad": "auth check failed"}
}

func newTransactions(t *testing.T) (*inbound.Transactions, *countingPDUs, *[]string) {
	t.Helper()
	db, err := storage.Open(context.Background(), filepath.Join(t.TempDir(), "fyr.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	pdus := &countingPDUs{}
	var edus []string
	txns := &inbound.Transactions{DB: db, PDUs: pdus, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		EDUs: map[string]inbound.EDUHandler{"m.typing": func(_ context.Context, origin string, content json.RawMessage) {
			edus = append(edus, origin+" "+string(content))
		}}}
	return txns, pdus, &edus
}

// put sends a transaction as if transport.Verifier had authenticated origin.
func put(t *testing.T, h http.Handler, origin, txnID, body string) (int, string) {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("PUT /send/{txnID}", h)
	req := httptest.NewRequest("PUT", "/send/"+txnID, strings.NewReader(body))
	req = req.WithContext(transport.WithOrigin(req.Context(), origin))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestTransactions(t *testing.T) {
	txns, pdus, edus := newTransactions(t)
	body := `{"origin":"a.test","origin_server_ts":1,"pdus":[{"a":1},{"b":2}],"edus":[{"edu_type":"m.typing","content":{"x":1}},{"edu_type":"m.unknown","content":{}}]}`
	code, resp := put(t, txns, "a.test", "t1", body)
	if code != 200 || resp != `{"pdus":{"$bad":{"error":"auth check failed"},"$ok":{}}}` {
		t.Fatalf("first delivery = %d %s", code, resp)
	}
	code, again := put(t, txns, "a.test", "t1", body)
	if code != 200 || again != resp || pdus.n != 2 || len(*edus) != 1 {
		t.Errorf("retry = %d %s; handler saw %d PDUs and %d EDUs, want the same answer and no second application", code, again, pdus.n, len(*edus))
	}
	if (*edus)[0] != `a.test {"x":1}` {
		t.Errorf("EDU handler got %q", (*edus)[0])
	}
	// The same transaction ID from another origin is another transaction.
	if code, _ := put(t, txns, "b.test", "t1", strings.Replace(body, "a.test", "b.test", 1)); code != 200 || pdus.n != 4 {
		t.Errorf("same txnId from another origin = %d, handler count %d", code, pdus.n)
	}
	for _, tc := range []struct {
		name, body string
		code       int
		errcode    string
	}{
		{"origin mismatch", `{"origin":"c.test","origin_server_ts":1,"pdus":[]}`, 403, "M_FORBIDDEN"},
		{"not JSON", `{"origin":`, 400, "M_NOT_JSON"},
		{"no pdus", `{"origin":"a.test","origin_server_ts":1}`, 400, "M_BAD_JSON"},
		{"51 PDUs", `{"origin":"a.test","origin_server_ts":1,"pdus":[` + strings.TrimSuffix(strings.Repeat(`{},`, 51), ",") + `]}`, 400, "M_BAD_JSON"},
		{"101 EDUs", `{"origin":"a.test","origin_server_ts":1,"pdus":[],"edus":[` + strings.TrimSuffix(strings.Repeat(`{"edu_type":"x"},`, 101), ",") + `]}`, 400, "M_BAD_JSON"},
	} {
		code, resp := put(t, txns, "a.test", "bad-"+strings.ReplaceAll(tc.name, " ", "-"), tc.body)
		if code != tc.code || !strings.Contains(resp, tc.errcode) {
			t.Errorf("%s = %d %s, want %d %s", tc.name, code, resp, tc.code, tc.errcode)
		}
	}
	if pdus.n != 4 {
		t.Errorf("refused transactions reached the PDU handler: %d", pdus.n)
	}
}

func TestTransactionsWithoutRooms(t *testing.T) {
	txns, _, _ := newTransactions(t)
	txns.PDUs = nil // a server in no rooms
	code, resp := put(t, txns, "a.test", "t1", `{"origin":"a.test","origin_server_ts":1,"pdus":[{"room_id":"!x:a.test"}]}`)
	if code != 200 || resp != `{"pdus":{}}` {
		t.Errorf("PDU for an unknown room = %d %s, want 200 with no result for it", code, resp)
	}
}
