package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// BackupVersion is one server-side key backup of a user.
type BackupVersion struct {
	Version   int64
	Algorithm string
	// AuthData is the algorithm-dependent auth_data object as uploaded.
	AuthData []byte
	// Etag changes whenever the backup's keys change.
	Etag int64
	// Count is the number of keys in the backup.
	Count int64
}

// CreateBackupVersion creates a user's next backup version, which becomes the current one.
// Version numbers are never reused, not even those of deleted backups.
func (tx *Tx) CreateBackupVersion(userID id.UserID, algorithm string, authData []byte) (int64, error) {
	var v int64
	err := tx.QueryRow(`INSERT INTO e2ee_backup_versions (user_id, version, algorithm, auth_data)
		SELECT ?1, coalesce(max(version), 0) + 1, ?2, ?3 FROM e2ee_backup_versions WHERE user_id = ?1
		RETURNING version`, userID, algorithm, authData).Scan(&v)
	return v, err
}

const sqlBackupVersion = `SELECT v.version, v.algorithm, v.auth_data, v.etag,
	(SELECT count(*) FROM e2ee_backup_keys k WHERE k.user_id = v.user_id AND k.version = v.version)
	FROM e2ee_backup_versions v WHERE v.user_id = ?1 AND v.deleted = 0 AND (v.version = ?2 OR ?2 = 0)
	ORDER BY v.version DESC LIMIT 1`

// BackupVersion returns one of a user's backups, the current (newest not deleted) one when
// version is 0, or ErrNotFound.
func (db *DB) BackupVersion(ctx context.Context, userID id.UserID, version int64) (*BackupVersion, error) {
	return scanBackupVersion(db.queryRow(ctx, sqlBackupVersion, userID, version))
}

// BackupVersion is DB.BackupVersion inside a write.
func (tx *Tx) BackupVersion(userID id.UserID, version int64) (*BackupVersion, error) {
	return scanBackupVersion(tx.QueryRow(sqlBackupVersion, userID, version))
}

func scanBackupVersion(row interface{ Scan(...any) error }) (*BackupVersion, error) {
	var b BackupVersion
	if err := row.Scan(&b.Version, &b.Algorithm, &b.AuthData, &b.Etag, &b.Count); err != nil {
		return nil, notFound(err)
	}
	return &b, nil
}

// UpdateBackupAuthData replaces a backup's auth_data; ErrNotFound if there is no such backup.
func (tx *Tx) UpdateBackupAuthData(userID id.UserID, version int64, authData []byte) error {
	return expectOne(tx.Exec(`UPDATE e2ee_backup_versions SET auth_data = ? WHERE user_id = ? AND version = ? AND deleted = 0`,
		authData, userID, version))
}

// DeleteBackupVersion deletes a backup and its keys. Deleting a deleted backup succeeds;
// ErrNotFound means the version never existed.
func (tx *Tx) DeleteBackupVersion(userID id.UserID, version int64) error {
	if err := expectOne(tx.Exec(`UPDATE e2ee_backup_versions SET deleted = 1 WHERE user_id = ? AND version = ?`, userID, version)); err != nil {
		return err
	}
	_, err := tx.Exec(`DELETE FROM e2ee_backup_keys WHERE user_id = ? AND version = ?`, userID, version)
	return err
}

// BumpBackupEtag gives a backup a new etag after its keys changed.
func (tx *Tx) BumpBackupEtag(userID id.UserID, version int64) error {
	_, err := tx.Exec(`UPDATE e2ee_backup_versions SET etag = etag + 1 WHERE user_id = ? AND version = ?`, userID, version)
	return err
}

// BackupKey is the backed-up key of one megolm session.
type BackupKey struct {
	RoomID            id.RoomID
	SessionID         id.SessionID
	FirstMessageIndex int64
	ForwardedCount    int64
	IsVerified        bool
	// SessionData is the algorithm-dependent session_data object as uploaded.
	SessionData []byte
}

// BackupKey returns the stored key of one session, or ErrNotFound.
func (tx *Tx) BackupKey(userID id.UserID, version int64, roomID id.RoomID, sessionID id.SessionID) (*BackupKey, error) {
	k := BackupKey{RoomID: roomID, SessionID: sessionID}
	err := tx.QueryRow(`SELECT first_message_index, forwarded_count, is_verified, session_data FROM e2ee_backup_keys
		WHERE user_id = ? AND version = ? AND room_id = ? AND session_id = ?`, userID, version, roomID, sessionID).
		Scan(&k.FirstMessageIndex, &k.ForwardedCount, &k.IsVerified, &k.SessionData)
	if err != nil {
		return nil, notFound(err)
	}
	return &k, nil
}

// PutBackupKey stores a session's key, replacing the one stored.
func (tx *Tx) PutBackupKey(userID id.UserID, version int64, k BackupKey) error {
	_, err := tx.Exec(`INSERT INTO e2ee_backup_keys (user_id, version, room_id, session_id, first_message_index, forwarded_count,
			is_verified, session_data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET first_message_index = excluded.first_message_index,
			forwarded_count = excluded.forwarded_count, is_verified = excluded.is_verified, session_data = excluded.session_data`,
		userID, version, k.RoomID, k.SessionID, k.FirstMessageIndex, k.ForwardedCount, k.IsVerified, k.SessionData)
	return err
}

// BackupKeys returns a backup's keys: all of them, a room's ("" sessionID), or one session's.
func (db *DB) BackupKeys(ctx context.Context, userID id.UserID, version int64, roomID id.RoomID, sessionID id.SessionID) ([]BackupKey, error) {
	q := `SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data FROM e2ee_backup_keys
		WHERE user_id = ? AND version = ?`
	args := []any{userID, version}
	if roomID != "" {
		q += ` AND room_id = ?`
		args = append(args, roomID)
		if sessionID != "" {
			q += ` AND session_id = ?`
			args = append(args, sessionID)
		}
	}
	rows, err := db.read.QueryContext(ctx, q+` ORDER BY room_id, session_id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []BackupKey
	for rows.Next() {
		var k BackupKey
		if err := rows.Scan(&k.RoomID, &k.SessionID, &k.FirstMessageIndex, &k.ForwardedCount, &k.IsVerified, &k.SessionData); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// DeleteBackupKeys deletes a backup's keys: all of them, a room's ("" sessionID), or one
// session's. It returns how many it deleted.
func (tx *Tx) DeleteBackupKeys(userID id.UserID, version int64, roomID id.RoomID, sessionID id.SessionID) (int64, error) {
	q := `DELETE FROM e2ee_backup_keys WHERE user_id = ? AND version = ?`
	args := []any{userID, version}
	if roomID != "" {
		q += ` AND room_id = ?`
		args = append(args, roomID)
		if sessionID != "" {
			q += ` AND session_id = ?`
			args = append(args, sessionID)
		}
	}
	res, err := tx.Exec(q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
