package storage

import (
	"context"
	"database/sql"
	"errors"

	"maunium.net/go/mautrix/id"
)

// NextDeviceListStreamID takes the next stream_id of the m.device_list_update sequence of a
// local user and returns it with the one before it (0 for the first).
func (tx *Tx) NextDeviceListStreamID(userID id.UserID) (streamID, prev int64, err error) {
	err = tx.QueryRow(`INSERT INTO e2ee_device_list_stream (user_id, stream_id) VALUES (?, 1)
		ON CONFLICT (user_id) DO UPDATE SET stream_id = stream_id + 1 RETURNING stream_id`, userID).Scan(&streamID)
	return streamID, streamID - 1, err
}

// DeviceListStreamID returns the stream_id of the newest m.device_list_update about a local
// user, or 0 if there was none.
func (db *DB) DeviceListStreamID(ctx context.Context, userID id.UserID) (int64, error) {
	var s int64
	err := db.queryRow(ctx, `SELECT stream_id FROM e2ee_device_list_stream WHERE user_id = ?`, userID).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return s, err
}

// ServersSharingRooms lists the servers of the users joined to the rooms userID is joined
// to, as db.ServersSharingRooms does, inside a write.
func (tx *Tx) ServersSharingRooms(userID id.UserID) ([]string, error) {
	rows, err := tx.Query(`SELECT DISTINCT substr(o.state_key, instr(o.state_key, ':') + 1)
		FROM current_state u JOIN current_state o ON o.room_nid = u.room_nid AND o.type = 'm.room.member' AND o.membership = 'join'
		WHERE u.type = 'm.room.member' AND u.state_key = ? AND u.membership = 'join' ORDER BY 1`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// OwnKeySignatures returns the signatures a user made of one of their own keys (a device ID
// or a cross-signing public key) that were uploaded apart from the key, by signing key ID.
func (tx *Tx) OwnKeySignatures(userID id.UserID, key string) (map[id.KeyID]string, error) {
	rows, err := tx.Query(`SELECT signer_key, signature FROM e2ee_signatures
		WHERE target_user = ?1 AND target_key = ?2 AND signer_user = ?1`, userID, key)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[id.KeyID]string{}
	for rows.Next() {
		var k id.KeyID
		var s string
		if err := rows.Scan(&k, &s); err != nil {
			return nil, err
		}
		out[k] = s
	}
	return out, rows.Err()
}

// DeviceDisplayName returns a local device's display name, "" when it has none or does not
// exist.
func (tx *Tx) DeviceDisplayName(localpart string, deviceID id.DeviceID) (string, error) {
	var name string
	err := tx.QueryRow(`SELECT coalesce(display_name, '') FROM devices WHERE localpart = ? AND device_id = ?`,
		localpart, deviceID).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return name, err
}

// InboundToDevice records the message_id of an m.direct_to_device EDU from origin. It
// reports false, writing nothing, when origin sent that ID before.
func (tx *Tx) InboundToDevice(origin, messageID string, ts int64) (bool, error) {
	res, err := tx.Exec(`INSERT INTO e2ee_inbound_to_device (origin, message_id, ts) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		origin, messageID, ts)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// ForgetInboundToDevice forgets the message_ids of m.direct_to_device EDUs received before ts.
func (tx *Tx) ForgetInboundToDevice(before int64) error {
	_, err := tx.Exec(`DELETE FROM e2ee_inbound_to_device WHERE ts < ?`, before)
	return err
}
