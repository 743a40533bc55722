// Package voip is Fyr's answer to NAT for calls: the built-in TURN server (pion/turn v4, over
// UDP, TCP and optionally TLS) and the short-lived credentials that GET /voip/turnServer hands
// out for it, or for an external TURN server such as coturn.
//
// Credentials follow the TURN REST API scheme that Synapse and coturn use: the username is
// "<expiry unix time>:<user id>" and the password base64(HMAC-SHA1(secret, username)). The
// relay refuses peers on loopback, link-local, multicast and private ranges unless allowed,
// holds each user to an allocation quota and a bandwidth limit, and counts what it does.
//
// It is not for call signalling (m.call.* events travel through rooms like any other event),
// nor for HTTP: server/httpapi serves the endpoint with a Service from here. TURN state lives
// in memory only; a restart drops every allocation and clients allocate again.
package voip

import "errors"

// Errors from parsing and checking credentials.
var (
	ErrBadUsername = errors.New("voip: username is not <expiry>:<user id>")
	ErrExpired     = errors.New("voip: credentials expired")
	ErrForeignUser = errors.New("voip: user is not on this server")
)
