package media

// AllowLoopbackPreviews lets a test preview pages on its own loopback server.
func (s *Service) AllowLoopbackPreviews() { s.preview.allowLoopback = true }

// RemoteWaiters is how many requests wait for another's download of remote media.
func (s *Service) RemoteWaiters() int { return int(s.remoteWaiting.Load()) }
