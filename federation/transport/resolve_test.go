package transport_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"fyr/federation/transport"
)

// resolverEnv is a resolver wired to a fake DNS, a fake clock and a TLS .well-known server
// whose certificates come from a test CA.
type resolverEnv struct {
	r     *transport.Resolver
	dns   *fakeDNS
	clock *fakeClock
	wk    *wellKnownServer
}

func newResolverEnv(t *testing.T, wellKnowns map[string]http.HandlerFunc) *resolverEnv {
	t.Helper()
	ca := newCA(t, "ecdsa-sec1", time.Hour)
	env := &resolverEnv{
		dns:   &fakeDNS{srv: map[string][]*net.SRV{}, ips: map[string][]net.IP{}},
		clock: newClock(),
		wk:    startWellKnown(t, ca, wellKnowns),
	}
	env.r = transport.NewResolver()
	env.r.DNS = env.dns
	env.r.Now = env.clock.Now
	env.r.RootCAs = ca.pool()
	env.r.WellKnownTransport = env.wk.transport(ca)
	return env
}

func (env *resolverEnv) resolve(t *testing.T, name string) (hostHeader string, addrs []string) {
	t.Helper()
	res, err := env.r.Resolve(context.Background(), name)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", name, err)
	}
	return res.HostHeader, res.IPPort
}

func srv(target string, port uint16) []*net.SRV {
	return []*net.SRV{{Target: target + ".", Port: port, Priority: 10, Weight: 5}}
}

func TestResolveOrder(t *testing.T) {
	env := newResolverEnv(t, map[string]http.HandlerFunc{
		"wk-port.test":   delegate("del.test:9000", ""),
		"wk-ip.test":     delegate("10.1.2.3", ""),
		"wk-ipport.test": delegate("[fd00::1]:9001", ""),
		"wk-srv.test":    delegate("del-srv.test", ""),
		"wk-plain.test":  delegate("del-plain.test", ""),
		"wk-oldsrv.test": delegate("del-oldsrv.test", ""),
		"srv.test":       status(http.StatusNotFound),
		"bad-json.test":  func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"m.server": `)) },
		"bad-name.test":  delegate("https://del.test", ""),
		"huge.test": func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"m.server": "del.test:1", "pad": "` + strings.Repeat("x", transport.MaxWellKnownBytes) + `"}`))
		},
		"redirect.test": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/.well-known/matrix/server" {
				http.Redirect(w, r, "https://redirect.test/moved", http.StatusFound)
				return
			}
			delegate("moved.test:9002", "")(w, r)
		},
		"loop.test": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://loop.test/.well-known/matrix/server", http.StatusFound)
		},
		"chain.test": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, r.URL.Path+"x", http.StatusFound)
		},
		"static.test": delegate("elsewhere.test:1", ""),
	})
	env.r.StaticPeers = transport.StaticPeers{"static.test": {"127.0.0.1:7001", "[::1]:7002"}}
	env.dns.srv["_matrix-fed._tcp.del-srv.test"] = srv("target.test", 7000)
	env.dns.srv["_matrix-fed._tcp.srv.test"] = srv("fed-target.test", 7100)
	env.dns.srv["_matrix._tcp.srv.test"] = srv("old-target.test", 7200) // matrix-fed wins
	env.dns.srv["_matrix._tcp.oldsrv.test"] = srv("old-target.test", 7300)
	env.dns.srv["_matrix._tcp.del-oldsrv.test"] = srv("old-del-target.test", 7400)
	env.dns.srv["_matrix-fed._tcp.plain.test"] = []*net.SRV{{Target: ".", Port: 0}} // "not offered"

	tests := []struct {
		step       string
		name       string
		wantHost   string
		wantAddrs  []string
		wantWKHits int // fetches of the name's own .well-known
	}{
		{"1 IPv4 literal", "192.0.2.1", "192.0.2.1", []string{"192.0.2.1:8448"}, 0},
		{"1 IPv6 literal with port", "[2001:db8::1]:8449", "[2001:db8::1]:8449", []string{"[2001:db8::1]:8449"}, 0},
		{"2 explicit port", "port.test:1234", "port.test:1234", []string{"port.test:1234"}, 0},
		{"3.1 well-known IP", "wk-ip.test", "10.1.2.3", []string{"10.1.2.3:8448"}, 1},
		{"3.1 well-known IP with port", "wk-ipport.test", "[fd00::1]:9001", []string{"[fd00::1]:9001"}, 1},
		{"3.2 well-known with port", "wk-port.test", "del.test:9000", []string{"del.test:9000"}, 1},
		{"3.3 well-known then _matrix-fed SRV", "wk-srv.test", "del-srv.test", []string{"target.test:7000"}, 1},
		{"3.4 well-known then _matrix SRV", "wk-oldsrv.test", "del-oldsrv.test", []string{"old-del-target.test:7400"}, 1},
		{"3.5 well-known then port 8448", "wk-plain.test", "del-plain.test", []string{"del-plain.test:8448"}, 1},
		{"4 _matrix-fed SRV", "srv.test", "srv.test", []string{"fed-target.test:7100"}, 1},
		{"5 _matrix SRV", "oldsrv.test", "oldsrv.test", []string{"old-target.test:7300"}, 0},
		{"6 port 8448", "plain.test", "plain.test", []string{"plain.test:8448"}, 0},
		{"3 bad JSON falls through", "bad-json.test", "bad-json.test", []string{"bad-json.test:8448"}, 1},
		{"3 bad m.server falls through", "bad-name.test", "bad-name.test", []string{"bad-name.test:8448"}, 1},
		{"3 oversized falls through", "huge.test", "huge.test", []string{"huge.test:8448"}, 1},
		{"3 redirect followed", "redirect.test", "moved.test:9002", []string{"moved.test:9002"}, 2},
		{"3 redirect loop falls through", "loop.test", "loop.test", []string{"loop.test:8448"}, 1},
		{"3 redirect chain bounded", "chain.test", "chain.test", []string{"chain.test:8448"}, transport.MaxWellKnownRedirects},
		{"static peer wins", "static.test", "static.test", []string{"127.0.0.1:7001", "[::1]:7002"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			host, addrs := env.resolve(t, tt.name)
			if host != tt.wantHost || !slices.Equal(addrs, tt.wantAddrs) {
				t.Errorf("Resolve(%q) = Host %q, addresses %q; want %q, %q", tt.name, host, addrs, tt.wantHost, tt.wantAddrs)
			}
			if got := env.wk.count(tt.name); got != tt.wantWKHits {
				t.Errorf("Resolve(%q) fetched its .well-known %d times, want %d", tt.name, got, tt.wantWKHits)
			}
		})
	}
}

func TestResolveTLSServerName(t *testing.T) {
	tests := []struct{ hostHeader, want string }{
		{"example.test", "example.test"},
		{"example.test:8448", "example.test"},
		{"192.0.2.1", "192.0.2.1"},
		{"[2001:db8::1]:8448", "2001:db8::1"},
		{"[2001:db8::1]", "2001:db8::1"},
	}
	for _, tt := range tests {
		if got := transport.TLSServerName(tt.hostHeader); got != tt.want {
			t.Errorf("TLSServerName(%q) = %q, want %q", tt.hostHeader, got, tt.want)
		}
	}
}

func TestResolveInvalidName(t *testing.T) {
	r := transport.NewResolver()
	r.DNS = &fakeDNS{}
	for _, name := range []string{"", "bad name", "https://x.test", "[::1"} {
		if _, err := r.Resolve(context.Background(), name); !errors.Is(err, transport.ErrInvalidServerName) {
			t.Errorf("Resolve(%q) error = %v, want ErrInvalidServerName", name, err)
		}
	}
}

func TestResolveWellKnownCached(t *testing.T) {
	env := newResolverEnv(t, map[string]http.HandlerFunc{
		"cached.test":  delegate("del.test:9000", "public, max-age=600"),
		"default.test": delegate("del.test:9001", ""),
	})
	env.resolve(t, "cached.test")
	env.resolve(t, "cached.test")
	if got := env.wk.count("cached.test"); got != 1 {
		t.Fatalf("two resolutions fetched .well-known %d times, want 1", got)
	}
	env.clock.Advance(9 * time.Minute)
	env.resolve(t, "cached.test")
	if got := env.wk.count("cached.test"); got != 1 {
		t.Errorf("within max-age fetched %d times, want 1", got)
	}
	env.clock.Advance(2 * time.Minute)
	env.wk.handle("cached.test", delegate("new.test:9100", "max-age=600"))
	if host, _ := env.resolve(t, "cached.test"); host != "new.test:9100" {
		t.Errorf("after max-age Host = %q, want the new delegation new.test:9100", host)
	}
	if got := env.wk.count("cached.test"); got != 2 {
		t.Errorf("after max-age fetched %d times, want 2", got)
	}

	// Without Cache-Control the answer holds for a day.
	env.resolve(t, "default.test")
	env.clock.Advance(23 * time.Hour)
	env.resolve(t, "default.test")
	if got := env.wk.count("default.test"); got != 1 {
		t.Errorf("23h later fetched %d times, want 1 (default 24h)", got)
	}
	env.clock.Advance(2 * time.Hour)
	env.resolve(t, "default.test")
	if got := env.wk.count("default.test"); got != 2 {
		t.Errorf("25h later fetched %d times, want 2", got)
	}
}

func TestResolveWellKnownErrorBackoff(t *testing.T) {
	env := newResolverEnv(t, map[string]http.HandlerFunc{"broken.test": status(http.StatusInternalServerError)})
	fetches := func() int { return env.wk.count("broken.test") }

	for range 3 {
		if _, addrs := env.resolve(t, "broken.test"); !slices.Equal(addrs, []string{"broken.test:8448"}) {
			t.Fatalf("addresses %q, want the port 8448 fall-back", addrs)
		}
	}
	if got := fetches(); got != 1 {
		t.Fatalf("three resolutions fetched a failing .well-known %d times, want 1", got)
	}
	// Back-off doubles: 2, 4, 8 … minutes, up to an hour.
	want := 1
	for _, wait := range []time.Duration{2, 4, 8, 16, 32, 60, 60} {
		env.clock.Advance(wait*time.Minute - time.Second)
		env.resolve(t, "broken.test")
		if got := fetches(); got != want {
			t.Fatalf("1s before the %v back-off ends: %d fetches, want %d", wait*time.Minute, got, want)
		}
		env.clock.Advance(time.Second)
		env.resolve(t, "broken.test")
		want++
		if got := fetches(); got != want {
			t.Fatalf("when the %v back-off ends: %d fetches, want %d", wait*time.Minute, got, want)
		}
	}

	// The peer recovers; Expire (it contacted us) ends the back-off at once.
	env.wk.handle("broken.test", delegate("fixed.test:9000", ""))
	env.r.Expire("broken.test")
	if host, _ := env.resolve(t, "broken.test"); host != "fixed.test:9000" {
		t.Errorf("after Expire Host = %q, want fixed.test:9000", host)
	}
}

func TestResolveKeepsDelegationThroughOutage(t *testing.T) {
	env := newResolverEnv(t, map[string]http.HandlerFunc{"deleg.test": delegate("del.test:9000", "max-age=300")})
	env.resolve(t, "deleg.test")
	env.wk.setDown(true)
	env.clock.Advance(10 * time.Minute)
	if host, addrs := env.resolve(t, "deleg.test"); host != "del.test:9000" || !slices.Equal(addrs, []string{"del.test:9000"}) {
		t.Errorf("with .well-known unreachable: Host %q, addresses %q; want the last delegation", host, addrs)
	}
	// An answer that is not a delegation does replace it.
	env.wk.setDown(false)
	env.wk.handle("deleg.test", status(http.StatusNotFound))
	env.r.Expire("deleg.test")
	if host, _ := env.resolve(t, "deleg.test"); host != "deleg.test" {
		t.Errorf("after a 404 Host = %q, want deleg.test", host)
	}
}

func TestResolveDNSFailure(t *testing.T) {
	env := newResolverEnv(t, map[string]http.HandlerFunc{})
	env.dns.srv["_matrix-fed._tcp.peer.test"] = srv("target.test", 7000)
	if _, addrs := env.resolve(t, "peer.test"); !slices.Equal(addrs, []string{"target.test:7000"}) {
		t.Fatalf("addresses %q, want the SRV target", addrs)
	}
	env.dns.set(func(f *fakeDNS) { f.srvErr = &net.DNSError{Err: "server misbehaving", IsTemporary: true} })
	env.clock.Advance(2 * time.Hour)
	if _, addrs := env.resolve(t, "peer.test"); !slices.Equal(addrs, []string{"target.test:7000"}) {
		t.Errorf("with DNS down: addresses %q, want the last SRV answer", addrs)
	}
	if _, addrs := env.resolve(t, "never-seen.test"); !slices.Equal(addrs, []string{"never-seen.test:8448"}) {
		t.Errorf("with DNS down, a new name: addresses %q, want the port 8448 fall-back", addrs)
	}
}

func TestLookupIPKeepsLastAnswer(t *testing.T) {
	env := newResolverEnv(t, map[string]http.HandlerFunc{})
	env.dns.ips["peer.test"] = []net.IP{net.ParseIP("192.0.2.7")}
	ctx := context.Background()
	if ips, err := env.r.LookupIP(ctx, "peer.test"); err != nil || len(ips) != 1 || !ips[0].Equal(net.ParseIP("192.0.2.7")) {
		t.Fatalf("LookupIP = %v, %v; want [192.0.2.7]", ips, err)
	}
	env.dns.set(func(f *fakeDNS) { f.ipErr = &net.DNSError{Err: "i/o timeout", IsTimeout: true} })
	if ips, err := env.r.LookupIP(ctx, "peer.test"); err != nil || len(ips) != 1 {
		t.Errorf("LookupIP with DNS down = %v, %v; want the last answer", ips, err)
	}
	if _, err := env.r.LookupIP(ctx, "other.test"); err == nil {
		t.Errorf("LookupIP of an unknown host with DNS down succeeded, want error")
	}
	if ips, err := env.r.LookupIP(ctx, "2001:db8::5"); err != nil || !ips[0].Equal(net.ParseIP("2001:db8::5")) {
		t.Errorf("LookupIP(IP literal) = %v, %v", ips, err)
	}
}

func TestResolveStaticPeerNeedsNoNetwork(t *testing.T) {
	dns := &fakeDNS{}
	r := transport.NewResolver()
	r.DNS = dns
	r.WellKnownTransport = roundTripFunc(func(*http.Request) (*http.Response, error) {
		t.Error("static peer fetched .well-known")
		return nil, errors.New("no")
	})
	r.StaticPeers = transport.StaticPeers{"lan.test": {"10.0.0.2:8448"}}
	res, err := r.Resolve(context.Background(), "lan.test")
	if err != nil || res.HostHeader != "lan.test" || !slices.Equal(res.IPPort, []string{"10.0.0.2:8448"}) {
		t.Errorf("Resolve(static) = %+v, %v", res, err)
	}
	if len(dns.queries) != 0 {
		t.Errorf("static peer asked DNS: %q", dns.queries)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
