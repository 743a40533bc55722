package voip_test

import (
	"path/filepath"
	"testing"
	"time"

	"fyr/server/config"
	"fyr/server/voip"
)

// TestTURNSettingsValidate covers the checks config.Validate makes on the turn section.
func TestTURNSettingsValidate(t *testing.T) {
	tests := []struct {
		change  func(*config.TURN)
		wantKey string // "" for valid
	}{
		{func(c *config.TURN) {}, ""},
		{func(c *config.TURN) { c.Addr = "0.0.0.0:3478" }, ""},
		{func(c *config.TURN) { c.Addr = "localhost:3478" }, "turn.addr"},
		{func(c *config.TURN) { c.Addr = "3478" }, "turn.addr"},
		{func(c *config.TURN) { c.TLSAddr = "0.0.0.0:99999" }, "turn.tls_addr"},
		{func(c *config.TURN) { c.TLSCert = "x.crt" }, "turn.tls_key"},
		{func(c *config.TURN) { c.PublicHost = "https://turn.example.org" }, "turn.public_host"},
		{func(c *config.TURN) { c.PublicHost = "turn.example.org" }, ""},
		{func(c *config.TURN) { c.RelayIP = "2001:db8::1" }, "turn.relay_ip"},
		{func(c *config.TURN) { c.MinPort = 80 }, "turn.min_port"},
		{func(c *config.TURN) { c.MinPort, c.MaxPort = 50000, 40000 }, "turn.max_port"},
		{func(c *config.TURN) { c.TTL = time.Second }, "turn.ttl"},
		{func(c *config.TURN) { c.AllowPeers = "192.168.1.0/24, lan" }, "turn.allow_peers"},
		{func(c *config.TURN) { c.AllowPeers = "192.168.1.0/24, 10.0.0.0/8" }, ""},
		{func(c *config.TURN) { c.UserAllocations = -1 }, "turn.user_allocations"},
		{func(c *config.TURN) { c.UserKbps = 8 }, "turn.user_kbps"},
		{func(c *config.TURN) { c.UserKbps = 0 }, ""},
		{func(c *config.TURN) { c.ExternalURIs = "turn.example.org:3478" }, "turn.external_uris"},
		{func(c *config.TURN) { c.ExternalURIs = "turn:turn.example.org" }, "turn.external_secret"},
	}
	for i, tt := range tests {
		cfg := config.Default()
		tt.change(&cfg.TURN)
		err := cfg.Validate()
		ve, _ := err.(*config.ValidationError)
		switch {
		case tt.wantKey == "" && err != nil:
			t.Errorf("case %d: Validate() = %v, want nil", i, err)
		case tt.wantKey != "" && (ve == nil || ve.Key != tt.wantKey):
			t.Errorf("case %d: Validate() = %v, want a problem with %s", i, err, tt.wantKey)
		}
	}
}

// TestListenAddr derives TURN's address from the client API's when turn.addr is empty.
func TestListenAddr(t *testing.T) {
	tests := []struct{ client, turn, want string }{
		{"127.0.0.1:8008", "", "127.0.0.1:3478"},
		{"0.0.0.0:8008", "", "0.0.0.0:3478"},
		{":8008", "", ":3478"},
		{"127.0.0.1:0", "", "127.0.0.1:0"},
		{"127.0.0.1:8008", "0.0.0.0:3479", "0.0.0.0:3479"},
	}
	for _, tt := range tests {
		cfg := config.Default()
		cfg.Client.Addr, cfg.TURN.Addr = tt.client, tt.turn
		if got, err := voip.ListenAddr(cfg); err != nil || got != tt.want {
			t.Errorf("ListenAddr(client %q, turn %q) = %q, %v; want %q", tt.client, tt.turn, got, err, tt.want)
		}
	}
}

// TestHarnessFlags checks the two flags test harnesses use.
func TestHarnessFlags(t *testing.T) {
	dir := t.TempDir()
	cfg, _, err := config.Load([]string{"--data-dir", dir, "--config", filepath.Join(dir, "fyr.yaml"),
		"--turn-addr", "127.0.0.1:0", "--turn-allow-loopback"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TURN.Addr != "127.0.0.1:0" || !cfg.TURN.AllowLoopback {
		t.Errorf("--turn-addr, --turn-allow-loopback gave addr %q, allow_loopback %v", cfg.TURN.Addr, cfg.TURN.AllowLoopback)
	}
}
