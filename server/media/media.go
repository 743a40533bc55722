// Package media is the content repository: it stores uploaded files on disk under their
// SHA-256 (identical uploads are kept once), keeps their metadata in storage, serves them,
// and makes thumbnails.
//
// It is not for HTTP (server/httpapi decodes requests and writes headers) nor for talking to
// other servers: remote content comes in through the Remote interface, which federation
// implements, and is cached here like local content.
package media

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"fyr/storage"
)

// Errors returned by Service methods; httpapi maps each to the spec's error.
var (
	ErrNotFound         = errors.New("media: not found")
	ErrTooLarge         = errors.New("media: content is larger than the upload limit")
	ErrQuotaExceeded    = errors.New("media: upload quota exceeded")
	ErrTooManyPending   = errors.New("media: too many pending uploads")
	ErrNotYetUploaded   = errors.New("media: content has not been uploaded yet")
	ErrCannotOverwrite  = errors.New("media: content was already uploaded")
	ErrNotOwner         = errors.New("media: only the creator may upload to this media ID")
	ErrCannotThumbnail  = errors.New("media: cannot make a thumbnail of this content")
	ErrImageTooLarge    = errors.New("media: image too large to thumbnail")
	ErrInvalidMediaID   = errors.New("media: invalid media ID")
	ErrInvalidThumbSize = errors.New("media: invalid thumbnail size")
)

// Defaults for Limits.
const (
	DefaultMaxUploadBytes     = 100 << 20
	DefaultQuotaBytes         = 5 << 30
	DefaultMaxPending         = 10
	DefaultMaxThumbnailPixels = 32_000_000
	// PendingTTL is how long a created media ID waits for its content (the spec's advice).
	PendingTTL = 24 * time.Hour
	// MaxWait caps how long a download waits for a pending upload (timeout_ms).
	MaxWait = 60 * time.Second
)

// Limits bound what users may store. Zero values mean the defaults, except QuotaBytes,
// where a negative value means unlimited.
type Limits struct {
	MaxUploadBytes     int64
	QuotaBytes         int64
	MaxPending         int
	MaxThumbnailPixels int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxUploadBytes <= 0 {
		l.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if l.QuotaBytes == 0 {
		l.QuotaBytes = DefaultQuotaBytes
	}
	if l.MaxPending <= 0 {
		l.MaxPending = DefaultMaxPending
	}
	if l.MaxThumbnailPixels <= 0 {
		l.MaxThumbnailPixels = DefaultMaxThumbnailPixels
	}
	return l
}

// Service is the content repository of one server. It is safe for concurrent use.
type Service struct {
	db         *storage.DB
	dir        string // holds content/, thumbs/ and tmp/
	serverName string
	log        *slog.Logger
	now        func() time.Time

	mu     sync.Mutex // orders file commits against deletions, and guards limits and waiters
	limits Limits
	// waiters are closed when a pending upload completes.
	waiters map[string]chan struct{}

	preview *previewer
	remote  Remote // nil: remote media is not found

	thumbSem  chan struct{} // bounds concurrent thumbnail generation
	thumbBusy sync.Map      // thumbnail key -> chan struct{}, one generation per key
	// remoteBusy maps origin/mediaID to the *remoteFlight downloading it; remoteWaiting
	// counts the requests waiting for one.
	remoteBusy    sync.Map
	remoteWaiting atomic.Int32
}

// New opens the content repository in dir (created if missing). Leftover temporary files of
// uploads that a crash interrupted are removed.
func New(db *storage.DB, dir, serverName string, limits Limits, log *slog.Logger) (*Service, error) {
	s := &Service{
		db: db, dir: dir, serverName: serverName, log: log, now: time.Now,
		limits: limits.withDefaults(), waiters: map[string]chan struct{}{},
		thumbSem: make(chan struct{}, 2), preview: newPreviewer(),
	}
	for _, d := range []string{"content", "thumbs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("create media directory: %w", err)
		}
	}
	if err := s.cleanTemp(); err != nil {
		return nil, err
	}
	return s, nil
}

// SetLimits applies new limits (on configuration reload).
func (s *Service) SetLimits(l Limits) {
	s.mu.Lock()
	s.limits = l.withDefaults()
	s.mu.Unlock()
}

// Limits returns the limits in force.
func (s *Service) Limits() Limits {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limits
}

// cleanTemp removes partial uploads: a temporary file is never served, and after a crash it
// is garbage.
func (s *Service) cleanTemp() error {
	tmp := filepath.Join(s.dir, "tmp")
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(tmp, e.Name())); err != nil {
			return fmt.Errorf("remove partial upload: %w", err)
		}
	}
	if len(entries) > 0 {
		s.log.Info("removed partial uploads left by an interrupted run", "count", len(entries))
	}
	return nil
}

const mediaIDAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newMediaID returns 24 random characters of [A-Za-z0-9] (about 143 bits).
func newMediaID() string {
	b := make([]byte, 24)
	rand.Read(b)
	for i := range b {
		b[i] = mediaIDAlphabet[int(b[i])%len(mediaIDAlphabet)]
	}
	return string(b)
}

// ValidMediaID reports whether id fits the spec's media ID grammar, [A-Za-z0-9_-]+, which
// also keeps it safe in file paths.
func ValidMediaID(id string) bool {
	if id == "" || len(id) > 255 {
		return false
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// Run removes expired pending uploads every hour until ctx ends.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.expirePending(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("expiring pending uploads", "err", err)
			}
		}
	}
}

func (s *Service) expirePending(ctx context.Context) error {
	expired, err := s.db.ExpiredPendingMedia(ctx, s.now().UnixMilli(), 1000)
	if err != nil {
		return err
	}
	for _, m := range expired {
		if err := s.Delete(ctx, m.Origin, m.MediaID); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}
