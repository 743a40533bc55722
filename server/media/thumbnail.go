package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // registers GIF decoding (the first frame is thumbnailed)
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/image/draw"
	_ "golang.org/x/image/webp" // registers WebP decoding

	"fyr/storage"
	"fyr/storage/atomicfile"
)

// Thumbnail methods, as the spec names them.
const (
	MethodCrop  = "crop"
	MethodScale = "scale"
)

// MaxThumbnailSide bounds a requested thumbnail's width and height.
const MaxThumbnailSide = 1600

// standardSizes are the sizes the spec says servers should produce. A request is rounded up
// to the smallest standard size of its method that covers it, so a handful of files serve
// every client; larger requests get their own size, up to MaxThumbnailSide.
var standardSizes = []struct {
	w, h   int
	method string
}{
	{32, 32, MethodCrop}, {96, 96, MethodCrop},
	{320, 240, MethodScale}, {640, 480, MethodScale}, {800, 600, MethodScale},
}

// box returns the size to generate for a request.
func box(w, h int, method string) (int, int) {
	for _, s := range standardSizes {
		if s.method == method && s.w >= w && s.h >= h {
			return s.w, s.h
		}
	}
	return w, h
}

// thumbnailable are the content types we can decode.
var thumbnailable = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

// ThumbnailRequest is what a client asked for.
type ThumbnailRequest struct {
	Origin, MediaID string
	Width, Height   int
	Method          string
	Wait            time.Duration // for a pending upload
}

// Thumbnail returns a thumbnail no smaller than requested (unless the original is smaller,
// in which case the original itself), generating and caching it on first request.
func (s *Service) Thumbnail(ctx context.Context, req ThumbnailRequest) (*Content, error) {
	if req.Width < 1 || req.Height < 1 || req.Width > MaxThumbnailSide || req.Height > MaxThumbnailSide {
		return nil, fmt.Errorf("%w: width and height must be 1 to %d", ErrInvalidThumbSize, MaxThumbnailSide)
	}
	if req.Method != MethodCrop && req.Method != MethodScale {
		return nil, fmt.Errorf("%w: method must be crop or scale", ErrInvalidThumbSize)
	}
	m, err := s.lookup(ctx, req.Origin, req.MediaID, req.Wait)
	if err != nil {
		return nil, err
	}
	if !thumbnailable[m.ContentType] {
		return nil, ErrCannotThumbnail
	}
	bw, bh := box(req.Width, req.Height, req.Method)
	key := storage.Thumbnail{SourceSHA256: m.SHA256, Width: bw, Height: bh, Method: req.Method}
	for {
		if t, err := s.db.Thumbnail(ctx, m.SHA256, bw, bh, req.Method); err == nil {
			return s.openThumb(m, t)
		} else if !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		// One generation per thumbnail: latecomers wait for it, then read the cache.
		done := make(chan struct{})
		if other, busy := s.thumbBusy.LoadOrStore(s.thumbPath(&key), done); busy {
			select {
			case <-other.(chan struct{}):
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		c, err := s.generate(ctx, m, key)
		s.thumbBusy.Delete(s.thumbPath(&key))
		close(done)
		return c, err
	}
}

func (s *Service) openThumb(m *storage.Media, t *storage.Thumbnail) (*Content, error) {
	if t.Size == 0 { // the original was small enough: serve it
		return s.openOriginal(m)
	}
	f, err := os.Open(s.thumbPath(t))
	if err != nil {
		return nil, err
	}
	meta := *m
	meta.ContentType, meta.Size, meta.Filename = t.ContentType, t.Size, ""
	return &Content{Meta: &meta, File: f}, nil
}

func (s *Service) openOriginal(m *storage.Media) (*Content, error) {
	f, err := os.Open(s.contentPath(m.SHA256))
	if err != nil {
		return nil, err
	}
	return &Content{Meta: m, File: f}, nil
}

// generate decodes the source (after checking its dimensions, so a small file that claims
// to be a huge image is refused before it can take the memory), scales, encodes, and
// records the result.
func (s *Service) generate(ctx context.Context, m *storage.Media, key storage.Thumbnail) (*Content, error) {
	select {
	case s.thumbSem <- struct{}{}:
		defer func() { <-s.thumbSem }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	f, err := os.Open(s.contentPath(m.SHA256))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg, format, err := image.DecodeConfig(f)
	if err != nil {
		return nil, ErrCannotThumbnail
	}
	if int64(cfg.Width)*int64(cfg.Height) > s.Limits().MaxThumbnailPixels {
		return nil, ErrImageTooLarge
	}
	if cfg.Width <= key.Width && cfg.Height <= key.Height {
		// Never upscale: the original is the thumbnail. Size 0 records that.
		key.ContentType = m.ContentType
		if err := s.db.Write(ctx, func(tx *storage.Tx) error { return tx.AddThumbnail(key) }); err != nil {
			return nil, err
		}
		return s.openOriginal(m)
	}
	if _, err := f.Seek(0, 0); err != nil {
		return nil, err
	}
	src, _, err := image.Decode(f)
	if err != nil {
		return nil, ErrCannotThumbnail
	}
	dst := resize(src, key.Width, key.Height, key.Method)
	var buf bytes.Buffer
	if format == "jpeg" {
		key.ContentType = "image/jpeg"
		err = jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 85})
	} else { // keep transparency
		key.ContentType = "image/png"
		err = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, dst)
	}
	if err != nil {
		return nil, fmt.Errorf("encode thumbnail: %w", err)
	}
	key.Size = int64(buf.Len())
	path := s.thumbPath(&key)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		return nil, err
	}
	if err := s.db.Write(ctx, func(tx *storage.Tx) error { return tx.AddThumbnail(key) }); err != nil {
		return nil, err
	}
	return s.openThumb(m, &key)
}

// resize scales src so that it covers w×h (never enlarging it), keeping its aspect ratio;
// crop then cuts the centre to exactly w×h (or less where the source is smaller).
func resize(src image.Image, w, h int, method string) image.Image {
	b := src.Bounds()
	sw, sh := b.Dx(), b.Dy()
	f := max(float64(w)/float64(sw), float64(h)/float64(sh))
	f = min(f, 1)
	tw, th := max(1, int(float64(sw)*f+0.5)), max(1, int(float64(sh)*f+0.5))
	scaled := image.NewRGBA(image.Rect(0, 0, tw, th))
	draw.BiLinear.Scale(scaled, scaled.Bounds(), src, b, draw.Src, nil)
	if method == MethodScale {
		return scaled
	}
	cw, ch := min(w, tw), min(h, th)
	x0, y0 := (tw-cw)/2, (th-ch)/2
	return scaled.SubImage(image.Rect(x0, y0, x0+cw, y0+ch))
}
