package storage

import "maunium.net/go/mautrix/id"

// RefreshableToken is an access token that expires, stored together with the refresh token
// that renews it. Both belong to one device and go when the device goes.
type RefreshableToken struct {
	AccessHash  []byte
	RefreshHash []byte
	Localpart   string
	DeviceID    id.DeviceID
	CreatedTS   int64
	// ExpiresTS is when the access token expires, in Unix milliseconds.
	ExpiresTS int64
}

// AddRefreshableToken stores a new access token and its refresh token for an existing device.
func (tx *Tx) AddRefreshableToken(t RefreshableToken) error {
	if _, err := tx.Exec(`INSERT INTO refresh_tokens (token_hash, localpart, device_id, created_ts) VALUES (?, ?, ?, ?)`,
		t.RefreshHash, t.Localpart, t.DeviceID, t.CreatedTS); err != nil {
		return err
	}
	_, err := tx.Exec(`INSERT INTO access_tokens (token_hash, localpart, device_id, created_ts, expires_ts, refresh_hash)
		VALUES (?, ?, ?, ?, ?, ?)`, t.AccessHash, t.Localpart, t.DeviceID, t.CreatedTS, t.ExpiresTS, t.RefreshHash)
	return err
}

// RefreshTokenDevice returns the user and device a refresh token belongs to. It returns
// ErrNotFound for unknown and revoked tokens and for tokens of deactivated users.
func (tx *Tx) RefreshTokenDevice(hash []byte) (string, id.DeviceID, error) {
	var localpart string
	var deviceID id.DeviceID
	err := tx.QueryRow(`SELECT r.localpart, r.device_id FROM refresh_tokens r JOIN users u ON u.localpart = r.localpart
		WHERE r.token_hash = ? AND u.deactivated = 0`, hash).Scan(&localpart, &deviceID)
	if err != nil {
		return "", "", notFound(err)
	}
	return localpart, deviceID, nil
}

// FinishRefresh is called on the first use of the refresh token hash, or of the access token
// issued with it: the refresh token it replaced is revoked, as the spec asks. At the same
// time the device's access tokens that expired before expiredBefore are deleted, so a device
// that refreshes every few minutes keeps only its recent tokens. A token without a
// predecessor is left as it is.
func (tx *Tx) FinishRefresh(hash []byte, expiredBefore int64) error {
	var prev []byte
	var localpart string
	var deviceID id.DeviceID
	err := tx.QueryRow(`SELECT prev_hash, localpart, device_id FROM refresh_tokens WHERE token_hash = ?`, hash).
		Scan(&prev, &localpart, &deviceID)
	if err != nil {
		return notFound(err)
	}
	if prev == nil {
		return nil
	}
	if _, err := tx.Exec(`DELETE FROM refresh_tokens WHERE token_hash = ?`, prev); err != nil {
		return err
	}
	if _, err := tx.Exec(`UPDATE refresh_tokens SET prev_hash = NULL WHERE token_hash = ?`, hash); err != nil {
		return err
	}
	_, err = tx.Exec(`DELETE FROM access_tokens WHERE localpart = ? AND device_id = ? AND expires_ts < ?`,
		localpart, deviceID, expiredBefore)
	return err
}

// ReplaceRefreshToken stores t as the successor of the refresh token old, which stays valid
// until FinishRefresh(t.RefreshHash). If old already had a successor that was never used (a
// client that lost the answer to its refresh and asked again), that successor and its access
// token are revoked: a refresh token has at most one successor.
func (tx *Tx) ReplaceRefreshToken(old []byte, t RefreshableToken) error {
	if _, err := tx.Exec(`DELETE FROM access_tokens WHERE refresh_hash IN (SELECT token_hash FROM refresh_tokens WHERE prev_hash = ?)`, old); err != nil {
		return err
	}
	if _, err := tx.Exec(`DELETE FROM refresh_tokens WHERE prev_hash = ?`, old); err != nil {
		return err
	}
	if err := tx.AddRefreshableToken(t); err != nil {
		return err
	}
	_, err := tx.Exec(`UPDATE refresh_tokens SET prev_hash = ? WHERE token_hash = ?`, old, t.RefreshHash)
	return err
}
