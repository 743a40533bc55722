package storage

import (
	"context"

	"maunium.net/go/mautrix/id"
)

// ToDeviceTxn records a sendToDevice transaction ID of a device. It reports false, writing
// nothing, when the device has used the ID before.
func (tx *Tx) ToDeviceTxn(userID id.UserID, deviceID id.DeviceID, txnID string, ts int64) (bool, error) {
	res, err := tx.Exec(`INSERT INTO e2ee_to_device_txns (user_id, device_id, txn_id, ts) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		userID, deviceID, txnID, ts)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// QueueToDevice puts a message in a device's inbox at stream position pos, then keeps only the
// newest max messages there. It returns how many old messages it dropped.
func (tx *Tx) QueueToDevice(userID id.UserID, deviceID id.DeviceID, pos int64, message []byte, max int) (int64, error) {
	if _, err := tx.Exec(`INSERT INTO e2ee_to_device (user_id, device_id, stream_pos, message) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, device_id, stream_pos) DO UPDATE SET message = excluded.message`, userID, deviceID, pos, message); err != nil {
		return 0, err
	}
	res, err := tx.Exec(`DELETE FROM e2ee_to_device WHERE user_id = ?1 AND device_id = ?2 AND stream_pos <= (
			SELECT stream_pos FROM e2ee_to_device WHERE user_id = ?1 AND device_id = ?2 ORDER BY stream_pos DESC LIMIT 1 OFFSET ?3)`,
		userID, deviceID, max)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// ToDeviceMessage is one message in a device's inbox.
type ToDeviceMessage struct {
	Pos     int64
	Message []byte
}

// ToDevice returns up to limit messages from a device's inbox with since < pos <= upto, in
// order.
func (db *DB) ToDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID, since, upto int64, limit int) ([]ToDeviceMessage, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT stream_pos, message FROM e2ee_to_device
		WHERE user_id = ? AND device_id = ? AND stream_pos > ? AND stream_pos <= ? ORDER BY stream_pos LIMIT ?`,
		userID, deviceID, since, upto, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ToDeviceMessage
	for rows.Next() {
		var m ToDeviceMessage
		if err := rows.Scan(&m.Pos, &m.Message); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// AckToDevice deletes the messages of a device's inbox up to and including upto, and
// returns how many it deleted.
func (tx *Tx) AckToDevice(userID id.UserID, deviceID id.DeviceID, upto int64) (int64, error) {
	res, err := tx.Exec(`DELETE FROM e2ee_to_device WHERE user_id = ? AND device_id = ? AND stream_pos <= ?`, userID, deviceID, upto)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// HasToDevice reports whether a device has messages waiting at positions up to upto; sync
// uses it to skip acknowledging an empty inbox.
func (db *DB) HasToDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID, upto int64) (bool, error) {
	var ok bool
	err := db.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM e2ee_to_device WHERE user_id = ? AND device_id = ? AND stream_pos <= ?)`,
		userID, deviceID, upto).Scan(&ok)
	return ok, err
}
