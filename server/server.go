// Package server wires the parts of one running homeserver together: storage, the engines,
// the client and federation listeners. `fyr serve` and the integration tests
// (server/servertest) both start a homeserver through it, so tests run what operators run.
//
// It is not for configuration parsing or signals: cmd/fyr owns those and hands over a
// validated *config.Config.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"fyr/federation/inbound"
	"fyr/federation/keys"
	"fyr/federation/mediafetch"
	"fyr/federation/outbound"
	"fyr/federation/transport"
	"fyr/server/accounts"
	"fyr/server/config"
	"fyr/server/ephemeral"
	"fyr/server/httpapi"
	e2ee "fyr/server/keys"
	"fyr/server/media"
	"fyr/server/notices"
	"fyr/server/push"
	"fyr/server/reports"
	"fyr/server/rooms"
	syncapi "fyr/server/sync"
	"fyr/server/userdata"
	"fyr/server/userdir"
	"fyr/server/voip"
	"fyr/storage"
	"fyr/storage/atomicfile"
)

// Files Fyr creates in the data directory on first start.
const (
	SigningKeyFile = "signing.key"
	OldKeysFile    = "old_signing.keys" // retired signing keys' public halves, written by fyr keygen
	FedCertFile    = "federation.crt"
	FedKeyFile     = "federation.key"
	TURNSecretFile = "turn.secret"
	MediaDir       = "media"
)

// ShutdownTimeout bounds how long in-flight requests may take to finish on shutdown.
const ShutdownTimeout = 20 * time.Second

// Version is what GET /_matrix/federation/v1/version reports; cmd/fyr may set it to its build
// version before New.
var Version = "dev"

// Server is one homeserver. Create it with New, then Run it; Run closes everything it opened.
type Server struct {
	cfg        *config.Config
	log        *slog.Logger
	DB         *storage.DB
	Accounts   *accounts.Service
	Media      *media.Service
	VoIP       *voip.Service
	Rooms      *rooms.Engine
	UserData   *userdata.Service
	E2EE       *e2ee.Engine
	Sync       *syncapi.Engine
	Push       *push.Service
	Notices    *notices.Service
	api        *httpapi.API
	SigningKey *keys.SigningKey
	Keys       *keys.Ring        // this server's keys and the cache of remote servers' keys
	FedClient  *transport.Client // requests to other servers' federation APIs
	Outbound   *outbound.Queue   // durable delivery of PDUs and EDUs to other servers
	// Ephemeral holds typing notifications and receipts; Reports and Directory serve
	// content reports and the user directory.
	Ephemeral *ephemeral.Service
	Reports   *reports.Service
	Directory *userdir.Service
	// ephemeralEDUs sends local typing and receipts to other servers (ephemeral_edus.go).
	ephemeralEDUs *ephemeralEDUs
	// Inbound answers transactions from other servers; the rooms engine sets its PDUs field.
	Inbound    *inbound.Transactions
	verifier   *transport.Verifier
	fedHandler http.Handler
	fedCerts   *transport.CertStore
	clientCert *transport.CertStore // nil: plain HTTP

	clientLn, fedLn net.Listener
	// AdminToken is the one-time registration token printed at start while the server has
	// no admin; empty once an admin exists.
	AdminToken string

	// MediaFetcher downloads other servers' media for Media.
	MediaFetcher *mediafetch.Fetcher

	mu sync.Mutex // guards cfg on Reload
}

// New prepares a server: it creates the data directory and its secrets on first start,
// opens and migrates the database and binds both listeners, so that on return the
// addresses are known and clients can connect as soon as Run starts.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (s *Server, err error) {
	s = &Server{cfg: cfg, log: log}
	self := s // s is nil by the time a failing return runs the deferred cleanup
	defer func() {
		if err != nil {
			self.closeAll()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if err := s.loadSecrets(); err != nil {
		return nil, err
	}
	s.DB, err = storage.Open(ctx, cfg.DatabasePath(), storage.Options{ReadConns: cfg.Database.ReadConns})
	if err != nil {
		return nil, err
	}
	if err := s.DB.BindServerName(ctx, cfg.ServerName); err != nil {
		return nil, err
	}
	oldKeys, err := keys.LoadOldKeys(filepath.Join(cfg.DataDir, OldKeysFile))
	if err != nil {
		return nil, err
	}
	if s.FedClient, err = transport.Setup(cfg.ServerName, s.SigningKey.ID, s.SigningKey.Private,
		cfg.Federation.StaticPeers, cfg.Federation.CAFile, cfg.Federation.AllowPrivate, log); err != nil {
		return nil, fmt.Errorf("federation client: %w", err)
	}
	s.Outbound = outbound.New(s.DB, outbound.TransportSender(s.FedClient, cfg.ServerName, time.Now), log, outbound.Options{})
	s.Keys = keys.NewRing(s.DB, keys.NewLocal(cfg.ServerName, s.SigningKey, oldKeys),
		keys.Options{Getter: s.FedClient, Notaries: keys.ParseNotaries(cfg.Federation.TrustedKeyServers), Log: log})
	s.Inbound = &inbound.Transactions{DB: s.DB, Log: log}
	s.verifier = transport.NewVerifier(cfg.ServerName, s.Keys)
	s.verifier.Log = log
	// Any authenticated request from a server is a sign of life: deliver what waits for it now,
	// on a fresh connection if the old one went quiet.
	s.verifier.Authenticated = func(origin string) {
		s.Outbound.PeerAlive(origin)
		s.FedClient.PeerAlive(origin)
	}
	s.Accounts = accounts.New(s.DB, cfg.ServerName)
	s.Accounts.SetRemoteProfile(s.remoteProfile)
	s.Accounts.OnProfileChange(func(u id.UserID) { go s.Rooms.ProfileChanged(context.Background(), u) })
	if s.AdminToken, err = s.Accounts.AdminBootstrapToken(ctx); err != nil {
		return nil, fmt.Errorf("admin bootstrap token: %w", err)
	}
	s.Media, err = media.New(s.DB, filepath.Join(cfg.DataDir, MediaDir), cfg.ServerName, mediaLimits(cfg), log)
	if err != nil {
		return nil, err
	}
	s.MediaFetcher = mediafetch.New(s.FedClient, cfg.Federation.AllowPrivate)
	s.Media.SetRemote(s.MediaFetcher)
	turnOpts := voip.Options{Certificate: s.fedCerts.GetCertificate, Log: log,
		UserActive: func(u id.UserID) bool { return s.Accounts.Active(context.Background(), u) }}
	if s.VoIP, err = voip.Start(cfg, filepath.Join(cfg.DataDir, TURNSecretFile), turnOpts); err != nil {
		return nil, err
	}
	s.Rooms = rooms.New(s.DB, rooms.Options{ServerName: cfg.ServerName, Key: s.SigningKey, Log: log,
		Profile: s.memberProfile, KeyFunc: s.Keys.KeyFunc(ctx)})
	s.Rooms.SetOutbox(outbox{s.Outbound})
	s.Rooms.SetFederation(fedRemote{s.FedClient}, nil)
	s.Inbound.PDUs = s.Rooms
	s.Inbound.EDUs = s.eduHandlers()
	s.UserData = userdata.New(s.DB, cfg.ServerName, userdata.Options{DisablePresence: !cfg.Presence.Enabled})
	s.UserData.OnPresence = func(u id.UserID) { go s.sendPresence(context.Background(), u) }
	s.Ephemeral = ephemeral.New(s.DB, s.Rooms, ephemeral.Options{Log: log})
	s.Ephemeral.OnTyping = s.onTyping
	s.Ephemeral.OnReceipt = s.onReceipt
	s.Ephemeral.SetRoomAccountData(s.UserData.SetServerAccountData)
	s.wireEphemeralEDUs()
	s.Notices = notices.New(s.DB, s.Accounts, s.Rooms, s.UserData, notices.Options{Localpart: cfg.Notices.Localpart,
		DisplayName: cfg.Notices.DisplayName, RoomName: cfg.Notices.RoomName, Log: log})
	s.Rooms.SetRejectGuard(s.Notices.RejectGuard)
	s.Reports = reports.New(s.DB, s.Rooms, cfg.ServerName)
	s.Directory = userdir.New(s.DB)
	s.E2EE = e2ee.New(s.DB, e2ee.Options{ServerName: cfg.ServerName, Log: log})
	s.E2EE.SetRemote(fedKeys{s.FedClient})
	s.E2EE.SetOutbox(outbox{s.Outbound})
	s.Push = push.New(s.DB, s.Rooms, push.Options{Log: log, Gateway: push.GatewayOptions{AllowPrivate: cfg.Push.AllowPrivate},
		Ignored: s.UserData.IgnoredUsers})
	s.Rooms.SetEventHook(s.Push)
	s.Sync = syncapi.New(s.DB, s.Rooms, s.syncOptions(cfg, log))
	s.Push.Notify = func(u id.UserID) { s.Sync.Notifier().Notify(u) }
	s.Rooms.SetListener(s.Sync.Notifier())
	s.UserData.Notify = func(u id.UserID, _ int64) { s.Sync.Notifier().Notify(u) }
	s.E2EE.SetListener(e2eeWaker{s.Sync.Notifier()})
	s.api = httpapi.New(httpapi.Engines{Accounts: s.Accounts, Media: s.Media, VoIP: s.VoIP, Rooms: s.Rooms,
		UserData: s.UserData, Ephemeral: s.Ephemeral, Reports: s.Reports, Directory: s.Directory, E2EE: s.E2EE,
		Sync: s.Sync, Push: s.Push, Notices: s.Notices}, cfg, log)
	// The client listener serves the federation paths too, as Synapse's does, so that one
	// reverse-proxy upstream can carry both; they are signed requests or public keys.
	s.fedHandler = httpapi.Routed(s.federationMux())
	s.api.Mount("/_matrix/federation/", s.fedHandler)
	s.api.Mount("/_matrix/key/", s.fedHandler)
	if s.clientLn, err = net.Listen("tcp", cfg.Client.Addr); err != nil {
		return nil, fmt.Errorf("client listener (client.addr): %w", err)
	}
	if s.fedLn, err = net.Listen("tcp", cfg.Federation.Addr); err != nil {
		return nil, fmt.Errorf("federation listener (federation.addr): %w", err)
	}
	return s, nil
}

// loadSecrets creates or loads the signing key, TLS material and TURN secret.
func (s *Server) loadSecrets() error {
	cfg := s.cfg
	var created bool
	var err error
	if s.SigningKey, created, err = keys.LoadOrCreate(filepath.Join(cfg.DataDir, SigningKeyFile)); err != nil {
		return err
	}
	if created {
		s.log.Info("created signing key", "key_id", s.SigningKey.ID)
	}
	certPath, keyPath := fedCertFiles(cfg)
	if cfg.Federation.TLSCert == "" {
		if created, err = transport.EnsureCertificate(certPath, keyPath, cfg.ServerName, cfg.Federation.TLSCACert, cfg.Federation.TLSCAKey); err != nil {
			return fmt.Errorf("federation TLS certificate: %w", err)
		}
		if created {
			s.log.Info("created federation TLS certificate", "file", certPath, "ca_signed", cfg.Federation.TLSCACert != "")
		}
	}
	if s.fedCerts, err = transport.NewCertStore(certPath, keyPath); err != nil {
		return err
	}
	if cfg.Client.TLSCert != "" {
		if s.clientCert, err = transport.NewCertStore(cfg.Client.TLSCert, cfg.Client.TLSKey); err != nil {
			return fmt.Errorf("client TLS: %w", err)
		}
	}
	// The secret exists from the first start, even with TURN off, so that credentials stay
	// stable across upgrades; voip reads it and handles rotation.
	_, err = loadOrCreateSecret(filepath.Join(cfg.DataDir, TURNSecretFile))
	return err
}

// localProfile answers other servers' profile queries.
func (s *Server) localProfile(ctx context.Context, userID id.UserID) (map[string]json.RawMessage, bool, error) {
	p, err := s.Accounts.Profile(ctx, userID)
	if errors.Is(err, accounts.ErrNotFound) {
		return nil, false, nil
	}
	return p, err == nil, err
}

// memberProfile is the display name and avatar a local user's membership events carry.
func (s *Server) memberProfile(ctx context.Context, u id.UserID) (name, avatar string) {
	p, err := s.Accounts.Profile(ctx, u)
	if err != nil {
		return "", ""
	}
	json.Unmarshal(p["displayname"], &name)
	json.Unmarshal(p["avatar_url"], &avatar)
	return name, avatar
}

// outbox hands the rooms engine's PDUs to the durable federation queue.
type outbox struct{ q *outbound.Queue }

func (o outbox) EnqueuePDU(tx *storage.Tx, destinations []string, pdu []byte) error {
	now := time.Now().UnixMilli()
	for _, d := range destinations {
		if err := tx.EnqueueOutbound(d, storage.OutboundPDU, pdu, now, 0); err != nil {
			return err
		}
	}
	return nil
}

func (o outbox) Notify(destinations []string) {
	for _, d := range destinations {
		o.q.Notify(d)
	}
}

// openIDUser resolves an OpenID token for another service.
func (s *Server) openIDUser(ctx context.Context, token string) (id.UserID, bool, error) {
	u, err := s.Accounts.OpenIDUser(ctx, token)
	if errors.Is(err, accounts.ErrUnknownToken) {
		return "", false, nil
	}
	return u, err == nil, err
}

// remoteProfile asks a user's server for their profile.
func (s *Server) remoteProfile(ctx context.Context, userID id.UserID) (map[string]json.RawMessage, error) {
	_, server, _ := userID.Parse()
	var p map[string]json.RawMessage
	err := s.FedClient.Do(ctx, server, "GET", "/_matrix/federation/v1/query/profile?user_id="+url.QueryEscape(string(userID)), nil, &p)
	var re *transport.ResponseError
	switch {
	case err == nil:
		return p, nil
	case errors.As(err, &re) && re.StatusCode == http.StatusNotFound:
		return nil, accounts.ErrNotFound
	case errors.As(err, &re) && re.StatusCode == http.StatusForbidden:
		return nil, accounts.ErrForbidden
	default:
		return nil, fmt.Errorf("%w: %v", accounts.ErrRemoteUnavailable, err)
	}
}

// mediaLimits are the content repository's limits from the configuration.
func mediaLimits(cfg *config.Config) media.Limits {
	return media.Limits{
		MaxUploadBytes:     cfg.Media.MaxUploadBytes,
		QuotaBytes:         cfg.Media.QuotaBytes,
		MaxPending:         cfg.Media.MaxPending,
		MaxThumbnailPixels: cfg.Media.MaxThumbPixels,
	}
}

// fedCertFiles are the federation certificate and key: configured, or generated ones in the
// data directory.
func fedCertFiles(cfg *config.Config) (cert, key string) {
	if cfg.Federation.TLSCert != "" {
		return cfg.Federation.TLSCert, cfg.Federation.TLSKey
	}
	return filepath.Join(cfg.DataDir, FedCertFile), filepath.Join(cfg.DataDir, FedKeyFile)
}

// loadOrCreateSecret reads a secret file, creating it with 256 random bits if missing.
func loadOrCreateSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) == 0 {
			return "", fmt.Errorf("secret file %s is empty; delete it to generate a new one", path)
		}
		return string(b), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	secret := accounts.NewSecret()
	return secret, atomicfile.WriteFile(path, []byte(secret), 0o600)
}

// ClientURL is the base URL of the client API, e.g. http://127.0.0.1:8008.
func (s *Server) ClientURL() string {
	scheme := "http"
	if s.clientCert != nil {
		scheme = "https"
	}
	return scheme + "://" + s.clientLn.Addr().String()
}

// FederationAddr is the address the federation listener is bound to.
func (s *Server) FederationAddr() net.Addr { return s.fedLn.Addr() }

// Reload applies a new configuration: the settings marked reloadable take effect at once;
// the others are logged as needing a restart and keep their running values.
func (s *Server) Reload(next *config.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	live, restart := config.Diff(s.cfg, next)
	for _, k := range restart {
		s.log.Warn("setting changed; it takes effect after a restart", "setting", k)
	}
	next = config.Apply(s.cfg, next)
	s.api.Reload(next)
	s.Media.SetLimits(mediaLimits(next))
	s.VoIP.Reload(next)
	s.UserData.SetPresenceEnabled(next.Presence.Enabled)
	s.Push.SetAllowPrivate(next.Push.AllowPrivate)
	s.Keys.SetNotaries(keys.ParseNotaries(next.Federation.TrustedKeyServers))
	if err := s.fedCerts.Reload(fedCertFiles(next)); err != nil {
		s.log.Error("federation TLS certificate not reloaded; keeping the old one", "err", err)
	}
	switch {
	case s.clientCert != nil && next.Client.TLSCert != "":
		if err := s.clientCert.Reload(next.Client.TLSCert, next.Client.TLSKey); err != nil {
			s.log.Error("client TLS certificate not reloaded; keeping the old one", "err", err)
		}
	case (s.clientCert != nil) != (next.Client.TLSCert != ""):
		s.log.Warn("switching the client API between HTTP and HTTPS takes effect after a restart")
	}
	s.cfg = next
	s.log.Info("configuration reloaded", "changed", live)
}

// Run serves until ctx ends, then shuts down in reverse order of start: listeners first
// (in-flight requests finish, up to ShutdownTimeout), storage last (queued writes flush).
func (s *Server) Run(ctx context.Context) error {
	errLog := slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	client := &http.Server{Handler: s.api.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: errLog}
	fed := &http.Server{Handler: s.fedHandler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		TLSConfig: s.fedCerts.TLSConfig(), ErrorLog: errLog}

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	serve := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s listener: %w", name, err)
			}
		}()
	}
	if s.clientCert != nil {
		client.TLSConfig = s.clientCert.TLSConfig()
		serve("client", func() error { return client.Serve(tls.NewListener(s.clientLn, client.TLSConfig)) })
	} else {
		serve("client", func() error { return client.Serve(s.clientLn) })
	}
	serve("federation", func() error { return fed.Serve(tls.NewListener(s.fedLn, fed.TLSConfig)) })
	// Long-polling syncs answer at once when shutdown starts, instead of holding it up.
	client.RegisterOnShutdown(s.Sync.Close)
	bg, stopBG := context.WithCancel(context.Background())
	wg.Add(3)
	go func() { defer wg.Done(); s.api.Run(bg) }()
	go func() { defer wg.Done(); s.Media.Run(bg) }()
	wg.Add(1)
	go func() { defer wg.Done(); s.Inbound.Run(bg) }()
	wg.Add(1)
	go func() { defer wg.Done(); s.Ephemeral.Run(bg) }()
	wg.Add(1)
	go func() { defer wg.Done(); s.ephemeralEDUs.run(bg) }()
	wg.Add(1)
	go func() { defer wg.Done(); s.Push.Run(bg) }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Outbound.Run(bg); err != nil {
			s.log.Error("outbound federation stopped", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := s.Accounts.Run(bg); err != nil {
			s.log.Error("recording device last-seen times", "err", err)
		}
	}()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := errors.Join(client.Shutdown(shutdownCtx), fed.Shutdown(shutdownCtx), s.VoIP.Close())
	stopBG()
	wg.Wait()
	return errors.Join(runErr, err, s.DB.Close())
}

// closeAll releases what New opened when New fails part way.
func (s *Server) closeAll() {
	if s.clientLn != nil {
		s.clientLn.Close()
	}
	if s.fedLn != nil {
		s.fedLn.Close()
	}
	if s.VoIP != nil {
		s.VoIP.Close()
	}
	if s.DB != nil {
		s.DB.Close()
	}
}

// federationMux routes the federation listener: each part of the server-server API adds
// its routes here. It is not served on the client listener.
func (s *Server) federationMux() *http.ServeMux {
	mux := http.NewServeMux()
	s.Keys.Routes(mux)
	mux.Handle("GET /_matrix/federation/v1/version", transport.VersionHandler(Version))
	mux.Handle("PUT /_matrix/federation/v1/send/{txnID}", s.verifier.Authenticate(s.Inbound))
	(&inbound.Rooms{Engine: s.Rooms, Log: s.log, UserExists: func(u id.UserID) bool {
		_, err := s.Accounts.Profile(context.Background(), u)
		return err == nil
	}}).Routes(mux, s.verifier.Authenticate)
	(&inbound.Keys{Engine: s.E2EE, Log: s.log}).Routes(mux, s.verifier.Authenticate)
	(&inbound.Media{Repo: s.Media, ServerName: s.cfg.ServerName, Log: s.log}).Routes(mux, s.verifier.Authenticate)
	mux.Handle("GET /_matrix/federation/v1/openid/userinfo", &inbound.OpenIDUserInfo{Lookup: s.openIDUser})
	mux.Handle("GET /_matrix/federation/v1/query/profile", s.verifier.Authenticate(&inbound.ProfileQuery{
		ServerName: s.cfg.ServerName, Profiles: s.localProfile}))
	return mux
}
