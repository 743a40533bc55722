package media_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"fyr/server/media"
	"fyr/storage"
)

var ctx = context.Background()

func newService(t testing.TB, dir string, limits media.Limits) *media.Service {
	t.Helper()
	db, err := storage.Open(ctx, filepath.Join(dir, "fyr.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := media.New(db, filepath.Join(dir, "media"), "example.org", limits, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestInterruptedUploadIsNeverServed(t *testing.T) {
	dir := t.TempDir()
	newService(t, dir, media.Limits{})
	// A crash while receiving leaves a temporary file and no metadata.
	partial := filepath.Join(dir, "media", "tmp", "upload-123")
	if err := os.WriteFile(partial, []byte("half a fi"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := newService(t, dir, media.Limits{})
	if _, err := os.Stat(partial); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("restart left the partial upload in place (stat: %v)", err)
	}
	// And a body that fails mid-stream leaves nothing either.
	_, err := s2.Upload(ctx, media.Upload{Uploader: "alice", Body: io.MultiReader(bytes.NewReader([]byte("abc")), failingReader{})})
	if err == nil {
		t.Fatal("upload of a broken body succeeded")
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "media", "tmp"))
	if len(entries) != 0 {
		t.Errorf("failed upload left %d temporary files", len(entries))
	}
	if usage, _ := s2.UsageByUser(ctx); usage["alice"] != 0 {
		t.Errorf("failed upload counted %d bytes", usage["alice"])
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestDeleteQuarantineUsage(t *testing.T) {
	dir := t.TempDir()
	s := newService(t, dir, media.Limits{})
	a, err := s.Upload(ctx, media.Upload{Uploader: "alice", ContentType: "text/plain", Body: bytes.NewReader([]byte("same"))})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Upload(ctx, media.Upload{Uploader: "bob", ContentType: "text/plain", Body: bytes.NewReader([]byte("same"))})
	usage, err := s.UsageByUser(ctx)
	if err != nil || usage["alice"] != 4 || usage["bob"] != 4 {
		t.Errorf("usage = %v, %v", usage, err)
	}
	if err := s.Quarantine(ctx, "example.org", a.FileID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, "example.org", a.FileID, 0); !errors.Is(err, media.ErrNotFound) {
		t.Errorf("quarantined media served: %v", err)
	}
	if err := s.Delete(ctx, "example.org", a.FileID); err != nil {
		t.Fatal(err)
	}
	c, err := s.Open(ctx, "example.org", b.FileID, 0)
	if err != nil {
		t.Fatalf("deleting one of two identical items lost the other: %v", err)
	}
	c.File.Close()
	if err := s.Delete(ctx, "example.org", b.FileID); err != nil {
		t.Fatal(err)
	}
	var files int
	filepath.WalkDir(filepath.Join(dir, "media", "content"), func(_ string, d os.DirEntry, _ error) error {
		if d != nil && !d.IsDir() {
			files++
		}
		return nil
	})
	if files != 0 {
		t.Errorf("%d content files remain after deleting every item", files)
	}
	if err := s.Delete(ctx, "example.org", b.FileID); !errors.Is(err, media.ErrNotFound) {
		t.Errorf("second delete = %v, want ErrNotFound", err)
	}
}

func TestValidMediaID(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{{"abcXYZ09_-", true}, {"", false}, {"../etc", false}, {"a.b", false}, {"a/b", false}, {"%2e", false}} {
		if got := media.ValidMediaID(tc.in); got != tc.ok {
			t.Errorf("ValidMediaID(%q) = %v, want %v", tc.in, got, tc.ok)
		}
	}
}

// zeroReader yields n zero bytes without holding them in memory.
type zeroReader struct{ n int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), z.n)
	clear(p[:k])
	z.n -= k
	return int(k), nil
}

// BenchmarkUpload reports the memory an upload allocates: it must not grow with the file, so
// allocated bytes per MB uploaded fall as the size rises.
//
//	go test -bench Upload -benchmem ./server/media/
func BenchmarkUpload(b *testing.B) {
	for _, size := range []int64{1 << 20, 64 << 20} {
		b.Run(byteSize(size), func(b *testing.B) {
			s := newService(b, b.TempDir(), media.Limits{MaxUploadBytes: size, QuotaBytes: -1})
			b.SetBytes(size)
			b.ReportAllocs()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range b.N {
				if _, err := s.Upload(ctx, media.Upload{Uploader: "u", Body: &zeroReader{n: size}}); err != nil {
					b.Fatal(err)
				}
			}
			runtime.ReadMemStats(&after)
			mb := float64(size) / (1 << 20) * float64(b.N)
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/mb, "alloc-B/MiB")
		})
	}
}

func byteSize(n int64) string {
	return map[int64]string{1 << 20: "1MiB", 64 << 20: "64MiB"}[n]
}
