package mdns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// listenSystem joins the Multicast DNS groups on every multicast interface: IPv4 must work,
// IPv6 is used where it does.
func (rs *Responder) listenSystem() ([]conn, error) {
	ifs := multicastInterfaces()
	if len(ifs) == 0 {
		return nil, errors.New("mdns: no up, multicast-capable network interface")
	}
	c4, err := listen4(ifs)
	if err != nil {
		return nil, err
	}
	conns := []conn{c4}
	if c6, err := listen6(ifs); err != nil {
		rs.log().Info("mdns: IPv6 off", "err", err)
	} else {
		conns = append(conns, c6)
	}
	return conns, nil
}

// sock is one address family's socket and the interfaces that joined its group.
type sock struct {
	udp    *net.UDPConn
	group  *net.UDPAddr
	joined []net.Interface
	// mu keeps choosing the outgoing interface and sending together.
	mu sync.Mutex
	// readFrom and setInterface wrap the family's x/net PacketConn.
	readFrom     func(b []byte) (int, int, net.Addr, error)
	setInterface func(*net.Interface) error
	write        func(b []byte, dst net.Addr) error
}

func (s *sock) read(b []byte) (int, int, netip.AddrPort, error) {
	n, ifIndex, src, err := s.readFrom(b)
	if err != nil {
		return 0, 0, netip.AddrPort{}, err
	}
	var ap netip.AddrPort
	if u, ok := src.(*net.UDPAddr); ok {
		ap = u.AddrPort()
	}
	return n, ifIndex, ap, nil
}

func (s *sock) send(b []byte, ifIndex int, dst netip.AddrPort) error {
	if dst.IsValid() {
		return s.write(b, net.UDPAddrFromAddrPort(dst))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for i := range s.joined {
		ifi := &s.joined[i]
		if ifIndex != 0 && ifi.Index != ifIndex {
			continue
		}
		if err := s.setInterface(ifi); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := s.write(b, s.group); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ifi.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (s *sock) interfaces() []int {
	out := make([]int, len(s.joined))
	for i, ifi := range s.joined {
		out[i] = ifi.Index
	}
	return out
}

func (s *sock) close() error { return s.udp.Close() }

func listen4(ifs []net.Interface) (conn, error) {
	group := &net.UDPAddr{IP: GroupV4.AsSlice(), Port: Port}
	// ListenMulticastUDP binds the port with SO_REUSEADDR; the groups are joined below.
	udp, err := net.ListenMulticastUDP("udp4", nil, group)
	if err != nil {
		return nil, fmt.Errorf("mdns: %w", err)
	}
	pc := ipv4.NewPacketConn(udp)
	s := &sock{udp: udp, group: group}
	for _, ifi := range ifs {
		// The default interface has joined already; joining it again fails harmlessly.
		pc.JoinGroup(&ifi, group)
		s.joined = append(s.joined, ifi)
	}
	pc.SetControlMessage(ipv4.FlagInterface, true)
	pc.SetMulticastTTL(255) // RFC 6762 section 11: receivers may check it
	pc.SetMulticastLoopback(false)
	s.readFrom = func(b []byte) (int, int, net.Addr, error) {
		n, cm, src, err := pc.ReadFrom(b)
		idx := 0
		if cm != nil {
			idx = cm.IfIndex
		}
		return n, idx, src, err
	}
	s.setInterface = pc.SetMulticastInterface
	s.write = func(b []byte, dst net.Addr) error { _, err := pc.WriteTo(b, nil, dst); return err }
	return s, nil
}

func listen6(ifs []net.Interface) (conn, error) {
	group := &net.UDPAddr{IP: GroupV6.AsSlice(), Port: Port}
	udp, err := net.ListenMulticastUDP("udp6", nil, group)
	if err != nil {
		return nil, fmt.Errorf("mdns: %w", err)
	}
	pc := ipv6.NewPacketConn(udp)
	s := &sock{udp: udp, group: group}
	for _, ifi := range ifs {
		pc.JoinGroup(&ifi, group)
		s.joined = append(s.joined, ifi)
	}
	pc.SetControlMessage(ipv6.FlagInterface, true)
	pc.SetMulticastHopLimit(255)
	pc.SetMulticastLoopback(false)
	s.readFrom = func(b []byte) (int, int, net.Addr, error) {
		n, cm, src, err := pc.ReadFrom(b)
		idx := 0
		if cm != nil {
			idx = cm.IfIndex
		}
		return n, idx, src, err
	}
	s.setInterface = pc.SetMulticastInterface
	s.write = func(b []byte, dst net.Addr) error { _, err := pc.WriteTo(b, nil, dst); return err }
	return s, nil
}
