#!/bin/sh
# Start command for Fyr under Complement, the Matrix conformance suite. It runs in the folder
# that holds the fyr binary (/hs inside the test container); see
# ../shared/complement-runner/README.md for the contract. Complement hands over a fresh CA at
# every container start, so the federation certificate is minted from it each time; state
# lives in ./data so blueprints (stopped and committed containers) keep it. Rate limits are
# off, the deprecated unauthenticated media paths on, and federation may reach the private
# container network where hs1, hs2 and Complement's own servers live, as the tests expect;
# server notices come from @_server:<name>, the sender TestServerNotices looks for; defaults
# are unchanged elsewhere.
set -e
exec ./fyr serve \
	--data-dir ./data \
	--server-name "$SERVER_NAME" \
	--client-addr 0.0.0.0:8008 \
	--federation-addr 0.0.0.0:8448 \
	--federation-tls-ca-cert /complement/ca/ca.crt \
	--federation-tls-ca-key /complement/ca/ca.key \
	--federation-allow-private-addresses \
	--open-registration \
	--registration-shared-secret complement \
	--rate-login-per-second 0 \
	--rate-messages-per-second 0 \
	--media-uploads-per-second 0 \
	--media-legacy-unauthenticated \
	--server-notices-localpart _server \
	--log-level "${FYR_LOG_LEVEL:-info}"
