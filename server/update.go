package server

import "fyr/server/httpapi"

// SetUpdater lets server admins upload signed system bundles (POST /_fyr/admin/v1/update).
// On a Fyr box cmd/fyr passes firmware/update's installer; elsewhere the endpoint answers
// 404. It is safe to call while the server runs.
func (s *Server) SetUpdater(u httpapi.Updater) { s.api.SetUpdater(u) }
