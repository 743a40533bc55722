package httpapi

import "net/http"

// turnServer is GET /_matrix/client/v3/voip/turnServer: short-lived TURN credentials for the
// caller. See https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3voipturnserver
//
// Without a TURN server it answers 200 with an empty object, as Synapse and Dendrite do. The
// spec does not say what to send (matrix-org/matrix-spec#1795; MSC4166 proposes 404
// M_NOT_FOUND), and clients built on matrix-js-sdk read `{}` as "no TURN" and carry on, while
// an empty `uris` list would reach RTCPeerConnection, which rejects it.
func (a *API) turnServer(w http.ResponseWriter, r *http.Request) error {
	if a.voip == nil {
		writeJSON(w, http.StatusOK, struct{}{})
		return nil
	}
	creds, ok := a.voip.Credentials(caller(r).UserID)
	if !ok {
		writeJSON(w, http.StatusOK, struct{}{})
		return nil
	}
	writeJSON(w, http.StatusOK, creds)
	return nil
}
