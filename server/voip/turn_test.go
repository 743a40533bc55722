package voip_test

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v4"

	"fyr/server/config"
	"fyr/server/voip"
)

// startTURN runs the built-in TURN server on loopback with a free port until the test ends.
// now may be nil for the real clock.
func startTURN(t *testing.T, now func() time.Time, change func(*config.TURN)) (*voip.Service, *config.Config) {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Client.Addr = "127.0.0.1:0"
	if change != nil {
		change(&cfg.TURN)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	svc, err := voip.Start(cfg, filepath.Join(cfg.DataDir, "turn.secret"), voip.Options{Log: testLog(t), Now: now})
	if err != nil {
		t.Fatalf("start TURN: %v", err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc, cfg
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// quietPion keeps pion's client from printing expected failures.
func quietPion() logging.LoggerFactory {
	f := logging.NewDefaultLoggerFactory()
	f.DefaultLogLevel = logging.LogLevelDisabled
	return f
}

// allocate connects a pion TURN client to addr over UDP or TCP and asks for a relay. The
// client and relay are closed when the test ends.
func allocate(t *testing.T, addr, transport, username, password string) (net.PacketConn, *turn.Client, error) {
	t.Helper()
	var conn net.PacketConn
	switch transport {
	case "udp":
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn = c
	case "tcp":
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	}
	client, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn,
		Username: username, Password: password, LoggerFactory: quietPion(),
		RTO: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); conn.Close() })
	relay, err := client.Allocate()
	if err != nil {
		return nil, client, err
	}
	t.Cleanup(func() { relay.Close() })
	return relay, client, nil
}

func mustAllocate(t *testing.T, addr, transport string, c voip.Credentials) (net.PacketConn, *turn.Client) {
	t.Helper()
	relay, client, err := allocate(t, addr, transport, c.Username, c.Password)
	if err != nil {
		t.Fatalf("allocate over %s as %s: %v", transport, c.Username, err)
	}
	return relay, client
}

// permit creates the permission for peer and waits for the answer: pion's client otherwise
// sends the first datagrams before the server has installed it, and the server drops them.
func permit(t *testing.T, c *turn.Client, peer net.Addr) {
	t.Helper()
	if err := c.CreatePermission(peer); err != nil {
		t.Fatalf("permission for %v: %v", peer, err)
	}
}

// echoPeer is a UDP peer on loopback that sends every datagram back.
func echoPeer(t *testing.T) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1600)
		for {
			n, from, err := pc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			pc.WriteToUDP(buf[:n], from)
		}
	}()
	return pc
}

// readFrom waits up to five seconds for a datagram on relay.
func readFrom(t *testing.T, relay net.PacketConn) ([]byte, net.Addr) {
	t.Helper()
	buf := make([]byte, 1600)
	relay.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := relay.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read from relay: %v", err)
	}
	return buf[:n], from
}

// waitFor polls cond until it holds or five seconds pass.
func waitFor(t *testing.T, what string, cond func() bool, show ...func() voip.Stats) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			for _, f := range show {
				t.Logf("stats: %+v", f())
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRelayBetweenClients relays UDP between a client on UDP and one on TCP, relay to relay,
// and to a plain peer, with loopback peers explicitly allowed.
func TestRelayBetweenClients(t *testing.T) {
	svc, _ := startTURN(t, nil, func(c *config.TURN) { c.AllowLoopback = true })
	addr := svc.TURN().Addr().String()
	alice, _ := svc.Credentials("@alice:localhost")
	bob, _ := svc.Credentials("@bob:localhost")
	relayA, clientA := mustAllocate(t, addr, "udp", alice)
	relayB, clientB := mustAllocate(t, addr, "tcp", bob)
	permit(t, clientA, relayB.LocalAddr())
	permit(t, clientB, relayA.LocalAddr())
	if _, err := relayA.WriteTo([]byte("hello bob"), relayB.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	got, from := readFrom(t, relayB)
	if !bytes.Equal(got, []byte("hello bob")) || from.String() != relayA.LocalAddr().String() {
		t.Errorf("bob got %q from %v, want %q from %v", got, from, "hello bob", relayA.LocalAddr())
	}
	if _, err := relayB.WriteTo([]byte("hi alice"), relayA.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if got, _ := readFrom(t, relayA); string(got) != "hi alice" {
		t.Errorf("alice got %q, want %q", got, "hi alice")
	}

	peer := echoPeer(t)
	permit(t, clientA, peer.LocalAddr())
	for i := range 20 {
		msg := []byte("ping " + strconv.Itoa(i))
		if _, err := relayA.WriteTo(msg, peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		if got, _ := readFrom(t, relayA); !bytes.Equal(got, msg) {
			t.Fatalf("echo through the relay = %q, want %q", got, msg)
		}
	}

	st := svc.TURN().Stats()
	if st.Allocations != 2 || st.ActiveAllocations != 2 {
		t.Errorf("allocations %d, active %d; want 2 and 2", st.Allocations, st.ActiveAllocations)
	}
	if min := int64(len("hello bob") + len("hi alice") + 20*len("ping 0")); st.BytesToPeers < min || st.BytesFromPeers < min {
		t.Errorf("bytes to peers %d, from peers %d; want at least %d each", st.BytesToPeers, st.BytesFromPeers, min)
	}
	relayB.Close()
	waitFor(t, "bob's allocation to end", func() bool { return svc.TURN().Stats().ActiveAllocations == 1 })
}

// TestRefusedCredentials tries credentials the server must not accept.
func TestRefusedCredentials(t *testing.T) {
	clk := newClock()
	svc, cfg := startTURN(t, clk.Now, nil)
	addr := svc.TURN().Addr().String()
	alice, _ := svc.Credentials("@alice:localhost")
	bob, _ := svc.Credentials("@bob:localhost")
	secret := readSecret(t, cfg)

	expired := voip.Username(clk.Now().Add(-time.Second), "@alice:localhost")
	foreign := voip.Username(clk.Now().Add(time.Hour), "@alice:elsewhere.example")
	tests := []struct {
		name, username, password string
	}{
		{"expired", expired, voip.Password(secret, expired)},
		{"forged password", alice.Username, voip.Password("guessed", alice.Username)},
		{"other user's password", bob.Username, alice.Password},
		{"user renamed in username", strings.Replace(alice.Username, "@alice", "@bob", 1), alice.Password},
		{"expiry extended", voip.Username(clk.Now().Add(48*time.Hour), "@alice:localhost"), alice.Password},
		{"user of another server", foreign, voip.Password(secret, foreign)},
		{"not a TURN REST username", "alice", "password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := svc.TURN().Stats().RefusedAuth
			if _, _, err := allocate(t, addr, "udp", tt.username, tt.password); err == nil {
				t.Fatalf("allocate with %s credentials succeeded", tt.name)
			}
			if got := svc.TURN().Stats().RefusedAuth; got <= before {
				t.Errorf("RefusedAuth = %d, want more than %d", got, before)
			}
		})
	}
	// The genuine credentials work, and stop working once expired.
	mustAllocate(t, addr, "udp", alice)
	clk.Advance(25 * time.Hour)
	if _, _, err := allocate(t, addr, "udp", alice.Username, alice.Password); err == nil {
		t.Error("allocate with credentials past their TTL succeeded")
	}
}

// readSecret reads the secret file as an operator would.
func readSecret(t *testing.T, cfg *config.Config) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, "turn.secret"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestDeniedPeers keeps loopback refused, as by default: a permission for a loopback peer is
// refused, and a peer on the relay's own address is reached only on relay ports.
func TestDeniedPeers(t *testing.T) {
	svc, _ := startTURN(t, nil, func(c *config.TURN) { c.MinPort, c.MaxPort = 61000, 61999 })
	addr := svc.TURN().Addr().String()
	alice, _ := svc.Credentials("@alice:localhost")
	relay, client := mustAllocate(t, addr, "udp", alice)

	before := svc.TURN().Stats().RefusedPeer
	if err := client.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 9}); err == nil {
		t.Error("permission for loopback peer 127.0.0.2 granted")
	}
	if got := svc.TURN().Stats().RefusedPeer; got != before+1 {
		t.Errorf("RefusedPeer = %d, want %d", got, before+1)
	}

	// 127.0.0.1 is the relay's own address, so the permission is granted for relay-to-relay
	// calls; but the peer's port (from the kernel's ephemeral range) is no relay port.
	peer := echoPeer(t)
	if p := peer.LocalAddr().(*net.UDPAddr).Port; p >= 61000 && p <= 61999 {
		t.Skipf("echo peer got port %d inside the relay range", p)
	}
	permit(t, client, peer.LocalAddr())
	if _, err := relay.WriteTo([]byte("let me in"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the datagram to be refused", func() bool { return svc.TURN().Stats().RefusedPeer >= before+2 })
	if st := svc.TURN().Stats(); st.BytesToPeers != 0 {
		t.Errorf("BytesToPeers = %d, want 0", st.BytesToPeers)
	}

	// A reload that allows loopback opens the same peer at once.
	_, cfg := startTURN(t, nil, nil) // a fresh config to reload from
	cfg.TURN.AllowLoopback = true
	cfg.TURN.MinPort, cfg.TURN.MaxPort = 61000, 61999
	svc.Reload(cfg)
	if _, err := relay.WriteTo([]byte("now?"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if got, _ := readFrom(t, relay); string(got) != "now?" {
		t.Errorf("after reload the echo = %q, want %q", got, "now?")
	}
}

// TestQuota holds a user to one allocation: a second is refused with 486 until the first ends,
// while another user is unaffected.
func TestQuota(t *testing.T) {
	svc, _ := startTURN(t, nil, func(c *config.TURN) { c.UserAllocations = 1 })
	addr := svc.TURN().Addr().String()
	alice, _ := svc.Credentials("@alice:localhost")
	bob, _ := svc.Credentials("@bob:localhost")
	first, _ := mustAllocate(t, addr, "udp", alice)
	if _, _, err := allocate(t, addr, "tcp", alice.Username, alice.Password); err == nil || !strings.Contains(err.Error(), "486") {
		t.Errorf("second allocation for alice: %v, want 486 Allocation Quota Reached", err)
	}
	if got := svc.TURN().Stats().RefusedQuota; got != 1 {
		t.Errorf("RefusedQuota = %d, want 1", got)
	}
	mustAllocate(t, addr, "udp", bob)
	first.Close()
	waitFor(t, "alice's allocation to end", func() bool { return svc.TURN().Stats().ActiveAllocations == 1 })
	mustAllocate(t, addr, "udp", alice)
}

// TestBandwidthLimit sends a burst larger than one second of a user's allowance with the
// clock stopped, so the bucket never refills: what passes is exactly the allowance.
func TestBandwidthLimit(t *testing.T) {
	clk := newClock()
	// 64 kbit/s is 8000 bytes per second.
	svc, _ := startTURN(t, clk.Now, func(c *config.TURN) { c.AllowLoopback, c.UserKbps = true, 64 })
	addr := svc.TURN().Addr().String()
	alice, _ := svc.Credentials("@alice:localhost")
	relay, client := mustAllocate(t, addr, "udp", alice)
	peer := echoPeer(t)
	permit(t, client, peer.LocalAddr())
	msg := bytes.Repeat([]byte("x"), 1000)
	for range 20 {
		if _, err := relay.WriteTo(msg, peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	// 8000 bytes of allowance, both directions together: every datagram either passes or is
	// dropped, each of the 20 on the way out and each echo on the way back, and 8000 bytes
	// pass in all.
	waitFor(t, "the burst and its echoes to be accounted for", func() bool {
		st := svc.TURN().Stats()
		return st.DroppedBandwidth+st.BytesFromPeers/1000 >= 20
	}, svc.TURN().Stats)
	st := svc.TURN().Stats()
	if st.BytesToPeers+st.BytesFromPeers != 8000 || st.DroppedBandwidth+st.BytesFromPeers/1000 != 20 {
		t.Errorf("to peers %d bytes, from peers %d, dropped %d datagrams; want 8000 bytes in all and 20 datagrams accounted for",
			st.BytesToPeers, st.BytesFromPeers, st.DroppedBandwidth)
	}
}

// TestPortInUse names the setting when the TURN port is taken.
func TestPortInUse(t *testing.T) {
	taken, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.TURN.Addr = taken.LocalAddr().String()
	_, err = voip.Start(cfg, filepath.Join(cfg.DataDir, "turn.secret"), voip.Options{Log: testLog(t)})
	if err == nil || !strings.Contains(err.Error(), "turn.addr (--turn-addr, FYR_TURN_ADDR)") || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("start on a taken port: %v, want an error naming turn.addr", err)
	}
}

// TestSecretRotation rotates the secret file under a running server: credentials issued
// before keep working until they expire, new ones use the new secret.
func TestSecretRotation(t *testing.T) {
	clk := newClock()
	svc, cfg := startTURN(t, clk.Now, nil)
	addr := svc.TURN().Addr().String()
	old, _ := svc.Credentials("@alice:localhost")
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "turn.secret"), []byte("rotated-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	svc.Reload(cfg)
	fresh, _ := svc.Credentials("@alice:localhost")
	if fresh.Password != voip.Password("rotated-secret", fresh.Username) {
		t.Error("credentials after rotation are not signed with the new secret")
	}
	mustAllocate(t, addr, "udp", old)
	mustAllocate(t, addr, "tcp", fresh)
	clk.Advance(cfg.TURN.TTL + time.Second)
	if _, _, err := allocate(t, addr, "udp", old.Username, old.Password); err == nil {
		t.Error("old credentials still work after they expired")
	}
}

// TestCredentialsModes checks what /voip/turnServer gets in each mode.
func TestCredentialsModes(t *testing.T) {
	svc, cfg := startTURN(t, nil, nil)
	c, ok := svc.Credentials("@alice:localhost")
	port := strconv.Itoa(svc.TURN().Addr().Port)
	want := []string{"turn:127.0.0.1:" + port + "?transport=udp", "turn:127.0.0.1:" + port + "?transport=tcp"}
	if !ok || strings.Join(c.URIs, " ") != strings.Join(want, " ") || c.TTL != int64(cfg.TURN.TTL/time.Second) {
		t.Errorf("built-in: %v %+v; want uris %v and ttl %v", ok, c, want, cfg.TURN.TTL)
	}

	ext := config.Default()
	ext.TURN.ExternalURIs = "turn:turn.example.org:3478?transport=udp, turns:turn.example.org:443?transport=tcp"
	ext.TURN.ExternalSecret = "coturn-secret"
	svc2, err := voip.Start(ext, filepath.Join(t.TempDir(), "turn.secret"), voip.Options{Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer svc2.Close()
	c, ok = svc2.Credentials("@alice:localhost")
	if !ok || svc2.TURN() != nil || len(c.URIs) != 2 || c.URIs[1] != "turns:turn.example.org:443?transport=tcp" ||
		c.Password != voip.Password("coturn-secret", c.Username) || !strings.HasSuffix(c.Username, ":@alice:localhost") {
		t.Errorf("external: %v %+v, TURN running %v", ok, c, svc2.TURN() != nil)
	}

	off := config.Default()
	off.TURN.Enabled = false
	svc3, err := voip.Start(off, filepath.Join(t.TempDir(), "turn.secret"), voip.Options{Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := svc3.Credentials("@alice:localhost"); ok || svc3.TURN() != nil {
		t.Error("TURN off still hands out credentials")
	}
}
