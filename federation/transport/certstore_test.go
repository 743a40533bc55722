package transport_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"fyr/federation/transport"
)

// handshake runs a TLS handshake over net.Pipe between a server using cfg and a client that
// trusts roots, and returns the certificate the server presented and the negotiated protocol.
func handshake(t *testing.T, cfg *tls.Config, roots *x509.CertPool, serverName string) (*x509.Certificate, string) {
	t.Helper()
	serverConn, clientConn := net.Pipe()
	deadline := time.Now().Add(10 * time.Second)
	serverConn.SetDeadline(deadline)
	clientConn.SetDeadline(deadline)

	// Close the raw pipe ends: a TLS close_notify would block on the unbuffered pipe.
	defer serverConn.Close()
	defer clientConn.Close()

	server := tls.Server(serverConn, cfg)
	serverErr := make(chan error, 1)
	go func() { serverErr <- server.Handshake() }()

	client := tls.Client(clientConn, &tls.Config{RootCAs: roots, ServerName: serverName, NextProtos: []string{"h2", "http/1.1"}})
	if err := client.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	// A TLS 1.3 server finishes its handshake by sending session tickets; read them.
	go io.Copy(io.Discard, client)
	if err := <-serverErr; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	state := client.ConnectionState()
	return state.PeerCertificates[0], state.NegotiatedProtocol
}

// selfSigned writes a new self-signed pair for fyr.test and returns its paths and certificate.
func selfSigned(t *testing.T) (certPath, keyPath string, cert *x509.Certificate) {
	t.Helper()
	certPath, keyPath = paths(t)
	if _, err := transport.EnsureCertificate(certPath, keyPath, "fyr.test", "", ""); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath, readCert(t, certPath, keyPath)
}

func TestCertStoreServesAndReloads(t *testing.T) {
	certPath, keyPath, first := selfSigned(t)
	nextCert, nextKey, second := selfSigned(t)
	roots := x509.NewCertPool()
	roots.AddCert(first)
	roots.AddCert(second)

	store, err := transport.NewCertStore(certPath, keyPath)
	if err != nil {
		t.Fatalf("NewCertStore: %v", err)
	}
	cfg := store.TLSConfig()
	if got, want := cfg.MinVersion, uint16(tls.VersionTLS12); got != want {
		t.Errorf("MinVersion = %#x, want %#x", got, want)
	}

	got, proto := handshake(t, cfg, roots, "fyr.test")
	if !got.Equal(first) {
		t.Errorf("served serial %x, want the first certificate %x", got.SerialNumber, first.SerialNumber)
	}
	if want := "h2"; proto != want {
		t.Errorf("negotiated protocol %q, want %q", proto, want)
	}

	// Replace both files the way EnsureCertificate does, then reload.
	if err := os.Rename(nextKey, keyPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(nextCert, certPath); err != nil {
		t.Fatal(err)
	}
	if err := store.Reload(certPath, keyPath); err != nil {
		t.Fatalf("Reload after replacing the files: %v", err)
	}
	// The config handed out before the reload serves the new certificate too.
	if got, _ := handshake(t, cfg, roots, "fyr.test"); !got.Equal(second) {
		t.Errorf("after Reload served serial %x, want the replacement %x", got.SerialNumber, second.SerialNumber)
	}

	mustWrite(t, certPath, []byte("-----BEGIN CERTIFICATE-----\nbroken\n"))
	if err := store.Reload(certPath, keyPath); err == nil {
		t.Errorf("Reload of a broken certificate succeeded, want error")
	}
	if got, _ := handshake(t, store.TLSConfig(), roots, "fyr.test"); !got.Equal(second) {
		t.Errorf("after failed Reload served serial %x, want the previous %x", got.SerialNumber, second.SerialNumber)
	}
}

func TestCertStoreHTTP1Client(t *testing.T) {
	certPath, keyPath, cert := selfSigned(t)
	store, err := transport.NewCertStore(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)

	serverConn, clientConn := net.Pipe()
	defer serverConn.Close()
	defer clientConn.Close()
	serverConn.SetDeadline(time.Now().Add(10 * time.Second))
	clientConn.SetDeadline(time.Now().Add(10 * time.Second))
	go tls.Server(serverConn, store.TLSConfig()).Handshake()
	client := tls.Client(clientConn, &tls.Config{RootCAs: roots, ServerName: "fyr.test", NextProtos: []string{"http/1.1"}})
	if err := client.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if got, want := client.ConnectionState().NegotiatedProtocol, "http/1.1"; got != want {
		t.Errorf("negotiated protocol %q, want %q", got, want)
	}
}

func TestNewCertStoreMissingFiles(t *testing.T) {
	certPath, keyPath := paths(t)
	if _, err := transport.NewCertStore(certPath, keyPath); err == nil {
		t.Errorf("NewCertStore(missing files) succeeded, want error")
	}
}
