package transport

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
)

// .well-known/matrix/server caching, as the spec recommends: respect Cache-Control within
// bounds, default to a day, cache errors for up to an hour with exponential back-off.
const (
	DefaultWellKnownTTL = 24 * time.Hour
	MinWellKnownTTL     = 5 * time.Minute
	MaxWellKnownTTL     = 48 * time.Hour
	// MinWellKnownBackoff is how long a first failure is cached; each further failure in a
	// row doubles it, up to MaxWellKnownBackoff.
	MinWellKnownBackoff = 2 * time.Minute
	MaxWellKnownBackoff = time.Hour
	// WellKnownTimeout bounds one fetch, redirects included.
	WellKnownTimeout = 10 * time.Second
	// MaxWellKnownBytes bounds the response body.
	MaxWellKnownBytes = mautrix.WellKnownMaxSize
	// MaxWellKnownRedirects bounds the redirects followed, which also ends redirect loops.
	MaxWellKnownRedirects = 5
)

// wellKnownEntry is what is known about one host's .well-known.
type wellKnownEntry struct {
	server   string    // delegated server name; "" for none
	next     time.Time // fetch again at or after this
	failures int       // failed fetches in a row
}

// wellKnownAnswerError is a .well-known the host did answer, but with no usable delegation:
// a non-200 status, a body that is too large or not the schema, a bad redirect. Unlike a
// network failure it replaces an earlier answer.
type wellKnownAnswerError struct{ msg string }

func (e *wellKnownAnswerError) Error() string { return e.msg }

func answerError(format string, args ...any) error {
	return &wellKnownAnswerError{msg: fmt.Sprintf(format, args...)}
}

// wellKnown returns host's delegated server name ("" for none) and until when that holds,
// fetching https://host/.well-known/matrix/server when the cached answer has expired.
//
// A failed fetch is cached with back-off. If the host answered (a 404, bad JSON …) there is no
// delegation; if it could not be reached at all, an earlier delegation stays in use: during an
// outage the last good answer beats the fall-back to SRV and port 8448.
func (r *Resolver) wellKnown(ctx context.Context, host string) (string, time.Time) {
	r.mu.Lock()
	if e := r.wellKnowns[host]; e != nil && r.Now().Before(e.next) {
		r.mu.Unlock()
		return e.server, e.next
	}
	r.mu.Unlock()

	server, ttl, err := r.fetchWellKnown(ctx, host)

	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.wellKnowns[host]
	if e == nil {
		e = &wellKnownEntry{}
		r.wellKnowns[host] = e
	}
	now := r.Now()
	switch {
	case ctx.Err() != nil:
		return e.server, now // our caller gave up; that says nothing about the host
	case err == nil:
		e.server, e.failures, e.next = server, 0, now.Add(ttl)
	default:
		e.failures++
		var answer *wellKnownAnswerError
		if errors.As(err, &answer) {
			e.server = ""
		}
		e.next = now.Add(wellKnownBackoff(e.failures))
		r.Log.Debug("no .well-known delegation", "host", host, "failures", e.failures, "kept", e.server, "retry_at", e.next, "err", err)
	}
	return e.server, e.next
}

// wellKnownBackoff is how long the n-th failure in a row is cached.
func wellKnownBackoff(n int) time.Duration {
	d := MinWellKnownBackoff
	for i := 1; i < n && d < MaxWellKnownBackoff; i++ {
		d *= 2
	}
	return min(d, MaxWellKnownBackoff)
}

// fetchWellKnown does one GET of https://host/.well-known/matrix/server and returns m.server
// and how long to cache it. Errors the host answered with are *wellKnownAnswerError.
func (r *Resolver) fetchWellKnown(ctx context.Context, host string) (string, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, WellKnownTimeout)
	defer cancel()
	u := (&url.URL{Scheme: "https", Host: host, Path: "/.well-known/matrix/server"}).String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", 0, answerError("well-known %s: %v", u, err)
	}
	resp, err := r.wkClient.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("well-known: %w", err) // *url.Error names the URL
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", 0, answerError("well-known %s: status %d", u, resp.StatusCode)
	}
	if resp.ContentLength > MaxWellKnownBytes {
		return "", 0, answerError("well-known %s: %d bytes, more than %d", u, resp.ContentLength, MaxWellKnownBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxWellKnownBytes+1))
	if err != nil {
		return "", 0, fmt.Errorf("well-known %s: read: %w", u, err)
	}
	if len(body) > MaxWellKnownBytes {
		return "", 0, answerError("well-known %s: more than %d bytes", u, MaxWellKnownBytes)
	}
	// The Content-Type is not checked: the spec says to assume JSON whatever it says.
	var wk federation.RespWellKnown
	if err := json.Unmarshal(body, &wk); err != nil {
		return "", 0, answerError("well-known %s: %v", u, err)
	}
	if _, _, ok := federation.ParseServerName(wk.Server); !ok {
		return "", 0, answerError("well-known %s: m.server %q is not a server name", u, wk.Server)
	}
	return wk.Server, wellKnownTTL(resp.Header), nil
}

// wellKnownTTL reads Cache-Control's max-age (less Age) within MinWellKnownTTL and
// MaxWellKnownTTL; no-store and no-cache give the minimum, and no max-age the default.
func wellKnownTTL(h http.Header) time.Duration {
	ttl := DefaultWellKnownTTL
	maxAge := false
	for _, directive := range strings.Split(strings.Join(h.Values("Cache-Control"), ","), ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			return MinWellKnownTTL
		case "max-age":
			if n, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64); err == nil && n >= 0 {
				ttl, maxAge = time.Duration(min(n, int64(MaxWellKnownTTL/time.Second)))*time.Second, true
			}
		}
	}
	if age, err := strconv.ParseInt(h.Get("Age"), 10, 64); maxAge && err == nil && age > 0 {
		ttl -= time.Duration(min(age, int64(MaxWellKnownTTL/time.Second))) * time.Second
	}
	return min(max(ttl, MinWellKnownTTL), MaxWellKnownTTL)
}

// checkWellKnownRedirect follows at most MaxWellKnownRedirects HTTPS redirects and never the
// same URL twice.
func checkWellKnownRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= MaxWellKnownRedirects {
		return answerError("more than %d redirects", MaxWellKnownRedirects)
	}
	if req.URL.Scheme != "https" {
		return answerError("redirect to non-HTTPS %s", req.URL.Redacted())
	}
	for _, prev := range via {
		if prev.URL.String() == req.URL.String() {
			return answerError("redirect loop at %s", req.URL.Redacted())
		}
	}
	return nil
}

// defaultWellKnownTransport fetches over HTTPS, finding hosts through r.LookupIP and verifying
// them against r.RootCAs.
func (r *Resolver) defaultWellKnownTransport() *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			ips, err := r.LookupIP(ctx, host)
			if err != nil {
				return nil, err
			}
			var errs []error
			for _, ip := range ips {
				if a, ok := netip.AddrFromSlice(ip); r.AllowAddr != nil && (!ok || !r.AllowAddr(host, a.Unmap())) {
					errs = append(errs, fmt.Errorf("%w: %s resolves to %s", ErrAddressRefused, host, ip))
					continue
				}
				d := net.Dialer{Timeout: DefaultDialTimeout}
				conn, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
				if err == nil {
					return conn, nil
				}
				errs = append(errs, err)
			}
			return nil, errors.Join(errs...)
		},
		TLSClientConfig:       &tls.Config{RootCAs: r.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   DefaultDialTimeout,
		ResponseHeaderTimeout: WellKnownTimeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   1,
		IdleConnTimeout:       30 * time.Second,
	}
}
