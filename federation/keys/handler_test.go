package keys_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"fyr/federation/keys"
)

// serveJSON sends one request to h and decodes the JSON answer.
func serveJSON(t *testing.T, h http.Handler, method, path, body string) (int, map[string]json.RawMessage) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s: %v in %s", method, path, err, rec.Body)
	}
	return rec.Code, out
}

func serverKeys(t *testing.T, body map[string]json.RawMessage) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	if err := json.Unmarshal(body["server_keys"], &out); err != nil || out == nil {
		t.Fatalf("server_keys = %s: %v", body["server_keys"], err)
	}
	return out
}

// withoutSignature is raw parsed, with serverName's signatures removed.
func withoutSignature(t *testing.T, raw []byte, serverName string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	delete(m["signatures"].(map[string]any), serverName)
	return m
}

func TestKeyServerOverHTTPS(t *testing.T) {
	c, n := newClock(), newNet()
	key := mustKey(t)
	ring := keys.NewRing(openDB(t, t.TempDir()+"/fyr.db"), keys.NewLocal("me.test", key, nil), keys.Options{Getter: n, Clock: c.Now})
	srv := httptest.NewTLSServer(mux(ring))
	defer srv.Close()

	resp, err := srv.Client().Get(srv.URL + "/_matrix/key/v2/server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	verifySigned(t, raw, "me.test", key.ID, key.Public())
	checkSelfSigned(t, raw)
	if got, want := parseResponse(t, raw).ValidUntilTS, t0.Add(keys.DefaultValidity).UnixMilli(); got != want {
		t.Errorf("valid_until_ts = %d, want %d", got, want)
	}
}

func TestNotaryQuery(t *testing.T) {
	c, n := newClock(), newNet()
	a := newRemote(t, "a.test", c)
	n.Handle("a.test", a)
	notaryKey := mustKey(t)
	notary := keys.NewRing(openDB(t, t.TempDir()+"/fyr.db"), keys.NewLocal("notary.test", notaryKey, nil),
		keys.Options{Getter: n, Clock: c.Now})
	h := mux(notary)
	origin, _ := a.local.Response(c.Now())

	// checkNotarised checks one answer: a.test's response, plus the notary's signature.
	checkNotarised := func(t *testing.T, got []json.RawMessage) {
		t.Helper()
		if len(got) != 1 {
			t.Fatalf("server_keys has %d entries, want 1", len(got))
		}
		verifySigned(t, got[0], "a.test", a.key.ID, a.key.Public())
		checkSelfSigned(t, got[0])
		verifySigned(t, got[0], "notary.test", notaryKey.ID, notaryKey.Public())
		if g, w := withoutSignature(t, got[0], "notary.test"), withoutSignature(t, origin, "notary.test"); !reflect.DeepEqual(g, w) {
			t.Errorf("notarised response without the notary's signature = %v, want the origin's %v", g, w)
		}
	}

	code, body := serveJSON(t, h, "GET", "/_matrix/key/v2/query/a.test", "")
	if code != http.StatusOK {
		t.Fatalf("GET query: %d %v", code, body)
	}
	checkNotarised(t, serverKeys(t, body))

	// Later queries are answered from the cache, also while a.test is down …
	n.SetDown("a.test", true)
	c.Advance(time.Hour)
	post := `{"server_keys":{"a.test":{"` + string(a.key.ID) + `":{"minimum_valid_until_ts":` +
		jsonInt(c.Now().Add(time.Hour).UnixMilli()) + `}},"notary.test":{},"unknown.test":{}}}`
	code, body = serveJSON(t, h, "POST", "/_matrix/key/v2/query", post)
	if code != http.StatusOK {
		t.Fatalf("POST query: %d %v", code, body)
	}
	got := serverKeys(t, body)
	if len(got) != 2 {
		t.Fatalf("POST query returned %d responses, want a.test's and notary.test's own", len(got))
	}
	var own, fromA []json.RawMessage
	for _, r := range got {
		if parseResponse(t, r).ServerName == "notary.test" {
			own = append(own, r)
		} else {
			fromA = append(fromA, r)
		}
	}
	checkNotarised(t, fromA)
	if len(own) != 1 {
		t.Fatalf("POST query returned %d of notary.test's own responses, want 1", len(own))
	}
	verifySigned(t, own[0], "notary.test", notaryKey.ID, notaryKey.Public())
	if got, want := n.Calls("a.test"), 1; got != want {
		t.Errorf("requests to a.test = %d, want %d", got, want)
	}

	// … and past half its lifetime the notary asks again, but serves the old one when a.test
	// does not answer, so old events can still be checked.
	c.Advance(4 * 24 * time.Hour)
	_, body = serveJSON(t, h, "GET", "/_matrix/key/v2/query/a.test?minimum_valid_until_ts="+jsonInt(c.Now().UnixMilli()), "")
	checkNotarised(t, serverKeys(t, body))
	if got, want := n.Calls("a.test"), 2; got != want {
		t.Errorf("requests to a.test = %d, want %d", got, want)
	}
}

func TestNotaryQueryRefusesBadInput(t *testing.T) {
	c, n := newClock(), newNet()
	ring, _ := newRing(t, "me.test", n, c)
	h := mux(ring)
	many := make([]string, keys.MaxQueryServers+1)
	for i := range many {
		many[i] = `"s` + jsonInt(int64(i)) + `.test":{}`
	}
	tests := []struct {
		name, method, path, body string
		wantCode                 int
		wantErrcode              string
	}{
		{"bad server name", "GET", "/_matrix/key/v2/query/bad%20name", "", 400, "M_INVALID_PARAM"},
		{"bad timestamp", "GET", "/_matrix/key/v2/query/a.test?minimum_valid_until_ts=soon", "", 400, "M_INVALID_PARAM"},
		{"not JSON", "POST", "/_matrix/key/v2/query", "{", 400, "M_BAD_JSON"},
		{"no server_keys", "POST", "/_matrix/key/v2/query", "{}", 400, "M_BAD_JSON"},
		{"bad server name in body", "POST", "/_matrix/key/v2/query", `{"server_keys":{"bad name":{}}}`, 400, "M_INVALID_PARAM"},
		{"too many servers", "POST", "/_matrix/key/v2/query", `{"server_keys":{` + strings.Join(many, ",") + `}}`, 400, "M_INVALID_PARAM"},
		{"too large", "POST", "/_matrix/key/v2/query", `{"server_keys":{},"x":"` + strings.Repeat("x", keys.MaxQueryBodyBytes) + `"}`, 413, "M_TOO_LARGE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := serveJSON(t, h, tt.method, tt.path, tt.body)
			var errcode string
			json.Unmarshal(body["errcode"], &errcode)
			if code != tt.wantCode || errcode != tt.wantErrcode {
				t.Errorf("%s %s = %d %s, want %d %s", tt.method, tt.path, code, errcode, tt.wantCode, tt.wantErrcode)
			}
		})
	}
	// An empty query is an empty answer.
	code, body := serveJSON(t, h, "POST", "/_matrix/key/v2/query", `{"server_keys":{}}`)
	if got := serverKeys(t, body); code != 200 || len(got) != 0 {
		t.Errorf("empty query = %d with %d responses, want 200 with none", code, len(got))
	}
}

func jsonInt(v int64) string {
	b, _ := json.Marshal(v)
	return string(b)
}
