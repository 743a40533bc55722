// Package netup brings a Fyr box onto its network: loopback first, then its Ethernet
// interface by DHCP, falling back to a static address when no DHCP server answers, and
// renewing the lease for as long as the box runs. It needs no tools in the image: addresses
// and routes are set over netlink, DHCP speaks UDP on a socket bound to the interface.
//
// It is not a network manager: one interface, IPv4, no Wi-Fi. IPv6 comes from the kernel's
// own SLAAC.
package netup

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"
)

// Defaults for the zero fields of Network.
const (
	// DefaultFirstWait is how long DHCP may take before the static fallback is applied.
	DefaultFirstWait = 15 * time.Second
	// DefaultRetry is the pause between DHCP attempts while on the fallback address.
	DefaultRetry = time.Minute
	// DefaultResolvConf is where the DNS servers are written.
	DefaultResolvConf = "/etc/resolv.conf"
)

// Link configures interfaces. On Linux it is netlink (Netlink); tests use a fake.
type Link interface {
	// Up sets the interface administratively up.
	Up(ifname string) error
	// AddAddr adds an IPv4 address with its prefix length.
	AddAddr(ifname string, p netip.Prefix) error
	// DelAddr removes one.
	DelAddr(ifname string, p netip.Prefix) error
	// SetGateway makes gw the default route through ifname, replacing any other.
	SetGateway(ifname string, gw netip.Addr) error
	// DelGateway removes the default route through ifname, if there is one.
	DelGateway(ifname string) error
}

// Clock is the time source; tests swap in a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Network keeps one interface configured. Set the fields before calling Run; the zero value
// of each optional field means the default named beside it.
type Network struct {
	// Config says which interface and what fallback.
	Config Config
	// Link sets addresses and routes (Netlink()).
	Link Link
	// Listen opens the DHCP socket on an interface (ListenDHCP).
	Listen func(ifname string) (Conn, error)
	// Interfaces lists the interfaces (net.Interfaces).
	Interfaces func() ([]net.Interface, error)
	// Hostname is sent to the DHCP server; empty sends none.
	Hostname string
	// ResolvConf is where the DNS servers go (DefaultResolvConf).
	ResolvConf string
	// FirstWait and Retry pace DHCP (DefaultFirstWait, DefaultRetry). DHCPTimeout and
	// DHCPAttempts pace each exchange (DefaultTimeout, DefaultAttempts).
	FirstWait, Retry time.Duration
	DHCPTimeout      time.Duration
	DHCPAttempts     int
	// Clock is the time source for lease times and pauses (the real clock).
	Clock Clock
	// Log receives what happens to the network (discarded when nil).
	Log *slog.Logger
	// OnAddr, if set, is called after the interface's address changes (e.g. for mDNS).
	OnAddr func(ifname string, addr netip.Prefix)

	// cur is what is configured now.
	cur struct {
		addr netip.Prefix
		gw   netip.Addr
	}
}

func (n *Network) defaults() {
	if n.Link == nil {
		n.Link = Netlink()
	}
	if n.Listen == nil {
		n.Listen = ListenDHCP
	}
	if n.Interfaces == nil {
		n.Interfaces = net.Interfaces
	}
	if n.ResolvConf == "" {
		n.ResolvConf = DefaultResolvConf
	}
	if n.FirstWait <= 0 {
		n.FirstWait = DefaultFirstWait
	}
	if n.Retry <= 0 {
		n.Retry = DefaultRetry
	}
	if n.Clock == nil {
		n.Clock = realClock{}
	}
	if n.Log == nil {
		n.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Run configures loopback and the interface, then keeps the interface's address until ctx
// ends, when it returns nil. Failures are logged and retried; Run only returns an error
// for a configuration it cannot use.
func (n *Network) Run(ctx context.Context) error {
	n.defaults()
	if n.Config.Mode != "" && n.Config.Mode != ModeDHCP && n.Config.Mode != ModeStatic {
		return fmt.Errorf("netup: mode %q: want %q or %q", n.Config.Mode, ModeDHCP, ModeStatic)
	}
	if err := n.Link.Up("lo"); err != nil {
		n.Log.Error("loopback not up", "err", err)
	}
	ifc, err := n.waitInterface(ctx)
	if err != nil {
		return nil // ctx ended
	}
	for {
		if err := n.Link.Up(ifc.Name); err == nil {
			break
		} else {
			n.Log.Error("interface not up; retrying", "interface", ifc.Name, "err", err)
		}
		if !n.sleep(ctx, n.Retry) {
			return nil
		}
	}
	if n.Config.Mode == ModeStatic {
		n.fallback(ifc)
		<-ctx.Done()
		return nil
	}
	var conn Conn
	for {
		if conn, err = n.Listen(ifc.Name); err == nil {
			break
		}
		n.Log.Error("no DHCP socket; using the fallback address", "interface", ifc.Name, "err", err)
		n.fallback(ifc)
		if !n.sleep(ctx, n.Retry) {
			return nil
		}
	}
	defer conn.Close()
	client := &Client{Conn: conn, HWAddr: ifc.HardwareAddr, Hostname: n.Hostname,
		Timeout: n.DHCPTimeout, Attempts: n.DHCPAttempts, Now: n.Clock.Now}
	n.dhcp(ctx, ifc, client)
	return nil
}

// dhcp acquires leases and holds them until ctx ends.
func (n *Network) dhcp(ctx context.Context, ifc net.Interface, client *Client) {
	first := true // the first try after boot or a lost lease waits at most FirstWait
	onFallback := false
	for ctx.Err() == nil {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if first {
			actx, cancel = context.WithTimeout(ctx, n.FirstWait)
		}
		lease, err := client.Acquire(actx)
		cancel()
		first = false
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !onFallback {
				n.Log.Warn("no DHCP lease; using the fallback address and asking again", "interface", ifc.Name, "err", err, "every", n.Retry)
				n.fallback(ifc)
				onFallback = true
			}
			if !n.sleep(ctx, n.Retry) {
				return
			}
			continue
		}
		onFallback = false
		n.Log.Info("DHCP lease", "interface", ifc.Name, "addr", lease.Addr, "router", lease.Router, "dns", lease.DNS, "for", lease.Duration, "server", lease.Server)
		n.set(ifc.Name, lease.Addr, lease.Router, lease.DNS)
		n.hold(ctx, ifc, client, lease)
		first = true
	}
}

// hold renews lease at T1, rebinds at T2, and gives the address up when the lease runs out
// or the server refuses it. It returns when the address is gone or ctx ends.
func (n *Network) hold(ctx context.Context, ifc net.Interface, client *Client, lease Lease) {
	for {
		elapsed := n.Clock.Now().Sub(lease.Acquired)
		var next time.Duration // how long to wait before the next step
		switch {
		case elapsed >= lease.Duration:
			n.Log.Warn("DHCP lease expired; giving up the address", "interface", ifc.Name, "addr", lease.Addr)
			n.clear(ifc.Name)
			return
		case elapsed >= lease.T1:
			rebind := elapsed >= lease.T2
			renewed, err := client.Renew(ctx, lease, rebind)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				if renewed.Addr != lease.Addr || renewed.Router != lease.Router {
					n.Log.Info("DHCP lease changed", "interface", ifc.Name, "addr", renewed.Addr, "router", renewed.Router)
				}
				n.set(ifc.Name, renewed.Addr, renewed.Router, renewed.DNS)
				lease = renewed
				continue
			}
			if errors.Is(err, ErrNak) {
				n.Log.Warn("DHCP server refused the lease; giving up the address", "interface", ifc.Name, "addr", lease.Addr)
				n.clear(ifc.Name)
				return
			}
			n.Log.Warn("DHCP lease not renewed yet", "interface", ifc.Name, "rebinding", rebind, "err", err)
			// Half the time to the next boundary, but at least a minute (RFC 2131 §4.4.5).
			boundary := lease.T2
			if rebind {
				boundary = lease.Duration
			}
			next = max((boundary-elapsed)/2, time.Minute)
			next = min(next, lease.Duration-elapsed)
		default:
			next = lease.T1 - elapsed
		}
		if !n.sleep(ctx, next) {
			return
		}
	}
}

// fallback applies the static address, or a link-local one when none is configured.
func (n *Network) fallback(ifc net.Interface) {
	s := n.Config.Static
	if s == nil || !s.Address.IsValid() {
		addr := LinkLocal(ifc.HardwareAddr)
		n.Log.Info("link-local address", "interface", ifc.Name, "addr", addr)
		n.set(ifc.Name, addr, netip.Addr{}, nil)
		return
	}
	n.Log.Info("static address", "interface", ifc.Name, "addr", s.Address, "gateway", s.Gateway, "dns", s.DNS)
	n.set(ifc.Name, s.Address, s.Gateway, s.DNS)
}

// set makes addr, gw and dns the interface's configuration.
func (n *Network) set(ifname string, addr netip.Prefix, gw netip.Addr, dns []netip.Addr) {
	if addr != n.cur.addr {
		if n.cur.addr.IsValid() {
			if err := n.Link.DelAddr(ifname, n.cur.addr); err != nil {
				n.Log.Warn("old address not removed", "interface", ifname, "addr", n.cur.addr, "err", err)
			}
			n.cur.gw = netip.Addr{} // the kernel drops routes through a removed address
		}
		if err := n.Link.AddAddr(ifname, addr); err != nil {
			n.Log.Error("address not set", "interface", ifname, "addr", addr, "err", err)
			n.cur.addr = netip.Prefix{}
			return
		}
		n.cur.addr = addr
		if n.OnAddr != nil {
			n.OnAddr(ifname, addr)
		}
	}
	if gw != n.cur.gw {
		var err error
		if gw.IsValid() {
			err = n.Link.SetGateway(ifname, gw)
		} else {
			err = n.Link.DelGateway(ifname)
		}
		if err != nil {
			n.Log.Error("default route not set", "interface", ifname, "gateway", gw, "err", err)
		} else {
			n.cur.gw = gw
		}
	}
	if len(dns) > 0 {
		if err := writeResolvConf(n.ResolvConf, dns); err != nil {
			n.Log.Error("DNS servers not written", "path", n.ResolvConf, "err", err)
		}
	}
}

// clear removes the interface's address and gateway.
func (n *Network) clear(ifname string) {
	if n.cur.gw.IsValid() {
		if err := n.Link.DelGateway(ifname); err != nil {
			n.Log.Warn("default route not removed", "interface", ifname, "err", err)
		}
		n.cur.gw = netip.Addr{}
	}
	if n.cur.addr.IsValid() {
		if err := n.Link.DelAddr(ifname, n.cur.addr); err != nil {
			n.Log.Warn("address not removed", "interface", ifname, "addr", n.cur.addr, "err", err)
		}
		n.cur.addr = netip.Prefix{}
	}
}

// waitInterface returns the configured interface, or the first Ethernet one, once it
// exists: its driver may still be loading.
func (n *Network) waitInterface(ctx context.Context) (net.Interface, error) {
	logged := false
	for {
		ifc, err := n.pick()
		if err == nil {
			return ifc, nil
		}
		if !logged {
			n.Log.Warn("waiting for a network interface", "err", err)
			logged = true
		}
		if !n.sleep(ctx, time.Second) {
			return net.Interface{}, ctx.Err()
		}
	}
}

func (n *Network) pick() (net.Interface, error) {
	ifcs, err := n.Interfaces()
	if err != nil {
		return net.Interface{}, err
	}
	for _, ifc := range ifcs {
		if n.Config.Interface != "" {
			if ifc.Name == n.Config.Interface {
				return ifc, nil
			}
			continue
		}
		if ifc.Flags&net.FlagLoopback == 0 && len(ifc.HardwareAddr) == 6 {
			return ifc, nil
		}
	}
	if n.Config.Interface != "" {
		return net.Interface{}, fmt.Errorf("no interface %q", n.Config.Interface)
	}
	return net.Interface{}, errors.New("no Ethernet interface")
}

// sleep waits d on the clock; false means ctx ended first.
func (n *Network) sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-n.Clock.After(d):
		return true
	}
}

// LinkLocal is the fallback address when no static one is configured: 169.254.0.0/16
// (RFC 3927) picked from the MAC address, so a box keeps the same one across boots and a
// laptop on the same cable finds it (by mDNS). There is no conflict probing: on a link
// with many such boxes, configure static addresses.
func LinkLocal(mac net.HardwareAddr) netip.Prefix {
	h := fnv.New32a()
	h.Write(mac)
	v := h.Sum32()
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{169, 254, byte(1 + v%254), byte(v >> 8)}), 16)
}

func writeResolvConf(path string, dns []netip.Addr) error {
	var b strings.Builder
	b.WriteString("# written by fyr (netup)\n")
	for _, a := range dns {
		fmt.Fprintf(&b, "nameserver %s\n", a)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
