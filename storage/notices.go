package storage

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotSystemUser is CreateSystemUser finding the localpart taken by an ordinary account,
// or by a system account for another purpose.
var ErrNotSystemUser = errors.New("storage: the localpart belongs to another account")

// CreateSystemUser creates an account the server itself speaks as, unless it exists: a users
// row without password, its display name, and its system_users row; it is taken out of the
// user directory in the same transaction. An existing system account of the same purpose is
// kept as it is (created reports false). A localpart taken by any other account is
// ErrNotSystemUser.
func (tx *Tx) CreateSystemUser(localpart, purpose string, displayName []byte, ts int64) (created bool, err error) {
	var had string
	err = tx.QueryRow(`SELECT purpose FROM system_users WHERE localpart = ?`, localpart).Scan(&had)
	switch err = notFound(err); {
	case err == nil && had == purpose:
		return false, nil
	case err == nil:
		return false, fmt.Errorf("%q is the system account for %s: %w", localpart, had, ErrNotSystemUser)
	case !errors.Is(err, ErrNotFound):
		return false, err
	}
	if err := tx.CreateUser(User{Localpart: localpart, CreatedTS: ts}); errors.Is(err, ErrExists) {
		return false, fmt.Errorf("%q is an ordinary account: %w", localpart, ErrNotSystemUser)
	} else if err != nil {
		return false, err
	}
	if _, err := tx.Exec(`INSERT INTO system_users (localpart, purpose, created_ts) VALUES (?, ?, ?)`, localpart, purpose, ts); err != nil {
		return false, err
	}
	// The users insert trigger indexed the account; nobody is to find it there.
	if _, err := tx.Exec(`DELETE FROM user_directory WHERE rowid = (SELECT rowid FROM users WHERE localpart = ?)`, localpart); err != nil {
		return false, err
	}
	return true, tx.SetProfileField(localpart, "displayname", displayName)
}

// IsSystemUser says whether a localpart is an account the server itself speaks as.
func (db *DB) IsSystemUser(ctx context.Context, localpart string) (bool, error) {
	var n int
	err := db.queryRow(ctx, `SELECT count(*) FROM system_users WHERE localpart = ?`, localpart).Scan(&n)
	return n > 0, err
}

// NoticeRoom returns the notices room that sender keeps for userID, or ErrNotFound.
func (db *DB) NoticeRoom(ctx context.Context, userID, sender string) (string, error) {
	var roomID string
	err := db.queryRow(ctx, `SELECT room_id FROM server_notice_rooms WHERE user_id = ? AND sender = ?`, userID, sender).Scan(&roomID)
	return roomID, notFound(err)
}

// SetNoticeRoom records roomID as the notices room sender keeps for userID, replacing any
// earlier one.
func (tx *Tx) SetNoticeRoom(userID, sender, roomID string, ts int64) error {
	_, err := tx.Exec(`INSERT INTO server_notice_rooms (user_id, sender, room_id, created_ts) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, sender) DO UPDATE SET room_id = excluded.room_id, created_ts = excluded.created_ts`,
		userID, sender, roomID, ts)
	return err
}

// IsNoticeRoomOf says whether roomID is a notices room kept for userID.
func (db *DB) IsNoticeRoomOf(ctx context.Context, roomID, userID string) (bool, error) {
	var n int
	err := db.queryRow(ctx, `SELECT count(*) FROM server_notice_rooms WHERE room_id = ? AND user_id = ?`, roomID, userID).Scan(&n)
	return n > 0, err
}

// NoticeTxn returns the event a notice sent with this admin device's transaction ID became,
// or ErrNotFound.
func (db *DB) NoticeTxn(ctx context.Context, adminUser, deviceID, txnID string) (string, error) {
	var eventID string
	err := db.queryRow(ctx, `SELECT event_id FROM server_notice_txns WHERE admin_user = ? AND device_id = ? AND txn_id = ?`,
		adminUser, deviceID, txnID).Scan(&eventID)
	return eventID, notFound(err)
}

// AddNoticeTxn records the event a notice with this transaction ID became; a second record
// of the same ID keeps the first.
func (tx *Tx) AddNoticeTxn(adminUser, deviceID, txnID, eventID string, ts int64) error {
	_, err := tx.Exec(`INSERT INTO server_notice_txns (admin_user, device_id, txn_id, event_id, ts) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, adminUser, deviceID, txnID, eventID, ts)
	return err
}
