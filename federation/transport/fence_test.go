package transport_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"fyr/federation/transport"
)

// TestSetupRefusesPrivateAddresses: by default the federation client built from settings
// does not connect to loopback or private addresses it found by resolving a server name,
// so nobody can use this server to probe its LAN; static peers and the opt-in still may.
func TestSetupRefusesPrivateAddresses(t *testing.T) {
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"server":{"name":"test"}}`))
	}))
	defer ts.Close()
	dest := ts.Listener.Addr().String() // an IP literal with a port: resolved without DNS
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	ctx := context.Background()

	c, err := transport.Setup("a.test", "ed25519:a", key, "", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.DoUnsigned(ctx, dest, "GET", "/_matrix/federation/v1/version", nil, nil)
	if !errors.Is(err, transport.ErrAddressRefused) {
		t.Fatalf("request to loopback %s = %v, want ErrAddressRefused", dest, err)
	}

	for name, peers := range map[string]string{"static peer": "b.test=" + dest} {
		c, err := transport.Setup("a.test", "ed25519:a", key, peers, "", false, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = c.DoUnsigned(ctx, "b.test", "GET", "/_matrix/federation/v1/version", nil, nil)
		if errors.Is(err, transport.ErrAddressRefused) {
			t.Errorf("%s: refused by the address fence: %v", name, err)
		}
	}
	c, err = transport.Setup("a.test", "ed25519:a", key, "", "", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DoUnsigned(ctx, dest, "GET", "/_matrix/federation/v1/version", nil, nil); errors.Is(err, transport.ErrAddressRefused) {
		t.Errorf("with allow_private_addresses: %v", err)
	}
}
