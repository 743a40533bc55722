package update

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

// FormatVersion is the bundle format this package reads and writes.
const FormatVersion = 1

// Limits on a bundle's metadata, so that a hostile stream cannot make the box buffer much
// before its signature is checked.
const (
	MaxManifestBytes  = 1 << 20
	MaxSignatureBytes = 4 << 10
	MaxFiles          = 4096
	// MaxBundleBytes bounds an uploaded bundle: a kernel, an initramfs with Fyr in it and the
	// boot files come to a few hundred megabytes.
	MaxBundleBytes = 2 << 30
	maxNameBytes   = 200
)

// Names of the two metadata entries that open every bundle.
const (
	ManifestName  = "manifest.json"
	SignatureName = "manifest.sig"
)

// Manifest describes a bundle. Its JSON bytes, exactly as they appear in the bundle, are what
// the signature covers.
type Manifest struct {
	// Format is FormatVersion.
	Format int `json:"format"`
	// Version increases with every release; a box refuses any bundle whose version is not
	// above the highest it has installed.
	Version uint64 `json:"version"`
	// Label is the version people read, e.g. "2026.10.1"; it plays no part in ordering.
	Label string `json:"label,omitempty"`
	// Boards are the board identifiers the bundle runs on (see Board), e.g.
	// "raspberrypi,4-model-b" or "uefi-amd64".
	Boards []string `json:"boards"`
	// Files are the payload, in the order the bundle carries them. Names are slash-separated
	// paths inside the slot.
	Files []File `json:"files"`
}

// File is one payload file of a bundle.
type File struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	// SHA256 is the lower-case hex SHA-256 of the file's bytes.
	SHA256 string `json:"sha256"`
}

// ParseManifest decodes and checks a manifest: the format, a version above zero, at least
// one board and one file, and file names that are safe to create inside a slot (no "..", no
// absolute paths, no duplicates, only [A-Za-z0-9._+-] and "/").
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrMalformed, err)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrMalformed, err)
	}
	return &m, nil
}

func (m *Manifest) check() error {
	switch {
	case m.Format != FormatVersion:
		return fmt.Errorf("format %d, this box reads %d", m.Format, FormatVersion)
	case m.Version == 0:
		return fmt.Errorf("version 0; versions start at 1")
	case len(m.Boards) == 0:
		return fmt.Errorf("no boards")
	case len(m.Files) == 0:
		return fmt.Errorf("no files")
	case len(m.Files) > MaxFiles:
		return fmt.Errorf("%d files, more than %d", len(m.Files), MaxFiles)
	}
	seen := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		if err := checkName(f.Name); err != nil {
			return err
		}
		if seen[f.Name] {
			return fmt.Errorf("file %q listed twice", f.Name)
		}
		seen[f.Name] = true
		if f.Size < 0 {
			return fmt.Errorf("file %q has a negative size", f.Name)
		}
		if h, err := hex.DecodeString(f.SHA256); err != nil || len(h) != 32 || strings.ToLower(f.SHA256) != f.SHA256 {
			return fmt.Errorf("file %q: sha256 %q is not 64 lower-case hex digits", f.Name, f.SHA256)
		}
	}
	return nil
}

// checkName accepts a slash-separated relative path of plain names.
func checkName(name string) error {
	if name == ManifestName || name == SignatureName {
		return fmt.Errorf("file name %q is reserved", name)
	}
	if len(name) > maxNameBytes || !fs.ValidPath(name) || name == "." {
		return fmt.Errorf("file name %q is not a relative path inside the slot", name)
	}
	for _, part := range strings.Split(name, "/") {
		if strings.HasPrefix(part, ".") {
			return fmt.Errorf("file name %q has a part starting with '.'", name)
		}
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._+-/", c)
		if !ok {
			return fmt.Errorf("file name %q has %q; use letters, digits and ._+-", name, c)
		}
	}
	return nil
}

// Supports reports whether the bundle lists board.
func (m *Manifest) Supports(board string) bool { return slices.Contains(m.Boards, board) }

// Size is the total size of the payload.
func (m *Manifest) Size() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// Name is how people see the version: the label, with the number for ordering.
func (m *Manifest) Name() string {
	if m.Label == "" {
		return fmt.Sprintf("version %d", m.Version)
	}
	return fmt.Sprintf("%s (version %d)", m.Label, m.Version)
}
