package storage

import "context"

// OpenIDUser returns the localpart an unexpired OpenID token belongs to, or ErrNotFound.
// Tokens of deactivated users are not found.
func (db *DB) OpenIDUser(ctx context.Context, tokenHash []byte, now int64) (string, error) {
	var localpart string
	err := db.queryRow(ctx, `SELECT o.localpart FROM openid_tokens o JOIN users u ON u.localpart = o.localpart
		WHERE o.token_hash = ? AND o.expires_ts > ? AND u.deactivated = 0`, tokenHash, now).Scan(&localpart)
	if err != nil {
		return "", notFound(err)
	}
	return localpart, nil
}

// AddOpenIDToken stores a new token's hash.
func (tx *Tx) AddOpenIDToken(tokenHash []byte, localpart string, expires int64) error {
	_, err := tx.Exec(`INSERT INTO openid_tokens (token_hash, localpart, expires_ts) VALUES (?, ?, ?)`, tokenHash, localpart, expires)
	return err
}

// ForgetOpenIDTokens deletes tokens that expired before now.
func (tx *Tx) ForgetOpenIDTokens(now int64) error {
	_, err := tx.Exec(`DELETE FROM openid_tokens WHERE expires_ts <= ?`, now)
	return err
}
