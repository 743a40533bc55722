package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// maxIdleDestinations is how many destinations without connections or requests the client
// keeps pools for; past it, such pools are dropped when a new destination is added.
const maxIdleDestinations = 256

// destination is the connection pool to one server name. Its http.Transport dials through the
// resolver, whatever address the URL names; its raw TCP connections are tracked so that
// Reconnect can close busy ones too.
type destination struct {
	name string
	tr   *http.Transport
	http *http.Client

	mu       sync.Mutex
	conns    map[*trackedConn]struct{}
	inflight int  // requests waiting for response headers
	failing  bool // the last request ended in a connection error
}

// acquire returns destination's pool, creating it if need be, with a request registered as
// in flight; done ends it, ok reporting whether response headers arrived.
func (c *Client) acquire(name string) (d *destination, done func(ok bool)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d = c.dests[name]
	if d == nil {
		c.pruneLocked()
		d = c.newDestination(name)
		c.dests[name] = d
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inflight++
	return d, func(ok bool) {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.inflight--
		d.failing = !ok
	}
}

// lookup returns destination's pool, or nil if there is none.
func (c *Client) lookup(name string) *destination {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dests[name]
}

// pruneLocked drops pools that hold nothing once there are many of them. c.mu is held.
func (c *Client) pruneLocked() {
	if len(c.dests) < maxIdleDestinations {
		return
	}
	for name, d := range c.dests {
		d.mu.Lock()
		unused := len(d.conns) == 0 && d.inflight == 0
		d.mu.Unlock()
		if unused {
			d.tr.CloseIdleConnections()
			delete(c.dests, name)
		}
	}
}

func (c *Client) newDestination(name string) *destination {
	d := &destination{name: name, conns: map[*trackedConn]struct{}{}}
	d.tr = &http.Transport{
		// The URL's host is the Host header Resolve chose; where to connect is decided here.
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return c.dialTLS(ctx, d)
		},
		ForceAttemptHTTP2: true,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout:  c.PingInterval,
			PingTimeout:      c.PingTimeout,
			WriteByteTimeout: c.WriteTimeout,
		},
		MaxConnsPerHost:     c.MaxConnsPerDestination,
		MaxIdleConns:        c.MaxIdleConnsPerDestination,
		MaxIdleConnsPerHost: c.MaxIdleConnsPerDestination,
		IdleConnTimeout:     c.IdleConnTimeout,
		// No Proxy: federation goes straight to the peer, whatever HTTPS_PROXY says.
	}
	d.http = &http.Client{
		Transport: d.tr,
		// Federation requests are not redirected; a 3xx is returned as a ResponseError.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return d
}

// dialTLS connects to the first of destination's addresses that answers and presents a
// certificate valid for the name Resolve says it must have.
func (c *Client) dialTLS(ctx context.Context, d *destination) (net.Conn, error) {
	res, err := c.Resolver.Resolve(ctx, d.name)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		ServerName: TLSServerName(res.HostHeader), // sent as SNI unless it is an IP address
		RootCAs:    c.RootCAs,
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
	}
	var errs []error
	for _, hostPort := range res.IPPort {
		host, port, err := net.SplitHostPort(hostPort)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ips, err := c.Resolver.LookupIP(ctx, host)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, ip := range ips {
			conn, err := c.dial1(ctx, d, net.JoinHostPort(ip.String(), port), cfg)
			if err == nil {
				return conn, nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				return nil, fmt.Errorf("connect to %s: %w", d.name, errors.Join(errs...))
			}
		}
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no addresses"))
	}
	return nil, fmt.Errorf("connect to %s: %w", d.name, errors.Join(errs...))
}

// dial1 connects to one address and completes the TLS handshake within DialTimeout.
func (c *Client) dial1(ctx context.Context, d *destination, addr string, cfg *tls.Config) (*tls.Conn, error) {
	if c.AllowAddr != nil {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil || !c.AllowAddr(d.name, ap.Addr().Unmap()) {
			return nil, fmt.Errorf("%w: %s resolves to %s", ErrAddressRefused, d.name, addr)
		}
	}
	timeout := c.DialTimeout
	d.mu.Lock()
	if d.failing && c.FailingDialTimeout > 0 {
		timeout = c.FailingDialTimeout
	}
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dialer := &net.Dialer{
		// Idle connections are probed so a dead one leaves the pool before a request picks it.
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3},
		Control:         userTimeoutControl(c.WriteTimeout),
	}
	raw, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := d.track(raw)
	conn := tls.Client(tc, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		tc.Close()
		return nil, fmt.Errorf("tls with %s: %w", addr, err)
	}
	return conn, nil
}

// trackedConn is a TCP connection that leaves its destination's set when closed and
// remembers when it last received anything.
type trackedConn struct {
	net.Conn
	d        *destination
	once     sync.Once
	lastRead atomic.Int64 // unix nanoseconds
}

func (t *trackedConn) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	if n > 0 {
		t.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}

func (t *trackedConn) Close() error {
	t.once.Do(func() {
		t.d.mu.Lock()
		delete(t.d.conns, t)
		t.d.mu.Unlock()
	})
	return t.Conn.Close()
}

func (d *destination) track(conn net.Conn) *trackedConn {
	t := &trackedConn{Conn: conn, d: d}
	t.lastRead.Store(time.Now().UnixNano())
	d.mu.Lock()
	d.conns[t] = struct{}{}
	d.mu.Unlock()
	return t
}

// closeAll closes every connection, busy or idle, and clears the failing mark.
func (d *destination) closeAll() {
	d.mu.Lock()
	conns := make([]*trackedConn, 0, len(d.conns))
	for t := range d.conns {
		conns = append(conns, t)
	}
	d.failing = false
	d.mu.Unlock()
	for _, t := range conns {
		t.Close()
	}
}

// setFailing marks a connection error after the response headers (a body cut short).
func (d *destination) setFailing() {
	d.mu.Lock()
	d.failing = true
	d.mu.Unlock()
}

// isFailing reports whether the last request ended in a connection error.
func (d *destination) isFailing() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.failing
}

// closeSilent closes the connections that have received nothing for longer than stall and
// reports how many it closed.
func (d *destination) closeSilent(now time.Time, stall time.Duration) int {
	d.mu.Lock()
	var silent []*trackedConn
	for t := range d.conns {
		if now.Sub(time.Unix(0, t.lastRead.Load())) > stall {
			silent = append(silent, t)
		}
	}
	d.mu.Unlock()
	for _, t := range silent {
		t.Close()
	}
	return len(silent)
}
