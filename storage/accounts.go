package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/id"
)

// User is one row of the users table.
type User struct {
	Localpart    string
	PasswordHash string // empty: no password set
	Admin        bool
	Deactivated  bool
	CreatedTS    int64 // Unix milliseconds
}

// Device is one of a user's devices (a login).
type Device struct {
	ID          id.DeviceID
	DisplayName string
	CreatedTS   int64
	LastSeenTS  int64  // 0: never seen since login
	LastSeenIP  string // "": unknown
}

// TokenOwner is who an access token belongs to.
type TokenOwner struct {
	Localpart string
	DeviceID  id.DeviceID
	Admin     bool
	// ExpiresTS is when the token expires, in Unix milliseconds; 0: never.
	ExpiresTS int64
	// PendingRefresh is the hash of the refresh token issued with this access token while the
	// refresh token that it replaced is still valid: the caller passes it to FinishRefresh.
	// Nil otherwise.
	PendingRefresh []byte
}

// User returns the user with this localpart, deactivated or not, or ErrNotFound.
func (db *DB) User(ctx context.Context, localpart string) (*User, error) {
	const q = `SELECT localpart, coalesce(password_hash, ''), is_admin, deactivated, created_ts
		FROM users WHERE localpart = ?`
	var u User
	err := db.queryRow(ctx, q, localpart).Scan(&u.Localpart, &u.PasswordHash, &u.Admin, &u.Deactivated, &u.CreatedTS)
	if err != nil {
		return nil, notFound(err)
	}
	return &u, nil
}

// HasAdmin reports whether any active admin account exists.
func (db *DB) HasAdmin(ctx context.Context) (bool, error) {
	var n int
	err := db.queryRow(ctx, `SELECT count(*) FROM users WHERE is_admin = 1 AND deactivated = 0`).Scan(&n)
	return n > 0, err
}

// TokenOwner looks up an access token by its hash. It returns ErrNotFound for unknown tokens
// and for tokens of deactivated users.
func (db *DB) TokenOwner(ctx context.Context, tokenHash []byte) (*TokenOwner, error) {
	const q = `SELECT t.localpart, t.device_id, u.is_admin, coalesce(t.expires_ts, 0),
			CASE WHEN r.prev_hash IS NOT NULL THEN r.token_hash END
		FROM access_tokens t JOIN users u ON u.localpart = t.localpart
			LEFT JOIN refresh_tokens r ON r.token_hash = t.refresh_hash
		WHERE t.token_hash = ? AND u.deactivated = 0`
	var o TokenOwner
	if err := db.queryRow(ctx, q, tokenHash).Scan(&o.Localpart, &o.DeviceID, &o.Admin, &o.ExpiresTS, &o.PendingRefresh); err != nil {
		return nil, notFound(err)
	}
	return &o, nil
}

// Devices lists a user's devices, oldest first.
func (db *DB) Devices(ctx context.Context, localpart string) ([]Device, error) {
	const q = `SELECT device_id, coalesce(display_name, ''), created_ts, coalesce(last_seen_ts, 0), coalesce(last_seen_ip, '')
		FROM devices WHERE localpart = ? ORDER BY created_ts, device_id`
	rows, err := db.read.QueryContext(ctx, q, localpart)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ds []Device
	for rows.Next() {
		var d Device
		if err := rows.Scan(&d.ID, &d.DisplayName, &d.CreatedTS, &d.LastSeenTS, &d.LastSeenIP); err != nil {
			return nil, err
		}
		ds = append(ds, d)
	}
	return ds, rows.Err()
}

// Device returns one of a user's devices, or ErrNotFound.
func (db *DB) Device(ctx context.Context, localpart string, deviceID id.DeviceID) (*Device, error) {
	const q = `SELECT device_id, coalesce(display_name, ''), created_ts, coalesce(last_seen_ts, 0), coalesce(last_seen_ip, '')
		FROM devices WHERE localpart = ? AND device_id = ?`
	var d Device
	err := db.queryRow(ctx, q, localpart, deviceID).Scan(&d.ID, &d.DisplayName, &d.CreatedTS, &d.LastSeenTS, &d.LastSeenIP)
	if err != nil {
		return nil, notFound(err)
	}
	return &d, nil
}

// Profile returns every profile field of a user as raw JSON values, or ErrNotFound if the
// user does not exist. A deactivated user has an empty profile.
func (db *DB) Profile(ctx context.Context, localpart string) (map[string][]byte, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT u.localpart, p.field, p.value
		FROM users u LEFT JOIN profile_fields p ON p.localpart = u.localpart
		WHERE u.localpart = ?`, localpart)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var fields map[string][]byte
	for rows.Next() {
		var lp string
		var field, value sql.NullString
		if err := rows.Scan(&lp, &field, &value); err != nil {
			return nil, err
		}
		if fields == nil {
			fields = map[string][]byte{}
		}
		if field.Valid {
			fields[field.String] = []byte(value.String)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if fields == nil {
		return nil, ErrNotFound
	}
	return fields, nil
}

// CreateUser inserts a user. It returns ErrExists if the localpart is taken, including by a
// deactivated account.
func (tx *Tx) CreateUser(u User) error {
	_, err := tx.Exec(`INSERT INTO users (localpart, password_hash, is_admin, created_ts) VALUES (?, nullif(?, ''), ?, ?)`,
		u.Localpart, u.PasswordHash, u.Admin, u.CreatedTS)
	if isConstraint(err) {
		return fmt.Errorf("user %q: %w", u.Localpart, ErrExists)
	}
	return err
}

// SetPassword replaces a user's password hash.
func (tx *Tx) SetPassword(localpart, hash string) error {
	return expectOne(tx.Exec(`UPDATE users SET password_hash = nullif(?, '') WHERE localpart = ? AND deactivated = 0`, hash, localpart))
}

// SetAdmin grants or revokes server admin rights.
func (tx *Tx) SetAdmin(localpart string, admin bool) error {
	return expectOne(tx.Exec(`UPDATE users SET is_admin = ? WHERE localpart = ?`, admin, localpart))
}

// Deactivate disables an account for good: password, devices, tokens and profile go; the
// localpart stays taken.
func (tx *Tx) Deactivate(localpart string) error {
	if err := expectOne(tx.Exec(`UPDATE users SET deactivated = 1, password_hash = NULL, is_admin = 0 WHERE localpart = ?`, localpart)); err != nil {
		return err
	}
	if _, err := tx.Exec(`DELETE FROM devices WHERE localpart = ?`, localpart); err != nil {
		return err
	}
	_, err := tx.Exec(`DELETE FROM profile_fields WHERE localpart = ?`, localpart)
	return err
}

// CreateDevice adds a device, or keeps the existing one with this ID (its name too, unless
// the old one had none) and revokes its access and refresh tokens, as the spec asks of a
// login that names a known device.
func (tx *Tx) CreateDevice(localpart string, d Device) error {
	_, err := tx.Exec(`INSERT INTO devices (localpart, device_id, display_name, created_ts, last_seen_ts, last_seen_ip)
		VALUES (?, ?, nullif(?, ''), ?, nullif(?, 0), nullif(?, ''))
		ON CONFLICT (localpart, device_id) DO UPDATE SET
			display_name = coalesce(display_name, excluded.display_name),
			last_seen_ts = excluded.last_seen_ts, last_seen_ip = excluded.last_seen_ip`,
		localpart, d.ID, d.DisplayName, d.CreatedTS, d.LastSeenTS, d.LastSeenIP)
	if err != nil {
		return err
	}
	if _, err = tx.Exec(`DELETE FROM access_tokens WHERE localpart = ? AND device_id = ?`, localpart, d.ID); err != nil {
		return err
	}
	_, err = tx.Exec(`DELETE FROM refresh_tokens WHERE localpart = ? AND device_id = ?`, localpart, d.ID)
	return err
}

// SetDeviceName renames a device; ErrNotFound if the user has no such device.
func (tx *Tx) SetDeviceName(localpart string, deviceID id.DeviceID, name string) error {
	return expectOne(tx.Exec(`UPDATE devices SET display_name = ? WHERE localpart = ? AND device_id = ?`, name, localpart, deviceID))
}

// DeleteDevices removes the given devices and their access and refresh tokens. Unknown IDs
// are ignored.
func (tx *Tx) DeleteDevices(localpart string, ids []id.DeviceID) error {
	for _, d := range ids {
		if _, err := tx.Exec(`DELETE FROM devices WHERE localpart = ? AND device_id = ?`, localpart, d); err != nil {
			return err
		}
	}
	return nil
}

// DeleteDevicesExcept removes every device of the user except keep ("" keeps none).
func (tx *Tx) DeleteDevicesExcept(localpart string, keep id.DeviceID) error {
	_, err := tx.Exec(`DELETE FROM devices WHERE localpart = ? AND device_id != ?`, localpart, keep)
	return err
}

// TouchDevice records when and from where a device was last used.
func (tx *Tx) TouchDevice(localpart string, deviceID id.DeviceID, ts int64, ip string) error {
	_, err := tx.Exec(`UPDATE devices SET last_seen_ts = ?, last_seen_ip = ? WHERE localpart = ? AND device_id = ?`, ts, ip, localpart, deviceID)
	return err
}

// AddAccessToken stores the hash of a new token for an existing device.
func (tx *Tx) AddAccessToken(tokenHash []byte, localpart string, deviceID id.DeviceID, ts int64) error {
	_, err := tx.Exec(`INSERT INTO access_tokens (token_hash, localpart, device_id, created_ts) VALUES (?, ?, ?, ?)`,
		tokenHash, localpart, deviceID, ts)
	return err
}

// SetProfileField sets one profile field to a JSON value.
func (tx *Tx) SetProfileField(localpart, field string, value []byte) error {
	_, err := tx.Exec(`INSERT INTO profile_fields (localpart, field, value) VALUES (?, ?, ?)
		ON CONFLICT (localpart, field) DO UPDATE SET value = excluded.value`, localpart, field, string(value))
	return err
}

// DeleteProfileField removes one profile field; removing a missing field is not an error.
func (tx *Tx) DeleteProfileField(localpart, field string) error {
	_, err := tx.Exec(`DELETE FROM profile_fields WHERE localpart = ? AND field = ?`, localpart, field)
	return err
}

// expectOne turns "no row changed" into ErrNotFound.
func expectOne(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// isConstraint reports a UNIQUE or PRIMARY KEY violation.
func isConstraint(err error) bool {
	if err == nil {
		return false
	}
	var coder interface{ Code() int }
	if errors.As(err, &coder) {
		// SQLITE_CONSTRAINT_PRIMARYKEY = 1555, SQLITE_CONSTRAINT_UNIQUE = 2067
		return coder.Code() == 1555 || coder.Code() == 2067
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// ProfileSize is the size of a user's profile as the spec counts it: the JSON object of all
// fields, approximated by the sum of keys, values and JSON punctuation.
func (tx *Tx) ProfileSize(localpart string) (int, error) {
	var n int
	err := tx.QueryRow(`SELECT coalesce(sum(length(CAST(field AS BLOB)) + length(CAST(value AS BLOB)) + 4), 0) + 2
		FROM profile_fields WHERE localpart = ?`, localpart).Scan(&n)
	return n, err
}
