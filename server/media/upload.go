package media

import (
	"context"
	"errors"
	"io"
	"mime"
	"strings"
	"unicode/utf8"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// Upload describes content a local user sends.
type Upload struct {
	Uploader    string // localpart
	ContentType string // from the request; "" becomes application/octet-stream
	Filename    string
	Body        io.Reader
}

// MaxFilenameBytes bounds the stored file name.
const MaxFilenameBytes = 255

func cleanUpload(u *Upload) {
	if _, _, err := mime.ParseMediaType(u.ContentType); err != nil || u.ContentType == "" {
		u.ContentType = "application/octet-stream"
	}
	if len(u.Filename) > MaxFilenameBytes || !utf8.ValidString(u.Filename) || strings.ContainsAny(u.Filename, "/\\\x00\r\n") {
		u.Filename = ""
	}
}

// Upload stores new content and returns its mxc:// URI.
func (s *Service) Upload(ctx context.Context, u Upload) (id.ContentURI, error) {
	mediaID := newMediaID()
	err := s.store(ctx, u, func(tx *storage.Tx, t *tempFile) error {
		return tx.CreateMedia(storage.Media{
			Origin: s.serverName, MediaID: mediaID, SHA256: t.sha, Size: t.size,
			ContentType: u.ContentType, Filename: u.Filename, Uploader: u.Uploader, CreatedTS: s.now().UnixMilli(),
		})
	})
	if err != nil {
		return id.ContentURI{}, err
	}
	return id.ContentURI{Homeserver: s.serverName, FileID: mediaID}, nil
}

// store receives the body, checks size and quota, installs the file and runs record in the
// same write that re-checks the quota, so concurrent uploads cannot overshoot it.
func (s *Service) store(ctx context.Context, u Upload, record func(*storage.Tx, *tempFile) error) error {
	cleanUpload(&u)
	limits := s.Limits()
	if err := s.checkQuota(ctx, u.Uploader, 0, limits); err != nil {
		return err
	}
	t, err := s.receive(u.Body, limits.MaxUploadBytes)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkQuota(ctx, u.Uploader, t.size, limits); err != nil {
		t.discard()
		return err
	}
	if err := s.install(t, s.contentPath(t.sha)); err != nil {
		t.discard()
		return err
	}
	return s.db.Write(ctx, func(tx *storage.Tx) error { return record(tx, t) })
}

func (s *Service) checkQuota(ctx context.Context, localpart string, extra int64, l Limits) error {
	if l.QuotaBytes < 0 {
		return nil
	}
	used, _, err := s.db.MediaUsage(ctx, localpart, s.now().UnixMilli())
	if err != nil {
		return err
	}
	if used+extra > l.QuotaBytes || (extra == 0 && used >= l.QuotaBytes) {
		return ErrQuotaExceeded
	}
	return nil
}

// Create reserves a media ID for content uploaded later (the asynchronous upload flow). It
// returns the URI and when the reservation lapses (Unix ms).
func (s *Service) Create(ctx context.Context, uploader string) (id.ContentURI, int64, error) {
	now := s.now()
	_, pending, err := s.db.MediaUsage(ctx, uploader, now.UnixMilli())
	if err != nil {
		return id.ContentURI{}, 0, err
	}
	if pending >= s.Limits().MaxPending {
		return id.ContentURI{}, 0, ErrTooManyPending
	}
	mediaID := newMediaID()
	expires := now.Add(PendingTTL).UnixMilli()
	err = s.db.Write(ctx, func(tx *storage.Tx) error {
		return tx.CreateMedia(storage.Media{Origin: s.serverName, MediaID: mediaID, Uploader: uploader, CreatedTS: now.UnixMilli(), ExpiresTS: expires})
	})
	if err != nil {
		return id.ContentURI{}, 0, err
	}
	return id.ContentURI{Homeserver: s.serverName, FileID: mediaID}, expires, nil
}

// UploadTo fills a media ID reserved by Create. Only its creator may, and only once.
func (s *Service) UploadTo(ctx context.Context, origin, mediaID string, u Upload) error {
	if origin != s.serverName || !ValidMediaID(mediaID) {
		return ErrNotFound
	}
	m, err := s.db.Media(ctx, origin, mediaID)
	if errors.Is(err, storage.ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	switch {
	case m.Uploader != u.Uploader:
		return ErrNotOwner
	case !m.Pending():
		return ErrCannotOverwrite
	case s.now().UnixMilli() >= m.ExpiresTS:
		return ErrNotFound
	}
	err = s.store(ctx, u, func(tx *storage.Tx, t *tempFile) error {
		err := tx.CompleteMedia(origin, mediaID, t.sha, t.size, u.ContentType, u.Filename)
		if errors.Is(err, storage.ErrAlreadyUploaded) {
			return ErrCannotOverwrite
		}
		if errors.Is(err, storage.ErrNotFound) {
			return ErrNotFound
		}
		return err
	})
	if err != nil {
		return err
	}
	s.wake(mediaID)
	return nil
}

// waiter returns a channel closed when mediaID's upload completes. Call with s.mu held.
func (s *Service) waiter(mediaID string) chan struct{} {
	ch, ok := s.waiters[mediaID]
	if !ok {
		ch = make(chan struct{})
		s.waiters[mediaID] = ch
	}
	return ch
}

func (s *Service) wake(mediaID string) {
	s.mu.Lock()
	if ch, ok := s.waiters[mediaID]; ok {
		close(ch)
		delete(s.waiters, mediaID)
	}
	s.mu.Unlock()
}
