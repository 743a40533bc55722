package transport

import (
	"crypto/ed25519"
	"log/slog"
	"net/netip"

	"maunium.net/go/mautrix/id"

	"fyr/server/netpolicy"
)

// Setup builds the federation client of the server named serverName from its settings:
// staticPeers is federation.static_peers (see ParseStaticPeers) and caFile is
// federation.ca_file (see LoadCAFile). Unless allowPrivate (federation.allow_private_addresses),
// it connects only to public addresses, except for static peers. DNS and the clock are the system's.
func Setup(serverName string, keyID id.KeyID, key ed25519.PrivateKey, staticPeers, caFile string, allowPrivate bool, log *slog.Logger) (*Client, error) {
	peers, err := ParseStaticPeers(staticPeers)
	if err != nil {
		return nil, err
	}
	roots, err := LoadCAFile(caFile)
	if err != nil {
		return nil, err
	}
	r := NewResolver()
	r.StaticPeers, r.RootCAs, r.Log = peers, roots, log
	c := NewClient(serverName, keyID, key, r)
	if !allowPrivate {
		// Anyone can make this server contact a server name of their choosing (a key query,
		// a join); only the operator's static peers may be on loopback or private networks.
		c.AllowAddr = func(dest string, a netip.Addr) bool {
			_, static := peers[dest]
			return static || netpolicy.Public(a)
		}
		r.AllowAddr = func(host string, a netip.Addr) bool { return netpolicy.Public(a) }
	}
	return c, nil
}
