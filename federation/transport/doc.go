// Package transport is how this server talks to other Matrix servers at the connection level:
//
//   - Resolver finds a server: static peers (federation.static_peers), then the spec's order
//     of IP literal, explicit port, .well-known/matrix/server, SRV and port 8448, with caching
//     that survives outages (resolve.go, wellknown.go, staticpeers.go).
//   - Client sends requests: TLS verified against the system roots or federation.ca_file, SNI
//     and Host as the spec says, X-Matrix signatures, a bounded pool per destination, short
//     timeouts and HTTP/2 pings so a dead link is noticed in seconds (client.go,
//     destination.go).
//   - Verifier authenticates inbound requests by their X-Matrix headers and hands the origin
//     to handlers through the context (inbound.go, xmatrix.go).
//   - The federation listener's TLS certificate: EnsureCertificate creates it (self-signed,
//     or minted from a test CA such as Complement's) and CertStore serves and reloads it
//     (tls.go, certstore.go).
//
// It is not for what requests mean: keys (federation/keys), transactions and queries
// (federation/inbound) and the outbound queues (federation/outbound) build on it. The
// federation signing key is not TLS material and lives in federation/keys.
package transport
