package transport

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
)

// CertStore serves a listener's certificate from a PEM certificate and key file pair and
// swaps in a new one on Reload, without restarting the listener. It is safe for concurrent use.
type CertStore struct {
	cert atomic.Pointer[tls.Certificate]
}

// NewCertStore loads the certificate and key at certPath and keyPath, which must exist and
// match; see EnsureCertificate.
func NewCertStore(certPath, keyPath string) (*CertStore, error) {
	s := &CertStore{}
	if err := s.Reload(certPath, keyPath); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the certificate and key files, which may be the same paths as before (renewed
// in place) or new ones (the configuration changed). If they cannot be loaded it returns the
// error and keeps serving the previous certificate; open connections are unaffected either way.
func (s *CertStore) Reload(certPath, keyPath string) error {
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return fmt.Errorf("load tls certificate %s and key %s: %w", certPath, keyPath, err)
	}
	s.cert.Store(&cert)
	return nil
}

// GetCertificate returns the current certificate whatever the client asked for; it fits
// tls.Config.GetCertificate.
func (s *CertStore) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cert.Load(), nil
}

// TLSConfig returns a new server configuration that serves the store's current certificate,
// requires TLS 1.2 or later and offers HTTP/2 and HTTP/1.1 through ALPN.
func (s *CertStore) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}
