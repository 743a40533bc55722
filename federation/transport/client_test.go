package transport_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation"

	"fyr/federation/transport"
)

// testPeer is a federation server on 127.0.0.1 with a certificate from a test CA.
type testPeer struct {
	name string
	srv  *httptest.Server

	mu        sync.Mutex
	sni       []string
	newConns  int
	hosts     []string
	protoMajs []int
}

func startPeer(t *testing.T, ca testCA, name string, h http.Handler, http2 bool) *testPeer {
	t.Helper()
	p := &testPeer{name: name}
	cert := leafFor(t, ca, name)
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.hosts = append(p.hosts, r.Host)
		p.protoMajs = append(p.protoMajs, r.ProtoMajor)
		p.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	p.srv.EnableHTTP2 = http2
	p.srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			p.mu.Lock()
			p.sni = append(p.sni, hello.ServerName)
			p.mu.Unlock()
			return nil, nil
		},
	}
	p.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			p.mu.Lock()
			p.newConns++
			p.mu.Unlock()
		}
	}
	p.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are part of the tests
	p.srv.StartTLS()
	t.Cleanup(p.srv.Close)
	return p
}

func (p *testPeer) addr() string { return p.srv.Listener.Addr().String() }

func (p *testPeer) conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.newConns
}

// newTestClient returns a client for a.test that reaches the given peers as static peers and
// trusts roots.
func newTestClient(t *testing.T, roots *x509.CertPool, peers map[string]string) *transport.Client {
	t.Helper()
	r := transport.NewResolver()
	r.DNS = &fakeDNS{}
	r.StaticPeers = transport.StaticPeers{}
	for name, addr := range peers {
		r.StaticPeers[name] = []string{addr}
	}
	r.RootCAs = roots
	a := newServerKey("a.test")
	c := transport.NewClient("a.test", a.keyID, a.priv, r)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestClientTLS(t *testing.T) {
	ca := newCA(t, "ecdsa-sec1", time.Hour)
	other := newCA(t, "rsa-pkcs1", time.Hour)
	b := startPeer(t, ca, "b.test", transport.VersionHandler("1.2.3"), true)
	peers := map[string]string{"b.test": b.addr(), "c.test": b.addr()}
	ctx := context.Background()

	t.Run("trusted CA", func(t *testing.T) {
		c := newTestClient(t, ca.pool(), peers)
		var got federation.RespServerVersion
		if err := c.DoUnsigned(ctx, "b.test", "GET", "/_matrix/federation/v1/version", nil, &got); err != nil {
			t.Fatalf("GET version: %v", err)
		}
		if got.Server.Name != "Fyr" || got.Server.Version != "1.2.3" {
			t.Errorf("version = %+v, want Fyr 1.2.3", got.Server)
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.sni) == 0 || b.sni[len(b.sni)-1] != "b.test" {
			t.Errorf("SNI = %q, want b.test", b.sni)
		}
		if host := b.hosts[len(b.hosts)-1]; host != "b.test" {
			t.Errorf("Host header = %q, want b.test", host)
		}
		if proto := b.protoMajs[len(b.protoMajs)-1]; proto != 2 {
			t.Errorf("request used HTTP/%d, want HTTP/2", proto)
		}
	})
	t.Run("unknown CA refused", func(t *testing.T) {
		c := newTestClient(t, other.pool(), peers)
		err := c.DoUnsigned(ctx, "b.test", "GET", "/_matrix/federation/v1/version", nil, nil)
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Errorf("GET with the wrong CA: error = %v, want x509.UnknownAuthorityError", err)
		}
	})
	t.Run("certificate for another name refused", func(t *testing.T) {
		c := newTestClient(t, ca.pool(), peers)
		err := c.DoUnsigned(ctx, "c.test", "GET", "/_matrix/federation/v1/version", nil, nil)
		var wrongHost x509.HostnameError
		if !errors.As(err, &wrongHost) {
			t.Errorf("GET c.test served b.test's certificate: error = %v, want x509.HostnameError", err)
		}
	})
	t.Run("IP literal server name", func(t *testing.T) {
		// Spec step 1: connect to the IP itself, no SNI, certificate for the IP, Host header
		// the server name with its port.
		ip := startPeer(t, ca, "127.0.0.1", transport.VersionHandler("x"), true)
		c := newTestClient(t, ca.pool(), nil)
		if err := c.DoUnsigned(ctx, ip.addr(), "GET", "/_matrix/federation/v1/version", nil, nil); err != nil {
			t.Fatalf("GET %s: %v", ip.addr(), err)
		}
		ip.mu.Lock()
		defer ip.mu.Unlock()
		if len(ip.sni) != 1 || ip.sni[0] != "" {
			t.Errorf("SNI = %q, want none for an IP address", ip.sni)
		}
		if len(ip.hosts) != 1 || ip.hosts[0] != ip.addr() {
			t.Errorf("Host header = %q, want %q", ip.hosts, ip.addr())
		}
	})
	t.Run("invalid server name", func(t *testing.T) {
		c := newTestClient(t, ca.pool(), peers)
		if err := c.DoUnsigned(ctx, "bad name", "GET", "/_matrix/federation/v1/version", nil, nil); !errors.Is(err, transport.ErrInvalidServerName) {
			t.Errorf("GET to an invalid name: error = %v, want ErrInvalidServerName", err)
		}
	})
}

func TestClientResponseSizeLimit(t *testing.T) {
	ca := newCA(t, "ecdsa-sec1", time.Hour)
	const limit = 1024
	b := startPeer(t, ca, "b.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscan(r.URL.Query().Get("n"), &n)
		body := `"` + strings.Repeat("x", n-2) + `"`
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		}
		io.WriteString(w, body[:len(body)/2])
		w.(http.Flusher).Flush()
		io.WriteString(w, body[len(body)/2:])
	}), true)
	c := newTestClient(t, ca.pool(), map[string]string{"b.test": b.addr()})
	c.MaxResponseBytes = limit
	for _, tt := range []struct {
		query  string
		tooBig bool
	}{
		{"n=1024", false},
		{"n=1025", true},
		{"n=1024&chunked=1", false},
		{"n=1025&chunked=1", true},
		{"n=100000&chunked=1", true},
	} {
		var s string
		err := c.DoUnsigned(context.Background(), "b.test", "GET", "/_matrix/federation/v1/x?"+tt.query, nil, &s)
		if got := errors.Is(err, transport.ErrResponseTooLarge); got != tt.tooBig {
			t.Errorf("GET ?%s: error = %v, want too large: %v", tt.query, err, tt.tooBig)
		}
	}
}

func TestClientResponseError(t *testing.T) {
	ca := newCA(t, "ecdsa-sec1", time.Hour)
	b := startPeer(t, ca, "b.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"errcode":"M_LIMIT_EXCEEDED","error":"slow down"}`)
	}), true)
	c := newTestClient(t, ca.pool(), map[string]string{"b.test": b.addr()})
	err := c.DoUnsigned(context.Background(), "b.test", "GET", "/_matrix/federation/v1/x", nil, nil)
	var re *transport.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error = %v, want *ResponseError", err)
	}
	if re.StatusCode != 429 || re.ErrCode != "M_LIMIT_EXCEEDED" || re.Message != "slow down" || re.RetryAfter != 7*time.Second {
		t.Errorf("ResponseError = %+v, want 429 M_LIMIT_EXCEEDED \"slow down\" retry after 7s", re)
	}
	if c.PeerAlive("b.test") {
		t.Errorf("PeerAlive after an answered request = true, want false: the connection works")
	}
}

func TestClientPoolBoundedPerDestination(t *testing.T) {
	ca := newCA(t, "ecdsa-sec1", time.Hour)
	release := make(chan struct{})
	arrived := make(chan struct{}, 10)
	b := startPeer(t, ca, "b.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		io.WriteString(w, `{}`)
	}), false) // HTTP/1.1: one request per connection at a time
	c := newTestClient(t, ca.pool(), map[string]string{"b.test": b.addr()})
	c.MaxConnsPerDestination = 2

	const n = 5
	errs := make(chan error, n)
	for range n {
		go func() {
			errs <- c.DoUnsigned(context.Background(), "b.test", "GET", "/_matrix/federation/v1/x", nil, nil)
		}()
	}
	<-arrived
	<-arrived
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("request: %v", err)
		}
	}
	if got := b.conns(); got > 2 {
		t.Errorf("%d connections to one destination, want at most MaxConnsPerDestination = 2", got)
	}
}

func TestClientCloseIdle(t *testing.T) {
	ca := newCA(t, "ecdsa-sec1", time.Hour)
	b := startPeer(t, ca, "b.test", transport.VersionHandler("x"), true)
	c := newTestClient(t, ca.pool(), map[string]string{"b.test": b.addr()})
	get := func() {
		t.Helper()
		if err := c.DoUnsigned(context.Background(), "b.test", "GET", "/_matrix/federation/v1/version", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	get()
	get()
	if got := b.conns(); got != 1 {
		t.Fatalf("two requests used %d connections, want 1 reused", got)
	}
	c.CloseIdle("b.test")
	get()
	if got := b.conns(); got != 2 {
		t.Errorf("after CloseIdle: %d connections, want a fresh second one", got)
	}
}

func TestClientReconnectAbortsStuckRequest(t *testing.T) {
	ca := newCA(t, "ecdsa-sec1", time.Hour)
	arrived := make(chan struct{}, 1)
	b := startPeer(t, ca, "b.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stuck" {
			arrived <- struct{}{}
			<-r.Context().Done() // like a peer behind a silent cut: no answer, ever
			return
		}
		io.WriteString(w, `{}`)
	}), true)
	c := newTestClient(t, ca.pool(), map[string]string{"b.test": b.addr()})
	ctx := context.Background()

	for i, unstick := range []struct {
		name string
		f    func() bool
	}{
		{"Reconnect", func() bool { c.Reconnect("b.test"); return true }},
		// With a negative StallTimeout every connection counts as silent for too long.
		{"PeerAlive", func() bool { c.StallTimeout = -1; return c.PeerAlive("b.test") }},
	} {
		done := make(chan error, 1)
		go func() { done <- c.DoUnsigned(ctx, "b.test", "GET", "/stuck", nil, nil) }()
		<-arrived
		if !unstick.f() {
			t.Fatalf("%s with a request stuck on a silent connection reported nothing closed", unstick.name)
		}
		if err := <-done; err == nil {
			t.Fatalf("stuck request returned no error after %s", unstick.name)
		}
		if err := c.DoUnsigned(ctx, "b.test", "GET", "/ok", nil, nil); err != nil {
			t.Fatalf("request after %s: %v", unstick.name, err)
		}
		if got, want := b.conns(), i+2; got != want {
			t.Errorf("after %s: %d connections, want %d: the stuck one was replaced by a fresh one", unstick.name, got, want)
		}
	}
}

func TestClientPeerAliveAfterFailure(t *testing.T) {
	ca := newCA(t, "ecdsa-sec1", time.Hour)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens here now
	c := newTestClient(t, ca.pool(), map[string]string{"b.test": dead})
	if c.PeerAlive("b.test") {
		t.Errorf("PeerAlive before any request = true, want false")
	}
	if err := c.DoUnsigned(context.Background(), "b.test", "GET", "/_matrix/federation/v1/version", nil, nil); err == nil {
		t.Fatalf("request to a closed port succeeded")
	}
	if !c.PeerAlive("b.test") {
		t.Errorf("PeerAlive after a connection failure = false, want true")
	}
	if c.PeerAlive("b.test") {
		t.Errorf("second PeerAlive = true, want false: Reconnect cleared the failure")
	}
}

// TestClientStream: a streamed GET is signed, its body may exceed MaxResponseBytes and take
// longer than RequestTimeout once the headers are in, and a non-2xx answer is a ResponseError.
func TestClientStream(t *testing.T) {
	ca := newCA(t, "ecdsa-sec1", time.Hour)
	b := startPeer(t, ca, "b.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "X-Matrix ") {
			w.WriteHeader(401)
			return
		}
		switch r.URL.Path {
		case "/_matrix/federation/v1/big":
			w.Header().Set("Content-Type", "application/octet-stream")
			io.WriteString(w, strings.Repeat("x", 4096))
		case "/_matrix/federation/v1/slow-body":
			io.WriteString(w, "first ")
			w.(http.Flusher).Flush()
			time.Sleep(300 * time.Millisecond)
			io.WriteString(w, "second")
		case "/_matrix/federation/v1/slow-headers":
			time.Sleep(300 * time.Millisecond)
		default:
			w.WriteHeader(404)
			io.WriteString(w, `{"errcode":"M_UNRECOGNIZED","error":"no"}`)
		}
	}), true)
	c := newTestClient(t, ca.pool(), map[string]string{"b.test": b.addr()})
	c.MaxResponseBytes = 1024
	c.RequestTimeout = 100 * time.Millisecond
	ctx := context.Background()
	read := func(path string) (string, error) {
		resp, err := c.Stream(ctx, "b.test", path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		return string(got), err
	}

	if got, err := read("/_matrix/federation/v1/big"); err != nil || len(got) != 4096 {
		t.Errorf("Stream big = %d bytes, %v; want 4096 bytes beyond MaxResponseBytes", len(got), err)
	}
	if got, err := read("/_matrix/federation/v1/slow-body"); err != nil || got != "first second" {
		t.Errorf("Stream slow body = %q, %v; want the whole body: RequestTimeout bounds only the headers", got, err)
	}
	if _, err := read("/_matrix/federation/v1/slow-headers"); !errors.Is(err, context.Canceled) {
		t.Errorf("Stream slow headers: error = %v, want the request cancelled after RequestTimeout", err)
	}
	_, err := read("/_matrix/federation/v1/missing")
	var re *transport.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 404 || re.ErrCode != "M_UNRECOGNIZED" {
		t.Errorf("Stream missing: error = %v, want 404 M_UNRECOGNIZED", err)
	}
	unsigned := transport.NewClient("a.test", "", nil, c.Resolver)
	if _, err := unsigned.Stream(ctx, "b.test", "/_matrix/federation/v1/big"); !errors.Is(err, transport.ErrNoSigningKey) {
		t.Errorf("Stream without a key: error = %v, want ErrNoSigningKey", err)
	}
}
