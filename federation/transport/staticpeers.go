package transport

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"maunium.net/go/mautrix/federation"
)

// StaticPeers pins server names to addresses: server name → "host:port" list, tried in order.
// A pinned name skips .well-known and DNS SRV entirely, for boxes on a LAN or a radio link
// where there is no DNS, or none to trust. The peer must still present a certificate valid for
// its server name, and requests carry the server name as their Host header, as if the name
// had an explicit port (spec step 2).
type StaticPeers map[string][]string

// ParseStaticPeers reads the federation.static_peers setting: comma-separated
// name=host:port pairs, e.g. "b.example=10.0.0.2:8448,b.example=[fd00::2]:8448". A name given
// more than once gets every address, in the order given. Empty input gives an empty map.
func ParseStaticPeers(s string) (StaticPeers, error) {
	peers := StaticPeers{}
	for _, pair := range strings.Split(s, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		name, addr, ok := strings.Cut(pair, "=")
		name, addr = strings.TrimSpace(name), strings.TrimSpace(addr)
		if !ok {
			return nil, fmt.Errorf("static peer %q: want name=host:port", pair)
		}
		if _, _, ok := federation.ParseServerName(name); !ok {
			return nil, fmt.Errorf("static peer %q: %w %q", pair, ErrInvalidServerName, name)
		}
		host, port, err := net.SplitHostPort(addr)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("static peer %q: %q is not a host:port with a port in 1-65535", pair, addr)
		}
		peers[name] = append(peers[name], net.JoinHostPort(host, port))
	}
	return peers, nil
}
