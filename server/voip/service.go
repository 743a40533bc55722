package voip

import (
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/server/config"
)

// Service is what the homeserver holds for calls: it answers GET /voip/turnServer and owns
// the built-in TURN server when that runs. Create it with Start; Close stops TURN. Its methods
// are safe for concurrent use.
//
// It runs in one of three modes, chosen at start: external (turn.external_uris set: it signs
// credentials for that server with turn.external_secret and starts nothing), built-in
// (turn.enabled: it starts TURN and signs with the secret file), or off (it hands out nothing).
type Service struct {
	cfg  atomic.Pointer[config.Config]
	keys *Keyring // built-in mode only
	turn *TURN    // built-in mode only
	log  *slog.Logger
	now  func() time.Time
}

// Start prepares calls for cfg; in built-in mode it opens the keyring at secretFile (creating
// the secret if missing) and starts TURN. See Listen for opts.
func Start(cfg *config.Config, secretFile string, opts Options) (*Service, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Service{log: opts.Log, now: opts.Now}
	s.cfg.Store(cfg)
	switch {
	case external(cfg):
		s.log.Info("TURN: handing out credentials for an external server", "uris", externalURIs(cfg))
	case cfg.TURN.Enabled:
		var err error
		if s.keys, err = OpenKeyring(secretFile, opts.Now); err != nil {
			return nil, err
		}
		if s.turn, err = Listen(cfg, s.keys, opts); err != nil {
			return nil, err
		}
	default:
		s.log.Info("TURN is off; calls between networks that need a relay will fail")
	}
	return s, nil
}

func external(cfg *config.Config) bool { return strings.TrimSpace(cfg.TURN.ExternalURIs) != "" }

func externalURIs(cfg *config.Config) []string {
	var out []string
	for _, u := range strings.Split(cfg.TURN.ExternalURIs, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// Credentials issues TURN credentials for user, valid for turn.ttl. ok is false when no TURN
// server is configured.
func (s *Service) Credentials(user id.UserID) (c Credentials, ok bool) {
	cfg := s.cfg.Load()
	now := s.now()
	switch {
	case s.turn != nil:
		exp := s.keys.Expiry(cfg.TURN.TTL)
		c.Username = Username(exp, user)
		c.Password = Password(s.keys.Secret(exp), c.Username)
		c.URIs = s.turn.URIs(cfg.TURN.PublicHost, tlsHost(cfg))
		c.TTL = ttlSeconds(exp, now)
	case external(cfg):
		exp := now.Add(cfg.TURN.TTL).Truncate(time.Second)
		c.Username = Username(exp, user)
		c.Password = Password(cfg.TURN.ExternalSecret, c.Username)
		c.URIs = externalURIs(cfg)
		c.TTL = ttlSeconds(exp, now)
	default:
		return c, false
	}
	return c, true
}

// ttlSeconds is the time from now to exp in whole seconds, rounded up: exp is truncated to
// the second, so a credential issued for 24h reports 86400.
func ttlSeconds(exp, now time.Time) int64 {
	return int64((exp.Sub(now) + time.Second - 1) / time.Second)
}

// tlsHost is the host in the turns: URI: turn.public_host, else the server name without port,
// which the federation certificate names.
func tlsHost(cfg *config.Config) string {
	if cfg.TURN.PublicHost != "" {
		return cfg.TURN.PublicHost
	}
	if h, _, err := net.SplitHostPort(cfg.ServerName); err == nil {
		return h
	}
	return strings.Trim(cfg.ServerName, "[]")
}

// TURN is the built-in server, or nil when it does not run; for its Stats.
func (s *Service) TURN() *TURN { return s.turn }

// Reload applies next, a configuration in which restart-only settings keep their running
// values (see config.Apply): TTL, external secret, public host, peer policy and limits, the
// TLS certificate, and a rotated secret file.
func (s *Service) Reload(next *config.Config) {
	prev := s.cfg.Load()
	if s.keys != nil {
		rotated, err := s.keys.Reload(max(prev.TURN.TTL, next.TURN.TTL))
		switch {
		case err != nil:
			s.log.Error("TURN secret not reloaded; keeping the current one", "err", err)
		case rotated:
			s.log.Info("TURN secret rotated; credentials issued before stay valid until they expire")
		}
	}
	if s.turn != nil {
		if err := s.turn.Reload(next); err != nil {
			s.log.Error("TURN settings partly reloaded", "err", err)
		}
	}
	s.cfg.Store(next)
}

// Close stops the built-in TURN server, if it runs. It is safe to call twice.
func (s *Service) Close() error {
	if s.turn == nil {
		return nil
	}
	return s.turn.Close()
}
