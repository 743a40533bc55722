package mediafetch_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fyr/federation/mediafetch"
	"fyr/federation/transport"
	"fyr/server/media"
	"fyr/server/netpolicy"
	"fyr/server/servertest"
)

// remotePeer is b.test: a federation server over TLS from a test CA, whose answers the
// test picks by media ID, and a plain web server that Location parts point at.
type remotePeer struct {
	fed, web *httptest.Server

	mu sync.Mutex
	// requests are the path and query of each federation request; unsigned counts those
	// without X-Matrix.
	requests []string
	unsigned int
}

func (p *remotePeer) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.requests...)
}

func writeMultipart(w http.ResponseWriter, second string) {
	w.Header().Set("Content-Type", contentType)
	io.WriteString(w, answer(metaPart, second))
}

func startRemote(t *testing.T) (*remotePeer, *transport.Client) {
	t.Helper()
	p := &remotePeer{}
	p.web = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		if _, err := fmt.Sscanf(r.URL.Path, "/redirect/%d", &n); err == nil {
			target := "/file"
			if n > 1 {
				target = fmt.Sprintf("/redirect/%d", n-1)
			}
			http.Redirect(w, r, target, http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Content-Disposition", `inline; filename="w.png"`)
		io.WriteString(w, "from the web")
	}))
	t.Cleanup(p.web.Close)

	fed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.requests = append(p.requests, r.URL.RequestURI())
		if !strings.HasPrefix(r.Header.Get("Authorization"), "X-Matrix ") {
			p.unsigned++
		}
		p.mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/_matrix/media/v3/download/b.test/") {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Disposition", `attachment; filename="old.txt"`)
			io.WriteString(w, "legacy")
			return
		}
		id := strings.TrimPrefix(r.URL.Path, "/_matrix/federation/v1/media/download/")
		matrixErr := func(status int, code string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"errcode":%q,"error":"x"}`, code)
		}
		switch id {
		case "plain":
			writeMultipart(w, "Content-Type: text/plain\r\nContent-Disposition: attachment; filename=hello.txt\r\n\r\nhello")
		case "loc":
			writeMultipart(w, "Location: "+p.web.URL+"/file\r\n\r\n")
		case "loc-redirects":
			writeMultipart(w, "Location: "+p.web.URL+fmt.Sprintf("/redirect/%d\r\n\r\n", mediafetch.DefaultMaxRedirects+1))
		case "old":
			matrixErr(404, "M_UNRECOGNIZED")
		case "old405":
			w.WriteHeader(405)
		case "old400":
			// Complement's stand-in server answers the authenticated path with a bare 400.
			w.WriteHeader(400)
			io.WriteString(w, "invalid origin")
		case "bad400":
			matrixErr(400, "M_INVALID_PARAM")
		case "gone":
			matrixErr(404, "M_NOT_FOUND")
		case "pending":
			matrixErr(504, "M_NOT_YET_UPLOADED")
		case "huge":
			matrixErr(502, "M_TOO_LARGE")
		case "broken":
			matrixErr(500, "M_UNKNOWN")
		case "garbage":
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<html>hello</html>")
		case "mute":
			<-r.Context().Done()
		case "stall":
			w.Header().Set("Content-Type", contentType)
			io.WriteString(w, "--"+boundary+"\r\n"+metaPart+"\r\n--"+boundary+"\r\n\r\nfirst bytes")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		default:
			matrixErr(404, "M_NOT_FOUND")
		}
	})
	caCert, caKey := servertest.TestCA(t)
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "b.crt"), filepath.Join(dir, "b.key")
	if _, err := transport.EnsureCertificate(certPath, keyPath, "b.test", caCert, caKey); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	p.fed = httptest.NewUnstartedServer(fed)
	p.fed.EnableHTTP2 = true
	p.fed.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	p.fed.StartTLS()
	t.Cleanup(p.fed.Close)

	roots, err := transport.LoadCAFile(caCert)
	if err != nil {
		t.Fatal(err)
	}
	r := transport.NewResolver()
	r.StaticPeers = transport.StaticPeers{"b.test": {p.fed.Listener.Addr().String()}}
	r.RootCAs = roots
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	c := transport.NewClient("a.test", "ed25519:test", priv, r)
	t.Cleanup(c.CloseIdleConnections)
	return p, c
}

func fetchAll(f *mediafetch.Fetcher, mediaID string, wait time.Duration) (*media.RemoteContent, string, error) {
	rc, err := f.Fetch(context.Background(), "b.test", mediaID, wait)
	if err != nil {
		return nil, "", err
	}
	defer rc.Body.Close()
	b, err := io.ReadAll(rc.Body)
	return rc, string(b), err
}

func TestFetch(t *testing.T) {
	peer, client := startRemote(t)
	f := mediafetch.New(client, true) // the web server is on loopback

	for _, tt := range []struct {
		mediaID           string
		content, ct, name string
		wantErr           error
		wantRequests      []string
		wantAnyError      bool
	}{
		{mediaID: "plain", content: "hello", ct: "text/plain", name: "hello.txt",
			wantRequests: []string{"/_matrix/federation/v1/media/download/plain?timeout_ms=1500"}},
		{mediaID: "loc", content: "from the web", ct: "image/png", name: "w.png"},
		{mediaID: "old", content: "legacy", ct: "text/plain", name: "old.txt", wantRequests: []string{
			"/_matrix/federation/v1/media/download/old?timeout_ms=1500",
			"/_matrix/media/v3/download/b.test/old?allow_remote=false&timeout_ms=1500"}},
		{mediaID: "old405", content: "legacy", ct: "text/plain", name: "old.txt"},
		{mediaID: "old400", content: "legacy", ct: "text/plain", name: "old.txt"},
		{mediaID: "bad400", wantAnyError: true},
		{mediaID: "gone", wantErr: media.ErrNotFound,
			wantRequests: []string{"/_matrix/federation/v1/media/download/gone?timeout_ms=1500"}},
		{mediaID: "pending", wantErr: media.ErrNotYetUploaded},
		{mediaID: "huge", wantErr: media.ErrRemoteTooLarge},
		{mediaID: "garbage", wantErr: mediafetch.ErrMalformed},
		{mediaID: "broken", wantAnyError: true},
		{mediaID: "loc-redirects", wantAnyError: true},
	} {
		t.Run(tt.mediaID, func(t *testing.T) {
			before := len(peer.seen())
			rc, content, err := fetchAll(f, tt.mediaID, 1500*time.Millisecond)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Fetch(%s) = %v, want %v", tt.mediaID, err, tt.wantErr)
				}
			case tt.wantAnyError:
				if err == nil {
					t.Fatalf("Fetch(%s) succeeded, want an error", tt.mediaID)
				}
				if errors.Is(err, media.ErrNotFound) || errors.Is(err, media.ErrRemoteTimeout) {
					t.Errorf("Fetch(%s) = %v, want a plain failure", tt.mediaID, err)
				}
			default:
				if err != nil {
					t.Fatalf("Fetch(%s): %v", tt.mediaID, err)
				}
				if content != tt.content || rc.ContentType != tt.ct || rc.Filename != tt.name {
					t.Errorf("Fetch(%s) = %q (%s, %q), want %q (%s, %q)", tt.mediaID, content, rc.ContentType, rc.Filename, tt.content, tt.ct, tt.name)
				}
			}
			if tt.wantRequests != nil {
				if got := peer.seen()[before:]; strings.Join(got, " ") != strings.Join(tt.wantRequests, " ") {
					t.Errorf("requests = %q, want %q", got, tt.wantRequests)
				}
			}
		})
	}
	peer.mu.Lock()
	if peer.unsigned != 0 {
		t.Errorf("%d federation requests were not signed", peer.unsigned)
	}
	peer.mu.Unlock()
	if _, err := f.Fetch(context.Background(), "not a server", "x", 0); !errors.Is(err, media.ErrNotFound) {
		t.Errorf("Fetch from an invalid server name = %v, want ErrNotFound", err)
	}
}

// TestFetchLocationAddressPolicy: by default a Location may not lead to loopback or private
// addresses, even when the remote itself is a static peer there.
func TestFetchLocationAddressPolicy(t *testing.T) {
	_, client := startRemote(t)
	f := mediafetch.New(client, false)
	_, _, err := fetchAll(f, "loc", 0)
	if !errors.Is(err, netpolicy.ErrRefused) {
		t.Errorf("Location on loopback = %v, want netpolicy.ErrRefused", err)
	}
	f.AllowAddr = func(a netip.Addr) bool { return a.IsLoopback() }
	if _, content, err := fetchAll(f, "loc", 0); err != nil || content != "from the web" {
		t.Errorf("Location with loopback allowed = %q, %v", content, err)
	}
}

// TestFetchTimeouts: a remote that does not answer, or stops sending, ends in ErrRemoteTimeout.
func TestFetchTimeouts(t *testing.T) {
	_, client := startRemote(t)
	f := mediafetch.New(client, true)
	f.AnswerGrace = 50 * time.Millisecond
	f.IdleTimeout = 200 * time.Millisecond
	if _, _, err := fetchAll(f, "mute", 0); !errors.Is(err, media.ErrRemoteTimeout) {
		t.Errorf("remote that never answers: %v, want ErrRemoteTimeout", err)
	}
	_, content, err := fetchAll(f, "stall", 0)
	if !errors.Is(err, media.ErrRemoteTimeout) {
		t.Errorf("remote that stops sending: %v, want ErrRemoteTimeout", err)
	}
	if content != "first bytes" {
		t.Errorf("stalled download delivered %q before failing, want \"first bytes\"", content)
	}
	// The caller giving up is not a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	f.AnswerGrace = time.Minute
	if _, err := f.Fetch(ctx, "b.test", "mute", 0); err == nil || errors.Is(err, media.ErrRemoteTimeout) {
		t.Errorf("cancelled fetch = %v, want a cancellation, not ErrRemoteTimeout", err)
	}
}
