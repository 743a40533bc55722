package voip_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pion/turn/v4"

	"fyr/federation/transport"
	"fyr/server/config"
)

// TestTURNOverTLS allocates over TURN over TLS with a configured certificate, and checks the
// turns: URI that /voip/turnServer would hand out.
func TestTURNOverTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "turn.crt"), filepath.Join(dir, "turn.key")
	if _, err := transport.EnsureCertificate(certFile, keyFile, "localhost", "", ""); err != nil {
		t.Fatal(err)
	}
	svc, _ := startTURN(t, nil, func(c *config.TURN) {
		c.TLSAddr, c.TLSCert, c.TLSKey = "127.0.0.1:0", certFile, keyFile
	})
	tlsPort := svc.TURN().TLSAddr().(*net.TCPAddr).Port
	creds, _ := svc.Credentials("@alice:localhost")
	if got, want := creds.URIs[len(creds.URIs)-1], "turns:localhost:"+strconv.Itoa(tlsPort)+"?transport=tcp"; got != want {
		t.Errorf("last URI %q, want %q (the server name, which the certificate names)", got, want)
	}

	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	addr := svc.TURN().TLSAddr().String()
	tc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	conn := turn.NewSTUNConn(tc)
	client, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn,
		Username: creds.Username, Password: creds.Password, LoggerFactory: quietPion(), RTO: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer client.Close()
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := client.Allocate()
	if err != nil {
		t.Fatalf("allocate over TLS: %v", err)
	}
	defer relay.Close()
	if got := svc.TURN().Stats().Allocations; got != 1 {
		t.Errorf("allocations %d, want 1", got)
	}
}
