package media

import (
	"context"
	"errors"
	"fmt"
	"io"

	"fyr/storage"
)

// Remote fetches content from the server named in an mxc:// URI over federation
// (/_matrix/federation/v1/media/download). The federation packages provide it; until they
// do, SetRemote is never called and remote media is not found.
type Remote interface {
	// Fetch streams one item. The caller closes Body.
	Fetch(ctx context.Context, origin, mediaID string) (*RemoteContent, error)
}

// RemoteContent is what a remote server sent for one item.
type RemoteContent struct {
	Body        io.ReadCloser
	ContentType string
	Filename    string
}

// Remote media errors.
var (
	ErrRemoteTooLarge = errors.New("media: remote content is larger than this server caches")
	ErrRemoteFailed   = errors.New("media: could not fetch remote content")
)

// SetRemote installs the federation fetcher. Call it before serving.
func (s *Service) SetRemote(r Remote) { s.remote = r }

// fetchRemote returns cached remote metadata, fetching and caching the content on first use.
// Cached copies count against no user's quota and are bounded by the upload limit.
func (s *Service) fetchRemote(ctx context.Context, origin, mediaID string) (*storage.Media, error) {
	m, err := s.db.Media(ctx, origin, mediaID)
	if err == nil {
		if m.Quarantined || m.Pending() {
			return nil, ErrNotFound
		}
		return m, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if s.remote == nil {
		return nil, ErrNotFound
	}
	rc, err := s.remote.Fetch(ctx, origin, mediaID)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRemoteFailed, err)
	}
	defer rc.Body.Close()
	u := Upload{ContentType: rc.ContentType, Filename: rc.Filename}
	cleanUpload(&u)
	t, err := s.receive(rc.Body, s.Limits().MaxUploadBytes)
	if errors.Is(err, ErrTooLarge) {
		return nil, ErrRemoteTooLarge
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRemoteFailed, err)
	}
	meta := storage.Media{Origin: origin, MediaID: mediaID, SHA256: t.sha, Size: t.size,
		ContentType: u.ContentType, Filename: u.Filename, CreatedTS: s.now().UnixMilli()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.install(t, s.contentPath(t.sha)); err != nil {
		t.discard()
		return nil, err
	}
	err = s.db.Write(ctx, func(tx *storage.Tx) error { return tx.CreateMedia(meta) })
	if err != nil && !errors.Is(err, storage.ErrExists) { // a concurrent fetch cached it first
		return nil, err
	}
	return s.db.Media(ctx, origin, mediaID)
}
