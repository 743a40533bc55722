package config_test

import (
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"fyr/server/config"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*config.Config)
		wantKey string // "" for valid
		want    string // substring of the message
	}{
		{"default", func(*config.Config) {}, "", ""},
		{"server name with port", func(c *config.Config) { c.ServerName = "matrix.example.org:8448" }, "", ""},
		{"server name IPv6", func(c *config.Config) { c.ServerName = "[::1]:8448" }, "", ""},
		{"server name empty", func(c *config.Config) { c.ServerName = "" }, "server_name", "not a Matrix server name"},
		{"server name with user", func(c *config.Config) { c.ServerName = "@alice:example.org" }, "server_name", "not a Matrix server name"},
		{"server name with scheme", func(c *config.Config) { c.ServerName = "https://example.org" }, "server_name", "not a Matrix server name"},
		{"server name port too big", func(c *config.Config) { c.ServerName = "example.org:99999" }, "server_name", "port out of range"},
		{"data dir empty", func(c *config.Config) { c.DataDir = "" }, "data_dir", "empty"},
		{"log level", func(c *config.Config) { c.Log.Level = "verbose" }, "log.level", "not one of debug, info, warn, error; use e.g. info"},
		{"log level upper case", func(c *config.Config) { c.Log.Level = "INFO" }, "log.level", "not one of"},
		{"log format", func(c *config.Config) { c.Log.Format = "logfmt" }, "log.format", "not one of text, json"},
		{"client addr port 0", func(c *config.Config) { c.Client.Addr = "127.0.0.1:0" }, "", ""},
		{"client addr all interfaces", func(c *config.Config) { c.Client.Addr = ":8008" }, "", ""},
		{"client addr IPv6", func(c *config.Config) { c.Client.Addr = "[::1]:8008" }, "", ""},
		{"client addr no port", func(c *config.Config) { c.Client.Addr = "127.0.0.1" }, "client.addr", "not a host:port; use e.g. 127.0.0.1:8008"},
		{"client addr named port", func(c *config.Config) { c.Client.Addr = "localhost:http" }, "client.addr", "port is not a number"},
		{"client addr port too big", func(c *config.Config) { c.Client.Addr = "127.0.0.1:65536" }, "client.addr", "0–65535"},
		{"federation addr", func(c *config.Config) { c.Federation.Addr = "8448" }, "federation.addr", "use e.g. 127.0.0.1:8448"},
		{"client tls both", func(c *config.Config) { c.Client.TLSCert, c.Client.TLSKey = "c.pem", "k.pem" }, "", ""},
		{"client tls cert only", func(c *config.Config) { c.Client.TLSCert = "c.pem" }, "client.tls_key", "empty while client.tls_cert is set"},
		{"client tls key only", func(c *config.Config) { c.Client.TLSKey = "k.pem" }, "client.tls_cert", "empty while client.tls_key is set"},
		{"federation tls cert only", func(c *config.Config) { c.Federation.TLSCert = "c.pem" }, "federation.tls_key", "empty while federation.tls_cert is set"},
		{"federation tls key only", func(c *config.Config) { c.Federation.TLSKey = "k.pem" }, "federation.tls_cert", "set both"},
		{"federation CA cert only", func(c *config.Config) { c.Federation.TLSCACert = "ca.pem" }, "federation.tls_ca_key", "empty while federation.tls_ca_cert is set"},
		{"federation CA key only", func(c *config.Config) { c.Federation.TLSCAKey = "ca.key" }, "federation.tls_ca_cert", "empty while federation.tls_ca_key is set"},
		{"well-known server", func(c *config.Config) { c.Federation.WellKnown = "matrix.example.org:443" }, "", ""},
		{"well-known server URL", func(c *config.Config) { c.Federation.WellKnown = "https://matrix.example.org" }, "federation.well_known_server", "not a Matrix server name"},
		{"static peers", func(c *config.Config) { c.Federation.StaticPeers = "b.test=10.0.0.2:8448, b.test=[fd00::2]:8448" }, "", ""},
		{"static peers no port", func(c *config.Config) { c.Federation.StaticPeers = "b.test=10.0.0.2" }, "federation.static_peers", "not a host:port"},
		{"static peers no name", func(c *config.Config) { c.Federation.StaticPeers = "10.0.0.2:8448" }, "federation.static_peers", "not name=host:port"},
		{"static peers bad name", func(c *config.Config) { c.Federation.StaticPeers = "b test=10.0.0.2:8448" }, "federation.static_peers", "not a Matrix server name"},
		{"public url", func(c *config.Config) { c.Client.PublicURL = "https://matrix.example.org/base/" }, "", ""},
		{"public url http", func(c *config.Config) { c.Client.PublicURL = "http://127.0.0.1:8008" }, "", ""},
		{"public url relative", func(c *config.Config) { c.Client.PublicURL = "matrix.example.org" }, "client.public_url", "not an absolute URL"},
		{"public url scheme", func(c *config.Config) { c.Client.PublicURL = "ftp://example.org" }, "client.public_url", "not an http or https URL"},
		{"public url query", func(c *config.Config) { c.Client.PublicURL = "https://example.org/?a=b" }, "client.public_url", "query"},
		{"public url fragment", func(c *config.Config) { c.Client.PublicURL = "https://example.org/#x" }, "client.public_url", "fragment"},
		{"max body 1024", func(c *config.Config) { c.Client.MaxBodyBytes = 1024 }, "", ""},
		{"max body 1023", func(c *config.Config) { c.Client.MaxBodyBytes = 1023 }, "client.max_body_bytes", "below 1024"},
		{"read conns 1", func(c *config.Config) { c.Database.ReadConns = 1 }, "", ""},
		{"read conns 64", func(c *config.Config) { c.Database.ReadConns = 64 }, "", ""},
		{"read conns 0", func(c *config.Config) { c.Database.ReadConns = 0 }, "database.read_conns", "outside 1–64"},
		{"read conns 65", func(c *config.Config) { c.Database.ReadConns = 65 }, "database.read_conns", "outside 1–64"},
		{"shared secret complement", func(c *config.Config) { c.Register.SharedSecret = "complement" }, "", ""},
		{"shared secret with inner space", func(c *config.Config) { c.Register.SharedSecret = "correct horse" }, "", ""},
		{"shared secret blank", func(c *config.Config) { c.Register.SharedSecret = " \t" }, "registration.shared_secret", "only whitespace"},
		{"shared secret padded", func(c *config.Config) { c.Register.SharedSecret = "s3cret\n" }, "registration.shared_secret", "whitespace"},
		{"token lifetime 1m", func(c *config.Config) { c.Auth.AccessTokenLifetime = time.Minute }, "", ""},
		{"token lifetime 168h", func(c *config.Config) { c.Auth.AccessTokenLifetime = 168 * time.Hour }, "", ""},
		{"token lifetime 59s", func(c *config.Config) { c.Auth.AccessTokenLifetime = 59 * time.Second }, "auth.access_token_lifetime", "outside 1m–168h; use e.g. 5m0s"},
		{"token lifetime 0", func(c *config.Config) { c.Auth.AccessTokenLifetime = 0 }, "auth.access_token_lifetime", "outside 1m–168h"},
		{"token lifetime 8 days", func(c *config.Config) { c.Auth.AccessTokenLifetime = 192 * time.Hour }, "auth.access_token_lifetime", "outside 1m–168h"},
		{"rate off", func(c *config.Config) { c.RateLimits.LoginPerSecond, c.RateLimits.LoginBurst = 0, 0 }, "", ""},
		{"rate negative", func(c *config.Config) { c.RateLimits.LoginPerSecond = -1 }, "rate_limits.login_per_second", "negative"},
		{"rate NaN", func(c *config.Config) { c.RateLimits.LoginPerSecond = math.NaN() }, "rate_limits.login_per_second", "not a number"},
		{"burst negative", func(c *config.Config) { c.RateLimits.LoginBurst = -1 }, "rate_limits.login_burst", "negative"},
		{"burst 0 with rate", func(c *config.Config) { c.RateLimits.LoginBurst = 0 }, "rate_limits.login_burst", "below 1 while rate_limits.login_per_second is set"},
		{"notices localpart for Complement", func(c *config.Config) { c.Notices.Localpart = "_server" }, "", ""},
		{"notices localpart empty", func(c *config.Config) { c.Notices.Localpart = "" }, "server_notices.localpart", "empty"},
		{"notices localpart upper case", func(c *config.Config) { c.Notices.Localpart = "Notices" }, "server_notices.localpart", "not a localpart"},
		{"notices localpart user ID", func(c *config.Config) { c.Notices.Localpart = "@notices:localhost" }, "server_notices.localpart", "not a localpart"},
		{"notices localpart too long", func(c *config.Config) { c.Notices.Localpart = strings.Repeat("n", 250) }, "server_notices.localpart", "over the limit of 255"},
		{"notices display name too long", func(c *config.Config) { c.Notices.DisplayName = strings.Repeat("n", 257) }, "server_notices.display_name", "longer than 256"},
		{"notices room name too long", func(c *config.Config) { c.Notices.RoomName = strings.Repeat("n", 256) }, "server_notices.room_name", "longer than 255"},
		{"first problem wins", func(c *config.Config) { c.Log.Format, c.Client.Addr, c.ServerName = "x", "x", "" }, "server_name", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.edit(c)
			err := c.Validate()
			if tt.wantKey == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var ve *config.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v, want a *ValidationError for %s", err, tt.wantKey)
			}
			if got, want := ve.Key, tt.wantKey; got != want {
				t.Errorf("Validate() key = %s, want %s (%v)", got, want, err)
			}
			s := setting(t, ve.Key)
			if ve.Flag != s.Flag || ve.Env != s.Env {
				t.Errorf("Validate() flag, env = %s, %s, want %s, %s", ve.Flag, ve.Env, s.Flag, s.Env)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidationErrorText(t *testing.T) {
	c := config.Default()
	c.Client.Addr = "foo"
	c.Database.ReadConns = 0
	got := c.Validate().Error()
	want := `config: client.addr (--client-addr, FYR_CLIENT_ADDR) = "foo": not a host:port; use e.g. 127.0.0.1:8008`
	if got != want {
		t.Errorf("Validate() = %s\nwant %s", got, want)
	}

	c = config.Default()
	c.Database.ReadConns = 100
	got = c.Validate().Error()
	want = `config: database.read_conns (--database-read-conns, FYR_DATABASE_READ_CONNS) = 100: outside 1–64; use e.g. 4`
	if got != want {
		t.Errorf("Validate() = %s\nwant %s", got, want)
	}
}

func TestValidationErrorHidesSecret(t *testing.T) {
	const secret = "  hunter2-very-secret"
	c := config.Default()
	c.Register.SharedSecret = secret
	err := c.Validate()
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate() = %v, want a *ValidationError", err)
	}
	if got, want := ve.Value, "(hidden)"; got != want {
		t.Errorf("Value = %q, want %q", got, want)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Validate() = %q reveals the secret", err)
	}

	path := writeFile(t, t.TempDir(), "fyr.yaml", "")
	_, _, err = config.Load([]string{"--config", path}, []string{"FYR_REGISTRATION_SHARED_SECRET=" + secret})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Load with a padded secret = %v, want an error that hides it", err)
	}
}

func TestSlogLevel(t *testing.T) {
	tests := []struct {
		level string
		want  slog.Level
	}{
		{"debug", slog.LevelDebug},
		{"info", slog.LevelInfo},
		{"warn", slog.LevelWarn},
		{"error", slog.LevelError},
		{"", slog.LevelInfo},
	}
	for _, tt := range tests {
		c := config.Default()
		c.Log.Level = tt.level
		if got := c.SlogLevel(); got != tt.want {
			t.Errorf("SlogLevel() with level %q = %v, want %v", tt.level, got, tt.want)
		}
	}
}

// setting returns the setting with the given key.
func setting(t *testing.T, key string) config.Setting {
	t.Helper()
	for _, s := range config.Settings() {
		if s.Key == key {
			return s
		}
	}
	t.Fatalf("no setting %s", key)
	return config.Setting{}
}
