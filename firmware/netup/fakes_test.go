package netup

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
)

// fakeServer is a DHCP server behind a fakeConn.
type fakeServer struct {
	mu sync.Mutex
	// addr is what the server hands out; silent makes it answer nothing; nak refuses requests.
	addr   netip.Prefix
	router netip.Addr
	lease  uint32
	silent bool
	nak    bool
	// got records each message the client sent, as "TYPE to ADDR".
	got []string
}

var serverID = netip.MustParseAddr("10.0.2.2")

func newServer() *fakeServer {
	return &fakeServer{addr: netip.MustParsePrefix("10.0.2.15/24"), router: serverID, lease: 100}
}

func (s *fakeServer) set(f func(s *fakeServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *fakeServer) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

// answer returns the server's reply to m, or nil.
func (s *fakeServer) answer(m *Message, to netip.Addr) *Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, fmt.Sprintf("%v to %v", m.Type(), to))
	if s.silent {
		return nil
	}
	mask := make([]byte, 4)
	binary.BigEndian.PutUint32(mask, ^uint32(0)<<(32-s.addr.Bits()))
	lease := make([]byte, 4)
	binary.BigEndian.PutUint32(lease, s.lease)
	r := &Message{Op: opReply, XID: m.XID, HWAddr: m.HWAddr, YourIP: s.addr.Addr(), Options: map[byte][]byte{
		optServerID: addrOption(serverID), optSubnetMask: mask, optLeaseTime: lease,
		optRouter: addrOption(s.router), optDNS: addrOption(netip.MustParseAddr("10.0.2.3")),
	}}
	switch m.Type() {
	case Discover:
		r.Options[optMessageType] = []byte{byte(Offer)}
	case Request:
		r.Options[optMessageType] = []byte{byte(Ack)}
		if s.nak {
			r.Options[optMessageType] = []byte{byte(Nak)}
		}
	default:
		return nil
	}
	return r
}

// fakeConn delivers the client's messages to a fakeServer and queues its answers.
type fakeConn struct {
	srv *fakeServer
	in  chan []byte
	// noise, if set, is delivered before every answer: another client's traffic.
	noise []byte
}

func newConn(srv *fakeServer) *fakeConn { return &fakeConn{srv: srv, in: make(chan []byte, 16)} }

func (c *fakeConn) Send(b []byte, to netip.Addr) error {
	m, err := ParseMessage(b)
	if err != nil {
		return err
	}
	if c.noise != nil {
		c.in <- c.noise
	}
	if r := c.srv.answer(m, to); r != nil {
		c.in <- r.Marshal()
	}
	return nil
}

func (c *fakeConn) Receive(ctx context.Context) ([]byte, error) {
	select {
	case b := <-c.in:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *fakeConn) Close() error { return nil }

// fakeLink records the configuration calls as strings on a channel.
type fakeLink struct{ ops chan string }

func newLink() *fakeLink { return &fakeLink{ops: make(chan string, 64)} }

func (l *fakeLink) Up(ifname string) error { l.ops <- "up " + ifname; return nil }
func (l *fakeLink) AddAddr(ifname string, p netip.Prefix) error {
	l.ops <- fmt.Sprintf("add %v %s", p, ifname)
	return nil
}
func (l *fakeLink) DelAddr(ifname string, p netip.Prefix) error {
	l.ops <- fmt.Sprintf("del %v %s", p, ifname)
	return nil
}
func (l *fakeLink) SetGateway(ifname string, gw netip.Addr) error {
	l.ops <- fmt.Sprintf("gateway %v %s", gw, ifname)
	return nil
}
func (l *fakeLink) DelGateway(ifname string) error { l.ops <- "nogateway " + ifname; return nil }
