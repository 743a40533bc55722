package media_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"fyr/server/media"
)

type fakeRemote struct {
	calls atomic.Int32
	body  string
}

func (f *fakeRemote) Fetch(_ context.Context, origin, mediaID string) (*media.RemoteContent, error) {
	f.calls.Add(1)
	if mediaID == "missing" {
		return nil, media.ErrNotFound
	}
	return &media.RemoteContent{Body: io.NopCloser(strings.NewReader(f.body)), ContentType: "text/plain", Filename: "r.txt"}, nil
}

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
	if _, err := s.Open(ctx, "other.example", "missing", 0); !errors.Is(err, media.ErrNotFound) {
		t.Errorf("missing remote media: %v", err)
	}
	r.body = strings.Repeat("x", 2000)
	if _, err := s.Open(ctx, "other.example", "big", 0); !errors.Is(err, media.ErrRemoteTooLarge) {
		t.Errorf("oversized remote media: %v, want ErrRemoteTooLarge", err)
	}
}
