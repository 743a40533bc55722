package httpapi_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"fyr/server/config"
	"fyr/server/servertest"
)

func mediaServer(t *testing.T, opts ...servertest.Option) (*servertest.Server, *mautrix.Client) {
	t.Helper()
	srv := servertest.Start(t, append([]servertest.Option{servertest.OpenRegistration, servertest.WithConfig(func(c *config.Config) {
		c.Media.UploadsPerSec = 0
	})}, opts...)...)
	return srv, srv.Register(t, "alice", "pw")
}

func download(t *testing.T, c *mautrix.Client, uri id.ContentURI, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", c.HomeserverURL.String()+"/_matrix/client/v1/media/download/"+uri.Homeserver+"/"+uri.FileID, nil)
	req.Header.Set("Authorization", "Bearer "+c.AccessToken)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestMediaUploadDownload(t *testing.T) {
	srv, alice := mediaServer(t)
	data := []byte("<html><script>alert(1)</script></html>")
	up, err := alice.UploadBytesWithName(ctx, data, "text/html", "page.html")
	if err != nil {
		t.Fatal(err)
	}
	if up.ContentURI.Homeserver != "localhost" || up.ContentURI.FileID == "" {
		t.Fatalf("content_uri = %v", up.ContentURI)
	}
	resp, body := download(t, alice, up.ContentURI)
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("download = %d %q", resp.StatusCode, body)
	}
	for k, want := range map[string]string{
		"Content-Type":                 "text/html",
		"Content-Disposition":          "attachment; filename=page.html",
		"Cross-Origin-Resource-Policy": "cross-origin",
		"X-Content-Type-Options":       "nosniff",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Security-Policy"), "sandbox;") {
		t.Errorf("Content-Security-Policy = %q", resp.Header.Get("Content-Security-Policy"))
	}

	// A safe type is inline; identical content is stored once.
	img, _ := alice.UploadBytesWithName(ctx, data, "image/png", "x.png")
	resp, _ = download(t, alice, img.ContentURI)
	if got := resp.Header.Get("Content-Disposition"); got != "inline; filename=x.png" {
		t.Errorf("png disposition = %q", got)
	}
	m1, _ := srv.DB.Media(ctx, "localhost", up.ContentURI.FileID)
	m2, _ := srv.DB.Media(ctx, "localhost", img.ContentURI.FileID)
	if !bytes.Equal(m1.SHA256, m2.SHA256) {
		t.Error("identical uploads have different content hashes")
	}

	// Range requests.
	resp, body = download(t, alice, up.ContentURI, "Range", "bytes=6-13")
	if resp.StatusCode != 206 || string(body) != "<script>" {
		t.Errorf("range = %d %q, want 206 <script>", resp.StatusCode, body)
	}

	// Authentication is required; unknown media is 404; legacy paths are frozen.
	status, _, _ := srv.Do(t, "GET", "/_matrix/client/v1/media/download/localhost/"+up.ContentURI.FileID, "", nil)
	if status != 401 {
		t.Errorf("download without a token = %d, want 401", status)
	}
	for _, path := range []string{
		"/_matrix/client/v1/media/download/localhost/nosuchmedia",
		"/_matrix/client/v1/media/download/localhost/bad.id",
		"/_matrix/client/v1/media/download/not_a_server.example/abc", // not a server name: nobody to ask
	} {
		if status, _, _ := srv.Do(t, "GET", path, alice.AccessToken, nil); status != 404 {
			t.Errorf("GET %s = %d, want 404", path, status)
		}
	}
	if status, _, _ := srv.Do(t, "GET", "/_matrix/media/v3/download/localhost/"+up.ContentURI.FileID, "", nil); status != 404 {
		t.Errorf("legacy unauthenticated download = %d, want 404 (frozen)", status)
	}
	cfg, err := alice.GetMediaConfig(ctx)
	if err != nil || cfg.UploadSize != config.DefaultMaxUploadBytes {
		t.Errorf("media config = %+v, %v", cfg, err)
	}
}

func TestMediaLegacyWhenEnabled(t *testing.T) {
	srv, alice := mediaServer(t, servertest.WithConfig(func(c *config.Config) { c.Media.Legacy = true }))
	up, _ := alice.UploadBytes(ctx, []byte("hello"), "text/plain")
	status, body, _ := srv.Do(t, "GET", "/_matrix/media/v3/download/localhost/"+up.ContentURI.FileID, "", nil)
	if status != 200 || string(body) != "hello" {
		t.Errorf("legacy download = %d %q", status, body)
	}
}

func TestMediaLimits(t *testing.T) {
	srv, alice := mediaServer(t, servertest.WithConfig(func(c *config.Config) {
		c.Media.MaxUploadBytes = 10_000
		c.Media.QuotaBytes = 25_000
		c.Media.MaxPending = 2
	}))
	big := make([]byte, 10_001)
	if _, err := alice.UploadBytes(ctx, big, "application/octet-stream"); !isErr(err, "M_TOO_LARGE", 413) {
		t.Errorf("upload over the limit (Content-Length): %v, want 413 M_TOO_LARGE", err)
	}
	// Without Content-Length the limit is enforced while streaming.
	req, _ := http.NewRequest("POST", srv.URL+"/_matrix/media/v3/upload", io.MultiReader(bytes.NewReader(big)))
	req.Header.Set("Authorization", "Bearer "+alice.AccessToken)
	req.ContentLength = -1
	if resp, err := http.DefaultClient.Do(req); err == nil {
		if resp.StatusCode != 413 {
			t.Errorf("chunked upload over the limit = %d, want 413", resp.StatusCode)
		}
		resp.Body.Close()
	}
	for i := range 2 {
		data := make([]byte, 10_000)
		rand.Read(data)
		if _, err := alice.UploadBytes(ctx, data, "application/octet-stream"); err != nil {
			t.Fatalf("upload %d within quota: %v", i, err)
		}
	}
	data := make([]byte, 6_000)
	rand.Read(data)
	if _, err := alice.UploadBytes(ctx, data, "application/octet-stream"); !isErr(err, "M_FORBIDDEN", 403) {
		t.Errorf("upload over quota: %v, want 403 M_FORBIDDEN", err)
	}
	if used, _, _ := srv.DB.MediaUsage(ctx, "alice", 0); used != 20_000 {
		t.Errorf("usage = %d after refused uploads, want 20000", used)
	}

	// Pending uploads are bounded.
	for range 2 {
		if _, err := alice.CreateMXC(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alice.CreateMXC(ctx); !isErr(err, "M_LIMIT_EXCEEDED", 429) {
		t.Errorf("third pending upload: %v, want 429 M_LIMIT_EXCEEDED", err)
	}
}

func TestMediaAsyncUpload(t *testing.T) {
	srv, alice := mediaServer(t)
	bob := srv.Register(t, "bob", "pw")
	created, err := alice.CreateMXC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if created.UnusedExpiresAt.IsZero() {
		t.Error("create gave no unused_expires_at")
	}
	uri := created.ContentURI
	// Not yet uploaded: a short wait ends in 504 M_NOT_YET_UPLOADED.
	status, body, _ := srv.Do(t, "GET", "/_matrix/client/v1/media/download/localhost/"+uri.FileID+"?timeout_ms=50", alice.AccessToken, nil)
	if status != 504 || !strings.Contains(string(body), "M_NOT_YET_UPLOADED") {
		t.Errorf("pending download = %d %s, want 504 M_NOT_YET_UPLOADED", status, body)
	}
	put := func(c *mautrix.Client, data string) (int, string) {
		s, b, _ := srv.Do(t, "PUT", "/_matrix/media/v3/upload/localhost/"+uri.FileID, c.AccessToken, strings.NewReader(data), "Content-Type", "text/plain")
		return s, string(b)
	}
	if s, b := put(bob, "intruder"); s != 403 {
		t.Errorf("upload to someone else's media ID = %d %s, want 403", s, b)
	}
	// A download waiting for the content gets it as soon as it arrives.
	got := make(chan string, 1)
	go func() {
		_, body, _ := srv.Do(t, "GET", "/_matrix/client/v1/media/download/localhost/"+uri.FileID+"?timeout_ms=10000", bob.AccessToken, nil)
		got <- string(body)
	}()
	if s, b := put(alice, "late content"); s != 200 {
		t.Fatalf("async upload = %d %s", s, b)
	}
	if b := <-got; b != "late content" {
		t.Errorf("waiting download got %q", b)
	}
	if s, b := put(alice, "again"); s != 409 || !strings.Contains(b, "M_CANNOT_OVERWRITE_MEDIA") {
		t.Errorf("second upload = %d %s, want 409 M_CANNOT_OVERWRITE_MEDIA", s, b)
	}
}

func testImage(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 128, 255})
		}
	}
	return img
}

func TestMediaThumbnails(t *testing.T) {
	srv, alice := mediaServer(t)
	src := testImage(1000, 500)
	var pngBuf, jpgBuf, gifBuf bytes.Buffer
	png.Encode(&pngBuf, src)
	jpeg.Encode(&jpgBuf, src, nil)
	gif.Encode(&gifBuf, src, nil)
	for _, tc := range []struct {
		name, ct string
		data     []byte
		wantCT   string
	}{
		{"png", "image/png", pngBuf.Bytes(), "image/png"},
		{"jpeg", "image/jpeg", jpgBuf.Bytes(), "image/jpeg"},
		{"gif", "image/gif", gifBuf.Bytes(), "image/png"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up, err := alice.UploadBytes(ctx, tc.data, tc.ct)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range []struct {
				w, h         int
				method       string
				wantW, wantH int
			}{
				{32, 32, "crop", 32, 32},
				{90, 90, "crop", 96, 96},
				{320, 240, "scale", 480, 240}, // covers 320x240, keeps 2:1
				{100, 100, "scale", 480, 240},
			} {
				resp, err := alice.DownloadThumbnail(ctx, up.ContentURI, q.h, q.w, mautrix.DownloadThumbnailExtra{Method: q.method})
				if err != nil {
					t.Fatalf("thumbnail %dx%d %s: %v", q.w, q.h, q.method, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if ct := resp.Header.Get("Content-Type"); ct != tc.wantCT {
					t.Errorf("thumbnail Content-Type = %q, want %q", ct, tc.wantCT)
				}
				cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
				if err != nil {
					t.Fatalf("thumbnail is not an image: %v", err)
				}
				if cfg.Width != q.wantW || cfg.Height != q.wantH {
					t.Errorf("%s %dx%d = %dx%d, want %dx%d", q.method, q.w, q.h, cfg.Width, cfg.Height, q.wantW, q.wantH)
				}
			}
		})
	}
	// Smaller than requested: the original comes back, never upscaled.
	var small bytes.Buffer
	png.Encode(&small, testImage(20, 10))
	up, _ := alice.UploadBytes(ctx, small.Bytes(), "image/png")
	resp, _ := alice.DownloadThumbnail(ctx, up.ContentURI, 600, 800, mautrix.DownloadThumbnailExtra{Method: "scale"})
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(b, small.Bytes()) {
		t.Error("a thumbnail larger than the original is not the original")
	}
	// Not an image, a decompression bomb, bad sizes.
	txt, _ := alice.UploadBytes(ctx, []byte("text"), "text/plain")
	if _, err := alice.DownloadThumbnail(ctx, txt.ContentURI, 32, 32); !isErr(err, "M_UNKNOWN", 400) {
		t.Errorf("thumbnail of text: %v, want 400", err)
	}
	bomb := pngHeaderClaiming(t, 100_000, 100_000)
	bu, _ := alice.UploadBytes(ctx, bomb, "image/png")
	if _, err := alice.DownloadThumbnail(ctx, bu.ContentURI, 32, 32); !isErr(err, "M_TOO_LARGE", 413) {
		t.Errorf("thumbnail of a 10-gigapixel PNG: %v, want 413 M_TOO_LARGE", err)
	}
	if _, err := alice.DownloadThumbnail(ctx, up.ContentURI, 0, 32); !isErr(err, "M_INVALID_PARAM", 400) {
		t.Errorf("thumbnail height 0: %v, want 400 M_INVALID_PARAM", err)
	}
	_ = srv
}

// pngHeaderClaiming makes a tiny PNG whose header claims w×h pixels.
func pngHeaderClaiming(t *testing.T, w, h int) []byte {
	var buf bytes.Buffer
	png.Encode(&buf, testImage(1, 1))
	b := buf.Bytes()
	// IHDR: type at 12–15, width and height at 16–23, CRC of type and data at 29–32.
	binary.BigEndian.PutUint32(b[16:], uint32(w))
	binary.BigEndian.PutUint32(b[20:], uint32(h))
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

// TestMediaLargeFile uploads and downloads 100 MB through the real HTTP stack, streamed both
// ways, and compares hashes.
func TestMediaLargeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 200 MB")
	}
	_, alice := mediaServer(t)
	const size = 100_000_000
	src := io.LimitReader(rand.Reader, size)
	h := sha256.New()
	up, err := alice.Upload(ctx, io.TeeReader(src, h), "application/octet-stream", size)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := alice.Download(ctx, up.ContentURI)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	if err != nil || n != size || !bytes.Equal(got.Sum(nil), h.Sum(nil)) {
		t.Errorf("downloaded %d bytes (err %v); hash matches: %v", n, err, bytes.Equal(got.Sum(nil), h.Sum(nil)))
	}
}

func TestPreviewURLEndpoint(t *testing.T) {
	srv, alice := mediaServer(t)
	path := "/_matrix/client/v1/media/preview_url?url=" + srv.URL + "/_matrix/client/versions"
	status, body, _ := srv.Do(t, "GET", path, alice.AccessToken, nil)
	if status != 404 || !strings.Contains(string(body), "M_UNRECOGNIZED") {
		t.Errorf("preview while disabled = %d %s, want 404 M_UNRECOGNIZED", status, body)
	}
	next := *srv.Config
	next.Media.URLPreviews = true
	srv.Reload(&next)
	status, body, _ = srv.Do(t, "GET", path, alice.AccessToken, nil)
	if status != 403 || !strings.Contains(string(body), "M_FORBIDDEN") {
		t.Errorf("preview of the server's own loopback address = %d %s, want 403 M_FORBIDDEN", status, body)
	}
}
