package media

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"fyr/storage"
)

// contentPath is where content with this hash lives: content/ab/cdef… (256 subdirectories
// keep any one directory small on a FAT or ext4 SD card).
func (s *Service) contentPath(sha []byte) string {
	h := hex.EncodeToString(sha)
	return filepath.Join(s.dir, "content", h[:2], h[2:])
}

// thumbPath is where a thumbnail of some content lives: thumbs/ab/<source hash>-WxH-method.
func (s *Service) thumbPath(t *storage.Thumbnail) string {
	h := hex.EncodeToString(t.SourceSHA256)
	return filepath.Join(s.dir, "thumbs", h[:2], fmt.Sprintf("%s-%dx%d-%s", h, t.Width, t.Height, t.Method))
}

// tempFile is content being received: written to tmp/, hashed as it goes.
type tempFile struct {
	path string
	sha  []byte
	size int64
}

// receive streams r into a temporary file, at most limit bytes, hashing as it goes. Memory use
// does not depend on the size. It returns ErrTooLarge as soon as r exceeds limit.
func (s *Service) receive(r io.Reader, limit int64) (*tempFile, error) {
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "upload-*")
	if err != nil {
		return nil, err
	}
	tf := &tempFile{path: f.Name()}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tf.path)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("receive upload: %w", err)
	}
	if n > limit {
		return nil, ErrTooLarge
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	tf.sha, tf.size, ok = h.Sum(nil), n, true
	return tf, nil
}

func (t *tempFile) discard() { os.Remove(t.path) }

// install moves a received file to its content-addressed place, or drops it if identical
// content is already stored. The rename is the commit point: until then nothing can serve
// the file, so a crash leaves only a temporary file that New removes. Call with s.mu held.
func (s *Service) install(t *tempFile, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		t.discard()
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	if err := os.Rename(t.path, dst); err != nil {
		return fmt.Errorf("install content: %w", err)
	}
	return syncDir(filepath.Dir(dst))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
