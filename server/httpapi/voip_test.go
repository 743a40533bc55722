package httpapi_test

import (
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v4"
	"maunium.net/go/mautrix"

	"fyr/server/config"
	"fyr/server/servertest"
	"fyr/server/voip"
)

// turnAllocate allocates a relay at the address of a turn: URI as a client does, over the
// URI's transport, with the credentials from /voip/turnServer.
func turnAllocate(t *testing.T, uri string, creds *mautrix.RespTurnServer) (net.PacketConn, *turn.Client, error) {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "turn" {
		t.Fatalf("TURN URI %q: %v", uri, err)
	}
	addr := u.Opaque
	var conn net.PacketConn
	switch u.Query().Get("transport") {
	case "udp":
		if conn, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	case "tcp":
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	default:
		t.Fatalf("TURN URI %q has no known transport", uri)
	}
	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelDisabled
	client, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn,
		Username: creds.Username, Password: creds.Password, LoggerFactory: quiet, RTO: 200 * time.Millisecond})
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

// TestTURNServerCall has two users fetch credentials from /voip/turnServer and relay UDP to
// each other through the built-in TURN server, one over UDP and one over TCP; loopback peers
// are allowed, as they must be on a single machine.
func TestTURNServerCall(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration, servertest.WithConfig(func(c *config.Config) { c.TURN.AllowLoopback = true }))
	alice, bob := srv.Register(t, "alice", "pw-alice-123"), srv.Register(t, "bob", "pw-bob-123")
	ca, err := alice.TurnServer(ctx)
	if err != nil {
		t.Fatalf("alice: GET /voip/turnServer: %v", err)
	}
	cb, err := bob.TurnServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(ca.Username, ":@alice:localhost") || ca.Password == "" || ca.TTL != 86400 {
		t.Errorf("alice's credentials %+v, want <expiry>:@alice:localhost, a password and ttl 86400", ca)
	}
	if exp, user, err := voip.ParseUsername(ca.Username); err != nil || user != alice.UserID || exp.Sub(time.Now()) < 23*time.Hour {
		t.Errorf("username %q = %v, %s, %v; want an expiry a day ahead and alice", ca.Username, exp, user, err)
	}
	if len(ca.URIs) != 2 || !strings.HasSuffix(ca.URIs[0], "?transport=udp") || !strings.HasSuffix(ca.URIs[1], "?transport=tcp") {
		t.Fatalf("uris %v, want one for UDP and one for TCP", ca.URIs)
	}

	relayA, clientA, err := turnAllocate(t, ca.URIs[0], ca)
	if err != nil {
		t.Fatalf("alice allocates over UDP: %v", err)
	}
	relayB, clientB, err := turnAllocate(t, cb.URIs[1], cb)
	if err != nil {
		t.Fatalf("bob allocates over TCP: %v", err)
	}
	if err := clientA.CreatePermission(relayB.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if err := clientB.CreatePermission(relayA.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	for i, dir := range []struct {
		from, to net.PacketConn
		msg      string
	}{{relayA, relayB, "offer"}, {relayB, relayA, "answer"}, {relayA, relayB, "media"}} {
		if _, err := dir.from.WriteTo([]byte(dir.msg), dir.to.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		dir.to.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := dir.to.ReadFrom(buf)
		if err != nil || string(buf[:n]) != dir.msg || from.String() != dir.from.LocalAddr().String() {
			t.Fatalf("datagram %d: got %q from %v (%v), want %q from %v", i, buf[:n], from, err, dir.msg, dir.from.LocalAddr())
		}
	}
	if st := srv.VoIP.TURN().Stats(); st.Allocations != 2 || st.BytesToPeers == 0 {
		t.Errorf("stats %+v, want 2 allocations and bytes relayed", st)
	}

	// Bob cannot use Alice's password under his name, nor hers under his.
	mixed := *cb
	mixed.Password = ca.Password
	if _, _, err := turnAllocate(t, cb.URIs[0], &mixed); err == nil {
		t.Error("allocate as bob with alice's password succeeded")
	}
	mixed = *ca
	mixed.Username = strings.Replace(ca.Username, "@alice", "@bob", 1)
	if _, _, err := turnAllocate(t, ca.URIs[0], &mixed); err == nil {
		t.Error("allocate with alice's password and a username renamed to bob succeeded")
	}
}

func TestTURNServerNeedsAuth(t *testing.T) {
	srv := servertest.Start(t)
	status, body, _ := srv.Do(t, "GET", "/_matrix/client/v3/voip/turnServer", "", nil)
	if status != 401 || !strings.Contains(string(body), "M_MISSING_TOKEN") {
		t.Errorf("without a token: %d %s, want 401 M_MISSING_TOKEN", status, body)
	}
}

// TestTURNServerWithoutTURN answers 200 {} when TURN is off, as Synapse does.
func TestTURNServerWithoutTURN(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration, servertest.WithConfig(func(c *config.Config) { c.TURN.Enabled = false }))
	alice := srv.Register(t, "alice", "pw-alice-123")
	status, body, _ := srv.Do(t, "GET", "/_matrix/client/r0/voip/turnServer", alice.AccessToken, nil)
	if status != 200 || string(body) != "{}" {
		t.Errorf("TURN off: %d %s, want 200 {}", status, body)
	}
	if srv.VoIP.TURN() != nil {
		t.Error("the built-in TURN server runs although turn.enabled is false")
	}
}

// TestTURNServerExternal hands out credentials for an external TURN server, as Synapse's
// turn_uris and turn_shared_secret do, and starts no TURN server of its own.
func TestTURNServerExternal(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration, servertest.WithConfig(func(c *config.Config) {
		c.TURN.ExternalURIs = "turn:turn.example.org:3478?transport=udp,turns:turn.example.org:5349?transport=tcp"
		c.TURN.ExternalSecret = "coturn-secret"
		c.TURN.TTL = time.Hour
	}))
	alice := srv.Register(t, "alice", "pw-alice-123")
	c, err := alice.TurnServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(c.URIs, " "), "turn:turn.example.org:3478?transport=udp turns:turn.example.org:5349?transport=tcp"; got != want {
		t.Errorf("uris %q, want %q", got, want)
	}
	if c.TTL != 3600 || c.Password != voip.Password("coturn-secret", c.Username) {
		t.Errorf("credentials %+v, want ttl 3600 and a password from the external secret", c)
	}
	if srv.VoIP.TURN() != nil {
		t.Error("the built-in TURN server runs in external mode")
	}
}

func TestTURNServerRateLimited(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration)
	alice := srv.Register(t, "alice", "pw-alice-123")
	cfg := *srv.Config
	cfg.RateLimits.LoginPerSecond, cfg.RateLimits.LoginBurst = 0.001, 1
	srv.Reload(&cfg)
	if _, err := alice.TurnServer(ctx); err != nil {
		t.Fatalf("first request: %v", err)
	}
	if _, err := alice.TurnServer(ctx); !isErr(err, "M_LIMIT_EXCEEDED", 429) {
		t.Errorf("second request at once: %v, want 429 M_LIMIT_EXCEEDED", err)
	}
}

// TestTURNRefusesDeactivatedUser: credentials handed out before a deactivation stop working
// at once, not at their expiry.
func TestTURNRefusesDeactivatedUser(t *testing.T) {
	srv := servertest.Start(t, servertest.OpenRegistration)
	alice := srv.Register(t, "alice", "pw-alice-123")
	creds, err := alice.TurnServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := turnAllocate(t, creds.URIs[0], creds); err != nil {
		t.Fatalf("allocate before deactivation: %v", err)
	}
	if err := srv.Accounts.Deactivate(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := turnAllocate(t, creds.URIs[0], creds); err == nil {
		t.Error("a deactivated user's TURN credentials still allocate a relay")
	}
}
