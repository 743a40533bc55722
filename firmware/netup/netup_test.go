package netup

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyr/firmware/internal/fakeclock"
)

var eth0 = net.Interface{Index: 2, Name: "eth0", HardwareAddr: testMAC, Flags: net.FlagBroadcast}
var lo = net.Interface{Index: 1, Name: "lo", Flags: net.FlagLoopback}

type netRun struct {
	t     *testing.T
	n     *Network
	link  *fakeLink
	clock *fakeclock.Clock
	srv   *fakeServer
}

func startNetwork(t *testing.T, cfg Config, configure func(*Network)) *netRun {
	t.Helper()
	r := &netRun{t: t, link: newLink(), clock: fakeclock.New(time.Unix(1e9, 0)), srv: newServer()}
	r.n = &Network{
		Config:       cfg,
		Link:         r.link,
		Listen:       func(string) (Conn, error) { return newConn(r.srv), nil },
		Interfaces:   func() ([]net.Interface, error) { return []net.Interface{lo, eth0}, nil },
		ResolvConf:   filepath.Join(t.TempDir(), "resolv.conf"),
		FirstWait:    50 * time.Millisecond,
		DHCPTimeout:  time.Millisecond,
		DHCPAttempts: 1,
		Clock:        r.clock,
	}
	if configure != nil {
		configure(r.n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	return r
}

// expect reads the next configuration calls and compares them with want.
func (r *netRun) expect(want ...string) {
	r.t.Helper()
	for _, w := range want {
		select {
		case got := <-r.link.ops:
			if got != w {
				r.t.Fatalf("link call %q, want %q", got, w)
			}
		case <-time.After(10 * time.Second):
			r.t.Fatalf("no link call, want %q", w)
		}
	}
}

// sleeping waits until Run sleeps on the clock, checks it made no other link calls, and
// returns how long it sleeps.
func (r *netRun) sleeping() time.Duration {
	r.t.Helper()
	r.clock.BlockUntil(1)
	select {
	case got := <-r.link.ops:
		r.t.Fatalf("unexpected link call %q", got)
	default:
	}
	d, _ := r.clock.Next()
	return d
}

func TestLeaseRenewedAndChanged(t *testing.T) {
	r := startNetwork(t, Config{}, nil)
	r.expect("up lo", "up eth0", "add 10.0.2.15/24 eth0", "gateway 10.0.2.2 eth0")
	if d := r.sleeping(); d != 50*time.Second {
		t.Fatalf("renewal in %v, want T1 = 50s", d)
	}
	if b, _ := os.ReadFile(r.n.ResolvConf); !strings.Contains(string(b), "nameserver 10.0.2.3\n") {
		t.Errorf("resolv.conf = %q, want the lease's DNS server", b)
	}
	r.clock.Advance(50 * time.Second)
	if d := r.sleeping(); d != 50*time.Second { // renewed, same address: nothing to do
		t.Fatalf("next renewal in %v, want 50s", d)
	}
	r.srv.set(func(s *fakeServer) { s.addr = netip.MustParsePrefix("10.0.2.16/24") })
	r.clock.Advance(50 * time.Second)
	r.expect("del 10.0.2.15/24 eth0", "add 10.0.2.16/24 eth0", "gateway 10.0.2.2 eth0")
	if got := r.srv.received(); got[len(got)-1] != "DHCPREQUEST to 10.0.2.2" {
		t.Errorf("renewal sent as %q, want unicast to the server", got[len(got)-1])
	}
}

func TestFallbackThenLease(t *testing.T) {
	r := startNetwork(t, Config{}, nil)
	r.srv.set(func(s *fakeServer) { s.silent = true })
	ll := LinkLocal(testMAC)
	r.expect("up lo", "up eth0", "add "+ll.String()+" eth0")
	if d := r.sleeping(); d != DefaultRetry {
		t.Fatalf("DHCP asked again in %v, want %v", d, DefaultRetry)
	}
	r.clock.Advance(DefaultRetry)
	r.sleeping() // still silent: the fallback stays, nothing is redone
	r.srv.set(func(s *fakeServer) { s.silent = false })
	r.clock.Advance(DefaultRetry)
	r.expect("del "+ll.String()+" eth0", "add 10.0.2.15/24 eth0", "gateway 10.0.2.2 eth0")
}

func TestLeaseExpiresWhenServerGone(t *testing.T) {
	static := &Static{Address: netip.MustParsePrefix("192.168.1.50/24"), Gateway: netip.MustParseAddr("192.168.1.1")}
	r := startNetwork(t, Config{Static: static}, nil)
	r.expect("up lo", "up eth0", "add 10.0.2.15/24 eth0", "gateway 10.0.2.2 eth0")
	r.srv.set(func(s *fakeServer) { s.silent = true })
	r.clock.Advance(r.sleeping()) // T1: renewal fails
	if d := r.sleeping(); d != 50*time.Second {
		t.Fatalf("after a failed renewal, next try in %v, want the 50s left of the lease", d)
	}
	r.clock.Advance(50 * time.Second)
	r.expect("nogateway eth0", "del 10.0.2.15/24 eth0", "add 192.168.1.50/24 eth0", "gateway 192.168.1.1 eth0")
}

func TestStaticMode(t *testing.T) {
	static := &Static{Address: netip.MustParsePrefix("192.168.1.50/24"), Gateway: netip.MustParseAddr("192.168.1.1"),
		DNS: []netip.Addr{netip.MustParseAddr("192.168.1.1")}}
	r := startNetwork(t, Config{Mode: ModeStatic, Static: static}, func(n *Network) {
		n.Listen = func(string) (Conn, error) { t.Error("DHCP socket opened in static mode"); return nil, os.ErrInvalid }
	})
	r.expect("up lo", "up eth0", "add 192.168.1.50/24 eth0", "gateway 192.168.1.1 eth0")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(r.n.ResolvConf)
		if strings.Contains(string(b), "nameserver 192.168.1.1\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("resolv.conf = %q, want the static DNS server", b)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWaitsForTheInterface(t *testing.T) {
	calls := 0
	r := startNetwork(t, Config{}, func(n *Network) {
		n.Interfaces = func() ([]net.Interface, error) {
			calls++
			if calls < 3 {
				return []net.Interface{lo}, nil
			}
			return []net.Interface{lo, eth0}, nil
		}
	})
	r.expect("up lo")
	r.clock.Advance(r.sleeping())
	r.clock.Advance(r.sleeping())
	r.expect("up eth0", "add 10.0.2.15/24 eth0")
}

func TestLinkLocal(t *testing.T) {
	ll := netip.MustParsePrefix("169.254.0.0/16")
	seen := map[netip.Prefix]bool{}
	for i := range 50 {
		mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, byte(i)}
		p := LinkLocal(mac)
		if p != LinkLocal(mac) {
			t.Fatalf("LinkLocal(%v) is not stable", mac)
		}
		if !ll.Contains(p.Addr()) || p.Bits() != 16 {
			t.Fatalf("LinkLocal(%v) = %v, want an address in %v", mac, p, ll)
		}
		if b := p.Addr().As4()[2]; b == 0 || b == 255 {
			t.Fatalf("LinkLocal(%v) = %v: RFC 3927 reserves 169.254.0.x and 169.254.255.x", mac, p)
		}
		seen[p] = true
	}
	if len(seen) < 45 {
		t.Errorf("50 MACs gave only %d distinct addresses", len(seen))
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, yaml string
		wantErr    bool
		check      func(Config) bool
	}{
		{"missing file", "", false, func(c Config) bool { return c.Mode == "" && c.Static == nil }},
		{"static", "mode: static\nstatic:\n  address: 192.168.1.50/24\n  gateway: 192.168.1.1\n  dns: [1.1.1.1]\n", false, func(c Config) bool {
			return c.Static.Address == netip.MustParsePrefix("192.168.1.50/24") && c.Static.Gateway == netip.MustParseAddr("192.168.1.1") && len(c.Static.DNS) == 1
		}},
		{"interface", "interface: end0\n", false, func(c Config) bool { return c.Interface == "end0" }},
		{"unknown mode", "mode: ppp\n", true, nil},
		{"static without address", "mode: static\n", true, nil},
		{"bad address", "static:\n  address: 192.168.1.500/24\n", true, nil},
		{"IPv6 static", "static:\n  address: fd00::5/64\n", true, nil},
	} {
		path := filepath.Join(dir, "absent.yaml")
		if tc.yaml != "" {
			path = filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			os.WriteFile(path, []byte(tc.yaml), 0o644)
		}
		c, err := LoadConfig(path)
		if (err != nil) != tc.wantErr {
			t.Errorf("LoadConfig(%s) error = %v, want error %v", tc.name, err, tc.wantErr)
			continue
		}
		if err == nil && !tc.check(c) {
			t.Errorf("LoadConfig(%s) = %+v", tc.name, c)
		}
	}
}
