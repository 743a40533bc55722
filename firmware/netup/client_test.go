package netup

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

var testMAC = net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}

func TestAcquire(t *testing.T) {
	srv := newServer()
	conn := newConn(srv)
	// Another client's OFFER arrives first; it must be ignored.
	other := &Message{Op: opReply, XID: 1, HWAddr: net.HardwareAddr{1, 2, 3, 4, 5, 6}, YourIP: netip.MustParseAddr("10.0.2.99"),
		Options: map[byte][]byte{optMessageType: {byte(Offer)}}}
	conn.noise = other.Marshal()
	c := &Client{Conn: conn, HWAddr: testMAC}
	lease, err := c.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParsePrefix("10.0.2.15/24"); lease.Addr != want {
		t.Errorf("lease address %v, want %v", lease.Addr, want)
	}
	if lease.Router != serverID || lease.Server != serverID || lease.Duration != 100*time.Second {
		t.Errorf("lease = %+v", lease)
	}
	want := []string{"DHCPDISCOVER to 255.255.255.255", "DHCPREQUEST to 255.255.255.255"}
	if got := srv.received(); !reflect.DeepEqual(got, want) {
		t.Errorf("client sent %q, want %q", got, want)
	}
}

func TestRequestCarriesOffer(t *testing.T) {
	srv := newServer()
	var req *Message
	conn := &recordingConn{fakeConn: newConn(srv), onSend: func(m *Message) {
		if m.Type() == Request {
			req = m
		}
	}}
	c := &Client{Conn: conn, HWAddr: testMAC, Hostname: "fyr"}
	if _, err := c.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := req.addr(optRequestedIP); got != srv.addr.Addr() {
		t.Errorf("REQUEST asks for %v, want the offered %v", got, srv.addr.Addr())
	}
	if got := req.ServerID(); got != serverID {
		t.Errorf("REQUEST names server %v, want %v", got, serverID)
	}
	if !req.Broadcast || string(req.Options[optHostname]) != "fyr" {
		t.Errorf("REQUEST broadcast=%v hostname=%q", req.Broadcast, req.Options[optHostname])
	}
}

type recordingConn struct {
	*fakeConn
	onSend func(*Message)
}

func (c *recordingConn) Send(b []byte, to netip.Addr) error {
	m, _ := ParseMessage(b)
	c.onSend(m)
	return c.fakeConn.Send(b, to)
}

func TestAcquireRefusedOrUnanswered(t *testing.T) {
	srv := newServer()
	srv.nak = true
	c := &Client{Conn: newConn(srv), HWAddr: testMAC}
	if _, err := c.Acquire(context.Background()); !errors.Is(err, ErrNak) {
		t.Errorf("Acquire with a refusing server = %v, want ErrNak", err)
	}

	srv = newServer()
	srv.silent = true
	c = &Client{Conn: newConn(srv), HWAddr: testMAC, Timeout: time.Millisecond, Attempts: 3}
	if _, err := c.Acquire(context.Background()); err == nil {
		t.Fatal("Acquire with no server succeeded")
	}
	if got := len(srv.received()); got != 3 {
		t.Errorf("DISCOVER sent %d times, want 3 (Attempts)", got)
	}
}

func TestRenewUnicastsRebindBroadcasts(t *testing.T) {
	srv := newServer()
	c := &Client{Conn: newConn(srv), HWAddr: testMAC}
	lease, err := c.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Renew(context.Background(), lease, false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Renew(context.Background(), lease, true); err != nil {
		t.Fatal(err)
	}
	got := srv.received()[2:]
	want := []string{"DHCPREQUEST to 10.0.2.2", "DHCPREQUEST to 255.255.255.255"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("renew then rebind sent %q, want %q", got, want)
	}
}
