package transport_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"fyr/federation/transport"
)

// testCA is a CA written to disk the way a test harness hands it to the server.
type testCA struct {
	cert              *x509.Certificate
	certPath, keyPath string
}

func (ca testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// newCA creates a CA whose key is written in the given PEM format and which expires after validity.
func newCA(t *testing.T, format string, validity time.Duration) testCA {
	t.Helper()
	var key crypto.Signer
	var err error
	switch {
	case strings.HasPrefix(format, "rsa"):
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case strings.HasPrefix(format, "ecdsa"):
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case strings.HasPrefix(format, "ed25519"):
		_, key, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil || key == nil {
		t.Fatalf("generate %s CA key: %v", format, err)
	}

	var keyPEM []byte
	switch format {
	case "rsa-pkcs1":
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))})
	case "ecdsa-sec1", "ecdsa-sec1-with-params":
		der, err := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
		if err != nil {
			t.Fatal(err)
		}
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
		if format == "ecdsa-sec1-with-params" {
			// What `openssl ecparam -genkey` writes: the curve OID (secp384r1) first.
			params := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22}})
			keyPEM = append(params, keyPEM...)
		}
	case "rsa-pkcs8", "ecdsa-pkcs8", "ed25519-pkcs8":
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	default:
		t.Fatalf("unknown CA key format %q", format)
	}

	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Fyr test CA " + format},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca := testCA{cert: cert, certPath: filepath.Join(dir, "ca.crt"), keyPath: filepath.Join(dir, "ca.key")}
	mustWrite(t, ca.certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	mustWrite(t, ca.keyPath, keyPEM)
	return ca
}

func mustWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// readCert parses the certificate file and checks that it pairs with the key file.
func readCert(t *testing.T, certPath, keyPath string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatalf("LoadX509KeyPair(%s, %s): %v", certPath, keyPath, err)
	}
	return pair.Leaf
}

// paths returns a certificate and key path in a fresh directory.
func paths(t *testing.T) (certPath, keyPath string) {
	t.Helper()
	dir := t.TempDir()
	return filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
}

func verify(t *testing.T, leaf *x509.Certificate, roots *x509.CertPool, host string) {
	t.Helper()
	_, err := leaf.Verify(x509.VerifyOptions{
		DNSName:   host,
		Roots:     roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		t.Errorf("Verify(DNSName %q): %v", host, err)
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Errorf("mode of %s = %v, want %v", filepath.Base(path), got, want)
	}
}

func TestEnsureCertificateFromCA(t *testing.T) {
	for _, format := range []string{"rsa-pkcs1", "rsa-pkcs8", "ecdsa-sec1", "ecdsa-sec1-with-params", "ecdsa-pkcs8", "ed25519-pkcs8"} {
		t.Run(format, func(t *testing.T) {
			ca := newCA(t, format, 5*365*24*time.Hour)
			certPath, keyPath := paths(t)

			created, err := transport.EnsureCertificate(certPath, keyPath, "hs1.test:8448", ca.certPath, ca.keyPath)
			if err != nil {
				t.Fatalf("EnsureCertificate: %v", err)
			}
			if !created {
				t.Errorf("created = false, want true")
			}
			leaf := readCert(t, certPath, keyPath)
			verify(t, leaf, ca.pool(), "hs1.test")

			if got, want := leaf.DNSNames, []string{"hs1.test"}; !slices.Equal(got, want) {
				t.Errorf("DNSNames = %q, want %q", got, want)
			}
			if len(leaf.IPAddresses) != 0 {
				t.Errorf("IPAddresses = %v, want none", leaf.IPAddresses)
			}
			if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
				t.Errorf("leaf key is %T, want ECDSA P-256", leaf.PublicKey)
			}
			if len(leaf.SubjectKeyId) == 0 {
				t.Errorf("leaf has no SubjectKeyId")
			}
			if got, want := leaf.SerialNumber.BitLen(), 64; got < want {
				t.Errorf("serial has %d bits, want a random 128-bit serial", got)
			}
			if leaf.IsCA {
				t.Errorf("leaf IsCA = true, want false")
			}
			now := time.Now()
			if leaf.NotBefore.After(now.Add(-50*time.Minute)) || leaf.NotAfter.After(now.AddDate(1, 0, 1)) || leaf.NotAfter.Before(now.AddDate(0, 11, 0)) {
				t.Errorf("validity %v .. %v, want about an hour ago .. a year from now", leaf.NotBefore, leaf.NotAfter)
			}
			checkMode(t, keyPath, 0o600)
			checkMode(t, certPath, 0o644)

			// A restart with a CA always mints a new certificate.
			created, err = transport.EnsureCertificate(certPath, keyPath, "hs1.test:8448", ca.certPath, ca.keyPath)
			if err != nil || !created {
				t.Fatalf("second EnsureCertificate = %v, %v; want true, nil", created, err)
			}
			again := readCert(t, certPath, keyPath)
			if again.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
				t.Errorf("second certificate has the same serial, want a freshly minted one")
			}
			verify(t, again, ca.pool(), "hs1.test")
		})
	}
}

func TestEnsureCertificateServerNames(t *testing.T) {
	ca := newCA(t, "ecdsa-pkcs8", 24*time.Hour)
	tests := []struct {
		serverName string
		wantDNS    string // empty: the host is an IP address
		wantIP     string
	}{
		{"fyr.test", "fyr.test", ""},
		{"fyr.test:8448", "fyr.test", ""},
		{"localhost:8008", "localhost", ""},
		{"127.0.0.1", "", "127.0.0.1"},
		{"127.0.0.1:8448", "", "127.0.0.1"},
		{"[::1]", "", "::1"},
		{"[2001:db8::1]:8448", "", "2001:db8::1"},
	}
	for _, tt := range tests {
		for _, mode := range []string{"ca", "self-signed"} {
			t.Run(tt.serverName+"/"+mode, func(t *testing.T) {
				certPath, keyPath := paths(t)
				caCert, caKey := ca.certPath, ca.keyPath
				if mode == "self-signed" {
					caCert, caKey = "", ""
				}
				if _, err := transport.EnsureCertificate(certPath, keyPath, tt.serverName, caCert, caKey); err != nil {
					t.Fatalf("EnsureCertificate(%q): %v", tt.serverName, err)
				}
				leaf := readCert(t, certPath, keyPath)
				var gotIP string
				if len(leaf.IPAddresses) == 1 {
					gotIP = leaf.IPAddresses[0].String()
				}
				if got, want := strings.Join(leaf.DNSNames, ","), tt.wantDNS; got != want {
					t.Errorf("DNSNames = %q, want %q", got, want)
				}
				if got, want := gotIP, tt.wantIP; got != want || len(leaf.IPAddresses) > 1 {
					t.Errorf("IPAddresses = %v, want [%s]", leaf.IPAddresses, want)
				}
				roots := ca.pool()
				if mode == "self-signed" {
					roots = x509.NewCertPool()
					roots.AddCert(leaf)
				}
				verify(t, leaf, roots, tt.wantDNS+tt.wantIP)
			})
		}
	}
}

func TestEnsureCertificateBadServerName(t *testing.T) {
	for _, name := range []string{"", ":8448", "fyr test", "fyr.test:", "fyr.test:0", "fyr.test:99999", "fyr.test:http", "::1", "[::1", "[::1]x", "[127.0.0.1]", "[fyr.test]"} {
		certPath, keyPath := paths(t)
		_, err := transport.EnsureCertificate(certPath, keyPath, name, "", "")
		if err == nil || !strings.Contains(err.Error(), "invalid server name") {
			t.Errorf("EnsureCertificate(server name %q) error = %v, want invalid server name", name, err)
		}
		if _, statErr := os.Stat(certPath); statErr == nil {
			t.Errorf("EnsureCertificate(server name %q) wrote a certificate", name)
		}
	}
}

func TestEnsureCertificateCAValidity(t *testing.T) {
	t.Run("leaf ends with the CA", func(t *testing.T) {
		ca := newCA(t, "ecdsa-sec1", 30*24*time.Hour)
		certPath, keyPath := paths(t)
		if _, err := transport.EnsureCertificate(certPath, keyPath, "hs1", ca.certPath, ca.keyPath); err != nil {
			t.Fatalf("EnsureCertificate: %v", err)
		}
		if got, want := readCert(t, certPath, keyPath).NotAfter, ca.cert.NotAfter; !got.Equal(want) {
			t.Errorf("leaf NotAfter = %v, want the CA's %v", got, want)
		}
	})
	t.Run("expired CA", func(t *testing.T) {
		ca := newCA(t, "ecdsa-sec1", -time.Minute)
		certPath, keyPath := paths(t)
		_, err := transport.EnsureCertificate(certPath, keyPath, "hs1", ca.certPath, ca.keyPath)
		if err == nil || !strings.Contains(err.Error(), "expired") {
			t.Errorf("EnsureCertificate with expired CA: error = %v, want expired", err)
		}
	})
}

func TestEnsureCertificateBadCA(t *testing.T) {
	a := newCA(t, "ecdsa-sec1", time.Hour)
	b := newCA(t, "rsa-pkcs1", time.Hour)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	mustWrite(t, garbage, []byte("not PEM\n"))
	encrypted := filepath.Join(dir, "encrypted.key")
	mustWrite(t, encrypted, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}))

	tests := []struct {
		name          string
		caCert, caKey string
		wantErr       string
	}{
		{"cert without key", a.certPath, "", "must be set together"},
		{"key without cert", "", a.keyPath, "must be set together"},
		{"key of another CA", a.certPath, b.keyPath, "does not belong to certificate " + a.certPath},
		{"missing cert", filepath.Join(dir, "missing.crt"), a.keyPath, "missing.crt"},
		{"garbage cert", garbage, a.keyPath, "read tls ca certificate " + garbage + ": no CERTIFICATE block"},
		{"garbage key", a.certPath, garbage, "read tls ca key " + garbage + ": no private key block"},
		{"encrypted key", a.certPath, encrypted, "encrypted private keys are not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPath, keyPath := paths(t)
			_, err := transport.EnsureCertificate(certPath, keyPath, "hs1", tt.caCert, tt.caKey)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("EnsureCertificate error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestEnsureCertificateSelfSigned(t *testing.T) {
	certPath, keyPath := paths(t)
	created, err := transport.EnsureCertificate(certPath, keyPath, "fyr.test", "", "")
	if err != nil {
		t.Fatalf("EnsureCertificate: %v", err)
	}
	if !created {
		t.Errorf("created = false, want true")
	}
	leaf := readCert(t, certPath, keyPath)
	self := x509.NewCertPool()
	self.AddCert(leaf)
	verify(t, leaf, self, "fyr.test")
	if got, want := leaf.Subject.String(), leaf.Issuer.String(); got != want {
		t.Errorf("issuer = %q, want the subject %q", want, got)
	}
	if got, want := leaf.NotAfter, time.Now().AddDate(9, 0, 0); got.Before(want) {
		t.Errorf("NotAfter = %v, want about ten years from now", got)
	}
	checkMode(t, keyPath, 0o600)
	checkMode(t, certPath, 0o644)
}

func TestEnsureCertificateKeepsExisting(t *testing.T) {
	ca := newCA(t, "rsa-pkcs1", time.Hour)
	for _, origin := range []string{"self-signed", "from a CA"} {
		t.Run(origin, func(t *testing.T) {
			certPath, keyPath := paths(t)
			caCert, caKey := "", ""
			if origin == "from a CA" {
				caCert, caKey = ca.certPath, ca.keyPath
			}
			if _, err := transport.EnsureCertificate(certPath, keyPath, "fyr.test", caCert, caKey); err != nil {
				t.Fatal(err)
			}
			certPEM, keyPEM := mustRead(t, certPath), mustRead(t, keyPath)

			created, err := transport.EnsureCertificate(certPath, keyPath, "other.test", "", "")
			if err != nil || created {
				t.Fatalf("EnsureCertificate(existing) = %v, %v; want false, nil", created, err)
			}
			if !bytes.Equal(mustRead(t, certPath), certPEM) || !bytes.Equal(mustRead(t, keyPath), keyPEM) {
				t.Errorf("existing certificate or key was rewritten")
			}
		})
	}
}

func TestEnsureCertificateBrokenExisting(t *testing.T) {
	otherCert, otherKey := paths(t)
	if _, err := transport.EnsureCertificate(otherCert, otherKey, "other.test", "", ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T, certPath, keyPath string)
		wantErr string
	}{
		{"garbage certificate", func(t *testing.T, certPath, keyPath string) {
			mustWrite(t, certPath, []byte("garbage"))
		}, "check tls certificate"},
		{"key of another certificate", func(t *testing.T, certPath, keyPath string) {
			mustWrite(t, keyPath, mustRead(t, otherKey))
		}, "check tls certificate"},
		{"certificate without key", func(t *testing.T, certPath, keyPath string) {
			os.Remove(keyPath)
		}, "exists but its key"},
		{"key without certificate", func(t *testing.T, certPath, keyPath string) {
			os.Remove(certPath)
		}, "exists but its certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPath, keyPath := paths(t)
			if _, err := transport.EnsureCertificate(certPath, keyPath, "fyr.test", "", ""); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, certPath, keyPath)
			_, err := transport.EnsureCertificate(certPath, keyPath, "fyr.test", "", "")
			if err == nil {
				t.Fatalf("EnsureCertificate succeeded, want error containing %q", tt.wantErr)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.wantErr) || !strings.Contains(msg, certPath) || !strings.Contains(msg, keyPath) {
				t.Errorf("EnsureCertificate error = %q, want it to contain %q and name both files", msg, tt.wantErr)
			}
		})
	}
}
