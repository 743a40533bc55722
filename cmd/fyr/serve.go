package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"fyr/server"
	"fyr/server/config"
)

// runServe is `fyr serve`: load the configuration, start the server, reload on SIGHUP or a
// saved config file, shut down gracefully on SIGINT/SIGTERM and at once on a second one.
func runServe(ctx context.Context, args []string) error {
	environ := os.Environ()
	cfg, file, err := config.Load(args, environ)
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	level.Set(cfg.SlogLevel())
	log := newLogger(os.Stderr, cfg.Log.Format, level)

	server.Version = version
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	box, err := applianceBoot(ctx, cfg, log)
	if err != nil {
		return err
	}
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	if box != nil {
		srv.SetUpdater(boxUpdater{box})
	}
	log.Info("Fyr started", "version", version, "server_name", cfg.ServerName, "config", file,
		"client_api", srv.ClientURL(), "federation", srv.FederationAddr().String())
	printSignIn(os.Stdout, cfg, srv)

	reload := func(why string) {
		log.Info("reloading configuration", "trigger", why)
		next, _, err := config.Load(args, environ)
		if err != nil {
			log.Error("configuration not reloaded; keeping the running one", "trigger", why, "err", err)
			return
		}
		level.Set(next.SlogLevel())
		srv.Reload(next)
	}
	go func() {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload("SIGHUP")
			}
		}
	}()
	go func() {
		if err := config.Watch(ctx, file, func() { reload("file changed") }); err != nil {
			log.Warn("not watching the configuration file; SIGHUP still reloads", "file", file, "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		stop() // a second signal now kills the process at once
	}()
	return srv.Run(ctx)
}

func newLogger(w io.Writer, format string, level *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// printSignIn tells a newcomer how to get in.
func printSignIn(w io.Writer, cfg *config.Config, srv *server.Server) {
	if srv.AdminToken == "" {
		fmt.Fprintf(w, "\nFyr is serving %s at %s\n\n", cfg.ServerName, srv.ClientURL())
		return
	}
	fmt.Fprintf(w, `
  Fyr is serving %[1]s at %[2]s

  No admin account exists yet. Create one with this one-time registration token:

      %[3]s

  In Element (or any Matrix client): choose "Create account", set the homeserver to
  %[2]s, and enter the token when asked. Or from a shell:

      curl -X POST %[2]s/_matrix/client/v3/register -H 'Content-Type: application/json' \
        -d '{"username":"admin","password":"CHOOSE-ONE","auth":{"type":"m.login.registration_token","token":"%[3]s"}}'

  The token works once and makes that account the server admin. A new one is printed at
  every start until an admin exists. Other people need a token too, unless you start with
  --open-registration; or create accounts with: fyr user add NAME

`, cfg.ServerName, srv.ClientURL(), srv.AdminToken)
}
