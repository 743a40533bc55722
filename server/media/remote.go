package media

import (
	"context"
	"errors"
	"io"
	"time"

	"fyr/storage"
)

// Remote fetches content from the server named in an mxc:// URI over federation
// (/_matrix/federation/v1/media/download). federation/mediafetch implements it; without one
// (SetRemote never called), remote media is not found.
type Remote interface {
	// Fetch streams one item; wait is how long the remote may wait for content that is not
	// uploaded yet (the client's timeout_ms). The caller closes Body and bounds what it reads.
	//
	// Errors: ErrNotFound if the remote has no such item, ErrNotYetUploaded if it says the
	// item is not uploaded yet, ErrRemoteTooLarge if it refuses it as too large to serve,
	// ErrRemoteTimeout if it did not answer in time (including a
	// Body that stops arriving); anything else is a failure of the remote or the link.
	Fetch(ctx context.Context, origin, mediaID string, wait time.Duration) (*RemoteContent, error)
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
	ErrRemoteTimeout  = errors.New("media: timed out fetching remote content")
)

// SetRemote installs the federation fetcher. Call it before serving.
func (s *Service) SetRemote(r Remote) { s.remote = r }

// remoteFlight is one download of a remote item in progress; requests for the same item
// wait for it instead of downloading it again.
type remoteFlight struct {
	done chan struct{}
	// err is the download's outcome, set before done is closed.
	err error
	// abandoned: the requester that downloaded gave up (its client went away), which says
	// nothing about the remote, so a waiting request downloads afresh.
	abandoned bool
}

// fetchRemote returns cached remote metadata, fetching and caching the content on first use.
// Concurrent requests for one item share one download (as Synapse's linearizer does): the
// first requester downloads while the others wait, then all read the cache, or share the
// error. Cached copies count against no user's quota and are bounded by the upload limit.
func (s *Service) fetchRemote(ctx context.Context, origin, mediaID string, wait time.Duration) (*storage.Media, error) {
	key := origin + "/" + mediaID
	for {
		m, err := s.cachedRemote(ctx, origin, mediaID)
		if err == nil || !errors.Is(err, storage.ErrNotFound) {
			return m, err
		}
		if s.remote == nil {
			return nil, ErrNotFound
		}
		f := &remoteFlight{done: make(chan struct{})}
		if other, busy := s.remoteBusy.LoadOrStore(key, f); busy {
			other := other.(*remoteFlight)
			s.remoteWaiting.Add(1)
			select {
			case <-other.done:
				s.remoteWaiting.Add(-1)
			case <-ctx.Done():
				s.remoteWaiting.Add(-1)
				return nil, ctx.Err()
			}
			if other.err != nil && !other.abandoned {
				return nil, other.err
			}
			continue
		}
		err = s.download(ctx, origin, mediaID, wait)
		f.err, f.abandoned = err, err != nil && ctx.Err() != nil
		s.remoteBusy.Delete(key)
		close(f.done)
		if err != nil {
			return nil, err
		}
	}
}

// cachedRemote returns the cached copy of a remote item, storage.ErrNotFound if there is
// none, or ErrNotFound if it is quarantined.
func (s *Service) cachedRemote(ctx context.Context, origin, mediaID string) (*storage.Media, error) {
	m, err := s.db.Media(ctx, origin, mediaID)
	if err != nil {
		return nil, err
	}
	if m.Quarantined || m.Pending() {
		return nil, ErrNotFound
	}
	return m, nil
}

// download fetches one remote item and caches it. The remote's reasons for failing go to
// the log; the requester gets one of the Remote errors.
func (s *Service) download(ctx context.Context, origin, mediaID string, wait time.Duration) error {
	rc, err := s.remote.Fetch(ctx, origin, mediaID, wait)
	if err != nil {
		return s.remoteError(ctx, origin, mediaID, err)
	}
	defer rc.Body.Close()
	u := Upload{ContentType: rc.ContentType, Filename: rc.Filename}
	cleanUpload(&u)
	t, err := s.receive(rc.Body, s.Limits().MaxUploadBytes)
	if errors.Is(err, ErrTooLarge) {
		return ErrRemoteTooLarge
	}
	if err != nil {
		return s.remoteError(ctx, origin, mediaID, err)
	}
	meta := storage.Media{Origin: origin, MediaID: mediaID, SHA256: t.sha, Size: t.size,
		ContentType: u.ContentType, Filename: u.Filename, CreatedTS: s.now().UnixMilli()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.install(t, s.contentPath(t.sha)); err != nil {
		t.discard()
		return err
	}
	err = s.db.Write(ctx, func(tx *storage.Tx) error { return tx.CreateMedia(meta) })
	if errors.Is(err, storage.ErrExists) { // cached meanwhile (an admin import, say)
		return nil
	}
	return err
}

// remoteError turns a failed fetch into the error the requester sees.
func (s *Service) remoteError(ctx context.Context, origin, mediaID string, err error) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return ErrNotFound
	case errors.Is(err, ErrNotYetUploaded):
		return ErrNotYetUploaded
	case errors.Is(err, ErrRemoteTooLarge):
		return ErrRemoteTooLarge
	case ctx.Err() != nil:
		return ctx.Err()
	}
	s.log.Warn("fetching remote media", "origin", origin, "media_id", mediaID, "err", err)
	if errors.Is(err, ErrRemoteTimeout) {
		return ErrRemoteTimeout
	}
	return ErrRemoteFailed
}
