// Package transport is how this server talks to other Matrix servers at the connection level.
// For now it only holds the TLS material of the federation listener: creating the certificate
// and key files (self-signed, or minted from a test CA such as Complement's) and serving them
// to crypto/tls with reloading.
//
// Server discovery (.well-known, SRV, port 8448) and X-Matrix request signing will live here
// later; they are not written yet. The federation signing key is not TLS material and lives in
// federation/keys.
package transport
