package transport_test

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation"

	"fyr/server/config"
	"fyr/server/servertest"
)

// TestTwoServers runs two Fyr servers wired as `fyr serve` wires them: b.test with a
// certificate from a test CA, a.test trusting that CA (federation.ca_file) and reaching b.test
// through federation.static_peers.
func TestTwoServers(t *testing.T) {
	ca := newCA(t, "ecdsa-sec1", time.Hour)
	b := servertest.Start(t, servertest.WithConfig(func(c *config.Config) {
		c.ServerName = "b.test"
		c.Federation.TLSCACert, c.Federation.TLSCAKey = ca.certPath, ca.keyPath
	}))
	a := servertest.Start(t, servertest.WithConfig(func(c *config.Config) {
		c.ServerName = "a.test"
		c.Federation.StaticPeers = "b.test=" + b.FederationAddr().String()
		c.Federation.CAFile = ca.certPath
	}))
	ctx := context.Background()

	var version federation.RespServerVersion
	if err := a.FedClient.Do(ctx, "b.test", "GET", "/_matrix/federation/v1/version", nil, &version); err != nil {
		t.Fatalf("a.test GET b.test version: %v", err)
	}
	if version.Server.Name != "Fyr" || version.Server.Version == "" {
		t.Errorf("b.test version = %+v, want Fyr and a version", version.Server)
	}
	var keys federation.ServerKeyResponse
	if err := a.FedClient.GetJSON(ctx, "b.test", "/_matrix/key/v2/server", &keys); err != nil {
		t.Fatalf("a.test GET b.test keys: %v", err)
	}
	if keys.ServerName != "b.test" || len(keys.VerifyKeys) == 0 {
		t.Errorf("b.test keys = %+v, want b.test's verify keys", keys)
	}
}
