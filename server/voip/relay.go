package voip

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
)

// errNoRelayPort means every port tried in the relay range was taken.
var errNoRelayPort = errors.New("voip: no free relay port in turn.min_port–turn.max_port")

// relayPorts implements turn.RelayAddressGenerator: it opens each allocation's UDP socket on a
// port of the configured range and wraps it in a relayConn that applies the peer policy, the
// user's bandwidth and the counters.
type relayPorts struct {
	t                *TURN
	bindIP           string // address the sockets bind to
	relayIP          net.IP // address announced to clients
	minPort, maxPort int

	mu    sync.Mutex
	conns map[int]*relayConn // open relay sockets by port
}

// relayTries bounds the random ports tried before an allocation fails with 508.
const relayTries = 32

func (g *relayPorts) Validate() error {
	if g.minPort < 1 || g.maxPort < g.minPort || g.maxPort > 65535 || g.relayIP.To4() == nil {
		return fmt.Errorf("voip: bad relay range %d–%d or address %v", g.minPort, g.maxPort, g.relayIP)
	}
	return nil
}

// AllocatePacketConn opens a relay socket: on requestedPort if the client asked for one (it
// must lie in the range), else on a random free port of the range.
func (g *relayPorts) AllocatePacketConn(network string, requestedPort int) (net.PacketConn, net.Addr, error) {
	if network != "udp4" {
		return nil, nil, fmt.Errorf("voip: relay over %s is not offered", network)
	}
	if requestedPort != 0 {
		if requestedPort < g.minPort || requestedPort > g.maxPort {
			return nil, nil, errNoRelayPort
		}
		return g.open(requestedPort)
	}
	span := g.maxPort - g.minPort + 1
	for range min(relayTries, span) {
		if c, addr, err := g.open(g.minPort + rand.IntN(span)); err == nil {
			return c, addr, nil
		}
	}
	return nil, nil, errNoRelayPort
}

// AllocateConn would serve TCP relays (RFC 6062), which calls do not use.
func (g *relayPorts) AllocateConn(string, int) (net.Conn, net.Addr, error) {
	return nil, nil, errors.New("voip: TCP relays are not offered")
}

func (g *relayPorts) open(port int) (net.PacketConn, net.Addr, error) {
	pc, err := net.ListenPacket("udp4", net.JoinHostPort(g.bindIP, strconv.Itoa(port)))
	if err != nil {
		return nil, nil, err
	}
	c := &relayConn{UDPConn: pc.(*net.UDPConn), g: g, port: port}
	c.SetReadBuffer(relayBuffer)
	g.mu.Lock()
	g.conns[port] = c
	g.mu.Unlock()
	return c, &net.UDPAddr{IP: g.relayIP, Port: port}, nil
}

// conn returns the open relay socket on port, or nil.
func (g *relayPorts) conn(port int) *relayConn {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.conns[port]
}

// relayConn is one allocation's relay socket. Its user is set once the allocation is
// recorded; until then (a few microseconds) no bandwidth limit applies.
type relayConn struct {
	*net.UDPConn
	g    *relayPorts
	port int
	user atomic.Pointer[user]
	once sync.Once
}

// ReadFrom returns the next datagram from a peer that the user's bandwidth allows; others are
// dropped. An error ends the allocation, so drops never return one.
func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	t := c.g.t
	for {
		n, addr, err := c.UDPConn.ReadFromUDP(p)
		if err != nil {
			return n, addr, err
		}
		if !c.allow(n) {
			t.stats.droppedBandwidth.Add(1)
			continue
		}
		t.stats.bytesFromPeers.Add(int64(n))
		return n, addr, nil
	}
}

// WriteTo sends a client's datagram to a peer if the peer policy and the user's bandwidth
// allow; otherwise it drops it and reports success, as the network would.
func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	t := c.g.t
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("voip: relay to %T", addr)
	}
	if !t.policy.Load().Packet(ua.AddrPort()) {
		t.stats.refusedPeer.Add(1)
		return len(p), nil
	}
	if !c.allow(len(p)) {
		t.stats.droppedBandwidth.Add(1)
		return len(p), nil
	}
	n, err := c.UDPConn.WriteToUDP(p, ua)
	t.stats.bytesToPeers.Add(int64(n))
	return n, err
}

// allow spends n bytes of the user's bandwidth, if limited; it reports false if the datagram
// must be dropped.
func (c *relayConn) allow(n int) bool {
	u := c.user.Load()
	if u == nil {
		return true
	}
	rate := c.g.t.limits.Load().BytesPerSecond
	return rate <= 0 || u.take(n, rate, c.g.t.now())
}

// Close releases the port; it is safe to call more than once.
func (c *relayConn) Close() error {
	c.once.Do(func() {
		c.g.mu.Lock()
		if c.g.conns[c.port] == c {
			delete(c.g.conns, c.port)
		}
		c.g.mu.Unlock()
	})
	return c.UDPConn.Close()
}
