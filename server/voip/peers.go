package voip

import (
	"fmt"
	"net/netip"
	"strings"

	"fyr/server/netpolicy"
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
	return netpolicy.Public(ip)
}
