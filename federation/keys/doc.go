// Package keys holds this server's federation signing key: loading it from a Synapse-compatible
// key file, creating one on first start, and signing with it.
//
// It will also hold the key server (GET /_matrix/key/v2/server) and the cache of remote
// servers' verify keys; neither exists yet. It is not for TLS material, which lives in
// federation/transport, nor for end-to-end encryption keys of users' devices.
package keys
