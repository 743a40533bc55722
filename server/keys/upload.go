package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// Upload is the body of POST /keys/upload.
type Upload struct {
	DeviceKeys   json.RawMessage            `json:"device_keys"`
	OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
	FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
}

// deviceKeysObject is what Upload checks in device_keys; the stored object keeps every field.
type deviceKeysObject struct {
	UserID     id.UserID         `json:"user_id"`
	DeviceID   id.DeviceID       `json:"device_id"`
	Algorithms []string          `json:"algorithms"`
	Keys       map[string]string `json:"keys"`
	Signatures signatures        `json:"signatures"`
}

// Upload publishes a device's keys (POST /keys/upload) and returns its count of unclaimed
// one-time keys by algorithm. Nothing is stored unless everything is acceptable:
//
//   - device_keys must name the caller and its device, carry the device's ed25519 key and be
//     signed with it; once a device has identity keys they cannot change (log in as a new
//     device instead), though the same keys may be uploaded again;
//   - a one-time key whose ID is already waiting must be the same key (its signatures may
//     differ), as Synapse requires;
//   - at most one fallback key per algorithm; re-uploading the current one keeps its used flag.
//
// See https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3keysupload
func (e *Engine) Upload(ctx context.Context, user id.UserID, device id.DeviceID, u *Upload) (map[string]int, error) {
	var dk *storage.DeviceKeys
	if !absent(u.DeviceKeys) {
		var err error
		if dk, err = checkDeviceKeys(u.DeviceKeys, user, device); err != nil {
			return nil, err
		}
	}
	otks, err := parseKeyMap(u.OneTimeKeys, "one_time_keys")
	if err != nil {
		return nil, err
	}
	fallbacks, err := parseKeyMap(u.FallbackKeys, "fallback_keys")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, k := range fallbacks {
		if seen[k.algorithm] {
			return nil, fmt.Errorf("%w: fallback_keys has more than one %s key; upload one per algorithm", ErrInvalidParam, k.algorithm)
		}
		seen[k.algorithm] = true
	}
	outbox := e.getOutbox()
	var pos int64
	var dests []string
	err = e.db.Write(ctx, func(tx *storage.Tx) error {
		if dk != nil {
			changed, err := setDeviceKeys(tx, dk)
			if err != nil {
				return err
			}
			if changed {
				if pos, err = tx.RecordDeviceListChange(user, ""); err != nil {
					return err
				}
				if err := tx.SetDeviceKeys(*dk, pos); err != nil {
					return err
				}
				if dests, err = e.announce(tx, outbox, user, []deviceChange{{device: device}}, false); err != nil {
					return err
				}
			}
		}
		for _, k := range otks {
			have, err := tx.AddOneTimeKey(user, device, k.algorithm, k.id, k.json)
			if err != nil {
				return err
			}
			if have != nil && !sameOneTimeKey(have, k.json) {
				return fmt.Errorf("%w: one-time key %s:%s already exists with different content", ErrInvalidParam, k.algorithm, k.id)
			}
		}
		for _, k := range fallbacks {
			if err := tx.SetFallbackKey(user, device, k.algorithm, k.id, k.json); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	e.notifySharing(ctx, pos, user)
	notifyOutbox(outbox, dests)
	return e.OTKCounts(ctx, user, device)
}

// checkDeviceKeys validates an uploaded device_keys object and returns it ready to store.
func checkDeviceKeys(raw json.RawMessage, user id.UserID, device id.DeviceID) (*storage.DeviceKeys, error) {
	m, err := object(raw, "device_keys")
	if err != nil {
		return nil, err
	}
	var dk deviceKeysObject
	if err := json.Unmarshal(raw, &dk); err != nil {
		return nil, fmt.Errorf("%w: device_keys: %v", ErrBadJSON, err)
	}
	for _, f := range []string{"user_id", "device_id", "algorithms", "keys", "signatures"} {
		if absent(m[f]) {
			return nil, fmt.Errorf("%w: device_keys.%s is required", ErrBadJSON, f)
		}
	}
	if dk.UserID != user {
		return nil, fmt.Errorf("%w: device_keys.user_id %q is not the authenticated user %s", ErrBadJSON, dk.UserID, user)
	}
	if dk.DeviceID != device {
		return nil, fmt.Errorf("%w: device_keys.device_id %q is not the authenticated device %s", ErrBadJSON, dk.DeviceID, device)
	}
	keyID := id.NewKeyID(id.KeyAlgorithmEd25519, string(device))
	ed := dk.Keys[string(keyID)]
	if !validEd25519(ed) {
		return nil, fmt.Errorf("%w: device_keys.keys must hold the device's ed25519 key as %s", ErrInvalidParam, keyID)
	}
	if err := verify(raw, user, keyID, ed); err != nil {
		return nil, err
	}
	// unsigned is ours to fill in on query; a client's own copy is not kept.
	delete(m, "unsigned")
	stored, err := canonicalObject(m)
	if err != nil {
		return nil, err
	}
	return &storage.DeviceKeys{UserID: user, DeviceID: device, Ed25519: ed, JSON: stored}, nil
}

// setDeviceKeys decides whether a device's uploaded keys change what is stored: identity keys
// never change, and an identical upload changes nothing.
func setDeviceKeys(tx *storage.Tx, dk *storage.DeviceKeys) (bool, error) {
	old, err := tx.DeviceKeys(dk.UserID, dk.DeviceID)
	if errors.Is(err, storage.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if bytes.Equal(old.JSON, dk.JSON) {
		return false, nil
	}
	var was, is deviceKeysObject
	if err := json.Unmarshal(old.JSON, &was); err != nil {
		return false, fmt.Errorf("stored keys of %s %s: %w", dk.UserID, dk.DeviceID, err)
	}
	if err := json.Unmarshal(dk.JSON, &is); err != nil {
		return false, err
	}
	if !maps.Equal(was.Keys, is.Keys) {
		return false, fmt.Errorf("%w: device %s already has different identity keys; a device's keys cannot change, log in as a new device instead",
			ErrInvalidParam, dk.DeviceID)
	}
	return true, nil
}

// uploadedKey is one entry of one_time_keys or fallback_keys.
type uploadedKey struct {
	algorithm, id string
	json          []byte
}

// parseKeyMap splits "<algorithm>:<key_id>" names and canonicalizes the keys, in name order.
func parseKeyMap(m map[string]json.RawMessage, field string) ([]uploadedKey, error) {
	var out []uploadedKey
	for _, name := range slices.Sorted(maps.Keys(m)) {
		alg, kid, ok := strings.Cut(name, ":")
		if !ok || alg == "" || kid == "" {
			return nil, fmt.Errorf("%w: %s name %q is not <algorithm>:<key_id>", ErrInvalidParam, field, name)
		}
		if absent(m[name]) {
			return nil, fmt.Errorf("%w: %s.%s is null", ErrBadJSON, field, name)
		}
		c, err := canonical(m[name])
		if err != nil {
			return nil, err
		}
		out = append(out, uploadedKey{algorithm: alg, id: kid, json: c})
	}
	return out, nil
}

// sameOneTimeKey reports whether two uploads of a one-time key ID are the same key: equal
// strings, or objects equal but for their signatures.
func sameOneTimeKey(a, b []byte) bool {
	if !isObject(a) || !isObject(b) {
		return bytes.Equal(a, b)
	}
	return sameSignedContent(a, b)
}

// OTKCounts counts a device's unclaimed one-time keys by algorithm, for /keys/upload and
// sync's device_one_time_keys_count. signed_curve25519 is always present, as Synapse does,
// since clients replenish by it.
func (e *Engine) OTKCounts(ctx context.Context, user id.UserID, device id.DeviceID) (map[string]int, error) {
	counts, err := e.db.OneTimeKeyCounts(ctx, user, device)
	if err != nil {
		return nil, err
	}
	if _, ok := counts[string(id.KeyAlgorithmSignedCurve25519)]; !ok {
		counts[string(id.KeyAlgorithmSignedCurve25519)] = 0
	}
	return counts, nil
}

// UnusedFallbackKeyTypes lists the algorithms for which the device has a fallback key that
// no claim has handed out, for sync's device_unused_fallback_key_types (never nil).
func (e *Engine) UnusedFallbackKeyTypes(ctx context.Context, user id.UserID, device id.DeviceID) ([]string, error) {
	return e.db.UnusedFallbackKeyTypes(ctx, user, device)
}
