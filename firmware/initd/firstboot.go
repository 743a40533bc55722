package initd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"

	"fyr/firmware/mdns"
	"fyr/firmware/setup"
)

// SetupAddr is where the first-boot page listens: port 80 on every interface, so that
// http://fyr.local/ reaches it from the LAN.
const SetupAddr = ":80"

// firstBoot is the box's first boot (firmware/setup): while the homeserver has no admin, the
// console shows where to go and a claim code, and the setup page waits on the LAN for
// someone who can read it. The homeserver starts after, with the server name the page
// wrote into fyr.yaml.
type firstBoot struct {
	admins     setup.Admins
	configPath string
	dataDir    string
	// listen opens the page's listener (SetupAddr).
	listen func() (net.Listener, error)
	// console shows the banner. The claim code is a secret, so it goes to the console
	// only, never to the log ring.
	console io.Writer
	// lan gives the addresses for the banner and announces the page.
	lan *lan
	log *slog.Logger
}

// run serves the setup page until an admin exists, or ctx ends; it reports whether setup
// ran to the end. When the page cannot be served (the database is unreadable, port 80 is
// taken), it says why and returns false at once: the homeserver then starts as it would
// anywhere, printing a one-time registration token for the first admin.
func (f *firstBoot) run(ctx context.Context) bool {
	has, err := f.admins.HasAdmin(ctx)
	if err != nil {
		f.log.Error("cannot tell whether the homeserver has an admin; skipping the setup page", "err", err)
		return false
	}
	if has {
		return false
	}
	ln, err := f.listen()
	if err != nil {
		f.log.Error("the setup page cannot be served; the homeserver prints a one-time registration token instead", "err", err)
		return false
	}
	port := 80
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		port = a.Port
	}
	code := setup.NewClaimCode()
	page := &setup.Setup{ClaimCode: code, ConfigPath: f.configPath, DataDir: f.dataDir, Admins: f.admins, Log: f.log}
	f.lan.setServices(mdns.Service{Instance: "Fyr setup", Type: "_http._tcp", Port: uint16(port)})
	f.log.Info("no admin yet: serving the setup page; the claim code is on the console", "addr", ln.Addr().String())

	bctx, stopBanner := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		f.banners(bctx, code, port)
	}()
	res, err := page.Serve(ctx, ln)
	stopBanner()
	wg.Wait()
	if err != nil {
		return false // ctx ended
	}
	f.log.Info("setup done; starting the homeserver", "server_name", res.ServerName, "admin", res.Admin, "tls", res.TLSMode)
	return true
}

// banners prints the setup banner now and again whenever the box's address changes, until
// ctx ends.
func (f *firstBoot) banners(ctx context.Context, code string, port int) {
	for {
		addr, _, changed := f.lan.current()
		hostPort := func(h string) string {
			if port == 80 {
				return h
			}
			return net.JoinHostPort(h, fmt.Sprint(port))
		}
		urls := []string{"http://" + hostPort(f.lan.host+".local") + "/"}
		if addr.IsValid() {
			urls = append(urls, "http://"+hostPort(addr.Addr().String())+"/")
		}
		io.WriteString(f.console, setup.Banner(code, urls...))
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}
