package mdns

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Timings of RFC 6762 section 8: three probes 250 ms apart, then two announcements a second
// apart.
const (
	probeInterval    = 250 * time.Millisecond
	announceInterval = time.Second
	maxRenames       = 20
)

// Responder answers Multicast DNS queries for a host and its services on every multicast
// interface, over IPv4 and, where the system allows, IPv6. Set the fields, then call Run.
type Responder struct {
	// Host is the host's one-label name, announced as Host.local. Required.
	Host string
	// Services are announced through DNS-SD.
	Services []Service
	// Addrs lists the addresses to give for the host on the interface with index ifIndex (0:
	// any). Nil: that interface's own addresses.
	Addrs func(ifIndex int) []netip.Addr
	// Log receives what happens. Nil: slog.Default().
	Log *slog.Logger

	// listen opens the sockets; tests replace it, and the timings.
	listen                  func() ([]conn, error)
	probeWait, announceWait time.Duration

	mu sync.Mutex
	// name is the rename suffix in force; 0: none.
	name int
}

// conn is one socket: a Multicast DNS group on one address family.
type conn interface {
	// read returns the next packet, the interface it came in on and its source.
	read(b []byte) (n, ifIndex int, src netip.AddrPort, err error)
	// send sends b to dst, or to the group on interface ifIndex (0: every interface) when
	// dst is not valid.
	send(b []byte, ifIndex int, dst netip.AddrPort) error
	// interfaces lists the indexes of the interfaces that joined the group.
	interfaces() []int
	close() error
}

func (rs *Responder) log() *slog.Logger {
	if rs.Log != nil {
		return rs.Log
	}
	return slog.Default()
}

// records builds the record set to answer with on interface ifIndex.
func (rs *Responder) records(ifIndex int) (*Records, error) {
	addrs := rs.Addrs
	if addrs == nil {
		addrs = InterfaceAddrs
	}
	r, err := NewRecords(rs.Host, addrs(ifIndex), append([]Service(nil), rs.Services...)...)
	if err != nil {
		return nil, err
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.name > 0 {
		r = r.renamed(rs.name)
	}
	return r, nil
}

// Name is the host name in force, with ".local.": Host, or Host-N after a conflict.
func (rs *Responder) Name() string {
	r, err := rs.records(0)
	if err != nil {
		return ""
	}
	return r.Host()
}

// Run probes for the names, announces them, and answers queries until ctx ends; it then
// withdraws the records (goodbye packets) and returns nil. It fails at once if no socket
// could be opened or the names are invalid.
func (rs *Responder) Run(ctx context.Context) error {
	if _, err := rs.records(0); err != nil {
		return err
	}
	listen := rs.listen
	if listen == nil {
		listen = rs.listenSystem
	}
	conns, err := listen()
	if err != nil {
		return err
	}
	packets := make(chan packet, 64)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs.readLoop(ctx, c, packets)
		}()
	}
	defer func() {
		for _, c := range conns {
			c.close()
		}
		wg.Wait()
	}()

	if err := rs.probe(ctx, conns, packets); err != nil {
		return nil // ctx ended
	}
	rs.log().Info("mdns: announcing", "host", rs.Name(), "services", len(rs.Services))
	rs.announce(conns, false)
	next := time.NewTimer(or(rs.announceWait, announceInterval))
	defer next.Stop()
	for {
		select {
		case <-ctx.Done():
			rs.announce(conns, true)
			return nil
		case <-next.C:
			rs.announce(conns, false) // the second announcement
		case p := <-packets:
			rs.handle(p)
		}
	}
}

// packet is one received datagram.
type packet struct {
	c       conn
	data    []byte
	ifIndex int
	src     netip.AddrPort
}

func (rs *Responder) readLoop(ctx context.Context, c conn, out chan<- packet) {
	for {
		b := make([]byte, maxPacket)
		n, ifIndex, src, err := c.read(b)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				rs.log().Warn("mdns: read", "err", err)
			}
			return
		}
		select {
		case out <- packet{c, b[:n], ifIndex, src}:
		case <-ctx.Done():
			return
		}
	}
}

// handle answers one packet, and logs another responder's claim on our names.
func (rs *Responder) handle(p packet) {
	r, err := rs.records(p.ifIndex)
	if err != nil {
		return
	}
	if r.Conflicts(p.data) {
		rs.log().Warn("mdns: another host on the network answers for our name", "name", r.Host(), "from", p.src)
		return
	}
	resp, err := r.Answer(p.data, int(p.src.Port()))
	if err != nil || resp == nil {
		return
	}
	dst := netip.AddrPort{}
	if resp.Unicast {
		dst = p.src
	}
	if err := p.c.send(resp.Packet, p.ifIndex, dst); err != nil {
		rs.log().Debug("mdns: send the answer", "err", err)
	}
}

// probe sends three probes per name set and takes the next name while anyone else claims
// the current one. It returns an error only when ctx ends.
func (rs *Responder) probe(ctx context.Context, conns []conn, packets <-chan packet) error {
	wait := or(rs.probeWait, probeInterval)
	for attempt := 0; attempt <= maxRenames; attempt++ {
		rs.mu.Lock()
		rs.name = 0
		if attempt > 0 {
			rs.name = attempt + 1 // fyr, then fyr-2, fyr-3 …
		}
		rs.mu.Unlock()
		r, err := rs.records(0)
		if err != nil {
			return err
		}
		probe, err := r.Probe()
		if err != nil {
			return err
		}
		conflict := false
		for i := 0; i < 3 && !conflict; i++ {
			for _, c := range conns {
				c.send(probe, 0, netip.AddrPort{})
			}
			deadline := time.NewTimer(wait)
		listen:
			for {
				select {
				case <-ctx.Done():
					deadline.Stop()
					return ctx.Err()
				case <-deadline.C:
					break listen
				case p := <-packets:
					if r.Conflicts(p.data) {
						conflict = true
						deadline.Stop()
						break listen
					}
					rs.handle(p) // keep answering others meanwhile
				}
			}
		}
		if !conflict {
			return nil
		}
		rs.log().Warn("mdns: the name is taken on this network; trying another", "name", r.Host())
	}
	rs.log().Error("mdns: every name tried is taken; announcing the last one anyway", "name", rs.Name())
	return nil
}

// announce sends every record (or goodbyes) on every interface.
func (rs *Responder) announce(conns []conn, goodbye bool) {
	r, err := rs.records(0)
	if err != nil {
		return
	}
	for _, c := range conns {
		// Each interface announces its own addresses.
		for _, idx := range c.interfaces() {
			ri, err := rs.records(idx)
			if err != nil {
				ri = r
			}
			b, err := ri.Announcement(goodbye)
			if err != nil {
				rs.log().Warn("mdns: build the announcement", "err", err)
				return
			}
			if err := c.send(b, idx, netip.AddrPort{}); err != nil {
				rs.log().Debug("mdns: announce", "interface", idx, "err", err)
			}
		}
	}
}

// InterfaceAddrs lists the addresses of interface ifIndex, or of every up, non-loopback,
// multicast interface when ifIndex is 0.
func InterfaceAddrs(ifIndex int) []netip.Addr {
	var ifs []net.Interface
	if ifIndex > 0 {
		ifi, err := net.InterfaceByIndex(ifIndex)
		if err != nil {
			return nil
		}
		ifs = []net.Interface{*ifi}
	} else {
		ifs = multicastInterfaces()
	}
	var out []netip.Addr
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok && !ip.IsLoopback() {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// multicastInterfaces are the interfaces mDNS runs on.
func multicastInterfaces() []net.Interface {
	all, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []net.Interface
	for _, ifi := range all {
		if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagMulticast != 0 && ifi.Flags&net.FlagLoopback == 0 {
			out = append(out, ifi)
		}
	}
	return out
}

func or(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
