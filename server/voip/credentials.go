package voip

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"
)

// Credentials are the body of GET /voip/turnServer.
// See https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientv3voipturnserver
type Credentials struct {
	Username string   `json:"username"`
	Password string   `json:"password"`
	URIs     []string `json:"uris"`
	TTL      int64    `json:"ttl"` // seconds
}

// Username is the TURN REST API username for user, valid until expiry (to the second).
func Username(expiry time.Time, user id.UserID) string {
	return strconv.FormatInt(expiry.Unix(), 10) + ":" + string(user)
}

// Password is the TURN REST API password for username: base64(HMAC-SHA1(secret, username)),
// as coturn's use-auth-secret computes it.
func Password(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ParseUsername splits a TURN REST API username into its expiry and user ID. The user ID
// must be a valid Matrix user ID; anything else is ErrBadUsername.
func ParseUsername(username string) (time.Time, id.UserID, error) {
	ts, user, ok := strings.Cut(username, ":")
	if !ok {
		return time.Time{}, "", ErrBadUsername
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}, "", ErrBadUsername
	}
	if _, _, err := id.UserID(user).Parse(); err != nil {
		return time.Time{}, "", fmt.Errorf("%w: %v", ErrBadUsername, err)
	}
	return time.Unix(sec, 0), id.UserID(user), nil
}

// checkUsername parses username and checks that it has not expired at now and names a user
// of serverName.
func checkUsername(username, serverName string, now time.Time) (time.Time, id.UserID, error) {
	expiry, user, err := ParseUsername(username)
	if err != nil {
		return expiry, user, err
	}
	if !now.Before(expiry) {
		return expiry, user, ErrExpired
	}
	if user.Homeserver() != serverName {
		return expiry, user, ErrForeignUser
	}
	return expiry, user, nil
}
