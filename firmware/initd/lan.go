package initd

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"

	"fyr/firmware/mdns"
	"fyr/server/config"
)

// lan is the box's presence on its network: the address netup gave the interface, and an
// mDNS responder announcing Host.local and the box's services. The responder starts once
// there is an address and starts over whenever the address or the services change, so that
// the network hears of the change at once. Its methods are safe for concurrent use.
type lan struct {
	host string
	log  *slog.Logger
	// respond runs a responder until ctx ends (mdns.Responder.Run); tests fake it.
	respond func(ctx context.Context, rs *mdns.Responder) error

	mu       sync.Mutex
	addr     netip.Prefix
	services []mdns.Service
	// changed is closed, and replaced, at every change.
	changed chan struct{}
}

func newLAN(host string, log *slog.Logger) *lan {
	return &lan{host: host, log: log, changed: make(chan struct{}),
		respond: func(ctx context.Context, rs *mdns.Responder) error { return rs.Run(ctx) }}
}

// setAddr is netup's OnAddr: the interface's IPv4 address changed.
func (l *lan) setAddr(ifname string, addr netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if addr == l.addr {
		return
	}
	l.addr = addr
	l.notify()
}

// setServices replaces the services announced.
func (l *lan) setServices(services ...mdns.Service) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.services = services
	l.notify()
}

func (l *lan) notify() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// current returns the address (invalid while there is none) and the services, with a
// channel closed at the next change.
func (l *lan) current() (netip.Prefix, []mdns.Service, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addr, slices.Clone(l.services), l.changed
}

// run keeps a responder running for the current address until ctx ends. A responder that
// fails (no multicast on the interface, say) is logged and tried again at the next change.
func (l *lan) run(ctx context.Context) error {
	for {
		addr, services, changed := l.current()
		stop := func() {}
		if addr.IsValid() {
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			rs := &mdns.Responder{Host: l.host, Services: services, Log: l.log}
			go func() {
				defer close(done)
				if err := l.respond(rctx, rs); err != nil {
					l.log.Warn("the box is not announced on the LAN (mDNS) until its address changes", "err", err)
				}
			}()
			stop = func() { cancel(); <-done }
		}
		select {
		case <-ctx.Done():
			stop()
			return nil
		case <-changed:
			stop()
		}
	}
}

// homeserverServices are what the LAN hears of a running homeserver: the Matrix client API
// (_matrix._tcp, with the server name, for clients that look for a homeserver on the LAN)
// and the same port as a web service (_https._tcp, or _http._tcp without TLS).
func homeserverServices(cfg *config.Config) []mdns.Service {
	port := uint16(8008)
	if _, p, err := net.SplitHostPort(cfg.Client.Addr); err == nil {
		if n, err := strconv.ParseUint(p, 10, 16); err == nil {
			port = uint16(n)
		}
	}
	web := "_http._tcp"
	if cfg.Client.TLSCert != "" {
		web = "_https._tcp"
	}
	return []mdns.Service{
		{Instance: "Fyr", Type: "_matrix._tcp", Port: port, Text: []string{"server_name=" + cfg.ServerName}},
		{Instance: "Fyr", Type: web, Port: port},
	}
}
