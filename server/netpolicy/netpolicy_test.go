package netpolicy_test

import (
	"errors"
	"net/netip"
	"testing"

	"fyr/server/netpolicy"
)

func TestPublic(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"93.184.215.14", true}, {"2606:2800:21f:cb07:6820:80da:af6b:8b2c", true},
		{"127.0.0.1", false}, {"127.3.4.5", false}, {"10.1.2.3", false}, {"172.16.0.1", false}, {"192.168.1.1", false},
		{"169.254.169.254", false}, {"100.64.0.1", false}, {"0.0.0.0", false}, {"224.0.0.1", false},
		{"255.255.255.255", false}, {"::1", false}, {"fe80::1", false}, {"fc00::1", false},
		{"::ffff:127.0.0.1", false}, {"64:ff9b::a00:1", false}, {"2002:a00:1::", false},
	} {
		if got := netpolicy.Public(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Public(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

func TestDialControl(t *testing.T) {
	ctl := netpolicy.DialControl(netpolicy.Public)
	if err := ctl("tcp", "93.184.215.14:443", nil); err != nil {
		t.Errorf("public address refused: %v", err)
	}
	for _, a := range []string{"127.0.0.1:8448", "[::1]:443", "10.0.0.1:22", "not an address"} {
		if err := ctl("tcp", a, nil); !errors.Is(err, netpolicy.ErrRefused) {
			t.Errorf("DialControl(%s) = %v, want ErrRefused", a, err)
		}
	}
}
