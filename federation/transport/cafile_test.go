package transport_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyr/federation/transport"
)

func TestLoadCAFile(t *testing.T) {
	if pool, err := transport.LoadCAFile(""); pool != nil || err != nil {
		t.Errorf("LoadCAFile(\"\") = %v, %v; want nil (system roots), nil", pool, err)
	}
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	mustWrite(t, garbage, []byte("not PEM\n"))
	for _, path := range []string{garbage, filepath.Join(dir, "missing.pem")} {
		if _, err := transport.LoadCAFile(path); err == nil || !strings.Contains(err.Error(), "ca_file") {
			t.Errorf("LoadCAFile(%s) error = %v, want one naming ca_file", filepath.Base(path), err)
		}
	}

	// A bundle of two CAs: a peer certified by either is trusted.
	ca1, ca2 := newCA(t, "ecdsa-sec1", time.Hour), newCA(t, "rsa-pkcs1", time.Hour)
	bundle := filepath.Join(dir, "bundle.pem")
	mustWrite(t, bundle, append(mustRead(t, ca1.certPath), mustRead(t, ca2.certPath)...))
	pool, err := transport.LoadCAFile(bundle)
	if err != nil {
		t.Fatalf("LoadCAFile(bundle): %v", err)
	}
	b := startPeer(t, ca2, "b.test", transport.VersionHandler("x"), true)
	c := newTestClient(t, pool, map[string]string{"b.test": b.addr()})
	if err := c.DoUnsigned(context.Background(), "b.test", "GET", "/_matrix/federation/v1/version", nil, nil); err != nil {
		t.Errorf("GET from a peer certified by the bundle's second CA: %v", err)
	}
}
