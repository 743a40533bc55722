package transport_test

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/federation/transport"
)

// leafFor mints a certificate for serverName from ca.
func leafFor(t *testing.T, ca testCA, serverName string) tls.Certificate {
	t.Helper()
	certPath, keyPath := paths(t)
	if _, err := transport.EnsureCertificate(certPath, keyPath, serverName, ca.certPath, ca.keyPath); err != nil {
		t.Fatalf("mint certificate for %s: %v", serverName, err)
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// fakeDNS answers from maps; nothing leaves the process. Unknown names are "not found".
type fakeDNS struct {
	mu      sync.Mutex
	srv     map[string][]*net.SRV // by "_service._proto.name"
	ips     map[string][]net.IP
	srvErr  error // if set, every SRV lookup fails with it
	ipErr   error // if set, every address lookup fails with it
	queries []string
}

func (f *fakeDNS) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := "_" + service + "._" + proto + "." + name
	f.queries = append(f.queries, q)
	if f.srvErr != nil {
		return "", nil, f.srvErr
	}
	if recs, ok := f.srv[q]; ok {
		return q, recs, nil
	}
	return "", nil, &net.DNSError{Err: "no such host", Name: q, IsNotFound: true}
}

func (f *fakeDNS) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, "A "+host)
	if f.ipErr != nil {
		return nil, f.ipErr
	}
	var out []net.IPAddr
	for _, ip := range f.ips[host] {
		out = append(out, net.IPAddr{IP: ip})
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

func (f *fakeDNS) set(fn func(*fakeDNS)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// fakeClock is a clock that only moves when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// wellKnownServer serves /.well-known/matrix/server over TLS for several host names, each
// with its own handler, and counts the fetches per host.
type wellKnownServer struct {
	srv *httptest.Server

	mu       sync.Mutex
	handlers map[string]http.HandlerFunc
	fetches  map[string]int
	down     bool // the transport refuses to connect, like a cut link
}

func startWellKnown(t *testing.T, ca testCA, handlers map[string]http.HandlerFunc) *wellKnownServer {
	t.Helper()
	s := &wellKnownServer{handlers: handlers, fetches: map[string]int{}}
	var certs []tls.Certificate
	for host := range handlers {
		certs = append(certs, leafFor(t, ca, host))
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		s.mu.Lock()
		s.fetches[host]++
		h := s.handlers[host]
		s.mu.Unlock()
		if h == nil || r.URL.Path == "/" {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	s.srv.TLS = &tls.Config{Certificates: certs}
	// Hosts without a certificate of their own fail the handshake; that is expected.
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

// transport dials the test server whatever host is asked for and trusts ca, as a real
// transport would after DNS pointed the host here.
func (s *wellKnownServer) transport(ca testCA) http.RoundTripper {
	return &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.pool()},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			s.mu.Lock()
			down := s.down
			s.mu.Unlock()
			if down {
				return nil, errors.New("connect: network is unreachable")
			}
			var d net.Dialer
			return d.DialContext(ctx, network, s.srv.Listener.Addr().String())
		},
	}
}

func (s *wellKnownServer) count(host string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches[host]
}

func (s *wellKnownServer) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func (s *wellKnownServer) handle(host string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[host] = h
}

// delegate answers a .well-known with m.server and optional Cache-Control.
func delegate(server, cacheControl string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if cacheControl != "" {
			w.Header().Set("Cache-Control", cacheControl)
		}
		w.Write([]byte(`{"m.server": "` + server + `"}`))
	}
}

// status answers with a bare status code.
func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }
}

// serverKey is one test server's signing identity.
type serverKey struct {
	name  string
	keyID id.KeyID
	priv  ed25519.PrivateKey
}

func newServerKey(name string) serverKey {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		panic(err)
	}
	_ = pub
	return serverKey{name: name, keyID: id.NewKeyID(id.KeyAlgorithmEd25519, "a_test"), priv: priv}
}

func (k serverKey) public() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// fakeKeys is a KeyLookup over a fixed set of keys.
type fakeKeys map[string]map[id.KeyID]ed25519.PublicKey

func (f fakeKeys) VerifyKey(_ context.Context, server string, keyID id.KeyID, _ time.Time) (ed25519.PublicKey, error) {
	if k, ok := f[server][keyID]; ok {
		return k, nil
	}
	return nil, errors.New("unknown key")
}

var _ transport.KeyLookup = fakeKeys(nil)
