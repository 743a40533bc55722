package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/federation/mediafetch"
	"fyr/federation/transport"
	"fyr/server/config"
	"fyr/server/media"
	"fyr/server/servertest"
)

// countingRemote counts the fetches a server makes from other servers.
type countingRemote struct {
	media.Remote
	calls atomic.Int32
}

func (c *countingRemote) Fetch(ctx context.Context, origin, mediaID string, wait time.Duration) (*media.RemoteContent, error) {
	c.calls.Add(1)
	return c.Remote.Fetch(ctx, origin, mediaID, wait)
}

// clientMedia is GET /_matrix/client/v1/media/{what}/{server}/{id}{rest} on s as token.
func clientMedia(t *testing.T, s *servertest.Server, token, what string, uri id.ContentURI, rest string) (int, []byte, http.Header) {
	t.Helper()
	return s.Do(t, "GET", "/_matrix/client/v1/media/"+what+"/"+uri.Homeserver+"/"+uri.FileID+rest, token, nil)
}

func errcode(body []byte) string {
	var e struct {
		ErrCode string `json:"errcode"`
	}
	json.Unmarshal(body, &e)
	return e.ErrCode
}

func testPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := range w {
		for y := range h {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 200, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fedMedia asks destination's federation media endpoint directly, as another server would.
func fedMedia(t *testing.T, from *servertest.Server, destination, path string) (*mediafetch.Multipart, []byte, error) {
	t.Helper()
	resp, err := from.FedClient.Stream(context.Background(), destination, path)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.ContentLength <= 0 {
		t.Errorf("%s: no Content-Length", path)
	}
	mp, err := mediafetch.ParseMultipart(resp.Header.Get("Content-Type"), resp.Body)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := io.ReadAll(mp.Content)
	if err != nil {
		t.Fatalf("%s: read content: %v", path, err)
	}
	return mp, b, nil
}

// TestFederatedMedia: bob on hs2 downloads what alice uploaded on hs1, through his own server,
// which fetches it once over federation and serves its cache thereafter.
func TestFederatedMedia(t *testing.T) {
	ctx := context.Background()
	fed := servertest.Federation(t, "hs1.test", "hs2.test")
	hs1, hs2 := fed["hs1.test"], fed["hs2.test"]
	remote := &countingRemote{Remote: hs2.MediaFetcher}
	hs2.Media.SetRemote(remote)
	alice := hs1.Register(t, "alice", "pw")
	bob := hs2.Register(t, "bob", "pw")

	data := []byte("field report: the bridge is out")
	up, err := alice.UploadBytesWithName(ctx, data, "text/plain", "report.txt")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		status, body, h := clientMedia(t, hs2, bob.AccessToken, "download", up.ContentURI, "")
		if status != 200 || !bytes.Equal(body, data) {
			t.Fatalf("download %d of remote media = %d %q, want 200 %q", i, status, body, data)
		}
		if ct := h.Get("Content-Type"); ct != "text/plain" {
			t.Errorf("Content-Type = %q, want text/plain", ct)
		}
		if _, params, _ := mime.ParseMediaType(h.Get("Content-Disposition")); params["filename"] != "report.txt" {
			t.Errorf("Content-Disposition = %q, want filename report.txt", h.Get("Content-Disposition"))
		}
	}
	if n := remote.calls.Load(); n != 1 {
		t.Errorf("two downloads fetched %d times over federation, want 1 then the cache", n)
	}
	status, _, h := clientMedia(t, hs2, bob.AccessToken, "download", up.ContentURI, "/other.txt")
	if _, params, _ := mime.ParseMediaType(h.Get("Content-Disposition")); status != 200 || params["filename"] != "other.txt" {
		t.Errorf("download with a file name = %d %q", status, h.Get("Content-Disposition"))
	}

	t.Run("concurrent downloads share one fetch", func(t *testing.T) {
		up, err := alice.UploadBytes(ctx, bytes.Repeat([]byte("z"), 300_000), "application/octet-stream")
		if err != nil {
			t.Fatal(err)
		}
		before := remote.calls.Load()
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				if status, body, _ := clientMedia(t, hs2, bob.AccessToken, "download", up.ContentURI, ""); status != 200 || len(body) != 300_000 {
					t.Errorf("concurrent download = %d, %d bytes", status, len(body))
				}
			})
		}
		wg.Wait()
		if n := remote.calls.Load() - before; n != 1 {
			t.Errorf("6 concurrent downloads fetched %d times, want 1", n)
		}
	})

	t.Run("thumbnail", func(t *testing.T) {
		img, err := alice.UploadBytesWithName(ctx, testPNG(t, 200, 100), "image/png", "map.png")
		if err != nil {
			t.Fatal(err)
		}
		status, body, h := clientMedia(t, hs2, bob.AccessToken, "thumbnail", img.ContentURI, "?width=32&height=32&method=crop")
		if status != 200 || h.Get("Content-Type") != "image/png" {
			t.Fatalf("remote thumbnail = %d %s %s", status, h.Get("Content-Type"), body)
		}
		if cfg, err := png.DecodeConfig(bytes.NewReader(body)); err != nil || cfg.Width != 32 || cfg.Height != 32 {
			t.Errorf("remote thumbnail is %dx%d (%v), want 32x32", cfg.Width, cfg.Height, err)
		}
		// The federation thumbnail endpoint, as another server would use it.
		mp, thumb, err := fedMedia(t, hs2, "hs1.test", "/_matrix/federation/v1/media/thumbnail/"+img.ContentURI.FileID+"?width=32&height=32&method=crop&animated=true")
		if err != nil {
			t.Fatal(err)
		}
		if cfg, err := png.DecodeConfig(bytes.NewReader(thumb)); err != nil || cfg.Width != 32 || mp.ContentType != "image/png" {
			t.Errorf("federation thumbnail = %s %dx%d (%v)", mp.ContentType, cfg.Width, cfg.Height, err)
		}
		for _, q := range []string{"?height=32", "?width=x&height=32", "?width=32&height=32&animated=maybe", "?width=32&height=32&method=stretch"} {
			_, _, err := fedMedia(t, hs2, "hs1.test", "/_matrix/federation/v1/media/thumbnail/"+img.ContentURI.FileID+q)
			if re, ok := err.(*transport.ResponseError); !ok || re.StatusCode != 400 {
				t.Errorf("federation thumbnail %s = %v, want 400", q, err)
			}
		}
	})

	t.Run("federation download endpoint", func(t *testing.T) {
		mp, got, err := fedMedia(t, hs2, "hs1.test", "/_matrix/federation/v1/media/download/"+up.ContentURI.FileID)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) || mp.ContentType != "text/plain" || mp.Filename != "report.txt" || string(mp.Metadata) != "{}" {
			t.Errorf("federation download = %q %s %q %s", got, mp.ContentType, mp.Filename, mp.Metadata)
		}
		// Unsigned requests are refused.
		err = hs2.FedClient.DoUnsigned(ctx, "hs1.test", "GET", "/_matrix/federation/v1/media/download/"+up.ContentURI.FileID, nil, nil)
		if re, ok := err.(*transport.ResponseError); !ok || re.StatusCode != 401 {
			t.Errorf("unsigned federation download = %v, want 401", err)
		}
	})

	t.Run("only local media is served to other servers", func(t *testing.T) {
		// hs1 caches bob's upload, but does not hand its copy on.
		mine, err := bob.UploadBytes(ctx, []byte("bob's"), "text/plain")
		if err != nil {
			t.Fatal(err)
		}
		if status, _, _ := clientMedia(t, hs1, alice.AccessToken, "download", mine.ContentURI, ""); status != 200 {
			t.Fatalf("alice downloading bob's media = %d", status)
		}
		_, _, err = fedMedia(t, hs2, "hs1.test", "/_matrix/federation/v1/media/download/"+mine.ContentURI.FileID)
		if re, ok := err.(*transport.ResponseError); !ok || re.StatusCode != 404 || re.ErrCode != "M_NOT_FOUND" {
			t.Errorf("hs1 serving its cached copy of hs2's media = %v, want 404 M_NOT_FOUND", err)
		}
		q, err := alice.UploadBytes(ctx, []byte("quarantined"), "text/plain")
		if err != nil {
			t.Fatal(err)
		}
		if err := hs1.Media.Quarantine(ctx, "hs1.test", q.ContentURI.FileID, true); err != nil {
			t.Fatal(err)
		}
		if status, body, _ := clientMedia(t, hs2, bob.AccessToken, "download", q.ContentURI, ""); status != 404 || errcode(body) != "M_NOT_FOUND" {
			t.Errorf("quarantined remote media = %d %s, want 404 M_NOT_FOUND", status, body)
		}
	})

	t.Run("unknown media", func(t *testing.T) {
		missing := id.ContentURI{Homeserver: "hs1.test", FileID: "doesNotExist"}
		for _, what := range []string{"download", "thumbnail"} {
			if status, body, _ := clientMedia(t, hs2, bob.AccessToken, what, missing, "?width=32&height=32"); status != 404 || errcode(body) != "M_NOT_FOUND" {
				t.Errorf("unknown remote media (%s) = %d %s, want 404 M_NOT_FOUND", what, status, body)
			}
		}
	})

	t.Run("oversize remote media is refused", func(t *testing.T) {
		big, err := alice.UploadBytes(ctx, bytes.Repeat([]byte("b"), 4096), "application/octet-stream")
		if err != nil {
			t.Fatal(err)
		}
		hs2.Media.SetLimits(media.Limits{MaxUploadBytes: 1024})
		defer hs2.Media.SetLimits(media.Limits{})
		for _, what := range []string{"download", "thumbnail"} {
			if status, body, _ := clientMedia(t, hs2, bob.AccessToken, what, big.ContentURI, "?width=32&height=32"); status != 502 || errcode(body) != "M_TOO_LARGE" {
				t.Errorf("remote %s over the size limit = %d %s, want 502 M_TOO_LARGE", what, status, body)
			}
		}
	})

	t.Run("remote down", func(t *testing.T) {
		late, err := alice.UploadBytes(ctx, []byte("never fetched"), "text/plain")
		if err != nil {
			t.Fatal(err)
		}
		before := remote.calls.Load()
		hs1.Stop(t)
		if status, body, _ := clientMedia(t, hs2, bob.AccessToken, "download", late.ContentURI, ""); status != 502 || errcode(body) != "M_UNKNOWN" {
			t.Errorf("media of a server that is down = %d %s, want 502 M_UNKNOWN", status, body)
		}
		// What was fetched before is still served, from the cache.
		if status, body, _ := clientMedia(t, hs2, bob.AccessToken, "download", up.ContentURI, ""); status != 200 || !bytes.Equal(body, data) {
			t.Errorf("cached media while its server is down = %d %q", status, body)
		}
		if n := remote.calls.Load() - before; n != 1 {
			t.Errorf("%d fetches while the remote was down, want 1 (the cached item needs none)", n)
		}
	})
}

// TestFederatedMediaHostilePeer: a peer that answers badly, slowly or not at all costs a
// client a clean 502 or 504, never a 500, and nothing broken is cached.
func TestFederatedMediaHostilePeer(t *testing.T) {
	caCert, caKey := servertest.TestCA(t)
	var mu sync.Mutex
	var requests []string
	evil := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r.URL.RequestURI())
		mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/_matrix/media/v3/download/evil.test/") {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "legacy bytes")
			return
		}
		const b = "evil"
		w.Header().Set("Content-Type", "multipart/mixed; boundary="+b)
		switch strings.TrimPrefix(r.URL.Path, "/_matrix/federation/v1/media/download/") {
		case "good":
			io.WriteString(w, "--evil\r\n\r\n{}\r\n--evil\r\nContent-Type: text/plain\r\n\r\nfine\r\n--evil--\r\n")
		case "malformed":
			io.WriteString(w, "--evil\r\n\r\n[\"not an object\"]\r\n--evil\r\n\r\nx\r\n--evil--\r\n")
		case "truncated":
			w.Header().Set("Content-Length", "1000")
			io.WriteString(w, "--evil\r\n\r\n{}\r\n--evil\r\n\r\nhalf of it")
		case "third-part":
			io.WriteString(w, "--evil\r\n\r\n{}\r\n--evil\r\n\r\nx\r\n--evil\r\n\r\nsmuggled\r\n--evil--\r\n")
		case "huge":
			io.WriteString(w, "--evil\r\n\r\n{}\r\n--evil\r\n\r\n"+strings.Repeat("h", 5000)+"\r\n--evil--\r\n")
		case "private-location":
			io.WriteString(w, "--evil\r\n\r\n{}\r\n--evil\r\nLocation: http://127.0.0.1:9/secret\r\n\r\n\r\n--evil--\r\n")
		case "not-yet":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(504)
			io.WriteString(w, `{"errcode":"M_NOT_YET_UPLOADED","error":"later"}`)
		case "old":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			io.WriteString(w, `{"errcode":"M_UNRECOGNIZED","error":"unknown endpoint"}`)
		case "mute":
			<-r.Context().Done()
		default:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(500)
		}
	}))
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "evil.crt"), filepath.Join(dir, "evil.key")
	if _, err := transport.EnsureCertificate(certPath, keyPath, "evil.test", caCert, caKey); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	evil.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	evil.StartTLS()
	t.Cleanup(evil.Close)

	hs := servertest.Start(t, servertest.OpenRegistration, servertest.WithConfig(func(c *config.Config) {
		c.ServerName = "hs.test"
		c.Federation.TLSCACert, c.Federation.TLSCAKey, c.Federation.CAFile = caCert, caKey, caCert
		c.Federation.StaticPeers = "evil.test=" + evil.Listener.Addr().String()
		c.Media.Legacy = true
		c.Media.MaxUploadBytes = 4096
	}))
	hs.MediaFetcher.AnswerGrace = 200 * time.Millisecond
	bob := hs.Register(t, "bob", "pw")
	seen := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(requests)
	}
	get := func(mediaID, query string) (int, []byte) {
		status, body, _ := clientMedia(t, hs, bob.AccessToken, "download", id.ContentURI{Homeserver: "evil.test", FileID: mediaID}, query)
		return status, body
	}

	for _, tt := range []struct {
		mediaID, query string
		status         int
		errcode        string
	}{
		{"good", "", 200, ""},
		{"malformed", "", 502, "M_UNKNOWN"},
		{"truncated", "", 502, "M_UNKNOWN"},
		{"third-part", "", 502, "M_UNKNOWN"},
		{"huge", "", 502, "M_TOO_LARGE"},
		{"private-location", "", 502, "M_UNKNOWN"},
		{"broken", "", 502, "M_UNKNOWN"},
		{"not-yet", "", 504, "M_NOT_YET_UPLOADED"},
		{"mute", "?timeout_ms=0", 504, "M_UNKNOWN"},
		{"old", "", 200, ""},
	} {
		status, body := get(tt.mediaID, tt.query)
		if status != tt.status || (tt.errcode != "" && errcode(body) != tt.errcode) {
			t.Errorf("download of %s from a hostile peer = %d %s, want %d %s", tt.mediaID, status, body, tt.status, tt.errcode)
		}
	}
	if status, body := get("old", ""); status != 200 || string(body) != "legacy bytes" {
		t.Errorf("fallback to the legacy endpoint = %d %q", status, body)
	}
	mu.Lock()
	legacy := requests[len(requests)-1]
	mu.Unlock()
	if !strings.Contains(legacy, "/_matrix/media/v3/download/evil.test/old?allow_remote=false") {
		t.Errorf("last request = %q, want the legacy download with allow_remote=false", legacy)
	}

	// Nothing broken was cached: asking again asks the peer again.
	before := seen()
	if status, _ := get("truncated", ""); status != 502 || seen() != before+1 {
		t.Errorf("truncated download again = %d after %d requests to the peer, want 502 after 1", status, seen()-before)
	}

	// A server falling back to the legacy endpoint with allow_remote=false is not relayed.
	before = seen()
	status, body, _ := hs.Do(t, "GET", "/_matrix/media/v3/download/evil.test/unfetched?allow_remote=false", "", nil)
	if status != 404 || seen() != before {
		t.Errorf("legacy download of remote media with allow_remote=false = %d %s after %d peer requests, want 404 and none", status, body, seen()-before)
	}
}
