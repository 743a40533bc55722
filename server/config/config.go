// Package config is Fyr's typed configuration: the settings, their defaults, where they come
// from (YAML file, FYR_… environment variables, command-line flags) and their validation.
//
// It is not for runtime state: generated secrets (signing key, TLS certificate, TURN secret)
// live in files under the data directory, owned by the packages that use them.
//
// Every setting is a field of Config with four struct tags, and sometimes a fifth:
//
//	yaml:"…"    its key in fyr.yaml (nested by section)
//	flag:"…"    its command-line flag; the environment variable is FYR_ + the flag in
//	            upper case with '-' replaced by '_' (--client-addr is FYR_CLIENT_ADDR)
//	help:"…"    one line for the operator, reused by the flag usage, the commented default
//	            file and the README's configuration reference
//	reload:"…"  "yes" if a running server applies a change without restarting
//	secret:"…"  "yes" if the value must never be logged or echoed in an error
//
// A struct-typed field with only a yaml tag is a section: its fields are nested under that key.
// Settings lists them all; Load builds a Config from the four sources, Validate checks it,
// WriteDefault writes the commented file a first start creates, Diff and Watch serve reloads.
//
// Precedence, lowest first: built-in defaults, the YAML file, the environment, flags.
package config

import "time"

// Defaults. The zero value of a field never means "use the default": Default fills them in.
const (
	DefaultServerName        = "localhost"
	DefaultDataDir           = "./fyr-data"
	DefaultClientAddr        = "127.0.0.1:8008"
	DefaultFederationAddr    = "127.0.0.1:8448"
	DefaultMaxBodyBytes      = 1 << 20 // 1 MiB, ample for any JSON request; media has its own limit
	DefaultLogLevel          = "info"
	DefaultLogFormat         = "text"
	DefaultDatabaseFile      = "fyr.db"
	DefaultConfigFile        = "fyr.yaml" // in the data directory, unless --config or FYR_CONFIG says otherwise
	DefaultReadConns         = 4
	DefaultLoginPerSecond    = 0.2 // one attempt per five seconds per client address …
	DefaultLoginBurst        = 5   // … after a burst of five
	DefaultMessagesPerSecond = 10  // a person types slower; a runaway bot does not
	DefaultMessagesBurst     = 50
	DefaultMaxUploadBytes    = 100 << 20
	DefaultMediaQuota        = 5 << 30
	DefaultMaxPending        = 10
	DefaultMaxThumbPixels    = 32_000_000
	DefaultUploadsPerSec     = 1.0
	DefaultUploadBurst       = 10

	DefaultTURNPort            = 3478 // TURN over UDP and TCP, as RFC 8656 assigns
	DefaultTURNMinPort         = 49152
	DefaultTURNMaxPort         = 65535
	DefaultTURNTTL             = 24 * time.Hour
	DefaultTURNUserAllocations = 20
	DefaultTURNUserKbps        = 20000 // 20 Mbit/s: a few HD video calls at once

	DefaultNoticesLocalpart   = "notices"
	DefaultNoticesDisplayName = "Server notices"
	DefaultNoticesRoomName    = "Server notices"
	// DefaultAccessTokenLifetime is Synapse's default for refreshable access tokens.
	DefaultAccessTokenLifetime = 5 * time.Minute
)

// Config is the whole configuration of one Fyr server.
type Config struct {
	ServerName string `yaml:"server_name" flag:"server-name" help:"the Matrix server name: the part after ':' in @user:name; cannot change once users exist" reload:"no"`
	DataDir    string `yaml:"data_dir" flag:"data-dir" help:"directory for the database, keys, certificates and this file" reload:"no"`

	Log        Log        `yaml:"log"`
	Client     Client     `yaml:"client"`
	Federation Federation `yaml:"federation"`
	Database   Database   `yaml:"database"`
	Register   Register   `yaml:"registration"`
	Auth       Auth       `yaml:"auth"`
	RateLimits RateLimits `yaml:"rate_limits"`
	Media      Media      `yaml:"media"`
	TURN       TURN       `yaml:"turn"`
	Presence   Presence   `yaml:"presence"`
	Push       Push       `yaml:"push"`
	Notices    Notices    `yaml:"server_notices"`
}

// Log configures log/slog output on standard error.
type Log struct {
	Level  string `yaml:"level" flag:"log-level" help:"debug, info, warn or error" reload:"yes"`
	Format string `yaml:"format" flag:"log-format" help:"text or json" reload:"no"`
}

// Client configures the client-server API listener.
type Client struct {
	Addr         string `yaml:"addr" flag:"client-addr" help:"host:port of the client-server API (plain HTTP unless tls_cert is set)" reload:"no"`
	TLSCert      string `yaml:"tls_cert" flag:"client-tls-cert" help:"PEM certificate file; when set with tls_key the client API speaks HTTPS" reload:"yes"`
	TLSKey       string `yaml:"tls_key" flag:"client-tls-key" help:"PEM private key file for tls_cert" reload:"yes"`
	PublicURL    string `yaml:"public_url" flag:"public-url" help:"base URL clients use to reach this server, served in /.well-known/matrix/client (empty: derived from the request)" reload:"yes"`
	MaxBodyBytes int64  `yaml:"max_body_bytes" flag:"max-body-bytes" help:"largest request body accepted on JSON endpoints, in bytes" reload:"yes"`
}

// Federation configures the server-server API listener.
type Federation struct {
	Addr string `yaml:"addr" flag:"federation-addr" help:"host:port of the federation API (always HTTPS)" reload:"no"`
	// TLSCert and TLSKey name the certificate served on Addr. Empty: Fyr uses
	// federation.crt/.key in the data directory, creating them on first start: signed by
	// TLSCACert/TLSCAKey when those are set, else self-signed.
	TLSCert   string `yaml:"tls_cert" flag:"federation-tls-cert" help:"PEM certificate file for the federation listener (empty: generated in the data directory)" reload:"yes"`
	TLSKey    string `yaml:"tls_key" flag:"federation-tls-key" help:"PEM private key file for tls_cert" reload:"yes"`
	TLSCACert string `yaml:"tls_ca_cert" flag:"federation-tls-ca-cert" help:"PEM CA certificate: when set with tls_ca_key, the generated certificate is minted by this CA at every start" reload:"no"`
	TLSCAKey  string `yaml:"tls_ca_key" flag:"federation-tls-ca-key" help:"PEM private key of tls_ca_cert" reload:"no"`
	WellKnown string `yaml:"well_known_server" flag:"well-known-server" help:"host:port served as m.server in /.well-known/matrix/server (empty: not served)" reload:"yes"`
	// StaticPeers pins server names to addresses, skipping .well-known and DNS SRV: the
	// format is comma-separated name=host:port pairs, a name repeated for more addresses
	// (tried in order). Certificates are still checked against the server name.
	StaticPeers string `yaml:"static_peers" flag:"federation-static-peers" help:"comma-separated name=host:port pairs pinning a server name to addresses without .well-known or DNS, e.g. b.example=10.0.0.2:8448 (repeat a name for more addresses)" reload:"no"`
	// CAFile replaces the system roots for outbound federation TLS; empty means the system
	// roots (which honour SSL_CERT_FILE).
	CAFile       string `yaml:"ca_file" flag:"federation-ca-file" help:"PEM bundle of the CAs trusted for outbound federation TLS, replacing the system roots (empty: system roots, which honour SSL_CERT_FILE)" reload:"no"`
	AllowPrivate bool   `yaml:"allow_private_addresses" flag:"federation-allow-private-addresses" help:"let federation reach servers on loopback and private networks found through DNS (static peers always may); for LAN-only deployments and test beds" reload:"no"`
	// TrustedKeyServers are notaries asked, in order, for a server's signing keys when the
	// server itself does not provide them; each notary's own keys are fetched from it directly.
	TrustedKeyServers string `yaml:"trusted_key_servers" flag:"federation-trusted-key-servers" help:"comma-separated server names of notaries asked for a server's signing keys when it cannot be reached, e.g. matrix.org (empty: none)" reload:"yes"`
}

// Database configures the SQLite storage.
type Database struct {
	Path      string `yaml:"path" flag:"database" help:"SQLite database file (empty: fyr.db in the data directory)" reload:"no"`
	ReadConns int    `yaml:"read_conns" flag:"database-read-conns" help:"connections in the read pool" reload:"no"`
}

// Register configures account registration.
type Register struct {
	Open         bool   `yaml:"open" flag:"open-registration" help:"let anyone register without a token (only m.login.dummy); off by default" reload:"yes"`
	SharedSecret string `yaml:"shared_secret" flag:"registration-shared-secret" help:"secret for Synapse-style admin registration at /_synapse/admin/v1/register (empty: disabled)" reload:"yes" secret:"yes"`
}

// Auth configures access tokens.
type Auth struct {
	// AccessTokenLifetime applies only to clients that send refresh_token: true to /login or
	// /register (Element X and other matrix-rust-sdk clients do): their access token expires
	// after it and is renewed through POST /refresh on the same device. Other clients' tokens
	// never expire. A change applies to tokens issued afterwards.
	AccessTokenLifetime time.Duration `yaml:"access_token_lifetime" flag:"access-token-lifetime" help:"how long an access token lives when the client asked for a refresh token at login or registration; other clients' tokens never expire" reload:"yes"`
}

// RateLimits bounds how often one client address may try a costly action. A rate of 0 turns
// the limit off.
type RateLimits struct {
	LoginPerSecond float64 `yaml:"login_per_second" flag:"rate-login-per-second" help:"sustained login and registration attempts per second per client address (0: unlimited)" reload:"yes"`
	LoginBurst     int     `yaml:"login_burst" flag:"rate-login-burst" help:"attempts allowed at once before login_per_second applies" reload:"yes"`
	// MessagesPerSecond limits each user's room events (messages, state, redactions, room
	// creation); admins are exempt.
	MessagesPerSecond float64 `yaml:"messages_per_second" flag:"rate-messages-per-second" help:"sustained room events per second per user (0: unlimited)" reload:"yes"`
	MessagesBurst     int     `yaml:"messages_burst" flag:"rate-messages-burst" help:"room events allowed at once before messages_per_second applies" reload:"yes"`
}

// Media configures the content repository (uploads, downloads, thumbnails).
type Media struct {
	MaxUploadBytes int64   `yaml:"max_upload_bytes" flag:"media-max-upload-bytes" help:"largest file a user may upload, in bytes" reload:"yes"`
	QuotaBytes     int64   `yaml:"quota_bytes" flag:"media-quota-bytes" help:"total bytes each user may store (-1: unlimited)" reload:"yes"`
	MaxPending     int     `yaml:"max_pending_uploads" flag:"media-max-pending-uploads" help:"media IDs a user may have created but not yet uploaded to" reload:"yes"`
	MaxThumbPixels int64   `yaml:"max_thumbnail_pixels" flag:"media-max-thumbnail-pixels" help:"largest image (width x height) Fyr decodes to make a thumbnail" reload:"yes"`
	UploadsPerSec  float64 `yaml:"uploads_per_second" flag:"media-uploads-per-second" help:"sustained uploads per second per user (0: unlimited)" reload:"yes"`
	UploadBurst    int     `yaml:"upload_burst" flag:"media-upload-burst" help:"uploads allowed at once before uploads_per_second applies" reload:"yes"`
	URLPreviews    bool    `yaml:"url_previews" flag:"media-url-previews" help:"fetch link previews for clients (only from public addresses; off by default)" reload:"yes"`
	Legacy         bool    `yaml:"legacy_unauthenticated" flag:"media-legacy-unauthenticated" help:"also serve downloads and thumbnails on the deprecated unauthenticated /_matrix/media/v3 paths" reload:"yes"`
}

// TURN configures the built-in TURN server, which relays calls between clients behind NAT,
// and the credentials GET /voip/turnServer hands out for it or for an external TURN server.
type TURN struct {
	Enabled         bool          `yaml:"enabled" flag:"turn-enabled" help:"run the built-in TURN server (it never runs while external_uris is set)" reload:"no"`
	Addr            string        `yaml:"addr" flag:"turn-addr" help:"IP:port for TURN over UDP and TCP (empty: client.addr's IP on port 3478, or a free port when client.addr's port is 0); set 0.0.0.0:3478 behind a reverse proxy" reload:"no"`
	TLSAddr         string        `yaml:"tls_addr" flag:"turn-tls-addr" help:"IP:port for TURN over TLS, e.g. 0.0.0.0:5349 (empty: no TLS)" reload:"no"`
	TLSCert         string        `yaml:"tls_cert" flag:"turn-tls-cert" help:"PEM certificate file for tls_addr (empty: the federation certificate)" reload:"yes"`
	TLSKey          string        `yaml:"tls_key" flag:"turn-tls-key" help:"PEM private key file for turn.tls_cert" reload:"yes"`
	PublicHost      string        `yaml:"public_host" flag:"turn-public-host" help:"host name or IP that clients are told to reach TURN at (empty: relay_ip, and the server name for TLS)" reload:"yes"`
	RelayIP         string        `yaml:"relay_ip" flag:"turn-relay-ip" help:"IPv4 address of the relayed ports as clients and peers reach them (empty: addr's IP, else detected from the host's interfaces)" reload:"no"`
	MinPort         int           `yaml:"min_port" flag:"turn-min-port" help:"lowest UDP port for relayed traffic" reload:"no"`
	MaxPort         int           `yaml:"max_port" flag:"turn-max-port" help:"highest UDP port for relayed traffic" reload:"no"`
	TTL             time.Duration `yaml:"ttl" flag:"turn-ttl" help:"how long credentials from /voip/turnServer stay valid" reload:"yes"`
	AllowPeers      string        `yaml:"allow_peers" flag:"turn-allow-peers" help:"comma-separated CIDRs of private ranges TURN may relay to, e.g. 192.168.1.0/24 on a LAN (loopback, link-local and multicast stay refused)" reload:"yes"`
	AllowLoopback   bool          `yaml:"allow_loopback" flag:"turn-allow-loopback" help:"let TURN relay to loopback peers; for test harnesses only" reload:"yes"`
	UserAllocations int           `yaml:"user_allocations" flag:"turn-user-allocations" help:"most relays one user may hold at once (0: unlimited)" reload:"yes"`
	UserKbps        int           `yaml:"user_kbps" flag:"turn-user-kbps" help:"kilobits per second that one user's relays may carry, both directions together (0: unlimited)" reload:"yes"`
	ExternalURIs    string        `yaml:"external_uris" flag:"turn-external-uris" help:"comma-separated turn: or turns: URIs of an external TURN server such as coturn; needs external_secret, and the built-in server then does not start" reload:"no"`
	ExternalSecret  string        `yaml:"external_secret" flag:"turn-external-secret" help:"shared secret of the external TURN server (coturn's static-auth-secret)" reload:"yes" secret:"yes"`
}

// Presence configures users' online status (GET and PUT /presence/{userId}/status, and
// presence in sync).
type Presence struct {
	// Enabled off makes PUT /presence accept and drop updates and GET answer "offline" for
	// everyone, as Synapse does with presence disabled.
	Enabled bool `yaml:"enabled" flag:"presence-enabled" help:"track and share users' online status (off: updates from clients are accepted and dropped, and everyone appears offline)" reload:"yes"`
}

// Push configures push notifications: delivery to the push gateways pushers name.
type Push struct {
	AllowPrivate bool `yaml:"allow_private_gateways" flag:"push-allow-private-gateways" help:"let pushers send to push gateways on loopback and private networks (a gateway on the LAN, test beds); off, only public addresses are reached" reload:"yes"`
}

// Notices configures server notices: the account through which the server tells its users
// things (an installed update, for instance), each in a room of their own.
type Notices struct {
	// Localpart names the system account; registering it is refused. Changing it later starts
	// new notices rooms from the new account.
	Localpart   string `yaml:"localpart" flag:"server-notices-localpart" help:"localpart of the account that sends server notices (@localpart:server_name); nobody can register or log in as it" reload:"no"`
	DisplayName string `yaml:"display_name" flag:"server-notices-display-name" help:"display name of the server notices account" reload:"no"`
	RoomName    string `yaml:"room_name" flag:"server-notices-room-name" help:"name of each user's server notices room" reload:"no"`
}

// Default returns the built-in configuration: a server named localhost on loopback.
func Default() *Config {
	return &Config{
		ServerName: DefaultServerName,
		DataDir:    DefaultDataDir,
		Log:        Log{Level: DefaultLogLevel, Format: DefaultLogFormat},
		Client:     Client{Addr: DefaultClientAddr, MaxBodyBytes: DefaultMaxBodyBytes},
		Federation: Federation{Addr: DefaultFederationAddr},
		Database:   Database{ReadConns: DefaultReadConns},
		Auth:       Auth{AccessTokenLifetime: DefaultAccessTokenLifetime},
		RateLimits: RateLimits{LoginPerSecond: DefaultLoginPerSecond, LoginBurst: DefaultLoginBurst,
			MessagesPerSecond: DefaultMessagesPerSecond, MessagesBurst: DefaultMessagesBurst},
		Media: Media{MaxUploadBytes: DefaultMaxUploadBytes, QuotaBytes: DefaultMediaQuota, MaxPending: DefaultMaxPending,
			MaxThumbPixels: DefaultMaxThumbPixels, UploadsPerSec: DefaultUploadsPerSec, UploadBurst: DefaultUploadBurst},
		TURN: TURN{Enabled: true, MinPort: DefaultTURNMinPort, MaxPort: DefaultTURNMaxPort, TTL: DefaultTURNTTL,
			UserAllocations: DefaultTURNUserAllocations, UserKbps: DefaultTURNUserKbps},
		Presence: Presence{Enabled: true},
		Notices:  Notices{Localpart: DefaultNoticesLocalpart, DisplayName: DefaultNoticesDisplayName, RoomName: DefaultNoticesRoomName},
	}
}
