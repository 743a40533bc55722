package transport

import (
	"crypto/x509"
	"fmt"
	"os"
)

// LoadCAFile reads the federation.ca_file setting: a PEM bundle of the CA certificates that
// outbound federation TLS trusts instead of the system roots, for agencies that run their own
// PKI. An empty path returns nil, meaning the system roots (which honour SSL_CERT_FILE). To
// trust both a private CA and the public ones, put the system bundle in the file too.
func LoadCAFile(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	pemData, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("federation ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("federation ca_file %s: no PEM certificates in it", path)
	}
	return pool, nil
}
