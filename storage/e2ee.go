package storage

import (
	"context"
	"database/sql"
	"errors"

	"maunium.net/go/mautrix/id"
)

// DeviceKeys is one device's identity keys as uploaded to POST /keys/upload.
type DeviceKeys struct {
	UserID   id.UserID
	DeviceID id.DeviceID
	// Ed25519 is the device's signing key (unpadded base64).
	Ed25519 string
	// JSON is the device_keys object as uploaded, canonical, with the device's own signatures.
	JSON []byte
	// DisplayName is the device's name (read queries only).
	DisplayName string
}

// DeviceKeysOf returns the identity keys of a local user's devices, of all of them when
// deviceIDs is empty. Only devices that still exist are returned, so keys are never served
// for a device that was logged out.
func (db *DB) DeviceKeysOf(ctx context.Context, userID id.UserID, deviceIDs []id.DeviceID) ([]DeviceKeys, error) {
	q := `SELECT k.device_id, k.ed25519, k.key_json, coalesce(d.display_name, '')
		FROM e2ee_device_keys k JOIN devices d ON d.localpart = ? AND d.device_id = k.device_id
		WHERE k.user_id = ?`
	args := []any{userID.Localpart(), userID}
	if len(deviceIDs) > 0 {
		q += ` AND k.device_id IN (` + placeholders(len(deviceIDs)) + `)`
		args = append(args, anys(deviceIDs)...)
	}
	rows, err := db.read.QueryContext(ctx, q+` ORDER BY k.device_id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DeviceKeys
	for rows.Next() {
		k := DeviceKeys{UserID: userID}
		if err := rows.Scan(&k.DeviceID, &k.Ed25519, &k.JSON, &k.DisplayName); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// DeviceKeys returns one device's stored identity keys, or ErrNotFound.
func (tx *Tx) DeviceKeys(userID id.UserID, deviceID id.DeviceID) (*DeviceKeys, error) {
	k := DeviceKeys{UserID: userID, DeviceID: deviceID}
	err := tx.QueryRow(`SELECT ed25519, key_json FROM e2ee_device_keys WHERE user_id = ? AND device_id = ?`,
		userID, deviceID).Scan(&k.Ed25519, &k.JSON)
	if err != nil {
		return nil, notFound(err)
	}
	return &k, nil
}

// AllDeviceKeys returns the stored identity keys of every device of a user, keyed by device.
func (tx *Tx) AllDeviceKeys(userID id.UserID) (map[id.DeviceID]DeviceKeys, error) {
	rows, err := tx.Query(`SELECT device_id, ed25519, key_json FROM e2ee_device_keys WHERE user_id = ?`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[id.DeviceID]DeviceKeys{}
	for rows.Next() {
		k := DeviceKeys{UserID: userID}
		if err := rows.Scan(&k.DeviceID, &k.Ed25519, &k.JSON); err != nil {
			return nil, err
		}
		out[k.DeviceID] = k
	}
	return out, rows.Err()
}

// SetDeviceKeys stores a device's identity keys, replacing what it had, at stream position pos.
func (tx *Tx) SetDeviceKeys(k DeviceKeys, pos int64) error {
	_, err := tx.Exec(`INSERT INTO e2ee_device_keys (user_id, device_id, ed25519, key_json, stream_pos) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_id, device_id) DO UPDATE SET ed25519 = excluded.ed25519, key_json = excluded.key_json,
			stream_pos = excluded.stream_pos`, k.UserID, k.DeviceID, k.Ed25519, k.JSON, pos)
	return err
}

// DeviceExists reports whether a local user has a device with this ID.
func (tx *Tx) DeviceExists(localpart string, deviceID id.DeviceID) (bool, error) {
	var n int
	err := tx.QueryRow(`SELECT count(*) FROM devices WHERE localpart = ? AND device_id = ?`, localpart, deviceID).Scan(&n)
	return n > 0, err
}

// DeviceIDs lists the IDs of a local user's devices.
func (tx *Tx) DeviceIDs(localpart string) ([]id.DeviceID, error) {
	rows, err := tx.Query(`SELECT device_id FROM devices WHERE localpart = ? ORDER BY device_id`, localpart)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []id.DeviceID
	for rows.Next() {
		var d id.DeviceID
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DeleteDeviceE2EE forgets everything end-to-end encryption kept for a device: identity
// keys, one-time and fallback keys, signatures of or by it, its to-device inbox and
// transaction IDs. It reports whether the device had identity keys.
func (tx *Tx) DeleteDeviceE2EE(userID id.UserID, deviceID id.DeviceID) (bool, error) {
	res, err := tx.Exec(`DELETE FROM e2ee_device_keys WHERE user_id = ? AND device_id = ?`, userID, deviceID)
	if err != nil {
		return false, err
	}
	had, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	for _, q := range []string{
		`DELETE FROM e2ee_one_time_keys WHERE user_id = ? AND device_id = ?`,
		`DELETE FROM e2ee_fallback_keys WHERE user_id = ? AND device_id = ?`,
		`DELETE FROM e2ee_to_device WHERE user_id = ? AND device_id = ?`,
		`DELETE FROM e2ee_to_device_txns WHERE user_id = ? AND device_id = ?`,
		`DELETE FROM e2ee_signatures WHERE target_user = ? AND target_key = ?`,
	} {
		if _, err := tx.Exec(q, userID, deviceID); err != nil {
			return false, err
		}
	}
	_, err = tx.Exec(`DELETE FROM e2ee_signatures WHERE signer_user = ? AND signer_key = ?`, userID, "ed25519:"+string(deviceID))
	return had > 0, err
}

// AddOneTimeKey stores a one-time key unless one with the same algorithm and key ID is
// already waiting to be claimed; then it stores nothing and returns the waiting key's JSON.
func (tx *Tx) AddOneTimeKey(userID id.UserID, deviceID id.DeviceID, algorithm, keyID string, keyJSON []byte) ([]byte, error) {
	res, err := tx.Exec(`INSERT INTO e2ee_one_time_keys (user_id, device_id, algorithm, key_id, key_json) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, userID, deviceID, algorithm, keyID, keyJSON)
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil, nil
	}
	var have []byte
	err = tx.QueryRow(`SELECT key_json FROM e2ee_one_time_keys WHERE user_id = ? AND device_id = ? AND algorithm = ? AND key_id = ?`,
		userID, deviceID, algorithm, keyID).Scan(&have)
	return have, err
}

// ClaimOneTimeKey removes and returns the device's oldest one-time key of an algorithm, or
// ErrNotFound. Reading and deleting are one statement, so a key is handed out only once.
func (tx *Tx) ClaimOneTimeKey(userID id.UserID, deviceID id.DeviceID, algorithm string) (keyID string, keyJSON []byte, err error) {
	err = tx.QueryRow(`DELETE FROM e2ee_one_time_keys WHERE rowid = (
			SELECT rowid FROM e2ee_one_time_keys WHERE user_id = ? AND device_id = ? AND algorithm = ? ORDER BY rowid LIMIT 1)
		RETURNING key_id, key_json`, userID, deviceID, algorithm).Scan(&keyID, &keyJSON)
	return keyID, keyJSON, notFound(err)
}

// OneTimeKeyCounts counts a device's unclaimed one-time keys by algorithm.
func (db *DB) OneTimeKeyCounts(ctx context.Context, userID id.UserID, deviceID id.DeviceID) (map[string]int, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT algorithm, count(*) FROM e2ee_one_time_keys
		WHERE user_id = ? AND device_id = ? GROUP BY algorithm`, userID, deviceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var alg string
		var n int
		if err := rows.Scan(&alg, &n); err != nil {
			return nil, err
		}
		out[alg] = n
	}
	return out, rows.Err()
}

// SetFallbackKey makes a key the device's fallback key for its algorithm, unused. Uploading
// the key it already has changes nothing, so a used key stays marked used.
func (tx *Tx) SetFallbackKey(userID id.UserID, deviceID id.DeviceID, algorithm, keyID string, keyJSON []byte) error {
	_, err := tx.Exec(`INSERT INTO e2ee_fallback_keys (user_id, device_id, algorithm, key_id, key_json) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET key_id = excluded.key_id, key_json = excluded.key_json, used = 0
		WHERE key_id != excluded.key_id OR key_json != excluded.key_json`, userID, deviceID, algorithm, keyID, keyJSON)
	return err
}

// ClaimFallbackKey marks the device's fallback key of an algorithm used and returns it, or
// ErrNotFound.
func (tx *Tx) ClaimFallbackKey(userID id.UserID, deviceID id.DeviceID, algorithm string) (keyID string, keyJSON []byte, err error) {
	err = tx.QueryRow(`UPDATE e2ee_fallback_keys SET used = 1 WHERE user_id = ? AND device_id = ? AND algorithm = ?
		RETURNING key_id, key_json`, userID, deviceID, algorithm).Scan(&keyID, &keyJSON)
	return keyID, keyJSON, notFound(err)
}

// UnusedFallbackKeyTypes lists the algorithms for which the device has a fallback key that no
// claim has handed out yet.
func (db *DB) UnusedFallbackKeyTypes(ctx context.Context, userID id.UserID, deviceID id.DeviceID) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT algorithm FROM e2ee_fallback_keys
		WHERE user_id = ? AND device_id = ? AND used = 0 ORDER BY algorithm`, userID, deviceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var alg string
		if err := rows.Scan(&alg); err != nil {
			return nil, err
		}
		out = append(out, alg)
	}
	return out, rows.Err()
}

// Usages of cross-signing keys.
const (
	UsageMaster      = "master"
	UsageSelfSigning = "self_signing"
	UsageUserSigning = "user_signing"
)

// CrossSigningKey is one of a user's cross-signing keys as uploaded.
type CrossSigningKey struct {
	UserID id.UserID
	// Usage is UsageMaster, UsageSelfSigning or UsageUserSigning.
	Usage string
	// PublicKey is the unpadded base64 ed25519 key, also the key's ID in signatures.
	PublicKey string
	// JSON is the key object as uploaded, canonical.
	JSON []byte
}

// CrossSigningKeysOf returns the cross-signing keys of these users.
func (db *DB) CrossSigningKeysOf(ctx context.Context, userIDs []id.UserID) ([]CrossSigningKey, error) {
	var out []CrossSigningKey
	for chunk := range chunks(userIDs, 500) {
		rows, err := db.read.QueryContext(ctx, `SELECT user_id, usage, public_key, key_json FROM e2ee_cross_signing_keys
			WHERE user_id IN (`+placeholders(len(chunk))+`)`, anys(chunk)...)
		if err != nil {
			return nil, err
		}
		ks, err := scanCrossSigningKeys(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ks...)
	}
	return out, nil
}

// CrossSigningKeys returns a user's cross-signing keys by usage.
func (tx *Tx) CrossSigningKeys(userID id.UserID) (map[string]CrossSigningKey, error) {
	rows, err := tx.Query(`SELECT user_id, usage, public_key, key_json FROM e2ee_cross_signing_keys WHERE user_id = ?`, userID)
	if err != nil {
		return nil, err
	}
	ks, err := scanCrossSigningKeys(rows)
	if err != nil {
		return nil, err
	}
	out := map[string]CrossSigningKey{}
	for _, k := range ks {
		out[k.Usage] = k
	}
	return out, nil
}

func scanCrossSigningKeys(rows *sql.Rows) ([]CrossSigningKey, error) {
	defer rows.Close()
	var out []CrossSigningKey
	for rows.Next() {
		var k CrossSigningKey
		if err := rows.Scan(&k.UserID, &k.Usage, &k.PublicKey, &k.JSON); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// SetCrossSigningKey stores a cross-signing key at stream position pos. A key that replaces
// another takes the old key's signatures with it: those of it and those made by it.
func (tx *Tx) SetCrossSigningKey(k CrossSigningKey, pos int64) error {
	var old string
	err := tx.QueryRow(`SELECT public_key FROM e2ee_cross_signing_keys WHERE user_id = ? AND usage = ?`, k.UserID, k.Usage).Scan(&old)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if old != "" && old != k.PublicKey {
		if _, err := tx.Exec(`DELETE FROM e2ee_signatures WHERE target_user = ? AND target_key = ?`, k.UserID, old); err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM e2ee_signatures WHERE signer_user = ? AND signer_key = ?`, k.UserID, "ed25519:"+old); err != nil {
			return err
		}
	}
	_, err = tx.Exec(`INSERT INTO e2ee_cross_signing_keys (user_id, usage, public_key, key_json, stream_pos) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_id, usage) DO UPDATE SET public_key = excluded.public_key, key_json = excluded.key_json,
			stream_pos = excluded.stream_pos`, k.UserID, k.Usage, k.PublicKey, k.JSON, pos)
	return err
}

// KeySignature is a signature of a device key or cross-signing key, uploaded separately
// from the key it signs.
type KeySignature struct {
	TargetUser id.UserID
	// TargetKey is a device ID or a cross-signing public key.
	TargetKey  string
	SignerUser id.UserID
	// SignerKey is the signing key's ID, e.g. ed25519:<public key or device ID>.
	SignerKey id.KeyID
	Signature string
}

// AddKeySignature stores a signature, replacing one by the same key of the same target.
func (tx *Tx) AddKeySignature(s KeySignature) error {
	_, err := tx.Exec(`INSERT INTO e2ee_signatures (target_user, target_key, signer_user, signer_key, signature) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (target_user, target_key, signer_user, signer_key) DO UPDATE SET signature = excluded.signature`,
		s.TargetUser, s.TargetKey, s.SignerUser, s.SignerKey, s.Signature)
	return err
}

// KeySignaturesOf returns the stored signatures of the keys of these users.
func (db *DB) KeySignaturesOf(ctx context.Context, targetUsers []id.UserID) ([]KeySignature, error) {
	var out []KeySignature
	for chunk := range chunks(targetUsers, 500) {
		rows, err := db.read.QueryContext(ctx, `SELECT target_user, target_key, signer_user, signer_key, signature
			FROM e2ee_signatures WHERE target_user IN (`+placeholders(len(chunk))+`)`, anys(chunk)...)
		if err != nil {
			return nil, err
		}
		err = func() error {
			defer rows.Close()
			for rows.Next() {
				var s KeySignature
				if err := rows.Scan(&s.TargetUser, &s.TargetKey, &s.SignerUser, &s.SignerKey, &s.Signature); err != nil {
					return err
				}
				out = append(out, s)
			}
			return rows.Err()
		}()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// StoredKeySignature returns the signature a target carries by signerKey, or "".
func (tx *Tx) StoredKeySignature(targetUser id.UserID, targetKey string, signerUser id.UserID, signerKey id.KeyID) (string, error) {
	var sig string
	err := tx.QueryRow(`SELECT signature FROM e2ee_signatures WHERE target_user = ? AND target_key = ? AND signer_user = ? AND signer_key = ?`,
		targetUser, targetKey, signerUser, signerKey).Scan(&sig)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return sig, err
}

// DeletedDevicesWithE2EE lists the devices of a local user that no longer exist but still
// have end-to-end encryption state: keys, one-time or fallback keys, or to-device messages.
func (tx *Tx) DeletedDevicesWithE2EE(userID id.UserID) ([]id.DeviceID, error) {
	rows, err := tx.Query(`SELECT device_id FROM (
			SELECT device_id FROM e2ee_device_keys WHERE user_id = ?1
			UNION SELECT device_id FROM e2ee_one_time_keys WHERE user_id = ?1
			UNION SELECT device_id FROM e2ee_fallback_keys WHERE user_id = ?1
			UNION SELECT device_id FROM e2ee_to_device WHERE user_id = ?1)
		WHERE device_id NOT IN (SELECT device_id FROM devices WHERE localpart = ?2) ORDER BY device_id`, userID, userID.Localpart())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []id.DeviceID
	for rows.Next() {
		var d id.DeviceID
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
