package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/html"

	"fyr/server/netpolicy"
)

// URL previews fetch a page the user is about to link to and return its OpenGraph data. The
// fetch is the server reaching out on a user's behalf, so it is fenced: only http and https,
// only public addresses (checked on the address actually dialled, so DNS tricks and redirects
// to an internal host are refused), bounded in time and size.
const (
	previewTimeout   = 10 * time.Second
	previewMaxBytes  = 1 << 20
	previewMaxImage  = 5 << 20
	previewCacheTTL  = time.Hour
	previewCacheSize = 1000
	previewRedirects = 5
)

// Preview errors.
var (
	ErrPreviewBlocked = errors.New("media: URL previews may not reach that address")
	ErrPreviewFetch   = errors.New("media: could not fetch the page to preview")
	ErrPreviewURL     = errors.New("media: not an http or https URL")
)

type previewEntry struct {
	data    map[string]any
	expires time.Time
}

type previewer struct {
	client        *http.Client
	allowLoopback bool // tests only
	mu            sync.Mutex
	cache         map[string]previewEntry
}

func newPreviewer() *previewer {
	p := &previewer{cache: map[string]previewEntry{}}
	dialer := &net.Dialer{Timeout: previewTimeout, Control: p.checkDial}
	p.client = &http.Client{
		Timeout: previewTimeout,
		Transport: &http.Transport{
			Proxy:                 nil, // a proxy would dial for us, bypassing the address check
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   previewTimeout,
			ResponseHeaderTimeout: previewTimeout,
			MaxIdleConns:          4,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= previewRedirects {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return ErrPreviewURL
			}
			return nil
		},
	}
	return p
}

// checkDial refuses every address that is not public unicast.
func (p *previewer) checkDial(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return ErrPreviewBlocked
	}
	if !netpolicy.Public(ap.Addr()) && !(p.allowLoopback && ap.Addr().Unmap().IsLoopback()) {
		return fmt.Errorf("%w: %s", ErrPreviewBlocked, ap.Addr())
	}
	return nil
}

// Preview returns OpenGraph data for a URL: og:title, og:description, og:image (stored here
// and given as an mxc:// URI) and so on, with the page's <title> as og:title if it has none.
func (s *Service) Preview(ctx context.Context, rawURL string) (map[string]any, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, ErrPreviewURL
	}
	u.Fragment = ""
	key := u.String()
	p := s.preview
	now := s.now()
	p.mu.Lock()
	if e, ok := p.cache[key]; ok && now.Before(e.expires) {
		p.mu.Unlock()
		return e.data, nil
	}
	p.mu.Unlock()

	body, ctype, err := p.fetch(ctx, key, previewMaxBytes)
	if err != nil {
		return nil, err
	}
	data := map[string]any{}
	if strings.HasPrefix(ctype, "text/html") || strings.HasPrefix(ctype, "application/xhtml") {
		data = openGraph(body)
	}
	if img, ok := data["og:image"].(string); ok {
		delete(data, "og:image")
		if iu, err := u.Parse(img); err == nil && (iu.Scheme == "http" || iu.Scheme == "https") {
			if uri, size, ok := s.previewImage(ctx, p, iu.String()); ok {
				data["og:image"] = uri
				data["matrix:image:size"] = size
			}
		}
	}
	p.mu.Lock()
	if len(p.cache) >= previewCacheSize {
		for k, e := range p.cache {
			if now.After(e.expires) || len(p.cache) >= previewCacheSize {
				delete(p.cache, k)
			}
		}
	}
	p.cache[key] = previewEntry{data: data, expires: now.Add(previewCacheTTL)}
	p.mu.Unlock()
	return data, nil
}

// previewImage downloads a page's image and stores it as media with no owner.
func (s *Service) previewImage(ctx context.Context, p *previewer, imgURL string) (string, int, bool) {
	body, ctype, err := p.fetch(ctx, imgURL, previewMaxImage)
	if err != nil || !strings.HasPrefix(ctype, "image/") {
		return "", 0, false
	}
	uri, err := s.Upload(ctx, Upload{ContentType: ctype, Body: bytes.NewReader(body)})
	if err != nil {
		return "", 0, false
	}
	return uri.String(), len(body), true
}

func (p *previewer) fetch(ctx context.Context, target string, limit int64) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", target, nil)
	if err != nil {
		return nil, "", ErrPreviewURL
	}
	req.Header.Set("User-Agent", "Fyr URL preview (Matrix homeserver)")
	resp, err := p.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrPreviewBlocked) {
			return nil, "", ErrPreviewBlocked
		}
		return nil, "", fmt.Errorf("%w: %v", ErrPreviewFetch, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, "", fmt.Errorf("%w: status %d", ErrPreviewFetch, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrPreviewFetch, err)
	}
	return body, strings.ToLower(resp.Header.Get("Content-Type")), nil
}

// openGraph extracts og:* meta properties, and <title> as a fallback for og:title.
func openGraph(page []byte) map[string]any {
	out := map[string]any{}
	var title string
	z := html.NewTokenizer(bytes.NewReader(page))
	inTitle := false
	for {
		switch z.Next() {
		case html.ErrorToken:
			if _, ok := out["og:title"]; !ok && title != "" {
				out["og:title"] = strings.TrimSpace(title)
			}
			return out
		case html.StartTagToken, html.SelfClosingTagToken:
			t := z.Token()
			switch t.Data {
			case "meta":
				var prop, content string
				for _, a := range t.Attr {
					switch a.Key {
					case "property", "name":
						prop = a.Val
					case "content":
						content = a.Val
					}
				}
				if strings.HasPrefix(prop, "og:") && len(out) < 50 && len(content) <= 2000 {
					if _, dup := out[prop]; !dup {
						out[prop] = content
					}
				}
			case "title":
				inTitle = true
			}
		case html.TextToken:
			if inTitle && len(title) < 500 {
				title += string(z.Text())
			}
		case html.EndTagToken:
			if z.Token().Data == "title" {
				inTitle = false
			}
		}
	}
}
