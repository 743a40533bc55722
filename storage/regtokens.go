package storage

import (
	"context"
	"database/sql"
	"errors"
)

// ErrTokenUsedUp means a registration token has no uses left or has expired.
var ErrTokenUsedUp = errors.New("storage: registration token used up or expired")

// RegistrationToken is a stored registration token (only its hash is kept).
type RegistrationToken struct {
	Hash        []byte
	UsesAllowed int64 // 0: unlimited
	Completed   int64
	ExpiryTS    int64 // Unix ms; 0: never
	GrantsAdmin bool
	CreatedTS   int64
}

// Usable reports whether the token admits one more registration at time now (Unix ms).
func (t *RegistrationToken) Usable(now int64) bool {
	if t.ExpiryTS != 0 && now >= t.ExpiryTS {
		return false
	}
	return t.UsesAllowed == 0 || t.Completed < t.UsesAllowed
}

const regTokenColumns = `token_hash, coalesce(uses_allowed, 0), completed, coalesce(expiry_ts, 0), grants_admin, created_ts`

func scanRegToken(row *sql.Row) (*RegistrationToken, error) {
	var t RegistrationToken
	if err := row.Scan(&t.Hash, &t.UsesAllowed, &t.Completed, &t.ExpiryTS, &t.GrantsAdmin, &t.CreatedTS); err != nil {
		return nil, notFound(err)
	}
	return &t, nil
}

// RegistrationToken looks up a token by hash, or ErrNotFound.
func (db *DB) RegistrationToken(ctx context.Context, hash []byte) (*RegistrationToken, error) {
	return scanRegToken(db.queryRow(ctx, `SELECT `+regTokenColumns+` FROM registration_tokens WHERE token_hash = ?`, hash))
}

// CreateRegistrationToken stores a new token.
func (tx *Tx) CreateRegistrationToken(t RegistrationToken) error {
	_, err := tx.Exec(`INSERT INTO registration_tokens (token_hash, uses_allowed, expiry_ts, grants_admin, created_ts)
		VALUES (?, nullif(?, 0), nullif(?, 0), ?, ?)`, t.Hash, t.UsesAllowed, t.ExpiryTS, t.GrantsAdmin, t.CreatedTS)
	if isConstraint(err) {
		return ErrExists
	}
	return err
}

// UseRegistrationToken counts one completed registration against the token, in the same
// transaction as the account it admits. It returns the token as it was, ErrNotFound, or
// ErrTokenUsedUp.
func (tx *Tx) UseRegistrationToken(hash []byte, now int64) (*RegistrationToken, error) {
	t, err := scanRegToken(tx.QueryRow(`SELECT `+regTokenColumns+` FROM registration_tokens WHERE token_hash = ?`, hash))
	if err != nil {
		return nil, err
	}
	if !t.Usable(now) {
		return nil, ErrTokenUsedUp
	}
	if _, err := tx.Exec(`UPDATE registration_tokens SET completed = completed + 1 WHERE token_hash = ?`, hash); err != nil {
		return nil, err
	}
	return t, nil
}

// DeleteAdminBootstrapTokens removes every token that grants admin rights, so that only the
// newest printed bootstrap token works.
func (tx *Tx) DeleteAdminBootstrapTokens() error {
	_, err := tx.Exec(`DELETE FROM registration_tokens WHERE grants_admin = 1`)
	return err
}
