package transport

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/federation"
)

// Resolution defaults.
const (
	// DefaultPort is the federation port when neither the server name, its .well-known nor
	// DNS SRV name one.
	DefaultPort = 8448
	// DefaultDNSTTL is how long an SRV answer, or the absence of one, is kept. Go's resolver
	// does not report record TTLs, so this is a fixed bound.
	DefaultDNSTTL = time.Hour
	// DNSRetry is how soon a resolution is tried again after DNS failed (a timeout or server
	// failure, not "no such record").
	DNSRetry = time.Minute
)

// DNS is what the Resolver asks DNS; *net.Resolver implements it. Tests supply a fake so no
// query leaves the process.
type DNS interface {
	LookupSRV(ctx context.Context, service, proto, name string) (cname string, addrs []*net.SRV, err error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// Resolver turns server names into the addresses, Host header and TLS name to use, following
// the spec's order: static peers first (Fyr's addition), then IP literal, explicit port,
// .well-known/matrix/server, SRV _matrix-fed._tcp, SRV _matrix._tcp and port 8448.
// See https://spec.matrix.org/v1.19/server-server-api/#resolving-server-names
//
// Results are cached until their .well-known or DNS answer expires. A resolver lives through
// outages: a .well-known that cannot be reached, or DNS that fails, leaves the last good answer
// in use (retried with back-off) instead of forgetting where a peer lives.
//
// Why not mautrix's federation.ResolveServerName, whose result type this reuses: it takes only
// a *net.Resolver, caches nothing itself, does not cache .well-known errors or back off, always
// keeps a .well-known for 24 hours whatever its Cache-Control says, follows redirects without a
// bound, and forgets everything when a lookup fails during an outage.
//
// The exported fields may be changed until the first method call; after that a Resolver is
// safe for concurrent use.
type Resolver struct {
	// DNS answers SRV and A/AAAA queries. NewResolver sets net.DefaultResolver.
	DNS DNS
	// StaticPeers pins server names to addresses; see StaticPeers.
	StaticPeers StaticPeers
	// AllowAddr decides whether a .well-known lookup may connect to addr for host. Nil
	// allows every address.
	AllowAddr func(host string, addr netip.Addr) bool
	// RootCAs verifies .well-known servers. Nil: the system roots.
	RootCAs *x509.CertPool
	// WellKnownTransport fetches .well-known/matrix/server. Nil: direct HTTPS to port 443 of
	// the host, found through DNS and verified with RootCAs.
	WellKnownTransport http.RoundTripper
	// Now is the clock; NewResolver sets time.Now.
	Now func() time.Time
	// Log receives debug lines about failed lookups. NewResolver sets a discarding logger.
	Log *slog.Logger

	initOnce sync.Once
	wkClient *http.Client

	mu         sync.Mutex
	results    map[string]*federation.ResolvedServerName // by server name
	flights    map[string]*flight                        // resolutions under way
	wellKnowns map[string]*wellKnownEntry                // by hostname
	lastIPs    map[string][]net.IP                       // last A/AAAA answer per host
}

// flight is one resolution under way; others asking for the same name wait for it.
type flight struct {
	done chan struct{}
	res  *federation.ResolvedServerName
	err  error
}

// NewResolver returns a resolver using the system's DNS and CA roots, with no static peers.
func NewResolver() *Resolver {
	return &Resolver{
		DNS: net.DefaultResolver,
		Now: time.Now,
		Log: slog.New(slog.DiscardHandler),
	}
}

func (r *Resolver) init() {
	r.initOnce.Do(func() {
		if r.DNS == nil {
			r.DNS = net.DefaultResolver
		}
		if r.Now == nil {
			r.Now = time.Now
		}
		if r.Log == nil {
			r.Log = slog.New(slog.DiscardHandler)
		}
		rt := r.WellKnownTransport
		if rt == nil {
			rt = r.defaultWellKnownTransport()
		}
		r.wkClient = &http.Client{Transport: rt, CheckRedirect: checkWellKnownRedirect}
		r.results = map[string]*federation.ResolvedServerName{}
		r.flights = map[string]*flight{}
		r.wellKnowns = map[string]*wellKnownEntry{}
		r.lastIPs = map[string][]net.IP{}
	})
}

// Resolve returns where to reach serverName: IPPort lists "host:port" candidates in order (a
// host may still be a DNS name, which LookupIP resolves at dial time), HostHeader is the Host
// header to send, and the certificate must be valid for HostHeader's host (TLSServerName).
// Expires is when the answer should be looked up again; zero for static peers.
//
// It fails only for an invalid server name or when ctx ends; an unreachable .well-known or a
// failing DNS server leads to the spec's fall-backs (or the last good answer), not an error.
func (r *Resolver) Resolve(ctx context.Context, serverName string) (*federation.ResolvedServerName, error) {
	r.init()
	if addrs, ok := r.StaticPeers[serverName]; ok {
		return &federation.ResolvedServerName{ServerName: serverName, HostHeader: serverName, IPPort: slices.Clone(addrs)}, nil
	}
	host, port, ok := federation.ParseServerName(serverName)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrInvalidServerName, serverName)
	}
	// Steps 1 and 2: an IP literal or an explicit port needs no lookup here.
	if isIP(host) || port != 0 {
		if port == 0 {
			port = DefaultPort
		}
		return &federation.ResolvedServerName{
			ServerName: serverName,
			HostHeader: serverName,
			IPPort:     []string{net.JoinHostPort(host, strconv.Itoa(int(port)))},
			Expires:    r.Now().Add(DefaultDNSTTL),
		}, nil
	}
	for {
		r.mu.Lock()
		if res := r.results[serverName]; res != nil && r.Now().Before(res.Expires) {
			r.mu.Unlock()
			return cloneResolved(res), nil
		}
		if f := r.flights[serverName]; f != nil {
			r.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if f.err != nil && ctx.Err() == nil {
				continue // the leader's context ended, not ours: try again
			}
			return cloneResolved(f.res), f.err
		}
		f := &flight{done: make(chan struct{})}
		r.flights[serverName] = f
		prev := r.results[serverName]
		r.mu.Unlock()

		f.res = r.resolveName(ctx, serverName, host, prev)
		if err := ctx.Err(); err != nil {
			f.res, f.err = nil, err // an interrupted resolution is not an answer worth keeping
		}
		r.mu.Lock()
		delete(r.flights, serverName)
		if f.err == nil {
			r.results[serverName] = f.res
		}
		r.mu.Unlock()
		close(f.done)
		return cloneResolved(f.res), f.err
	}
}

// resolveName runs steps 3 to 6 for a DNS name without port. prev is the last answer, if any.
func (r *Resolver) resolveName(ctx context.Context, serverName, host string, prev *federation.ResolvedServerName) *federation.ResolvedServerName {
	res := &federation.ResolvedServerName{ServerName: serverName, HostHeader: host}
	srvHost := host
	// Step 3: .well-known delegation.
	delegated, until := r.wellKnown(ctx, host)
	res.Expires = until
	if delegated != "" {
		dh, dp, _ := federation.ParseServerName(delegated) // fetchWellKnown checked it
		if isIP(dh) || dp != 0 {
			// Steps 3.1 and 3.2.
			if dp == 0 {
				dp = DefaultPort
			}
			res.HostHeader = delegated
			res.IPPort = []string{net.JoinHostPort(dh, strconv.Itoa(int(dp)))}
			return res
		}
		res.HostHeader, srvHost = dh, dh
	}
	// Steps 3.3 to 3.5, or 4 to 6.
	addrs, err := r.lookupSRV(ctx, srvHost)
	now := r.Now()
	if err != nil {
		r.Log.Debug("federation SRV lookup failed", "server_name", serverName, "host", srvHost, "err", err)
		res.Expires = minTime(res.Expires, now.Add(DNSRetry))
		if prev != nil && prev.HostHeader == res.HostHeader {
			res.IPPort = slices.Clone(prev.IPPort) // DNS is down: keep using what worked
			return res
		}
	} else {
		res.Expires = minTime(res.Expires, now.Add(DefaultDNSTTL))
	}
	if len(addrs) == 0 {
		addrs = []string{net.JoinHostPort(srvHost, strconv.Itoa(DefaultPort))}
	}
	res.IPPort = addrs
	return res
}

// lookupSRV returns the targets of _matrix-fed._tcp.host, else of the deprecated
// _matrix._tcp.host, as host:port in the order DNS gave them (by priority, then weight).
// Neither record existing is not an error: it returns nil, nil.
func (r *Resolver) lookupSRV(ctx context.Context, host string) ([]string, error) {
	for _, service := range []string{"matrix-fed", "matrix"} {
		_, records, err := r.DNS.LookupSRV(ctx, service, "tcp", host)
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("lookup SRV _%s._tcp.%s: %w", service, host, err)
		}
		var addrs []string
		for _, rec := range records {
			// A target of "." means the service is decidedly not offered there (RFC 2782).
			if target := strings.TrimSuffix(rec.Target, "."); target != "" {
				addrs = append(addrs, net.JoinHostPort(target, strconv.Itoa(int(rec.Port))))
			}
		}
		if len(addrs) > 0 {
			return addrs, nil
		}
	}
	return nil, nil
}

// LookupIP returns the addresses to dial for host: host itself if it is an IP literal, else
// its A and AAAA records. When DNS fails it returns the last answer it had for host, so a dead
// DNS server does not cut a box off from peers whose addresses it already knows.
func (r *Resolver) LookupIP(ctx context.Context, host string) ([]net.IP, error) {
	r.init()
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}, nil
	}
	addrs, err := r.DNS.LookupIPAddr(ctx, host)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || len(addrs) == 0 {
		if last := r.lastIPs[host]; last != nil && ctx.Err() == nil {
			r.Log.Debug("address lookup failed; using the last answer", "host", host, "err", err)
			return slices.Clone(last), nil
		}
		if err == nil {
			err = &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
		}
		return nil, fmt.Errorf("lookup %s: %w", host, err)
	}
	ips := make([]net.IP, len(addrs))
	for i, a := range addrs {
		ips[i] = a.IP
	}
	r.lastIPs[host] = ips
	return slices.Clone(ips), nil
}

// Expire makes the next Resolve of serverName look again now, ending any .well-known error
// back-off. Answers it had stay available as a fall-back if the new lookups fail. Call it when
// the peer shows signs of life.
func (r *Resolver) Expire(serverName string) {
	r.init()
	host, _, _ := federation.ParseServerName(serverName)
	r.mu.Lock()
	defer r.mu.Unlock()
	if res := r.results[serverName]; res != nil {
		res.Expires = time.Time{}
	}
	if e := r.wellKnowns[host]; e != nil {
		e.next, e.failures = time.Time{}, 0
	}
}

// TLSServerName is the name a peer's certificate must be valid for, given the Host header
// Resolve chose: the host part without port or IPv6 brackets. crypto/tls sends it as SNI
// unless it is an IP address, as the spec asks.
func TLSServerName(hostHeader string) string {
	if host, _, err := net.SplitHostPort(hostHeader); err == nil {
		return host
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostHeader, "["), "]")
}

func isIP(host string) bool { return net.ParseIP(host) != nil }

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func cloneResolved(res *federation.ResolvedServerName) *federation.ResolvedServerName {
	if res == nil {
		return nil
	}
	c := *res
	c.IPPort = slices.Clone(res.IPPort)
	return &c
}
