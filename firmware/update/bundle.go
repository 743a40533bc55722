package update

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"time"
)

// signature is the content of manifest.sig.
type signature struct {
	KeyID string `json:"key_id"`
	// Ed25519 is the base64 signature over manifest.json's bytes (encoding/json encodes
	// []byte as standard base64).
	Ed25519 []byte `json:"ed25519"`
}

// Write builds a bundle on w: m with its Files filled in from the named files of fsys (read
// twice: once to hash, once to copy), signed with key. m's Format is set; its Version and
// Boards must be set by the caller.
func Write(w io.Writer, m Manifest, fsys fs.FS, names []string, key ed25519.PrivateKey) error {
	m.Format = FormatVersion
	m.Files = nil
	for _, name := range names {
		f, err := hashFile(fsys, name)
		if err != nil {
			return err
		}
		m.Files = append(m.Files, f)
	}
	if err := m.check(); err != nil {
		return fmt.Errorf("update: manifest: %w", err)
	}
	manifest, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return err
	}
	sig, err := json.Marshal(signature{KeyID: KeyID(key.Public().(ed25519.PublicKey)), Ed25519: ed25519.Sign(key, manifest)})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	if err := writeEntry(tw, ManifestName, int64(len(manifest)), bytes.NewReader(manifest)); err != nil {
		return err
	}
	if err := writeEntry(tw, SignatureName, int64(len(sig)), bytes.NewReader(sig)); err != nil {
		return err
	}
	for _, f := range m.Files {
		r, err := fsys.Open(f.Name)
		if err != nil {
			return fmt.Errorf("update: %w", err)
		}
		err = writeEntry(tw, f.Name, f.Size, r)
		r.Close()
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

func hashFile(fsys fs.FS, name string) (File, error) {
	r, err := fsys.Open(name)
	if err != nil {
		return File{}, fmt.Errorf("update: %w", err)
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return File{}, fmt.Errorf("update: read %s: %w", name, err)
	}
	return File{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func writeEntry(tw *tar.Writer, name string, size int64, r io.Reader) error {
	hdr := &tar.Header{Name: name, Size: size, Mode: 0o644, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("update: bundle entry %s: %w", name, err)
	}
	if n, err := io.Copy(tw, r); err != nil || n != size {
		return fmt.Errorf("update: bundle entry %s: wrote %d of %d bytes: %v (did it change while signing?)", name, n, size, err)
	}
	return nil
}

// Reader reads a bundle whose manifest and signature have been checked.
type Reader struct {
	// Manifest is the verified manifest.
	Manifest *Manifest
	// KeyID names the trusted key that signed it.
	KeyID string

	tr   *tar.Reader
	next int
	open *fileReader
}

// Open reads a bundle's manifest and signature from the head of r and checks the signature
// against keys. No payload byte has been read when it returns. Every error is a refusal
// (errors.Is(err, ErrRefused)) unless r itself failed.
func Open(r io.Reader, keys *Keyring) (*Reader, error) {
	tr := tar.NewReader(r)
	manifest, err := readMeta(tr, ManifestName, MaxManifestBytes)
	if err != nil {
		return nil, err
	}
	rawSig, err := readMeta(tr, SignatureName, MaxSignatureBytes)
	if err != nil {
		return nil, err
	}
	var sig signature
	if err := json.Unmarshal(rawSig, &sig); err != nil || sig.KeyID == "" || len(sig.Ed25519) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: %s is not a key ID and an ed25519 signature", ErrMalformed, SignatureName)
	}
	// The signature is checked before the manifest is even parsed: nothing unsigned is
	// interpreted.
	if err := keys.verify(sig.KeyID, manifest, sig.Ed25519); err != nil {
		return nil, err
	}
	m, err := ParseManifest(manifest)
	if err != nil {
		return nil, err
	}
	return &Reader{Manifest: m, KeyID: sig.KeyID, tr: tr}, nil
}

// readMeta reads the next entry, which must be the regular file name of at most limit bytes.
func readMeta(tr *tar.Reader, name string, limit int64) ([]byte, error) {
	hdr, err := tr.Next()
	if err != nil {
		return nil, tarError(fmt.Sprintf("reading %s", name), err)
	}
	if hdr.Name != name || hdr.Typeflag != tar.TypeReg {
		return nil, fmt.Errorf("%w: entry %q where %s belongs", ErrMalformed, hdr.Name, name)
	}
	if hdr.Size > limit {
		return nil, fmt.Errorf("%w: %s is %d bytes, over %d", ErrMalformed, name, hdr.Size, limit)
	}
	b := make([]byte, hdr.Size)
	if _, err := io.ReadFull(tr, b); err != nil {
		return nil, tarError("reading "+name, err)
	}
	return b, nil
}

// tarError tells a truncated or garbled stream (a refusal) from a failing reader.
func tarError(doing string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, tar.ErrHeader) {
		return fmt.Errorf("%w: %s: the stream ends early or is not a tar archive", ErrMalformed, doing)
	}
	return fmt.Errorf("update: %s: %w", doing, err)
}

// Next returns the next payload file and a reader of its bytes, which checks the size and
// SHA-256 as it goes: its last Read reports ErrHashMismatch instead of io.EOF when the bytes
// differ from the manifest. A file not read to its end is read out (and checked) by the next
// call. After the last file Next checks that nothing follows and returns io.EOF.
func (r *Reader) Next() (File, io.Reader, error) {
	if r.open != nil {
		if _, err := io.Copy(io.Discard, r.open); err != nil {
			return File{}, nil, err
		}
		r.open = nil
	}
	if r.next == len(r.Manifest.Files) {
		hdr, err := r.tr.Next()
		if err == io.EOF {
			return File{}, nil, io.EOF
		}
		if err != nil {
			return File{}, nil, tarError("reading the end", err)
		}
		return File{}, nil, fmt.Errorf("%w: entry %q follows the last file of the manifest", ErrMalformed, hdr.Name)
	}
	f := r.Manifest.Files[r.next]
	r.next++
	hdr, err := r.tr.Next()
	if err != nil {
		return File{}, nil, tarError("reading "+f.Name, err)
	}
	if hdr.Name != f.Name || hdr.Typeflag != tar.TypeReg {
		return File{}, nil, fmt.Errorf("%w: entry %q where the manifest has %q", ErrMalformed, hdr.Name, f.Name)
	}
	if hdr.Size != f.Size {
		return File{}, nil, fmt.Errorf("%w: %s is %d bytes, the manifest says %d", ErrHashMismatch, f.Name, hdr.Size, f.Size)
	}
	want, _ := hex.DecodeString(f.SHA256) // checked by ParseManifest
	r.open = &fileReader{r: r.tr, name: f.Name, h: sha256.New(), want: want}
	return f, r.open, nil
}

// fileReader hashes one payload file as it is read.
type fileReader struct {
	r    io.Reader
	name string
	h    hash.Hash
	want []byte
	err  error
}

func (f *fileReader) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.r.Read(p)
	f.h.Write(p[:n])
	switch {
	case err == io.EOF:
		if got := f.h.Sum(nil); string(got) != string(f.want) {
			f.err = fmt.Errorf("%w: %s has SHA-256 %x, the manifest says %x", ErrHashMismatch, f.name, got, f.want)
		} else {
			f.err = io.EOF
		}
		return n, f.err
	case err != nil:
		f.err = tarError("reading "+f.name, err)
		return n, f.err
	}
	return n, nil
}

// Verify reads a whole bundle and checks it, writing nothing: the signature, the manifest
// and every file's size and hash.
func Verify(r io.Reader, keys *Keyring) (*Manifest, error) {
	br, err := Open(r, keys)
	if err != nil {
		return nil, err
	}
	for {
		_, fr, err := br.Next()
		if err == io.EOF {
			return br.Manifest, nil
		}
		if err != nil {
			return nil, err
		}
		if _, err := io.Copy(io.Discard, fr); err != nil {
			return nil, err
		}
	}
}
