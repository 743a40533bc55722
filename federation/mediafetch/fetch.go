// Package mediafetch downloads media from the server named in an mxc:// URI, for this
// server's content repository (it implements server/media's Remote): the authenticated
// federation endpoint first, the deprecated /_matrix/media one for servers that predate it.
//
// It is not for caching or limits, which server/media applies to what Fetch streams, nor for
// serving our media to others (federation/inbound).
//
// See https://spec.matrix.org/v1.19/server-server-api/#content-repository
package mediafetch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"maunium.net/go/mautrix/federation"

	"fyr/federation/transport"
	"fyr/server/media"
	"fyr/server/netpolicy"
)

// Defaults for a Fetcher.
const (
	// DefaultAnswerGrace is how much longer than the wait it asks of the remote (timeout_ms)
	// a Fetch waits for the remote to start answering.
	DefaultAnswerGrace = 15 * time.Second
	// DefaultIdleTimeout abandons a download that has received nothing for this long.
	DefaultIdleTimeout = 30 * time.Second
	// DefaultMaxDuration bounds a whole download, however steadily it trickles in. It is
	// long because a box on a 256 kbit/s link needs about an hour for 100 MiB.
	DefaultMaxDuration = 2 * time.Hour
	// DefaultMaxRedirects bounds the HTTP redirects followed from a Location part.
	DefaultMaxRedirects = 5
)

// Fetcher fetches remote media. Create it with New; the exported fields may be changed until
// the first Fetch. It is safe for concurrent use.
type Fetcher struct {
	Client *transport.Client
	// AllowAddr says which addresses a Location part (and its redirects) may lead to, checked
	// on the address actually dialled. New allows public addresses only unless allowPrivate.
	AllowAddr   func(netip.Addr) bool
	AnswerGrace time.Duration
	IdleTimeout time.Duration
	MaxDuration time.Duration
	// MaxRedirects bounds the redirects followed from a Location part.
	MaxRedirects int

	// web fetches Location URLs: plain HTTP(S), no federation signature, no proxy.
	web *http.Client
}

var _ media.Remote = (*Fetcher)(nil)

// New returns a fetcher that asks other servers through c. Unless allowPrivate
// (federation.allow_private_addresses), a Location part may only lead to public addresses.
func New(c *transport.Client, allowPrivate bool) *Fetcher {
	f := &Fetcher{Client: c, AllowAddr: netpolicy.Public, AnswerGrace: DefaultAnswerGrace,
		IdleTimeout: DefaultIdleTimeout, MaxDuration: DefaultMaxDuration, MaxRedirects: DefaultMaxRedirects}
	if allowPrivate {
		f.AllowAddr = func(netip.Addr) bool { return true }
	}
	dialer := &net.Dialer{Timeout: transport.DefaultDialTimeout,
		Control: netpolicy.DialControl(func(a netip.Addr) bool { return f.AllowAddr(a) })}
	f.web = &http.Client{
		Transport: &http.Transport{
			DialContext:         dialer.DialContext,
			TLSClientConfig:     &tls.Config{RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     transport.DefaultIdleConnTimeout,
			// No Proxy: a proxy would dial the address for us, past AllowAddr.
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > f.MaxRedirects {
				return fmt.Errorf("more than %d redirects", f.MaxRedirects)
			}
			if req.URL.Scheme != "https" && req.URL.Scheme != "http" {
				return fmt.Errorf("redirect to a %s URL", req.URL.Scheme)
			}
			return nil
		},
	}
	return f
}

// Fetch streams origin's item mediaID, asking origin to wait up to wait for content not
// yet uploaded. The content is the second part of the federation endpoint's answer, fetched
// from its Location if it has one; a remote that does not know the endpoint (404 or 405
// M_UNRECOGNIZED, or older servers' bodiless 404 and 400 M_UNRECOGNIZED, as Synapse tells
// them apart) is asked on /_matrix/media/v3/download with allow_remote=false.
//
// The remote must start answering within wait plus AnswerGrace, and the body must keep
// arriving (IdleTimeout) and be complete within MaxDuration; otherwise Fetch, or a Read of
// the body, fails with media.ErrRemoteTimeout. The errors are media.Remote's.
func (f *Fetcher) Fetch(ctx context.Context, origin, mediaID string, wait time.Duration) (*media.RemoteContent, error) {
	if _, _, ok := federation.ParseServerName(origin); !ok || !media.ValidMediaID(mediaID) {
		return nil, media.ErrNotFound
	}
	ctx, cancelTotal := context.WithTimeoutCause(ctx, f.MaxDuration, media.ErrRemoteTimeout)
	ctx, cancel := context.WithCancelCause(ctx)
	dog := time.AfterFunc(wait+f.AnswerGrace, func() { cancel(media.ErrRemoteTimeout) })
	stop := func() {
		dog.Stop()
		cancel(nil)
		cancelTotal()
	}
	rc, err := f.fetch(ctx, origin, mediaID, wait)
	if err != nil {
		err = classify(ctx, err)
		stop()
		return nil, err
	}
	dog.Reset(f.IdleTimeout)
	rc.Body = &watchedBody{ReadCloser: rc.Body, ctx: ctx, dog: dog, idle: f.IdleTimeout, stop: stop}
	return rc, nil
}

// fetch tries the federation endpoint, then the legacy one if the remote does not know it.
func (f *Fetcher) fetch(ctx context.Context, origin, mediaID string, wait time.Duration) (*media.RemoteContent, error) {
	timeout := strconv.FormatInt(wait.Milliseconds(), 10)
	resp, err := f.Client.Stream(ctx, origin, "/_matrix/federation/v1/media/download/"+url.PathEscape(mediaID)+"?timeout_ms="+timeout)
	if unknownEndpoint(err) {
		return f.fetchLegacy(ctx, origin, mediaID, timeout)
	}
	if err != nil {
		return nil, err
	}
	mp, err := ParseMultipart(resp.Header.Get("Content-Type"), resp.Body)
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	if mp.Location == "" {
		return &media.RemoteContent{Body: &readCloser{Reader: mp.Content, Closer: resp.Body}, ContentType: mp.ContentType, Filename: mp.Filename}, nil
	}
	resp.Body.Close()
	return f.fetchLocation(ctx, mp)
}

// fetchLegacy is GET /_matrix/media/v3/download/{origin}/{mediaID}: the content is the body.
// allow_remote=false keeps the remote from asking another server in turn.
func (f *Fetcher) fetchLegacy(ctx context.Context, origin, mediaID, timeout string) (*media.RemoteContent, error) {
	resp, err := f.Client.Stream(ctx, origin, "/_matrix/media/v3/download/"+url.PathEscape(origin)+"/"+url.PathEscape(mediaID)+
		"?allow_remote=false&timeout_ms="+timeout)
	if err != nil {
		return nil, err
	}
	return &media.RemoteContent{Body: resp.Body, ContentType: resp.Header.Get("Content-Type"),
		Filename: Filename(resp.Header.Get("Content-Disposition"))}, nil
}

// fetchLocation follows a Location part with a plain GET. The URL is used once, never
// cached, as the spec asks.
func (f *Fetcher) fetchLocation(ctx context.Context, mp *Multipart) (*media.RemoteContent, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, mp.Location, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: Location: %v", ErrMalformed, err)
	}
	req.Header.Set("User-Agent", f.Client.UserAgent)
	resp, err := f.web.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET Location %s: %w", req.URL.Redacted(), err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		resp.Body.Close()
		return nil, fmt.Errorf("GET Location %s: status %d", req.URL.Redacted(), resp.StatusCode)
	}
	rc := &media.RemoteContent{Body: resp.Body, ContentType: resp.Header.Get("Content-Type"),
		Filename: Filename(resp.Header.Get("Content-Disposition"))}
	if rc.ContentType == "" {
		rc.ContentType = mp.ContentType
	}
	if rc.Filename == "" {
		rc.Filename = mp.Filename
	}
	return rc, nil
}

// unknownEndpoint reports whether err is a remote's way of saying it does not know the
// endpoint: 404 or 405 with M_UNRECOGNIZED or without a Matrix error (older Dendrite and
// Conduit), or 400 M_UNRECOGNIZED (older Synapse) or without a Matrix error (a server whose
// router took the path for something else). Falling back costs one request that carries
// allow_remote=false, so a wrong guess does no harm.
func unknownEndpoint(err error) bool {
	var re *transport.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	switch re.StatusCode {
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusBadRequest:
		return re.ErrCode == "" || re.ErrCode == "M_UNRECOGNIZED"
	}
	return false
}

// classify turns a failed fetch into media.Remote's errors.
func classify(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(context.Cause(ctx), media.ErrRemoteTimeout) {
		return fmt.Errorf("%w: %v", media.ErrRemoteTimeout, err)
	}
	if errors.Is(err, transport.ErrInvalidServerName) {
		return media.ErrNotFound
	}
	var re *transport.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.StatusCode == http.StatusNotFound:
			return fmt.Errorf("%w: %v", media.ErrNotFound, err)
		case re.StatusCode == http.StatusGatewayTimeout && re.ErrCode == "M_NOT_YET_UPLOADED":
			return fmt.Errorf("%w: %v", media.ErrNotYetUploaded, err)
		case re.ErrCode == "M_TOO_LARGE":
			return fmt.Errorf("%w: %v", media.ErrRemoteTooLarge, err)
		}
	}
	return err
}

// watchedBody is a download's body: every read that brings data pushes the idle deadline
// back, a read cut short by a deadline says so, and Close releases the request.
type watchedBody struct {
	io.ReadCloser
	ctx  context.Context
	dog  *time.Timer
	idle time.Duration
	stop func()
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.dog.Reset(b.idle)
	}
	if err != nil && err != io.EOF && b.ctx.Err() != nil && errors.Is(context.Cause(b.ctx), media.ErrRemoteTimeout) {
		err = fmt.Errorf("%w: %v", media.ErrRemoteTimeout, err)
	}
	return n, err
}

func (b *watchedBody) Close() error {
	err := b.ReadCloser.Close()
	b.stop()
	return err
}

// readCloser reads one thing and closes another.
type readCloser struct {
	io.Reader
	io.Closer
}
