package servertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyr/server/config"
)

// Federation starts one server per name, each with its own server name, a federation
// certificate minted from one test CA that all of them trust, and static peers pointing every
// name at the others' loopback addresses, so they federate without DNS. Servers keep their
// addresses across Stop and Restart.
func Federation(t testing.TB, names ...string) map[string]*Server {
	t.Helper()
	caCert, caKey := TestCA(t)
	addrs := map[string]string{}
	for _, n := range names {
		addrs[n] = freeAddr(t)
	}
	out := map[string]*Server{}
	for _, n := range names {
		var peers []string
		for _, other := range names {
			if other != n {
				peers = append(peers, other+"="+addrs[other])
			}
		}
		out[n] = Start(t, OpenRegistration, WithConfig(func(c *config.Config) {
			c.ServerName = n
			c.Federation.Addr = addrs[n]
			c.Federation.TLSCACert, c.Federation.TLSCAKey = caCert, caKey
			c.Federation.CAFile = caCert
			c.Federation.StaticPeers = strings.Join(peers, ",")
		}))
	}
	return out
}

// freeAddr picks an address for a federation listener on a random address of the loopback
// range 127.0.0.0/8 (port 8448): ephemeral ports on 127.0.0.1 are taken and freed all the time
// by other tests, but nothing else uses a random 127.x.y.z, so the address stays free between
// now and the server's start, and across its restarts.
func freeAddr(t testing.TB) string {
	t.Helper()
	for range 20 {
		addr := fmt.Sprintf("127.%d.%d.%d:8448", 1+mrand.IntN(250), mrand.IntN(256), 1+mrand.IntN(250))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("servertest: no free loopback address for a federation listener")
	return ""
}

// TestCA writes a fresh ECDSA CA certificate and key (PEM) to a temporary directory, for
// servers that mint their federation certificates from it (federation.tls_ca_cert/key) and
// trust it (federation.ca_file).
func TestCA(t testing.TB) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Fyr test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// Stop shuts the server down as SIGTERM would and waits; it is safe to call twice.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.stop()
}

// Restart starts the server again on the same data directory and addresses. setup, if
// given, sees the new server before it serves a request.
func (s *Server) Restart(t testing.TB, setup ...func(*Server)) {
	t.Helper()
	s.Stop(t)
	var f func(*Server)
	if len(setup) > 0 {
		f = setup[0]
	}
	*s = *start(t, s.Config, f)
}
