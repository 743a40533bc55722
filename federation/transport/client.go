package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"
)

// Errors of this package; callers test them with errors.Is.
var (
	// ErrInvalidServerName is mautrix's: the name does not match the spec's grammar.
	ErrInvalidServerName = federation.ErrInvalidServerName
	// ErrUnsendable means the request itself cannot be made (its body does not encode or
	// cannot be signed, e.g. an integer beyond canonical JSON's range): retrying won't help.
	ErrUnsendable = errors.New("transport: request cannot be sent")
	// ErrAddressRefused means a destination resolved to an address this server may not
	// contact (see Client.AllowAddr).
	ErrAddressRefused = errors.New("transport: destination address not allowed")
	// ErrResponseTooLarge: the response body exceeded Client.MaxResponseBytes.
	ErrResponseTooLarge = errors.New("transport: response too large")
	// ErrBadSignature: an X-Matrix signature does not verify.
	ErrBadSignature = errors.New("transport: bad X-Matrix signature")
	// ErrNoSigningKey: Do was called on a client made without a signing key.
	ErrNoSigningKey = errors.New("transport: client has no signing key")
)

// Client defaults. They are chosen so that a dead connection is noticed in seconds, not after
// the kernel's retransmission back-off of many minutes.
const (
	// DefaultDialTimeout bounds the TCP connect and TLS handshake to one address.
	DefaultDialTimeout = 5 * time.Second
	// DefaultFailingDialTimeout bounds connecting to a destination whose last request failed
	// at the connection: after a silent cut every SYN vanishes, and a short attempt followed
	// by a fresh one notices a healed link sooner than waiting for the kernel's retransmits.
	DefaultFailingDialTimeout = time.Second
	// DefaultRequestTimeout bounds a request whose context has no deadline.
	DefaultRequestTimeout = 60 * time.Second
	// DefaultIdleConnTimeout closes a connection unused for this long.
	DefaultIdleConnTimeout = 90 * time.Second
	// DefaultPingInterval: an HTTP/2 connection silent for this long is pinged …
	DefaultPingInterval = 5 * time.Second
	// DefaultPingTimeout: … and closed if the ping is not answered within this. It is
	// generous because on a slow link (256 kbit/s) a ping can queue behind a large upload.
	DefaultPingTimeout = 10 * time.Second
	// DefaultWriteTimeout closes a connection whose written data is not taken (HTTP/2) or
	// acknowledged (TCP_USER_TIMEOUT, Linux) for this long.
	DefaultWriteTimeout = 15 * time.Second
	// DefaultStallTimeout: a connection that has received nothing for this long is presumed
	// dead when the peer shows signs of life; see PeerAlive. A live HTTP/2 connection hears
	// at least a ping answer every DefaultPingInterval, so this must be longer than that.
	DefaultStallTimeout = 10 * time.Second
	// DefaultMaxResponseBytes bounds a response body.
	DefaultMaxResponseBytes = 64 << 20
	// DefaultMaxConnsPerDestination bounds the connections to one destination (HTTP/2 needs
	// only one; HTTP/1.1 peers get this many requests in parallel, the rest wait).
	DefaultMaxConnsPerDestination = 4
	// DefaultMaxIdleConnsPerDestination bounds the idle connections kept per destination.
	DefaultMaxIdleConnsPerDestination = 2

	// maxErrorBodyBytes bounds what is read of an error response.
	maxErrorBodyBytes = 64 << 10
)

// ResponseError is a non-2xx answer from a destination.
type ResponseError struct {
	Destination string
	Method      string
	Path        string
	StatusCode  int
	ErrCode     string        // the Matrix errcode, e.g. M_FORBIDDEN; empty if the body had none
	Message     string        // the body's "error"
	RetryAfter  time.Duration // from Retry-After or retry_after_ms; zero if not given
}

func (e *ResponseError) Error() string {
	msg := fmt.Sprintf("%s %s%s: status %d", e.Method, e.Destination, e.Path, e.StatusCode)
	if e.ErrCode != "" {
		msg += " " + e.ErrCode
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Client makes requests to other servers' federation APIs: it resolves their names, verifies
// their TLS certificates, signs requests with X-Matrix and decodes JSON answers.
//
// Each destination gets its own connection pool, bounded by MaxConnsPerDestination, so a slow
// or dead peer ties up only its own connections, and CloseIdle, Reconnect and PeerAlive can
// act on one peer. Connections speak HTTP/2 where the peer offers it, with pings that notice a
// dead link within PingInterval+PingTimeout.
//
// Create a Client with NewClient; the exported fields may be changed until the first request.
// A Client is safe for concurrent use.
type Client struct {
	Resolver *Resolver
	// RootCAs verifies peers' certificates. Nil: the system roots (which honour
	// SSL_CERT_FILE). NewClient copies the resolver's.
	RootCAs *x509.CertPool

	DialTimeout time.Duration
	// FailingDialTimeout replaces DialTimeout while the destination's last request failed
	// at the connection; zero means DialTimeout.
	FailingDialTimeout time.Duration
	RequestTimeout     time.Duration
	IdleConnTimeout    time.Duration
	PingInterval       time.Duration
	PingTimeout        time.Duration
	WriteTimeout       time.Duration
	StallTimeout       time.Duration

	// AllowAddr decides whether the client may connect to addr for destination. Nil allows
	// every address; Setup refuses non-public ones except for static peers.
	AllowAddr func(destination string, addr netip.Addr) bool

	MaxResponseBytes           int64
	MaxConnsPerDestination     int
	MaxIdleConnsPerDestination int
	UserAgent                  string

	origin string
	keyID  id.KeyID
	key    ed25519.PrivateKey

	mu    sync.Mutex
	dests map[string]*destination
}

// NewClient returns a client for the server named origin, signing with key (whose ID is
// keyID; a nil key allows only DoUnsigned) and resolving through resolver, with the Default…
// settings.
func NewClient(origin string, keyID id.KeyID, key ed25519.PrivateKey, resolver *Resolver) *Client {
	return &Client{
		Resolver:                   resolver,
		RootCAs:                    resolver.RootCAs,
		DialTimeout:                DefaultDialTimeout,
		FailingDialTimeout:         DefaultFailingDialTimeout,
		RequestTimeout:             DefaultRequestTimeout,
		IdleConnTimeout:            DefaultIdleConnTimeout,
		PingInterval:               DefaultPingInterval,
		PingTimeout:                DefaultPingTimeout,
		WriteTimeout:               DefaultWriteTimeout,
		StallTimeout:               DefaultStallTimeout,
		MaxResponseBytes:           DefaultMaxResponseBytes,
		MaxConnsPerDestination:     DefaultMaxConnsPerDestination,
		MaxIdleConnsPerDestination: DefaultMaxIdleConnsPerDestination,
		UserAgent:                  "Fyr",
		origin:                     origin,
		keyID:                      keyID,
		key:                        key,
		dests:                      map[string]*destination{},
	}
}

// Do sends a request signed with X-Matrix to destination's federation API and decodes the
// JSON answer into into (unless into is nil). path is everything from /_matrix on, with any
// query string, escaped as it should go on the wire. body is encoded with encoding/json; a nil
// body sends none, except that PUT and POST send {} as the spec requires.
//
// A non-2xx answer is a *ResponseError; a body over MaxResponseBytes is ErrResponseTooLarge;
// anything else (no route, timeout, bad certificate) is a connection error worth retrying.
func (c *Client) Do(ctx context.Context, destination, method, path string, body, into any) error {
	if c.key == nil {
		return ErrNoSigningKey
	}
	return c.do(ctx, destination, method, path, body, into, true)
}

// DoUnsigned is Do without the Authorization header, for the public key endpoints
// (/_matrix/key/v2/…) and the version endpoint.
func (c *Client) DoUnsigned(ctx context.Context, destination, method, path string, body, into any) error {
	return c.do(ctx, destination, method, path, body, into, false)
}

// GetJSON is an unsigned GET, the shape federation/keys' Getter asks for.
func (c *Client) GetJSON(ctx context.Context, destination, path string, into any) error {
	return c.DoUnsigned(ctx, destination, http.MethodGet, path, nil, into)
}

func (c *Client) do(ctx context.Context, destination, method, path string, body, into any, sign bool) error {
	if _, ok := ctx.Deadline(); !ok && c.RequestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.RequestTimeout)
		defer cancel()
	}
	resp, d, err := c.send(ctx, destination, method, path, body, sign)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.ContentLength > c.MaxResponseBytes {
		return fmt.Errorf("%s %s%s: %w: %d bytes, limit %d", method, destination, path, ErrResponseTooLarge, resp.ContentLength, c.MaxResponseBytes)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.MaxResponseBytes+1))
	if err != nil {
		d.setFailing()
		return fmt.Errorf("%s %s%s: read response: %w", method, destination, path, err)
	}
	if int64(len(b)) > c.MaxResponseBytes {
		return fmt.Errorf("%s %s%s: %w: over %d bytes", method, destination, path, ErrResponseTooLarge, c.MaxResponseBytes)
	}
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			return fmt.Errorf("%s %s%s: decode response: %w", method, destination, path, err)
		}
	}
	return nil
}

// send makes one request and returns the 2xx response whose body the caller reads and
// closes; any other status is a *ResponseError.
func (c *Client) send(ctx context.Context, destination, method, path string, body any, sign bool) (*http.Response, *destination, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, nil, fmt.Errorf("%s %s%s: %w: path must start with /", method, destination, path, ErrUnsendable)
	}
	var content json.RawMessage
	if body != nil {
		var err error
		if content, err = json.Marshal(body); err != nil {
			return nil, nil, fmt.Errorf("%s %s%s: %w: encode body: %v", method, destination, path, ErrUnsendable, err)
		}
	} else if method == http.MethodPut || method == http.MethodPost {
		content = json.RawMessage("{}")
	}
	res, err := c.Resolver.Resolve(ctx, destination)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s%s: %w", method, destination, path, err)
	}
	var reqBody io.Reader
	if content != nil {
		reqBody = bytes.NewReader(content)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+res.HostHeader+path, reqBody)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s%s: %w", method, destination, path, err)
	}
	if sign {
		// The signed URI is exactly what net/http puts on the request line.
		auth, err := SignRequest(c.key, c.keyID, c.origin, destination, method, req.URL.RequestURI(), content)
		if err != nil {
			return nil, nil, fmt.Errorf("%s %s%s: %w: sign: %v", method, destination, path, ErrUnsendable, err)
		}
		req.Header.Set("Authorization", auth.String())
	}
	if content != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", c.UserAgent)

	d, done := c.acquire(destination)
	resp, err := d.http.Do(req)
	done(err == nil || errors.Is(ctx.Err(), context.Canceled)) // the caller giving up says nothing about the link
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s%s: %w", method, destination, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, nil, responseError(destination, method, path, resp)
	}
	return resp, d, nil
}

// Stream sends a GET signed with X-Matrix to destination's federation API and returns the
// 2xx response for the caller to read as it arrives, such as media content (which may be far
// larger than MaxResponseBytes). The caller must close the body; nothing bounds its size, so
// the caller limits what it reads. RequestTimeout, if ctx has no deadline, bounds only the
// wait for the response headers: the body takes as long as ctx allows.
//
// Errors are as for Do.
func (c *Client) Stream(ctx context.Context, destination, path string) (*http.Response, error) {
	if c.key == nil {
		return nil, ErrNoSigningKey
	}
	ctx, cancel := context.WithCancel(ctx)
	if _, ok := ctx.Deadline(); !ok && c.RequestTimeout > 0 {
		t := time.AfterFunc(c.RequestTimeout, cancel)
		defer t.Stop()
	}
	resp, d, err := c.send(ctx, destination, http.MethodGet, path, nil, true)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &streamBody{ReadCloser: resp.Body, ctx: ctx, cancel: cancel, d: d}
	return resp, nil
}

// streamBody is a streamed response body: closing it ends the request's context, and a read
// that fails while nobody cancelled marks the connection as failing, as Do does.
type streamBody struct {
	io.ReadCloser
	ctx    context.Context
	cancel context.CancelFunc
	d      *destination
}

func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.ctx.Err() == nil {
		b.d.setFailing()
	}
	return n, err
}

func (b *streamBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// responseError reads a non-2xx answer.
func responseError(destination, method, path string, resp *http.Response) error {
	e := &ResponseError{Destination: destination, Method: method, Path: path, StatusCode: resp.StatusCode}
	var body struct {
		ErrCode      string `json:"errcode"`
		Error        string `json:"error"`
		RetryAfterMS int64  `json:"retry_after_ms"`
	}
	if b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes)); err == nil && json.Unmarshal(b, &body) == nil {
		e.ErrCode, e.Message = body.ErrCode, body.Error
		e.RetryAfter = time.Duration(body.RetryAfterMS) * time.Millisecond
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

// CloseIdle closes the idle connections to destination; the next request opens a fresh one.
// Connections carrying a request are left alone.
func (c *Client) CloseIdle(destination string) {
	if d := c.lookup(destination); d != nil {
		d.tr.CloseIdleConnections()
	}
}

// Reconnect closes every connection to destination, busy or idle, and ends the back-off of its
// name resolution, so the next request starts afresh. Requests in flight to destination fail
// with a connection error; callers retry them (federation transactions are idempotent by
// transaction ID).
func (c *Client) Reconnect(destination string) {
	if d := c.lookup(destination); d != nil {
		d.tr.CloseIdleConnections()
		d.closeAll()
	}
	c.Resolver.Expire(destination)
}

// PeerAlive is for when destination shows signs of life, such as a request from it. After a
// silent cut, TCP sits in retransmission back-off for minutes, so our old connections are
// probably dead even though the peer is back:
//
//   - if our last request to destination failed at the connection level, it calls Reconnect;
//   - otherwise it closes the connections that have received nothing for StallTimeout. A
//     live HTTP/2 connection receives at least a ping answer every PingInterval, so only
//     dead ones go, and requests on them fail at once and can be retried on a fresh one.
//     HTTP/1.1 has no pings: an idle one is closed (harmless), and so is one waiting longer
//     than StallTimeout for a slow answer (the price of not waiting for a dead one).
//
// It reports whether it closed anything.
func (c *Client) PeerAlive(destination string) bool {
	d := c.lookup(destination)
	if d == nil {
		return false
	}
	if d.isFailing() {
		c.Reconnect(destination)
		return true
	}
	return d.closeSilent(time.Now(), c.StallTimeout) > 0
}

// CloseIdleConnections closes the idle connections to every destination.
func (c *Client) CloseIdleConnections() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.dests {
		d.tr.CloseIdleConnections()
	}
}
