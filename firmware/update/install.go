package update

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// install empties dir, the inactive slot, and writes the bundle's files into it. Each file is
// written under a temporary name and takes its own name only once its size and SHA-256
// matched; every file and directory is synced before install returns.
func install(dir string, br *Reader) error {
	if err := clearDir(dir); err != nil {
		return err
	}
	dirs := map[string]bool{dir: true}
	for {
		f, r, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := writeFile(dst, r); err != nil {
			return err
		}
		for d := filepath.Dir(dst); strings.HasPrefix(d, dir) && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// clearDir removes everything inside dir, keeping dir.
func clearDir(dir string) error {
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	for _, de := range des {
		if err := os.RemoveAll(filepath.Join(dir, de.Name())); err != nil {
			return fmt.Errorf("update: clear the slot: %w", err)
		}
	}
	return nil
}

func writeFile(dst string, r io.Reader) (err error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	tmp := dst + ".partial"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = io.Copy(out, r); err != nil {
		return err // the bundle's error: a refusal, or the stream failed
	}
	if err = out.Sync(); err != nil {
		return fmt.Errorf("update: write %s: %w", dst, err)
	}
	if err = out.Close(); err != nil {
		return fmt.Errorf("update: write %s: %w", dst, err)
	}
	if err = os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("update: sync %s: %w", dir, err)
	}
	return nil
}
