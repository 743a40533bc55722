package transport

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
)

// CertStore serves the federation listener's certificate from a PEM certificate and key file
// pair and swaps in a new one on Reload, without restarting the listener. It is safe for
// concurrent use.
type CertStore struct {
	certPath, keyPath string
	cert              atomic.Pointer[tls.Certificate]
}

// NewCertStore loads the certificate and key at certPath and keyPath, which must exist and
// match; see EnsureCertificate.
func NewCertStore(certPath, keyPath string) (*CertStore, error) {
	s := &CertStore{certPath: certPath, keyPath: keyPath}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload re-reads the certificate and key files. If they cannot be loaded it returns the error
// and keeps serving the previous certificate; connections already open are unaffected either way.
func (s *CertStore) Reload() error {
	cert, err := tls.LoadX509KeyPair(s.certPath, s.keyPath)
	if err != nil {
		return fmt.Errorf("load tls certificate %s and key %s: %w", s.certPath, s.keyPath, err)
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
