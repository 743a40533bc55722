package initd

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"fyr/firmware/mdns"
	"fyr/server/config"
)

// responders records the responders a lan runs.
type responders struct {
	started chan *mdns.Responder
	stopped chan *mdns.Responder
}

func fakeLAN(t *testing.T) (*lan, *responders) {
	l := newLAN("fyr", discard())
	r := &responders{started: make(chan *mdns.Responder, 10), stopped: make(chan *mdns.Responder, 10)}
	l.respond = func(ctx context.Context, rs *mdns.Responder) error {
		r.started <- rs
		<-ctx.Done()
		r.stopped <- rs
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l, r
}

func (r *responders) next(t *testing.T, ch chan *mdns.Responder, what string) *mdns.Responder {
	t.Helper()
	select {
	case rs := <-ch:
		return rs
	case <-time.After(10 * time.Second):
		t.Fatalf("no responder %s", what)
		return nil
	}
}

func TestLANAnnouncesEachNewAddress(t *testing.T) {
	l, r := fakeLAN(t)
	l.setServices(mdns.Service{Instance: "Fyr setup", Type: "_http._tcp", Port: 80})
	select {
	case <-r.started:
		t.Fatal("a responder started before the box had an address")
	case <-time.After(50 * time.Millisecond):
	}

	l.setAddr("eth0", netip.MustParsePrefix("169.254.10.20/16"))
	first := r.next(t, r.started, "started for the first address")
	if first.Host != "fyr" || len(first.Services) != 1 || first.Services[0].Port != 80 {
		t.Errorf("the first responder announces %q with %+v", first.Host, first.Services)
	}
	l.setAddr("eth0", netip.MustParsePrefix("169.254.10.20/16")) // a renewal: no change
	l.setAddr("eth0", netip.MustParsePrefix("192.168.1.23/24"))  // DHCP answered at last
	if got := r.next(t, r.stopped, "stopped for the new address"); got != first {
		t.Error("the wrong responder stopped")
	}
	second := r.next(t, r.started, "started for the new address")

	cfg := config.Default()
	cfg.ServerName, cfg.Client.Addr = "chat.example.org", "0.0.0.0:8008"
	l.setServices(homeserverServices(cfg)...)
	r.next(t, r.stopped, "stopped for the new services")
	third := r.next(t, r.started, "started for the new services")
	if third == second || len(third.Services) != 2 {
		t.Fatalf("after the homeserver's services, the responder announces %+v", third.Services)
	}
	m := third.Services[0]
	if m.Type != "_matrix._tcp" || m.Port != 8008 || !slices.Equal(m.Text, []string{"server_name=chat.example.org"}) || third.Services[1].Type != "_http._tcp" {
		t.Errorf("homeserver services = %+v", third.Services)
	}
	cfg.Client.TLSCert = "/data/federation.crt"
	if got := homeserverServices(cfg)[1].Type; got != "_https._tcp" {
		t.Errorf("with TLS on the client port, the web service is %s, want _https._tcp", got)
	}
}
