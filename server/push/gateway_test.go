package push

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/server/netpolicy"
	"fyr/storage"
)

// fakeHost stands in for the Service behind a Gateway.
type fakeHost struct {
	mu       sync.Mutex
	ps       []storage.Pusher
	gone     []string
	unreadOf int
}

func (h *fakeHost) pushers(context.Context, id.UserID) ([]storage.Pusher, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]storage.Pusher{}, h.ps...), nil
}

func (h *fakeHost) unread(context.Context, id.UserID) (int, error) { return h.unreadOf, nil }

func (h *fakeHost) rejected(_ context.Context, p storage.Pusher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gone = append(h.gone, p.PushKey)
}

func (h *fakeHost) rejectedKeys() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string{}, h.gone...)
}

// recorder is a push gateway that answers each request with the next status in statuses
// (200 once they run out) and keeps the bodies.
type recorder struct {
	mu       sync.Mutex
	statuses []int
	answer   string
	bodies   []map[string]any
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var body map[string]any
	json.Unmarshal(b, &body)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.bodies = append(rec.bodies, body)
	status := 200
	if len(rec.statuses) > 0 {
		status, rec.statuses = rec.statuses[0], rec.statuses[1:]
	}
	w.WriteHeader(status)
	if status == 200 {
		io.WriteString(w, rec.answer)
	}
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.bodies)
}

func testNote() *gatewayNote {
	return &gatewayNote{user: "@bob:hs", eventID: "$ev", roomID: "!room:hs", typ: "m.room.message", sender: "@alice:hs",
		senderName: "Alice", roomName: "Crisis team", content: json.RawMessage(`{"msgtype":"m.text","body":"hi"}`),
		prio: "high", tweaks: map[string]json.RawMessage{"sound": json.RawMessage(`"default"`)}}
}

func testPusher(url, format string) storage.Pusher {
	data := map[string]any{"url": url, "custom": "kept"}
	if format != "" {
		data["format"] = format
	}
	raw, _ := json.Marshal(data)
	return storage.Pusher{UserID: "@bob:hs", AppID: "org.example.app", PushKey: "key-" + format, Kind: "http", Data: raw, PushKeyTS: 1700000000}
}

func newTestGateway(opt GatewayOptions, host gatewayHost) *Gateway {
	return newGateway(opt, slog.New(slog.DiscardHandler), host)
}

func TestGatewayDeliver1(t *testing.T) {
	for _, tc := range []struct {
		status    int
		wantErr   bool
		wantRetry bool
	}{
		{200, false, false},
		{500, true, true},
		{503, true, true},
		{429, true, true},
		{400, true, false},
		{404, true, false},
	} {
		rec := &recorder{statuses: []int{tc.status}, answer: `{"rejected":[]}`}
		srv := httptest.NewServer(rec)
		g := newTestGateway(GatewayOptions{AllowPrivate: true}, &fakeHost{})
		p := testPusher(srv.URL+notifyPathSuffix, "")
		retry, err := g.deliver1(context.Background(), &job{note: testNote(), pusher: &p, unread: 3})
		if (err != nil) != tc.wantErr || retry != tc.wantRetry {
			t.Errorf("gateway answering %d: retry %v, err %v; want retry %v, error %v", tc.status, retry, err, tc.wantRetry, tc.wantErr)
		}
		srv.Close()
	}
}

func TestGatewayBody(t *testing.T) {
	rec := &recorder{answer: `{"rejected":[]}`}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	g := newTestGateway(GatewayOptions{AllowPrivate: true}, &fakeHost{})
	for _, format := range []string{"", "event_id_only"} {
		p := testPusher(srv.URL+notifyPathSuffix, format)
		if _, err := g.deliver1(context.Background(), &job{note: testNote(), pusher: &p, unread: 3}); err != nil {
			t.Fatalf("deliver (format %q): %v", format, err)
		}
	}
	full := rec.bodies[0]["notification"].(map[string]any)
	for k, want := range map[string]any{"event_id": "$ev", "room_id": "!room:hs", "type": "m.room.message", "sender": "@alice:hs",
		"sender_display_name": "Alice", "room_name": "Crisis team", "prio": "high"} {
		if full[k] != want {
			t.Errorf("full notification: %s = %v, want %v", k, full[k], want)
		}
	}
	if full["content"].(map[string]any)["body"] != "hi" || full["counts"].(map[string]any)["unread"] != 3.0 {
		t.Errorf("full notification: content %v, counts %v", full["content"], full["counts"])
	}
	dev := full["devices"].([]any)[0].(map[string]any)
	data := dev["data"].(map[string]any)
	if dev["app_id"] != "org.example.app" || dev["pushkey"] != "key-" || dev["pushkey_ts"] != 1700000000.0 ||
		data["url"] != nil || data["custom"] != "kept" || dev["tweaks"].(map[string]any)["sound"] != "default" {
		t.Errorf("device = %v", dev)
	}
	short := rec.bodies[1]["notification"].(map[string]any)
	for _, k := range []string{"type", "sender", "content", "sender_display_name", "room_name"} {
		if _, ok := short[k]; ok {
			t.Errorf("event_id_only notification has %s", k)
		}
	}
	if short["event_id"] != "$ev" || short["room_id"] != "!room:hs" || short["devices"] == nil {
		t.Errorf("event_id_only notification = %v", short)
	}
	if f := short["devices"].([]any)[0].(map[string]any)["data"].(map[string]any)["format"]; f != "event_id_only" {
		t.Errorf("event_id_only device data format = %v", f)
	}
}

func TestGatewayRefusesPrivateAddresses(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	g := newTestGateway(GatewayOptions{}, &fakeHost{})
	p := testPusher(srv.URL+notifyPathSuffix, "")
	retry, err := g.deliver1(context.Background(), &job{note: testNote(), pusher: &p})
	if !errors.Is(err, netpolicy.ErrRefused) || retry {
		t.Errorf("delivering to loopback: retry %v, err %v; want a refusal without retry", retry, err)
	}
	if rec.count() != 0 {
		t.Errorf("the loopback gateway got %d requests", rec.count())
	}
	g.SetAllowPrivate(true)
	if _, err := g.deliver1(context.Background(), &job{note: testNote(), pusher: &p}); err != nil {
		t.Errorf("with private addresses allowed: %v", err)
	}
}

func TestGatewayRetriesAndRejects(t *testing.T) {
	rec := &recorder{statuses: []int{500, 503}, answer: `{"rejected":["key-"]}`}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	host := &fakeHost{ps: []storage.Pusher{testPusher(srv.URL+notifyPathSuffix, "")}}
	g := newTestGateway(GatewayOptions{AllowPrivate: true, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}, host)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	g.Enqueue(testNote())
	deadline := time.Now().Add(10 * time.Second)
	for len(host.rejectedKeys()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no delivery after retries; the gateway saw %d requests", rec.count())
		}
		time.Sleep(time.Millisecond)
	}
	if n := rec.count(); n != 3 {
		t.Errorf("the gateway saw %d requests, want 3 (two failures, then success)", n)
	}
	if got := host.rejectedKeys(); len(got) != 1 || got[0] != "key-" {
		t.Errorf("rejected pushers = %v", got)
	}
}

func TestGatewayQueueIsBounded(t *testing.T) {
	g := newTestGateway(GatewayOptions{QueueSize: 2}, &fakeHost{})
	for range 5 {
		g.Enqueue(testNote())
	}
	if n := len(g.queue); n != 2 {
		t.Errorf("queue holds %d notifications, want 2", n)
	}
}

func TestGatewayBackoff(t *testing.T) {
	g := newTestGateway(GatewayOptions{MinBackoff: time.Second, MaxBackoff: time.Minute}, &fakeHost{})
	for _, tc := range []struct {
		attempts int
		base     time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {5, 16 * time.Second}, {7, time.Minute}, {40, time.Minute}} {
		d := g.backoff(tc.attempts)
		if d < tc.base/2 || d > tc.base*3/2 {
			t.Errorf("backoff after %d attempts = %v, want within 0.5–1.5× %v", tc.attempts, d, tc.base)
		}
	}
}
