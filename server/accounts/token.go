package accounts

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"

	"maunium.net/go/mautrix/id"
)

// accessTokenPrefix and refreshTokenPrefix make Fyr tokens recognisable to secret scanners
// and in bug reports.
const (
	accessTokenPrefix  = "fyt_"
	refreshTokenPrefix = "fyr_"
)

// newSecret returns n random bytes in URL-safe base64.
func newSecret(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// newAccessToken returns a new token (256 random bits) and the hash that is stored.
func newAccessToken() (string, []byte) {
	tok := accessTokenPrefix + newSecret(32)
	return tok, HashToken(tok)
}

// newRefreshToken returns a new refresh token (256 random bits) and the hash that is stored.
func newRefreshToken() (string, []byte) {
	tok := refreshTokenPrefix + newSecret(32)
	return tok, HashToken(tok)
}

// HashToken is how access, refresh and registration tokens are stored: SHA-256 of the token. The
// tokens are random with at least 128 bits, so a fast hash suffices; a stolen database
// yields no usable token.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

const deviceIDAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

// newDeviceID returns ten random capital letters, as Synapse does.
func newDeviceID() id.DeviceID {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = deviceIDAlphabet[int(b[i])%len(deviceIDAlphabet)]
	}
	return id.DeviceID(b)
}

// NewSecret returns a fresh random secret (256 bits, URL-safe) for files such as the TURN
// shared secret.
func NewSecret() string { return newSecret(32) }
