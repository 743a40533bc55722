package media

// AllowLoopbackPreviews lets a test preview pages on its own loopback server.
func (s *Service) AllowLoopbackPreviews() { s.preview.allowLoopback = true }
