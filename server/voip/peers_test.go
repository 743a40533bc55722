package voip_test

import (
	"net/netip"
	"testing"

	"fyr/server/voip"
)

func TestPeerPolicy(t *testing.T) {
	allow, err := voip.ParseAllowList(" 192.168.1.0/24, 10.1.0.0/16 ,0.0.0.0/0")
	if err != nil {
		t.Fatal(err)
	}
	strict := &voip.PeerPolicy{RelayIP: netip.MustParseAddr("192.168.9.9"), MinPort: 50000, MaxPort: 50999}
	lan := &voip.PeerPolicy{Allow: allow[:2], RelayIP: strict.RelayIP, MinPort: 50000, MaxPort: 50999}
	everything := &voip.PeerPolicy{Allow: allow, AllowLoopback: true}
	tests := []struct {
		policy *voip.PeerPolicy
		peer   string
		want   bool
	}{
		{strict, "8.8.8.8", true},
		{strict, "2a00:1450::1", true},
		{strict, "127.0.0.1", false},
		{strict, "::1", false},
		{strict, "::ffff:127.0.0.1", false},
		{strict, "0.0.0.0", false},
		{strict, "0.1.2.3", false},
		{strict, "169.254.169.254", false}, // cloud metadata
		{strict, "fe80::1", false},
		{strict, "224.0.0.251", false},
		{strict, "ff02::1", false},
		{strict, "255.255.255.255", false},
		{strict, "10.0.0.1", false},
		{strict, "172.16.5.4", false},
		{strict, "192.168.1.20", false},
		{strict, "100.64.0.1", false},
		{strict, "fd00::1", false},
		{strict, "64:ff9b::a00:1", false}, // NAT64 for 10.0.0.1
		{strict, "192.168.9.9", true},     // the relay itself: another allocation
		{lan, "192.168.1.20", true},
		{lan, "10.1.2.3", true},
		{lan, "10.2.0.1", false},
		{lan, "127.0.0.1", false},
		{everything, "127.0.0.1", true},
		{everything, "10.2.0.1", true},
		{everything, "169.254.1.1", false}, // no allow-list opens link-local …
		{everything, "224.0.0.1", false},   // … multicast …
		{everything, "0.0.0.0", false},     // … or the host itself
	}
	for _, tt := range tests {
		if got := tt.policy.Peer(netip.MustParseAddr(tt.peer)); got != tt.want {
			t.Errorf("Peer(%s) with allow %v, loopback %v = %v, want %v", tt.peer, tt.policy.Allow, tt.policy.AllowLoopback, got, tt.want)
		}
	}

	packets := []struct {
		peer string
		want bool
	}{
		{"192.168.9.9:50000", true},
		{"192.168.9.9:50999", true},
		{"192.168.9.9:22", false}, // a service on the box, not a relay
		{"192.168.9.9:3478", false},
		{"8.8.8.8:53", true},
		{"10.0.0.1:5000", false},
	}
	for _, tt := range packets {
		if got := strict.Packet(netip.MustParseAddrPort(tt.peer)); got != tt.want {
			t.Errorf("Packet(%s) = %v, want %v", tt.peer, got, tt.want)
		}
	}
	if _, err := voip.ParseAllowList("192.168.1.0/33"); err == nil {
		t.Error("ParseAllowList accepted /33")
	}
}
