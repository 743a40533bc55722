package media_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fyr/server/media"
)

// fakeRemote serves items by media ID: "missing" is not found, "pending" not yet uploaded,
// "slow" times out, "broken" fails, "cut" breaks off mid-body; anything else is body. If gate
// is set, each fetch waits for it to close before answering.
type fakeRemote struct {
	calls atomic.Int32
	body  string
	gate  chan struct{}
	// started receives one value per fetch that began.
	started chan struct{}
}

func (f *fakeRemote) Fetch(ctx context.Context, origin, mediaID string, wait time.Duration) (*media.RemoteContent, error) {
	f.calls.Add(1)
	if f.started != nil {
		f.started <- struct{}{}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, fmt.Errorf("fetch %s: %w", mediaID, ctx.Err())
		}
	}
	switch mediaID {
	case "missing":
		return nil, media.ErrNotFound
	case "pending":
		return nil, media.ErrNotYetUploaded
	case "slow":
		return nil, fmt.Errorf("GET 10.0.0.7:8448: %w", media.ErrRemoteTimeout)
	case "broken":
		return nil, errors.New("GET 10.0.0.7:8448: connection refused")
	case "cut":
		return &media.RemoteContent{Body: io.NopCloser(io.MultiReader(strings.NewReader("half"), errReader{})), ContentType: "text/plain"}, nil
	}
	return &media.RemoteContent{Body: io.NopCloser(strings.NewReader(f.body)), ContentType: "text/plain", Filename: "r.txt"}, nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestRemoteMediaIsFetchedOnceAndCached(t *testing.T) {
	s := newService(t, t.TempDir(), media.Limits{MaxUploadBytes: 1024})
	if _, err := s.Open(ctx, "other.example", "abc", 0); !errors.Is(err, media.ErrNotFound) {
		t.Fatalf("remote media without federation: %v, want ErrNotFound", err)
	}
	r := &fakeRemote{body: "from afar"}
	s.SetRemote(r)
	for range 2 {
		c, err := s.Open(ctx, "other.example", "abc", 0)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(c.File)
		c.File.Close()
		if string(b) != "from afar" || c.Meta.Filename != "r.txt" {
			t.Errorf("remote content = %q (%+v)", b, c.Meta)
		}
	}
	if n := r.calls.Load(); n != 1 {
		t.Errorf("fetched %d times, want once then from the cache", n)
	}
	r.body = strings.Repeat("x", 2000)
	if _, err := s.Open(ctx, "other.example", "big", 0); !errors.Is(err, media.ErrRemoteTooLarge) {
		t.Errorf("oversized remote media: %v, want ErrRemoteTooLarge", err)
	}
}

// TestRemoteMediaErrors: each way a remote can fail reaches the requester as one of the
// package's errors, without the remote's details, and nothing half-received is cached.
func TestRemoteMediaErrors(t *testing.T) {
	s := newService(t, t.TempDir(), media.Limits{MaxUploadBytes: 1024})
	r := &fakeRemote{body: "ok"}
	s.SetRemote(r)
	for _, tt := range []struct {
		mediaID string
		want    error
	}{
		{"missing", media.ErrNotFound},
		{"pending", media.ErrNotYetUploaded},
		{"slow", media.ErrRemoteTimeout},
		{"broken", media.ErrRemoteFailed},
		{"cut", media.ErrRemoteFailed},
	} {
		_, err := s.Open(ctx, "other.example", tt.mediaID, 0)
		if !errors.Is(err, tt.want) {
			t.Errorf("Open(%s) = %v, want %v", tt.mediaID, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "10.0.0.7") {
			t.Errorf("Open(%s) = %q: the remote's details reach the client", tt.mediaID, err)
		}
	}
	// Failures are not cached: each request asks again.
	before := r.calls.Load()
	s.Open(ctx, "other.example", "cut", 0)
	if r.calls.Load() != before+1 {
		t.Error("a failed download was not retried on the next request")
	}
	if _, err := s.Thumbnail(ctx, media.ThumbnailRequest{Origin: "other.example", MediaID: "missing", Width: 32, Height: 32, Method: media.MethodCrop}); !errors.Is(err, media.ErrNotFound) {
		t.Errorf("thumbnail of missing remote media: %v, want ErrNotFound", err)
	}
}

// TestRemoteMediaConcurrentRequestsShareOneDownload: many requests for one item while it
// downloads cause one fetch; all get the content, or all the same error.
func TestRemoteMediaConcurrentRequestsShareOneDownload(t *testing.T) {
	s := newService(t, t.TempDir(), media.Limits{MaxUploadBytes: 1024})
	for _, tt := range []struct {
		mediaID string
		want    error
	}{
		{"shared", nil},
		{"missing", media.ErrNotFound},
	} {
		r := &fakeRemote{body: "one download", gate: make(chan struct{}), started: make(chan struct{}, 10)}
		s.SetRemote(r)
		const n = 8
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				c, err := s.Open(ctx, "other.example", tt.mediaID, 0)
				if err == nil {
					b, _ := io.ReadAll(c.File)
					c.File.Close()
					if string(b) != "one download" {
						err = fmt.Errorf("content %q", b)
					}
				}
				errs <- err
			})
		}
		<-r.started
		// Let the others reach the wait: they block on the download, not on the remote.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && s.RemoteWaiters() < n-1; {
			time.Sleep(time.Millisecond)
		}
		close(r.gate)
		wg.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("%s: concurrent Open = %v, want %v", tt.mediaID, err, tt.want)
			}
		}
		if got := r.calls.Load(); got != 1 {
			t.Errorf("%s: %d concurrent requests made %d fetches, want 1", tt.mediaID, n, got)
		}
	}
}

// TestRemoteMediaAbandonedDownloadIsTakenOver: when the requester that is downloading goes
// away, a request waiting for the same item downloads it itself.
func TestRemoteMediaAbandonedDownloadIsTakenOver(t *testing.T) {
	s := newService(t, t.TempDir(), media.Limits{MaxUploadBytes: 1024})
	r := &fakeRemote{body: "second try", gate: make(chan struct{}), started: make(chan struct{}, 10)}
	s.SetRemote(r)
	first, cancel := context.WithCancel(ctx)
	firstErr := make(chan error, 1)
	go func() {
		_, err := s.Open(first, "other.example", "x", 0)
		firstErr <- err
	}()
	<-r.started
	second := make(chan error, 1)
	go func() {
		c, err := s.Open(ctx, "other.example", "x", 0)
		if err == nil {
			c.File.Close()
		}
		second <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && s.RemoteWaiters() < 1; {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Errorf("abandoned request: %v, want context.Canceled", err)
	}
	<-r.started // the waiting request takes over
	close(r.gate)
	if err := <-second; err != nil {
		t.Errorf("request waiting on an abandoned download: %v, want the content", err)
	}
	if got := r.calls.Load(); got != 2 {
		t.Errorf("fetches = %d, want 2 (abandoned, then taken over)", got)
	}
}
