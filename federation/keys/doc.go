// Package keys holds the federation signing keys of this server and of every server it
// talks to.
//
//   - This server's key: loading it from a Synapse-compatible key file, creating one on first
//     start (LoadOrCreate), retiring it for a new one while keeping its public half (Rotate,
//     LoadOldKeys), and publishing both, self-signed, at GET /_matrix/key/v2/server (Local).
//   - Remote servers' keys (Ring): fetched from the server itself, then from the configured
//     notaries, checked against their self-signature (and the notary's) and kept in a
//     persistent cache in storage, so that keys already seen keep verifying while a peer and
//     the notaries are unreachable, within their validity. VerifyKey and KeyFunc are what
//     X-Matrix request checks and PDU signature checks call.
//   - The notary endpoints, GET and POST /_matrix/key/v2/query, answered from that cache with
//     this server's signature added (Ring.Routes).
//
// It is not for TLS material, which lives in federation/transport, nor for end-to-end
// encryption keys of users' devices. It makes no HTTP requests itself: a Getter (the
// federation client) does them.
// See https://spec.matrix.org/v1.19/server-server-api/#retrieving-server-keys
package keys
