package media_test

import (
	"errors"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"fyr/server/media"
)

func TestPreview(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<html><head><title>Fallback</title>
			<meta property="og:title" content="Fyr &amp; friends">
			<meta property="og:description" content="A lighthouse">
			<meta property="og:image" content="/logo.png"></head><body>hi</body></html>`)
	})
	mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<title> Just a title </title>`)
	})
	mux.HandleFunc("/logo.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		png.Encode(w, image.NewRGBA(image.Rect(0, 0, 4, 4)))
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://10.0.0.1/secret", http.StatusFound)
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()

	s := newService(t, t.TempDir(), media.Limits{})
	if _, err := s.Preview(ctx, ts.URL+"/page"); !errors.Is(err, media.ErrPreviewBlocked) {
		t.Fatalf("preview of a loopback URL by default: %v, want ErrPreviewBlocked", err)
	}
	s.AllowLoopbackPreviews()
	got, err := s.Preview(ctx, ts.URL+"/page")
	if err != nil {
		t.Fatal(err)
	}
	if got["og:title"] != "Fyr & friends" || got["og:description"] != "A lighthouse" {
		t.Errorf("preview = %v", got)
	}
	if img, _ := got["og:image"].(string); !strings.HasPrefix(img, "mxc://example.org/") {
		t.Errorf("og:image = %v, want an mxc:// URI of the stored image", got["og:image"])
	}
	if got, _ := s.Preview(ctx, ts.URL+"/plain"); got["og:title"] != "Just a title" {
		t.Errorf("title fallback = %v", got)
	}
	if _, err := s.Preview(ctx, ts.URL+"/elsewhere"); !errors.Is(err, media.ErrPreviewBlocked) {
		t.Errorf("redirect to a private address: %v, want ErrPreviewBlocked", err)
	}
	for _, bad := range []string{"ftp://example.org/", "file:///etc/passwd", "not a url", "http://"} {
		if _, err := s.Preview(ctx, bad); !errors.Is(err, media.ErrPreviewURL) {
			t.Errorf("Preview(%q) = %v, want ErrPreviewURL", bad, err)
		}
	}
}
