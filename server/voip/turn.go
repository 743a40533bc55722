package voip

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/turn/v4"
	"maunium.net/go/mautrix/id"

	"fyr/federation/transport"
	"fyr/server/config"
)

// TURN is the built-in TURN server: UDP and TCP on one port, TLS optionally on another,
// relays on a UDP port range. Create it with Listen, which starts serving; Close stops it.
// Its methods are safe for concurrent use.
type TURN struct {
	realm  string // the server name
	keys   *Keyring
	active func(id.UserID) bool // nil: everyone
	log    *slog.Logger
	now    func() time.Time

	policy  atomic.Pointer[PeerPolicy]
	limits  atomic.Pointer[Limits]
	certs   atomic.Pointer[transport.CertStore] // turn.tls_cert; nil: fallbackCert
	users   *users
	stats   metrics
	relay   *relayPorts
	socks   sockets
	server  *turn.Server
	closing sync.Once

	fallbackCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

// Options are what Listen needs besides the configuration.
type Options struct {
	// Certificate serves TLS when turn.tls_addr is set and turn.tls_cert is not: the
	// federation certificate. Nil with TLS configured that way is an error.
	Certificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	Log         *slog.Logger     // nil: slog.Default()
	Now         func() time.Time // nil: time.Now
	// UserActive reports whether a user may still use TURN; credentials of a deactivated
	// account stop working at once instead of at expiry. Nil: every user of this server.
	UserActive func(id.UserID) bool
}

// Listen binds the TURN sockets for cfg and starts serving with credentials checked against
// keys. A port in use is an error naming the setting.
func Listen(cfg *config.Config, keys *Keyring, opts Options) (_ *TURN, err error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	t := &TURN{realm: cfg.ServerName, keys: keys, log: opts.Log, now: opts.Now, users: newUsers(), fallbackCert: opts.Certificate, active: opts.UserActive}
	defer func() {
		if err != nil {
			t.socks.close()
		}
	}()
	addr, err := ListenAddr(cfg)
	if err != nil {
		return nil, err
	}
	if t.socks.udp, t.socks.tcp, err = bindUDPTCP(addr); err != nil {
		return nil, err
	}
	bind, relayIP, detected := relayAddrs(cfg, addr)
	t.relay = &relayPorts{t: t, bindIP: bind, relayIP: relayIP, minPort: cfg.TURN.MinPort, maxPort: cfg.TURN.MaxPort, conns: map[int]*relayConn{}}
	if err := t.apply(cfg); err != nil {
		return nil, err
	}
	if cfg.TURN.TLSAddr != "" {
		if cfg.TURN.TLSCert == "" && opts.Certificate == nil {
			return nil, fmt.Errorf("turn over TLS: no certificate; set turn.tls_cert")
		}
		ln, err := net.Listen("tcp", cfg.TURN.TLSAddr)
		if err != nil {
			return nil, settingError("turn.tls_addr", "turn-tls-addr", cfg.TURN.TLSAddr, err)
		}
		t.socks.tls = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: t.certificate})
	}

	perm := t.permit
	sc := turn.ServerConfig{
		Realm:         t.realm,
		AuthHandler:   t.authenticate,
		QuotaHandler:  t.quota,
		LoggerFactory: pionLog{t.log},
		EventHandler: turn.EventHandler{
			OnAuth:              t.onAuth,
			OnAllocationCreated: t.onAllocationCreated,
			OnAllocationDeleted: t.onAllocationDeleted,
		},
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: t.socks.udp, RelayAddressGenerator: t.relay, PermissionHandler: perm}},
		ListenerConfigs:   []turn.ListenerConfig{{Listener: t.socks.tcp, RelayAddressGenerator: t.relay, PermissionHandler: perm}},
	}
	if t.socks.tls != nil {
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{Listener: t.socks.tls, RelayAddressGenerator: t.relay, PermissionHandler: perm})
	}
	if t.server, err = turn.NewServer(sc); err != nil {
		return nil, fmt.Errorf("start turn server: %w", err)
	}
	attrs := []any{"udp_tcp", t.socks.udp.LocalAddr().String(), "relay_ip", relayIP.String(),
		"relay_ports", fmt.Sprintf("%d-%d", cfg.TURN.MinPort, cfg.TURN.MaxPort), "realm", t.realm}
	if t.socks.tls != nil {
		attrs = append(attrs, "tls", t.socks.tls.Addr().String())
	}
	t.log.Info("TURN server listening", attrs...)
	if detected && relayIP.IsLoopback() {
		t.log.Warn("TURN found no network address for relays and uses loopback; set turn.relay_ip")
	}
	return t, nil
}

// apply installs the reloadable settings: peer policy, limits and the TLS certificate.
func (t *TURN) apply(cfg *config.Config) error {
	allow, err := ParseAllowList(cfg.TURN.AllowPeers)
	if err != nil {
		return err
	}
	relayIP, _ := netip.AddrFromSlice(t.relay.relayIP)
	t.policy.Store(&PeerPolicy{Allow: allow, AllowLoopback: cfg.TURN.AllowLoopback, RelayIP: relayIP.Unmap(),
		MinPort: uint16(t.relay.minPort), MaxPort: uint16(t.relay.maxPort)})
	t.limits.Store(&Limits{Allocations: cfg.TURN.UserAllocations, BytesPerSecond: float64(cfg.TURN.UserKbps) * 1000 / 8})
	switch c := t.certs.Load(); {
	case cfg.TURN.TLSCert == "":
		t.certs.Store(nil)
	case c != nil:
		return c.Reload(cfg.TURN.TLSCert, cfg.TURN.TLSKey)
	default:
		store, err := transport.NewCertStore(cfg.TURN.TLSCert, cfg.TURN.TLSKey)
		if err != nil {
			return fmt.Errorf("turn tls certificate: %w", err)
		}
		t.certs.Store(store)
	}
	return nil
}

// Reload applies the reloadable TURN settings of cfg. On error (an unreadable certificate)
// the rest is applied and the old certificate stays.
func (t *TURN) Reload(cfg *config.Config) error { return t.apply(cfg) }

// Close stops serving and releases every socket and allocation. It is safe to call twice.
func (t *TURN) Close() error {
	var err error
	t.closing.Do(func() {
		if t.server != nil {
			err = t.server.Close()
		} else {
			t.socks.close()
		}
	})
	return err
}

// Addr is the UDP (and TCP) address TURN listens on.
func (t *TURN) Addr() *net.UDPAddr { return t.socks.udp.LocalAddr().(*net.UDPAddr) }

// TLSAddr is the TURN over TLS address, or nil.
func (t *TURN) TLSAddr() net.Addr {
	if t.socks.tls == nil {
		return nil
	}
	return t.socks.tls.Addr()
}

// Stats returns the counters.
func (t *TURN) Stats() Stats { return t.stats.snapshot() }

// URIs are the TURN URIs for clients: UDP and TCP at host, TLS at tlsHost. An empty host means
// the relay address; an empty tlsHost means host.
func (t *TURN) URIs(host, tlsHost string) []string {
	if host == "" {
		host = t.relay.relayIP.String()
	}
	if tlsHost == "" {
		tlsHost = host
	}
	port := strconv.Itoa(t.Addr().Port)
	uris := []string{
		"turn:" + net.JoinHostPort(host, port) + "?transport=udp",
		"turn:" + net.JoinHostPort(host, port) + "?transport=tcp",
	}
	if a, ok := t.TLSAddr().(*net.TCPAddr); ok {
		uris = append(uris, "turns:"+net.JoinHostPort(tlsHost, strconv.Itoa(a.Port))+"?transport=tcp")
	}
	return uris
}

// certificate serves TLS: turn.tls_cert if set, else the federation certificate.
func (t *TURN) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := t.certs.Load(); c != nil {
		return c.GetCertificate(hello)
	}
	return t.fallbackCert(hello)
}
