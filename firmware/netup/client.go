package netup

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Conn carries DHCP messages on one interface, from client port 68 to server port 67.
type Conn interface {
	// Send sends b to the server port at to (255.255.255.255 to broadcast).
	Send(b []byte, to netip.Addr) error
	// Receive returns the next message for the client port, or ctx's error.
	Receive(ctx context.Context) ([]byte, error)
	Close() error
}

// DefaultTimeout is the first wait for an answer; it doubles with each retransmission.
const DefaultTimeout = 2 * time.Second

// DefaultAttempts is how many times a message is sent before the exchange gives up.
const DefaultAttempts = 4

// ErrNak means the server refused the address asked for.
var ErrNak = errors.New("dhcp: server answered DHCPNAK")

var broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// Client is a DHCPv4 client on one interface (RFC 2131). It is not safe for concurrent use.
type Client struct {
	Conn   Conn
	HWAddr net.HardwareAddr
	// Hostname is sent as option 12; empty sends none.
	Hostname string
	// Timeout and Attempts pace retransmissions (DefaultTimeout, DefaultAttempts).
	Timeout  time.Duration
	Attempts int
	// Now is the time source for lease times (time.Now).
	Now func() time.Time
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func newXID() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// request builds a client message of type t.
func (c *Client) request(t MessageType, xid uint32) *Message {
	m := &Message{
		Op:        opRequest,
		XID:       xid,
		Broadcast: true, // we have no address yet to receive a unicast answer on
		HWAddr:    c.HWAddr,
		Options: map[byte][]byte{
			optMessageType:  {byte(t)},
			optParamRequest: {optSubnetMask, optRouter, optDNS, optLeaseTime, optRenewalT1, optRebindingT2},
			optClientID:     append([]byte{1}, c.HWAddr...),
		},
	}
	if c.Hostname != "" {
		m.Options[optHostname] = []byte(c.Hostname)
	}
	return m
}

// Acquire gets a new lease: DISCOVER, take the first OFFER, REQUEST it, and wait for ACK.
func (c *Client) Acquire(ctx context.Context) (Lease, error) {
	xid := newXID()
	offer, err := c.exchange(ctx, c.request(Discover, xid), broadcast, Offer)
	if err != nil {
		return Lease{}, fmt.Errorf("discover: %w", err)
	}
	req := c.request(Request, xid)
	req.Options[optRequestedIP] = addrOption(offer.YourIP)
	if id := offer.ServerID(); id.IsValid() {
		req.Options[optServerID] = addrOption(id)
	}
	ack, err := c.exchange(ctx, req, broadcast, Ack)
	if err != nil {
		return Lease{}, fmt.Errorf("request %v: %w", offer.YourIP, err)
	}
	return leaseFrom(ack, c.now())
}

// Renew extends lease. In the renewing state (rebind false) it asks the server that granted
// it; in the rebinding state it broadcasts to any server (RFC 2131 §4.4.5).
func (c *Client) Renew(ctx context.Context, lease Lease, rebind bool) (Lease, error) {
	req := c.request(Request, newXID())
	req.ClientIP = lease.Addr.Addr()
	req.Broadcast = false
	to := broadcast
	if !rebind && lease.Server.IsValid() {
		to = lease.Server
	}
	ack, err := c.exchange(ctx, req, to, Ack)
	if err != nil {
		return Lease{}, fmt.Errorf("renew %v: %w", lease.Addr.Addr(), err)
	}
	return leaseFrom(ack, c.now())
}

// exchange sends m until an answer of type want with m's transaction ID arrives, or a NAK.
func (c *Client) exchange(ctx context.Context, m *Message, to netip.Addr, want MessageType) (*Message, error) {
	timeout, attempts := c.Timeout, c.Attempts
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	var lastErr error = context.DeadlineExceeded
	for range attempts {
		if err := c.Conn.Send(m.Marshal(), to); err != nil {
			return nil, fmt.Errorf("send %v: %w", m.Type(), err)
		}
		ans, err := c.await(ctx, m.XID, want, timeout)
		switch {
		case err == nil:
			return ans, nil
		case errors.Is(err, ErrNak), ctx.Err() != nil:
			return nil, err
		}
		lastErr = err
		timeout *= 2
	}
	return nil, fmt.Errorf("no %v after %d tries: %w", want, attempts, lastErr)
}

// await reads answers for one transmission.
func (c *Client) await(ctx context.Context, xid uint32, want MessageType, timeout time.Duration) (*Message, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		b, err := c.Conn.Receive(ctx)
		if err != nil {
			return nil, err
		}
		ans, err := ParseMessage(b)
		if err != nil || ans.Op != opReply || ans.XID != xid || !bytesEqual(ans.HWAddr, c.HWAddr) {
			continue // someone else's, or garbage
		}
		switch ans.Type() {
		case want:
			return ans, nil
		case Nak:
			return nil, ErrNak
		}
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }
