package transport

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"fyr/storage/atomicfile"
)

// Validity of the certificates EnsureCertificate creates.
const (
	// caLeafValidity is how long a certificate minted from a CA is valid, unless the CA
	// expires first.
	caLeafValidity = 365 * 24 * time.Hour
	// selfSignedValidity is how long a self-signed certificate is valid. Spec-conforming
	// servers reject self-signed federation certificates, so one only serves tests or a
	// listener behind a TLS-terminating proxy; rotating it would gain nothing.
	selfSignedValidity = 10 * 365 * 24 * time.Hour
	// backdate makes a new certificate valid an hour early, for peers whose clocks run late.
	backdate = time.Hour
)

// EnsureCertificate makes sure certPath and keyPath hold a PEM certificate and private key for
// serverName, the TLS identity of the federation listener, and reports whether it wrote them.
//
//   - If caCertPath and caKeyPath are both set, it always mints a new leaf certificate for
//     serverName signed by that CA, since a test harness like Complement hands out a new CA on
//     every start. The CA key may be PKCS#1 RSA, PKCS#8 (RSA, ECDSA or Ed25519) or SEC1 EC PEM.
//   - Otherwise, if both files exist, it leaves them alone after checking that they parse as a
//     matching key pair.
//   - Otherwise, if neither exists, it writes a self-signed certificate for serverName.
//
// It refuses to continue if only one of the CA paths is set or only one of certPath and keyPath
// exists, rather than guess. New certificates use an ECDSA P-256 key and name only the host
// part of serverName: a DNS name, or an IP address for an IP literal. The key file gets mode
// 0600 and the certificate 0644; each is written atomically, key first.
func EnsureCertificate(certPath, keyPath, serverName, caCertPath, caKeyPath string) (created bool, err error) {
	if (caCertPath == "") != (caKeyPath == "") {
		return false, fmt.Errorf("tls ca: certificate %q and key %q must be set together", caCertPath, caKeyPath)
	}
	tmpl, err := leafTemplate(serverName)
	if err != nil {
		return false, err
	}
	now := time.Now()
	tmpl.NotBefore = now.Add(-backdate)

	if caCertPath != "" {
		caCert, caKey, err := loadCA(caCertPath, caKeyPath)
		if err != nil {
			return false, err
		}
		tmpl.NotAfter = now.Add(caLeafValidity)
		if caCert.NotAfter.Before(tmpl.NotAfter) {
			tmpl.NotAfter = caCert.NotAfter
		}
		if !tmpl.NotAfter.After(now) {
			return false, fmt.Errorf("tls ca certificate %s expired at %s", caCertPath, caCert.NotAfter.Format(time.RFC3339))
		}
		if err := writeCertificate(certPath, keyPath, tmpl, caCert, caKey); err != nil {
			return false, err
		}
		return true, nil
	}

	haveCert, err := fileExists(certPath)
	if err != nil {
		return false, err
	}
	haveKey, err := fileExists(keyPath)
	if err != nil {
		return false, err
	}
	switch {
	case haveCert && haveKey:
		if _, err := tls.LoadX509KeyPair(certPath, keyPath); err != nil {
			return false, fmt.Errorf("check tls certificate %s and key %s: %w", certPath, keyPath, err)
		}
		return false, nil
	case haveCert:
		return false, fmt.Errorf("tls certificate %s exists but its key %s does not: restore the key, or remove the certificate to create a self-signed pair", certPath, keyPath)
	case haveKey:
		return false, fmt.Errorf("tls key %s exists but its certificate %s does not: restore the certificate, or remove the key to create a self-signed pair", keyPath, certPath)
	}
	tmpl.NotAfter = now.Add(selfSignedValidity)
	if err := writeCertificate(certPath, keyPath, tmpl, nil, nil); err != nil {
		return false, err
	}
	return true, nil
}

// leafTemplate returns a server certificate template naming serverName's host, without
// validity dates.
func leafTemplate(serverName string) (*x509.Certificate, error) {
	host, err := serverHost(serverName)
	if err != nil {
		return nil, fmt.Errorf("tls certificate: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: host},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	return tmpl, nil
}

// serverHost returns the hostname part of a server name, without port or IPv6 brackets.
//
// See https://spec.matrix.org/v1.16/appendices/#server-name:
//
//	server_name = hostname [ ":" port ]
//	port        = 1*5DIGIT
//	hostname    = IPv4address / "[" IPv6address "]" / dns-name
//	dns-name    = 1*255dns-char
//	dns-char    = DIGIT / ALPHA / "-" / "."
func serverHost(serverName string) (string, error) {
	host, port := serverName, ""
	if strings.HasPrefix(serverName, "[") {
		end := strings.IndexByte(serverName, ']')
		if end < 0 {
			return "", fmt.Errorf("invalid server name %q: missing ']'", serverName)
		}
		host, port = serverName[1:end], serverName[end+1:]
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil || !strings.Contains(host, ":") {
			return "", fmt.Errorf("invalid server name %q: %q is not an IPv6 address", serverName, host)
		}
	} else {
		if i := strings.LastIndexByte(serverName, ':'); i >= 0 {
			host, port = serverName[:i], serverName[i:]
		}
		if host == "" || len(host) > 255 || strings.Trim(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") != "" {
			return "", fmt.Errorf("invalid server name %q: want a DNS name, IPv4 address or [IPv6 address], optionally with :port", serverName)
		}
	}
	if port != "" {
		n, err := strconv.ParseUint(strings.TrimPrefix(port, ":"), 10, 16)
		if !strings.HasPrefix(port, ":") || len(port) < 2 || len(port) > 6 || err != nil || n == 0 {
			return "", fmt.Errorf("invalid server name %q: bad port %q", serverName, port)
		}
	}
	return host, nil
}

// writeCertificate creates a P-256 key, signs tmpl for it with caKey (or with the new key
// itself if caCert is nil) and writes the key and then the certificate.
func writeCertificate(certPath, keyPath string, tmpl, caCert *x509.Certificate, caKey crypto.Signer) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate tls key: %w", err)
	}
	point, err := key.PublicKey.Bytes()
	if err != nil {
		return fmt.Errorf("encode tls public key: %w", err)
	}
	// RFC 7093 section 2 method 1: leftmost 160 bits of the SHA-256 of the public key.
	ski := sha256.Sum256(point)
	tmpl.SubjectKeyId = ski[:20]
	if caCert == nil {
		caCert, caKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return fmt.Errorf("create tls certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode tls key: %w", err)
	}
	if err := atomicfile.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return fmt.Errorf("write tls key %s: %w", keyPath, err)
	}
	if err := atomicfile.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("write tls certificate %s: %w", certPath, err)
	}
	return nil
}

// loadCA reads a CA certificate and its private key from PEM files and checks that they match.
func loadCA(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read tls ca certificate: %w", err)
	}
	cert, err := parseCertificatePEM(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("read tls ca certificate %s: %w", certPath, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read tls ca key: %w", err)
	}
	key, err := parsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("read tls ca key %s: %w", keyPath, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("tls ca key %s does not belong to certificate %s", keyPath, certPath)
	}
	return cert, key, nil
}

// parseCertificatePEM returns the first certificate in data.
func parseCertificatePEM(data []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no CERTIFICATE block in PEM")
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

// parsePrivateKeyPEM returns the first private key in data: PKCS#1 RSA, PKCS#8 or SEC1 EC.
// Blocks such as the "EC PARAMETERS" that openssl ecparam writes first are skipped.
func parsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no private key block in PEM")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("encrypted private keys are not supported")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", block.Type, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", key)
		}
		return signer, nil
	}
}

// fileExists reports whether path exists; errors other than "does not exist" are returned.
func fileExists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check tls file: %w", err)
	}
	return true, nil
}
