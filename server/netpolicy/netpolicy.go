// Package netpolicy says which IP addresses a server may reach out to on someone else's
// behalf. A URL preview or a federation request goes wherever a name resolves; without a
// fence, anyone who can name a host can make the box probe its own LAN.
//
// The TURN relay's peer policy (server/voip) builds on Public and adds its own allow-list.
package netpolicy

import (
	"fmt"
	"net/netip"
	"syscall"
)

// Public reports whether a is a public unicast address: not loopback, private (RFC 1918,
// fc00::/7), link-local, multicast, unspecified, nor one of the special ranges that can lead
// back into a private network (CGNAT, NAT64, 6to4, Teredo, IPv4-translated) or are reserved
// or for documentation.
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range special {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

var special = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64 can reach private IPv4
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2002::/16"),       // 6to4 embeds any IPv4
	netip.MustParsePrefix("2001::/32"),       // Teredo
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("::ffff:0:0:0/96"), // IPv4-translated
}

// ErrRefused is returned for a connection the policy does not allow.
var ErrRefused = fmt.Errorf("netpolicy: address not allowed")

// DialControl returns a net.Dialer Control function that refuses, before connecting, any
// address for which allow is false. Checking the address actually dialled (rather than a
// name) also covers DNS answers that change between lookup and use.
func DialControl(allow func(netip.Addr) bool) func(network, address string, c syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !allow(ap.Addr().Unmap()) {
			return fmt.Errorf("%w: %s", ErrRefused, address)
		}
		return nil
	}
}
