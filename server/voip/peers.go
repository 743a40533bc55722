package voip

import (
	"fmt"
	"net/netip"
	"strings"
)

// PeerPolicy decides which peers the relay may send to. A TURN relay that sends anywhere is
// an open door into the network it stands in, so by default it refuses every address that is
// not on the public internet. The zero value refuses all of those and has no relay address.
type PeerPolicy struct {
	// Allow opens ranges that are refused by default (private, shared and documentation
	// ranges), e.g. a LAN's 192.168.1.0/24. It never opens loopback, link-local, multicast,
	// broadcast or unspecified addresses.
	Allow []netip.Prefix
	// AllowLoopback lets the relay send to loopback peers; for test harnesses only.
	AllowLoopback bool
	// RelayIP is this server's own relay address. Peers there are other allocations of this
	// server (two clients both behind NAT), reachable whatever its range, but only on the
	// relay ports MinPort–MaxPort.
	RelayIP          netip.Addr
	MinPort, MaxPort uint16
}

// refused lists the special-purpose ranges a relay must not reach unless allowed. Loopback,
// link-local, multicast and unspecified addresses are refused by netip predicates.
var refused = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network": 0.x reaches the host itself on Linux
	netip.MustParsePrefix("10.0.0.0/8"),      // private
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("172.16.0.0/12"),   // private
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("192.168.0.0/16"),  // private
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: reaches IPv4, private ranges included
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4: wraps any IPv4 address
	netip.MustParsePrefix("fc00::/7"),        // unique local
}

// never lists ranges that no allow-list opens.
var never = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("255.255.255.255/32"),
}

// ParseAllowList reads comma-separated CIDRs, as turn.allow_peers spells them.
func ParseAllowList(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("parse allowed peers: %w", err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Peer reports whether a client may create a permission or channel for peer ip.
func (p *PeerPolicy) Peer(ip netip.Addr) bool {
	ip = ip.Unmap()
	return p.general(ip) || (p.RelayIP.IsValid() && ip == p.RelayIP)
}

// Packet reports whether the relay may send a datagram to ap. It repeats Peer, so that a
// reload that narrows the policy applies to permissions granted before it, and keeps peers
// on the relay's own address to the relay ports.
func (p *PeerPolicy) Packet(ap netip.AddrPort) bool {
	ip := ap.Addr().Unmap()
	if p.general(ip) {
		return true
	}
	return p.RelayIP.IsValid() && ip == p.RelayIP && ap.Port() >= p.MinPort && ap.Port() <= p.MaxPort
}

// general is the policy for any peer but the relay itself.
func (p *PeerPolicy) general(ip netip.Addr) bool {
	switch {
	case !ip.IsValid(), ip.IsUnspecified(), ip.IsMulticast(), ip.IsLinkLocalUnicast(),
		ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return false
	case ip.IsLoopback():
		return p.AllowLoopback
	}
	for _, n := range never {
		if n.Contains(ip) {
			return false
		}
	}
	for _, a := range p.Allow {
		if a.Contains(ip) {
			return true
		}
	}
	if ip.IsPrivate() {
		return false
	}
	for _, r := range refused {
		if r.Contains(ip) {
			return false
		}
	}
	return true
}
