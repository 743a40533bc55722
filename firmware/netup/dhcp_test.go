package netup

import (
	"bytes"
	"net"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestMessageRoundTrip(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	in := &Message{
		Op: opReply, XID: 0xdeadbeef, Secs: 3, Broadcast: true,
		YourIP: netip.MustParseAddr("10.0.2.15"), ServerIP: netip.MustParseAddr("10.0.2.2"),
		HWAddr: mac,
		Options: map[byte][]byte{
			optMessageType: {byte(Ack)},
			optSubnetMask:  {255, 255, 255, 0},
			optDNS:         {10, 0, 2, 3, 1, 1, 1, 1},
			optHostname:    bytes.Repeat([]byte("h"), 300), // longer than one option can hold
		},
	}
	b := in.Marshal()
	if len(b) < 300 {
		t.Errorf("message is %d bytes, want at least 300 (BOOTP minimum)", len(b))
	}
	if b[fixedLen+4] != optMessageType {
		t.Errorf("first option is %d, want 53 (message type)", b[fixedLen+4])
	}
	out, err := ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("ParseMessage(Marshal(m)) = %+v, want %+v", out, in)
	}
	if got := out.Type(); got != Ack {
		t.Errorf("Type() = %v, want DHCPACK", got)
	}
}

func TestParseMessageRefuses(t *testing.T) {
	good := (&Message{Op: opReply, HWAddr: make(net.HardwareAddr, 6), Options: map[byte][]byte{optMessageType: {byte(Offer)}}}).Marshal()
	noCookie := bytes.Clone(good)
	noCookie[fixedLen] = 0
	truncated := append(bytes.Clone(good[:fixedLen+4]), optDNS, 8, 1, 2, 3)
	longHW := bytes.Clone(good)
	longHW[2] = 17
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"short", good[:100]},
		{"no magic cookie", noCookie},
		{"truncated option", truncated},
		{"hardware address too long", longHW},
	} {
		if _, err := ParseMessage(tc.in); err == nil {
			t.Errorf("ParseMessage(%s) succeeded, want an error", tc.name)
		}
	}
}

func TestLeaseFrom(t *testing.T) {
	now := time.Unix(1e9, 0)
	ack := func(opts map[byte][]byte) *Message {
		return &Message{YourIP: netip.MustParseAddr("192.168.7.20"), Options: opts}
	}
	for _, tc := range []struct {
		name string
		ack  *Message
		want Lease
	}{
		{
			name: "everything given",
			ack: ack(map[byte][]byte{
				optSubnetMask: {255, 255, 240, 0}, optRouter: {192, 168, 0, 1}, optDNS: {192, 168, 0, 1},
				optServerID: {192, 168, 0, 1}, optLeaseTime: {0, 0, 0x0e, 0x10}, optRenewalT1: {0, 0, 0, 60}, optRebindingT2: {0, 0, 0, 120},
			}),
			want: Lease{Addr: netip.MustParsePrefix("192.168.7.20/20"), Router: netip.MustParseAddr("192.168.0.1"),
				DNS: []netip.Addr{netip.MustParseAddr("192.168.0.1")}, Server: netip.MustParseAddr("192.168.0.1"),
				Duration: time.Hour, T1: time.Minute, T2: 2 * time.Minute, Acquired: now},
		},
		{
			name: "RFC 2131 defaults for T1 and T2, classful mask",
			ack:  ack(map[byte][]byte{optLeaseTime: {0, 0, 0, 80}}),
			want: Lease{Addr: netip.MustParsePrefix("192.168.7.20/24"), Duration: 80 * time.Second, T1: 40 * time.Second, T2: 70 * time.Second, Acquired: now},
		},
	} {
		got, err := leaseFrom(tc.ack, now)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: leaseFrom = %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if _, err := leaseFrom(ack(map[byte][]byte{optSubnetMask: {255, 0, 255, 0}}), now); err == nil {
		t.Error("leaseFrom accepted a non-contiguous mask")
	}
	if _, err := leaseFrom(&Message{}, now); err == nil {
		t.Error("leaseFrom accepted an ACK without an address")
	}
}
