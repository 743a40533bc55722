package transport

import (
	"crypto/ed25519"
	"log/slog"

	"maunium.net/go/mautrix/id"
)

// Setup builds the federation client of the server named serverName from its settings:
// staticPeers is federation.static_peers (see ParseStaticPeers) and caFile is
// federation.ca_file (see LoadCAFile). DNS and the clock are the system's.
func Setup(serverName string, keyID id.KeyID, key ed25519.PrivateKey, staticPeers, caFile string, log *slog.Logger) (*Client, error) {
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
	return NewClient(serverName, keyID, key, r), nil
}
