package netup

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"
)

// MessageType is DHCP option 53 (RFC 2132 §9.6).
type MessageType byte

// The message types a client sends and receives.
const (
	Discover MessageType = 1
	Offer    MessageType = 2
	Request  MessageType = 3
	Decline  MessageType = 4
	Ack      MessageType = 5
	Nak      MessageType = 6
	Release  MessageType = 7
)

func (t MessageType) String() string {
	switch t {
	case Discover:
		return "DHCPDISCOVER"
	case Offer:
		return "DHCPOFFER"
	case Request:
		return "DHCPREQUEST"
	case Decline:
		return "DHCPDECLINE"
	case Ack:
		return "DHCPACK"
	case Nak:
		return "DHCPNAK"
	case Release:
		return "DHCPRELEASE"
	}
	return fmt.Sprintf("DHCP(%d)", byte(t))
}

// DHCP option codes (RFC 2132).
const (
	optPad          = 0
	optSubnetMask   = 1
	optRouter       = 3
	optDNS          = 6
	optHostname     = 12
	optRequestedIP  = 50
	optLeaseTime    = 51
	optMessageType  = 53
	optServerID     = 54
	optParamRequest = 55
	optRenewalT1    = 58
	optRebindingT2  = 59
	optClientID     = 61
	optEnd          = 255
)

const (
	opRequest = 1
	opReply   = 2
	// fixedLen is the BOOTP header up to the magic cookie (RFC 2131 §2).
	fixedLen      = 236
	flagBroadcast = 0x8000
)

var magicCookie = []byte{99, 130, 83, 99}

// Message is a DHCPv4 message (RFC 2131 §2). Options holds every option by code, including
// ones this client does not use.
type Message struct {
	Op        byte
	XID       uint32
	Secs      uint16
	Broadcast bool
	// ClientIP (ciaddr), YourIP (yiaddr), ServerIP (siaddr) and RelayIP (giaddr); the zero
	// Addr is 0.0.0.0.
	ClientIP, YourIP, ServerIP, RelayIP netip.Addr
	HWAddr                              net.HardwareAddr
	Options                             map[byte][]byte
}

var errShort = errors.New("dhcp: message too short")

// Marshal encodes m. Option 53 goes first, the rest in code order, then the end option.
func (m *Message) Marshal() []byte {
	b := make([]byte, fixedLen, 300)
	b[0] = m.Op
	b[1] = 1 // Ethernet
	b[2] = byte(len(m.HWAddr))
	binary.BigEndian.PutUint32(b[4:], m.XID)
	binary.BigEndian.PutUint16(b[8:], m.Secs)
	if m.Broadcast {
		binary.BigEndian.PutUint16(b[10:], flagBroadcast)
	}
	for i, a := range []netip.Addr{m.ClientIP, m.YourIP, m.ServerIP, m.RelayIP} {
		if a.Is4() {
			ip := a.As4()
			copy(b[12+4*i:], ip[:])
		}
	}
	copy(b[28:44], m.HWAddr)
	b = append(b, magicCookie...)
	codes := make([]int, 0, len(m.Options))
	for c := range m.Options {
		if c != optPad && c != optEnd {
			codes = append(codes, int(c))
		}
	}
	slices.SortFunc(codes, func(x, y int) int {
		switch {
		case x == y:
			return 0
		case x == optMessageType:
			return -1
		case y == optMessageType:
			return 1
		}
		return x - y
	})
	for _, c := range codes {
		v := m.Options[byte(c)]
		for len(v) > 255 { // RFC 3396: long options are split
			b = append(b, byte(c), 255)
			b = append(b, v[:255]...)
			v = v[255:]
		}
		b = append(b, byte(c), byte(len(v)))
		b = append(b, v...)
	}
	b = append(b, optEnd)
	for len(b) < 300 { // some servers drop BOOTP messages shorter than 300 bytes
		b = append(b, optPad)
	}
	return b
}

// ParseMessage decodes a DHCP message. Repeated options are concatenated (RFC 3396).
func ParseMessage(b []byte) (*Message, error) {
	if len(b) < fixedLen+len(magicCookie) {
		return nil, errShort
	}
	if !bytes.Equal(b[fixedLen:fixedLen+4], magicCookie) {
		return nil, errors.New("dhcp: no magic cookie")
	}
	hlen := int(b[2])
	if hlen > 16 {
		return nil, fmt.Errorf("dhcp: hardware address length %d", hlen)
	}
	m := &Message{
		Op:        b[0],
		XID:       binary.BigEndian.Uint32(b[4:]),
		Secs:      binary.BigEndian.Uint16(b[8:]),
		Broadcast: binary.BigEndian.Uint16(b[10:])&flagBroadcast != 0,
		HWAddr:    net.HardwareAddr(slices.Clone(b[28 : 28+hlen])),
		Options:   map[byte][]byte{},
	}
	for i, dst := range []*netip.Addr{&m.ClientIP, &m.YourIP, &m.ServerIP, &m.RelayIP} {
		if a := netip.AddrFrom4([4]byte(b[12+4*i : 16+4*i])); !a.IsUnspecified() {
			*dst = a
		}
	}
	opts := b[fixedLen+4:]
	for len(opts) > 0 {
		code := opts[0]
		if code == optEnd {
			break
		}
		if code == optPad {
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || len(opts) < 2+int(opts[1]) {
			return nil, fmt.Errorf("dhcp: option %d truncated", code)
		}
		n := int(opts[1])
		m.Options[code] = append(m.Options[code], opts[2:2+n]...)
		opts = opts[2+n:]
	}
	return m, nil
}

// Type returns option 53, or 0 if it is missing or malformed.
func (m *Message) Type() MessageType {
	if v := m.Options[optMessageType]; len(v) == 1 {
		return MessageType(v[0])
	}
	return 0
}

func (m *Message) addr(code byte) netip.Addr {
	if v := m.Options[code]; len(v) >= 4 {
		return netip.AddrFrom4([4]byte(v[:4]))
	}
	return netip.Addr{}
}

func (m *Message) addrs(code byte) []netip.Addr {
	v := m.Options[code]
	var out []netip.Addr
	for len(v) >= 4 {
		out = append(out, netip.AddrFrom4([4]byte(v[:4])))
		v = v[4:]
	}
	return out
}

func (m *Message) seconds(code byte) time.Duration {
	if v := m.Options[code]; len(v) == 4 {
		return time.Duration(binary.BigEndian.Uint32(v)) * time.Second
	}
	return 0
}

// ServerID returns option 54.
func (m *Message) ServerID() netip.Addr { return m.addr(optServerID) }

func addrOption(a netip.Addr) []byte {
	ip := a.As4()
	return ip[:]
}

// Lease is an address the DHCP server granted.
type Lease struct {
	// Addr is the address with the subnet's prefix length.
	Addr netip.Prefix
	// Router is the default gateway; the zero Addr means none.
	Router netip.Addr
	DNS    []netip.Addr
	// Server is the DHCP server that granted the lease (option 54).
	Server netip.Addr
	// Duration is the lease time; T1 and T2 are when to renew and when to rebind, after
	// Acquired (RFC 2131 §4.4.5 defaults when the server leaves them out).
	Duration, T1, T2 time.Duration
	Acquired         time.Time
}

// leaseFrom reads a lease out of an ACK received at now.
func leaseFrom(ack *Message, now time.Time) (Lease, error) {
	if !ack.YourIP.Is4() {
		return Lease{}, errors.New("dhcp: ACK without an address")
	}
	bits := 24
	if mask := ack.Options[optSubnetMask]; len(mask) == 4 {
		ones, size := net.IPMask(mask).Size()
		if size != 32 {
			return Lease{}, fmt.Errorf("dhcp: non-contiguous subnet mask %v", net.IP(mask))
		}
		bits = ones
	} else {
		bits = defaultBits(ack.YourIP)
	}
	l := Lease{
		Addr:     netip.PrefixFrom(ack.YourIP, bits),
		Router:   ack.addr(optRouter),
		DNS:      ack.addrs(optDNS),
		Server:   ack.ServerID(),
		Duration: ack.seconds(optLeaseTime),
		T1:       ack.seconds(optRenewalT1),
		T2:       ack.seconds(optRebindingT2),
		Acquired: now,
	}
	if l.Duration <= 0 {
		l.Duration = time.Hour
	}
	if l.T1 <= 0 || l.T1 >= l.Duration {
		l.T1 = l.Duration / 2
	}
	if l.T2 <= l.T1 || l.T2 >= l.Duration {
		l.T2 = l.Duration * 7 / 8
	}
	return l, nil
}

// defaultBits is the classful prefix length, for servers that send no subnet mask.
func defaultBits(a netip.Addr) int {
	switch b := a.As4()[0]; {
	case b < 128:
		return 8
	case b < 192:
		return 16
	}
	return 24
}
