package media

import (
	"context"
	"errors"
	"os"
	"time"

	"fyr/storage"
)

// Content is an open stored file with its metadata. The caller closes File.
type Content struct {
	Meta *storage.Media
	File *os.File
}

// lookup returns complete, servable metadata, waiting up to wait for a pending upload.
func (s *Service) lookup(ctx context.Context, origin, mediaID string, wait time.Duration) (*storage.Media, error) {
	if !ValidMediaID(mediaID) {
		return nil, ErrNotFound
	}
	if origin != s.serverName {
		return s.fetchRemote(ctx, origin, mediaID, min(wait, MaxWait))
	}
	wait = min(wait, MaxWait)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		// Register interest before reading, so a completion in between is not missed.
		s.mu.Lock()
		ch := s.waiter(mediaID)
		s.mu.Unlock()
		m, err := s.db.Media(ctx, origin, mediaID)
		if errors.Is(err, storage.ErrNotFound) {
			s.dropWaiter(mediaID, ch)
			return nil, ErrNotFound
		}
		if err != nil {
			s.dropWaiter(mediaID, ch)
			return nil, err
		}
		if m.Quarantined {
			s.dropWaiter(mediaID, ch)
			return nil, ErrNotFound
		}
		if !m.Pending() {
			s.dropWaiter(mediaID, ch)
			return m, nil
		}
		if s.now().UnixMilli() >= m.ExpiresTS {
			s.dropWaiter(mediaID, ch)
			return nil, ErrNotFound
		}
		select {
		case <-ch:
		case <-deadline.C:
			s.dropWaiter(mediaID, ch)
			return nil, ErrNotYetUploaded
		case <-ctx.Done():
			s.dropWaiter(mediaID, ch)
			return nil, ctx.Err()
		}
	}
}

// dropWaiter forgets a waiter channel nobody completed, so the map does not grow with
// lookups of complete media.
func (s *Service) dropWaiter(mediaID string, ch chan struct{}) {
	s.mu.Lock()
	if cur, ok := s.waiters[mediaID]; ok && cur == ch {
		delete(s.waiters, mediaID)
	}
	s.mu.Unlock()
}

// Open returns stored content for download, waiting up to wait for a pending upload.
func (s *Service) Open(ctx context.Context, origin, mediaID string, wait time.Duration) (*Content, error) {
	m, err := s.lookup(ctx, origin, mediaID, wait)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(s.contentPath(m.SHA256))
	if err != nil {
		return nil, err
	}
	return &Content{Meta: m, File: f}, nil
}

// Delete removes an item; its file goes once no other item has the same content.
func (s *Service) Delete(ctx context.Context, origin, mediaID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r *storage.MediaRemoval
	err := s.db.Write(ctx, func(tx *storage.Tx) error {
		var err error
		r, err = tx.DeleteMedia(origin, mediaID)
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return ErrNotFound
	}
	if err != nil || r.SHA256 == nil || r.StillUsed {
		return err
	}
	for _, t := range r.Thumbnails {
		os.Remove(s.thumbPath(&t))
	}
	if err := os.Remove(s.contentPath(r.SHA256)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Quarantine stops (or resumes) serving an item without deleting it.
func (s *Service) Quarantine(ctx context.Context, origin, mediaID string, q bool) error {
	err := s.db.Write(ctx, func(tx *storage.Tx) error { return tx.SetQuarantined(origin, mediaID, q) })
	if errors.Is(err, storage.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

// UsageByUser reports the bytes each local user stores.
func (s *Service) UsageByUser(ctx context.Context) (map[string]int64, error) {
	return s.db.MediaUsageByUser(ctx)
}
