package config

import (
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"
)

// ValidationError is a setting whose value Fyr cannot run with. It names the setting in all
// three spellings so the operator finds it wherever it was set.
type ValidationError struct {
	Key     string // dotted YAML key, e.g. "client.addr"
	Flag    string // flag without dashes, e.g. "client-addr"
	Env     string // environment variable, e.g. "FYR_CLIENT_ADDR"
	Value   string // the value as Error prints it: quoted if a string, "(hidden)" if secret
	Problem string // what is wrong
	Hint    string // what to do instead; may be empty
}

// Error reads like
// `config: client.addr (--client-addr, FYR_CLIENT_ADDR) = "foo": not a host:port; use e.g. 127.0.0.1:8008`.
func (e *ValidationError) Error() string {
	msg := fmt.Sprintf("config: %s (--%s, %s) = %s: %s", e.Key, e.Flag, e.Env, e.Value, e.Problem)
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// rule checks one setting. It returns the problem and a hint, or "" if the value is fine.
type rule struct {
	key   string
	check func(c *Config) (problem, hint string)
}

// rules run in this order, which follows Config's fields; Validate reports the first failure.
var rules = []rule{
	{"server_name", func(c *Config) (string, string) {
		return serverName(c.ServerName, "localhost, example.org or matrix.example.org:8448")
	}},
	{"data_dir", func(c *Config) (string, string) {
		if c.DataDir == "" {
			return "empty", `use "." for the current directory`
		}
		return "", ""
	}},
	{"log.level", func(c *Config) (string, string) {
		return oneOf(c.Log.Level, DefaultLogLevel, "debug", "info", "warn", "error")
	}},
	{"log.format", func(c *Config) (string, string) {
		return oneOf(c.Log.Format, DefaultLogFormat, "text", "json")
	}},
	{"client.addr", func(c *Config) (string, string) {
		return hostPort(c.Client.Addr, DefaultClientAddr)
	}},
	{"client.tls_cert", func(c *Config) (string, string) {
		return pair(c.Client.TLSCert, c.Client.TLSKey, "client.tls_key", "to serve the client API over HTTPS, or neither for plain HTTP")
	}},
	{"client.tls_key", func(c *Config) (string, string) {
		return pair(c.Client.TLSKey, c.Client.TLSCert, "client.tls_cert", "to serve the client API over HTTPS, or neither for plain HTTP")
	}},
	{"client.public_url", func(c *Config) (string, string) {
		return publicURL(c.Client.PublicURL)
	}},
	{"client.max_body_bytes", func(c *Config) (string, string) {
		if c.Client.MaxBodyBytes < 1024 {
			return "below 1024 bytes, too small for ordinary requests", fmt.Sprintf("use e.g. %d", DefaultMaxBodyBytes)
		}
		return "", ""
	}},
	{"federation.addr", func(c *Config) (string, string) {
		return hostPort(c.Federation.Addr, DefaultFederationAddr)
	}},
	{"federation.tls_cert", func(c *Config) (string, string) {
		return pair(c.Federation.TLSCert, c.Federation.TLSKey, "federation.tls_key", "to use your own certificate, or neither to have one generated")
	}},
	{"federation.tls_key", func(c *Config) (string, string) {
		return pair(c.Federation.TLSKey, c.Federation.TLSCert, "federation.tls_cert", "to use your own certificate, or neither to have one generated")
	}},
	{"federation.tls_ca_cert", func(c *Config) (string, string) {
		return pair(c.Federation.TLSCACert, c.Federation.TLSCAKey, "federation.tls_ca_key", "to have the certificate minted by your CA, or neither")
	}},
	{"federation.tls_ca_key", func(c *Config) (string, string) {
		return pair(c.Federation.TLSCAKey, c.Federation.TLSCACert, "federation.tls_ca_cert", "to have the certificate minted by your CA, or neither")
	}},
	{"federation.well_known_server", func(c *Config) (string, string) {
		if c.Federation.WellKnown == "" {
			return "", ""
		}
		return serverName(c.Federation.WellKnown, "matrix.example.org:443, or empty to serve nothing")
	}},
	{"federation.static_peers", func(c *Config) (string, string) {
		return staticPeers(c.Federation.StaticPeers)
	}},
	{"federation.trusted_key_servers", func(c *Config) (string, string) {
		for _, name := range strings.Split(c.Federation.TrustedKeyServers, ",") {
			if name = strings.TrimSpace(name); name != "" && !id.ValidateServerName(name) {
				return fmt.Sprintf("%q is not a Matrix server name", name), "use e.g. matrix.org,notary.example.org, or empty for none"
			}
		}
		return "", ""
	}},
	{"database.read_conns", func(c *Config) (string, string) {
		if n := c.Database.ReadConns; n < 1 || n > 64 {
			return "outside 1–64", fmt.Sprintf("use e.g. %d", DefaultReadConns)
		}
		return "", ""
	}},
	{"registration.shared_secret", func(c *Config) (string, string) {
		s := c.Register.SharedSecret
		switch {
		case s == "":
			return "", ""
		case strings.TrimSpace(s) == "":
			return "only whitespace", "set a real secret, or leave it empty to disable admin registration"
		case strings.TrimSpace(s) != s:
			return "starts or ends with whitespace, which tools that send it are likely to strip", "remove the surrounding whitespace"
		}
		return "", ""
	}},
	{"auth.access_token_lifetime", func(c *Config) (string, string) {
		if d := c.Auth.AccessTokenLifetime; d < time.Minute || d > 7*24*time.Hour {
			return "outside 1m–168h", "use e.g. " + DefaultAccessTokenLifetime.String()
		}
		return "", ""
	}},
	{"rate_limits.login_per_second", func(c *Config) (string, string) {
		if r := c.RateLimits.LoginPerSecond; !(r >= 0) || math.IsInf(r, 0) {
			return "negative or not a number", "use 0 for no limit, or e.g. " + strconv.FormatFloat(DefaultLoginPerSecond, 'g', -1, 64)
		}
		return "", ""
	}},
	{"rate_limits.login_burst", func(c *Config) (string, string) {
		switch b := c.RateLimits.LoginBurst; {
		case b < 0:
			return "negative", fmt.Sprintf("use e.g. %d", DefaultLoginBurst)
		case b < 1 && c.RateLimits.LoginPerSecond > 0:
			return "below 1 while rate_limits.login_per_second is set, so no attempt could ever pass", fmt.Sprintf("use e.g. %d", DefaultLoginBurst)
		}
		return "", ""
	}},
	{"rate_limits.messages_per_second", func(c *Config) (string, string) {
		if r := c.RateLimits.MessagesPerSecond; !(r >= 0) || math.IsInf(r, 0) {
			return "negative or not a number", "use 0 for no limit, or e.g. " + strconv.FormatFloat(DefaultMessagesPerSecond, 'g', -1, 64)
		}
		return "", ""
	}},
	{"rate_limits.messages_burst", func(c *Config) (string, string) {
		switch b := c.RateLimits.MessagesBurst; {
		case b < 0:
			return "negative", fmt.Sprintf("use e.g. %d", DefaultMessagesBurst)
		case b < 1 && c.RateLimits.MessagesPerSecond > 0:
			return "below 1 while rate_limits.messages_per_second is set, so no event could ever be sent", fmt.Sprintf("use e.g. %d", DefaultMessagesBurst)
		}
		return "", ""
	}},
	{"media.max_upload_bytes", func(c *Config) (string, string) {
		if c.Media.MaxUploadBytes < 1024 {
			return "below 1024", fmt.Sprintf("use e.g. %d (100 MiB)", DefaultMaxUploadBytes)
		}
		return "", ""
	}},
	{"media.quota_bytes", func(c *Config) (string, string) {
		if q := c.Media.QuotaBytes; q < -1 || q == 0 {
			return "zero or below -1", "use -1 for no quota, or a size in bytes such as 5368709120 (5 GiB)"
		}
		return "", ""
	}},
	{"media.max_pending_uploads", func(c *Config) (string, string) {
		if c.Media.MaxPending < 1 {
			return "below 1", fmt.Sprintf("use e.g. %d", DefaultMaxPending)
		}
		return "", ""
	}},
	{"media.max_thumbnail_pixels", func(c *Config) (string, string) {
		if c.Media.MaxThumbPixels < 1 {
			return "below 1", fmt.Sprintf("use e.g. %d", DefaultMaxThumbPixels)
		}
		return "", ""
	}},
	{"media.uploads_per_second", func(c *Config) (string, string) {
		if r := c.Media.UploadsPerSec; !(r >= 0) || math.IsInf(r, 0) {
			return "negative or not a number", "use 0 for no limit, or e.g. 1"
		}
		return "", ""
	}},
	{"media.upload_burst", func(c *Config) (string, string) {
		if c.Media.UploadBurst < 1 && c.Media.UploadsPerSec > 0 {
			return "below 1 while media.uploads_per_second is set", fmt.Sprintf("use e.g. %d", DefaultUploadBurst)
		}
		return "", ""
	}},
	{"turn.addr", func(c *Config) (string, string) { return turnAddr(c.TURN.Addr, "0.0.0.0:3478") }},
	{"turn.tls_addr", func(c *Config) (string, string) { return turnAddr(c.TURN.TLSAddr, "0.0.0.0:5349") }},
	{"turn.tls_cert", func(c *Config) (string, string) {
		return pair(c.TURN.TLSCert, c.TURN.TLSKey, "turn.tls_key", "to use your own certificate, or neither for the federation one")
	}},
	{"turn.tls_key", func(c *Config) (string, string) {
		return pair(c.TURN.TLSKey, c.TURN.TLSCert, "turn.tls_cert", "to use your own certificate, or neither for the federation one")
	}},
	{"turn.public_host", func(c *Config) (string, string) {
		if h := c.TURN.PublicHost; h != "" && (strings.ContainsAny(h, ":/?# ") && net.ParseIP(h) == nil) {
			return "not a host name or IP address", "use e.g. turn.example.org, without port or scheme"
		}
		return "", ""
	}},
	{"turn.relay_ip", func(c *Config) (string, string) {
		if ip := net.ParseIP(c.TURN.RelayIP); c.TURN.RelayIP != "" && (ip == nil || ip.To4() == nil) {
			return "not an IPv4 address", "use e.g. 203.0.113.7, or empty to detect it"
		}
		return "", ""
	}},
	{"turn.min_port", func(c *Config) (string, string) {
		if p := c.TURN.MinPort; p < 1024 || p > 65535 {
			return "outside 1024–65535", fmt.Sprintf("use e.g. %d", DefaultTURNMinPort)
		}
		return "", ""
	}},
	{"turn.max_port", func(c *Config) (string, string) {
		if p := c.TURN.MaxPort; p < c.TURN.MinPort || p > 65535 {
			return "below turn.min_port or above 65535", fmt.Sprintf("use e.g. %d", DefaultTURNMaxPort)
		}
		return "", ""
	}},
	{"turn.ttl", func(c *Config) (string, string) {
		if d := c.TURN.TTL; d < time.Minute || d > 7*24*time.Hour {
			return "outside 1m–168h", "use e.g. " + DefaultTURNTTL.String()
		}
		return "", ""
	}},
	{"turn.allow_peers", func(c *Config) (string, string) {
		for _, s := range strings.Split(c.TURN.AllowPeers, ",") {
			if s = strings.TrimSpace(s); s != "" {
				if _, err := netip.ParsePrefix(s); err != nil {
					return fmt.Sprintf("%q is not a CIDR", s), "use e.g. 192.168.1.0/24,10.0.0.0/8"
				}
			}
		}
		return "", ""
	}},
	{"turn.user_allocations", func(c *Config) (string, string) {
		if c.TURN.UserAllocations < 0 {
			return "negative", fmt.Sprintf("use 0 for no limit, or e.g. %d", DefaultTURNUserAllocations)
		}
		return "", ""
	}},
	{"turn.user_kbps", func(c *Config) (string, string) {
		if k := c.TURN.UserKbps; k < 0 || (k > 0 && k < 64) {
			return "negative, or below 64 kbit/s which cannot carry a voice call", fmt.Sprintf("use 0 for no limit, or e.g. %d", DefaultTURNUserKbps)
		}
		return "", ""
	}},
	{"turn.external_uris", func(c *Config) (string, string) {
		for _, u := range strings.Split(c.TURN.ExternalURIs, ",") {
			if u = strings.TrimSpace(u); u != "" && !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
				return fmt.Sprintf("%q is not a turn: or turns: URI", u), "use e.g. turn:turn.example.org:3478?transport=udp"
			}
		}
		return "", ""
	}},
	{"turn.external_secret", func(c *Config) (string, string) {
		if strings.TrimSpace(c.TURN.ExternalURIs) != "" && c.TURN.ExternalSecret == "" {
			return "empty while turn.external_uris is set", "set the external server's shared secret (coturn's static-auth-secret)"
		}
		return "", ""
	}},
	{"server_notices.localpart", func(c *Config) (string, string) {
		lp := c.Notices.Localpart
		if lp == "" {
			return "empty", "use e.g. " + DefaultNoticesLocalpart
		}
		if strings.Trim(lp, "abcdefghijklmnopqrstuvwxyz0123456789._=-/+") != "" {
			return "not a localpart: only a-z, 0-9 and . _ = - / + may appear", "use e.g. " + DefaultNoticesLocalpart
		}
		if n := len("@" + lp + ":" + c.ServerName); n > 255 {
			return fmt.Sprintf("the user ID would be %d bytes, over the limit of 255", n), "use e.g. " + DefaultNoticesLocalpart
		}
		return "", ""
	}},
	{"server_notices.display_name", func(c *Config) (string, string) {
		if len(c.Notices.DisplayName) > 256 {
			return "longer than 256 bytes", "use e.g. " + DefaultNoticesDisplayName
		}
		return "", ""
	}},
	{"server_notices.room_name", func(c *Config) (string, string) {
		if len(c.Notices.RoomName) > 255 {
			return "longer than 255 bytes", "use e.g. " + DefaultNoticesRoomName
		}
		return "", ""
	}},
}

// turnAddr checks a TURN listen address: empty (the default), or an IP literal and a port.
func turnAddr(addr, example string) (string, string) {
	if addr == "" {
		return "", ""
	}
	if problem, hint := hostPort(addr, example); problem != "" {
		return problem, hint
	}
	if host, _, _ := net.SplitHostPort(addr); host != "" && net.ParseIP(host) == nil {
		return "host is not an IP address", "use e.g. " + example
	}
	return "", ""
}

// Validate checks every setting and returns the first problem, in the order of Config's
// fields, as a *ValidationError; nil if the configuration is usable. It reads no files.
func (c *Config) Validate() error {
	for _, r := range rules {
		problem, hint := r.check(c)
		if problem == "" {
			continue
		}
		s := lookup(r.key)
		if s == nil {
			panic("config: validation rule for unknown key " + r.key)
		}
		return &ValidationError{
			Key:     s.Key,
			Flag:    s.Flag,
			Env:     s.Env,
			Value:   s.shown(c),
			Problem: problem,
			Hint:    hint,
		}
	}
	return nil
}

// SlogLevel is Log.Level as a slog.Level; anything Validate rejects reads as info.
func (c *Config) SlogLevel() slog.Level {
	switch c.Log.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// serverName checks the Matrix server name grammar: a DNS name or IP literal, then an
// optional port. See https://spec.matrix.org/v1.19/appendices/#server-name
func serverName(name, example string) (string, string) {
	if !id.ValidateServerName(name) {
		return "not a Matrix server name", "use e.g. " + example
	}
	if p := id.ParseServerName(name); p != nil && p.Port > 65535 {
		return "port out of range 1–65535", "use e.g. " + example
	}
	return "", ""
}

// staticPeers checks federation.static_peers: comma-separated name=host:port pairs, as
// federation/transport.ParseStaticPeers reads them.
func staticPeers(s string) (string, string) {
	const hint = "use e.g. b.example=10.0.0.2:8448,c.example=[fd00::3]:8448"
	for _, pair := range strings.Split(s, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		name, addr, ok := strings.Cut(pair, "=")
		name, addr = strings.TrimSpace(name), strings.TrimSpace(addr)
		if !ok {
			return fmt.Sprintf("%q is not name=host:port", pair), hint
		}
		if problem, _ := serverName(name, ""); problem != "" {
			return fmt.Sprintf("%q: %q is not a Matrix server name", pair, name), hint
		}
		host, port, err := net.SplitHostPort(addr)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return fmt.Sprintf("%q: %q is not a host:port with a port in 1–65535", pair, addr), hint
		}
	}
	return "", ""
}

// hostPort checks a listen address. Port 0 (any free port) is allowed for tests.
func hostPort(addr, example string) (string, string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "not a host:port", "use e.g. " + example
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return "port is not a number in 0–65535", "use e.g. " + example
	}
	return "", ""
}

// oneOf checks v against a fixed list of words.
func oneOf(v, example string, allowed ...string) (string, string) {
	for _, a := range allowed {
		if v == a {
			return "", ""
		}
	}
	return "not one of " + strings.Join(allowed, ", "), "use e.g. " + example
}

// pair checks that v, one of two settings that only work together, is set exactly when its
// partner is.
func pair(v, other, otherKey, purpose string) (string, string) {
	if v == "" && other != "" {
		return "empty while " + otherKey + " is set", "set both " + purpose
	}
	return "", ""
}

// publicURL checks the base URL served in .well-known: absolute http(s), no query or fragment.
func publicURL(s string) (string, string) {
	if s == "" {
		return "", ""
	}
	const hint = "use e.g. https://matrix.example.org, or empty to derive it from each request"
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "":
		return "not an absolute URL", hint
	case u.Scheme != "http" && u.Scheme != "https":
		return "not an http or https URL", hint
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "has a query or fragment, which clients would not keep", hint
	case u.User != nil:
		return "carries a user name or password", hint
	}
	return "", ""
}
