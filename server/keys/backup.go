package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"maunium.net/go/mautrix/id"

	"fyr/storage"
)

// BackupInfo describes a key backup version (GET /room_keys/version).
type BackupInfo struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Count     int64           `json:"count"`
	Etag      string          `json:"etag"`
	Version   string          `json:"version"`
}

// SessionKey is one backed-up megolm session key (KeyBackupData).
type SessionKey struct {
	FirstMessageIndex int64           `json:"first_message_index"`
	ForwardedCount    int64           `json:"forwarded_count"`
	IsVerified        bool            `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

// BackupKeys are a backup's keys by room and session.
type BackupKeys map[id.RoomID]map[id.SessionID]SessionKey

// BackupUpdate is what a write to a backup's keys answers: its new etag and key count.
type BackupUpdate struct {
	Etag  string `json:"etag"`
	Count int64  `json:"count"`
}

func backupInfo(b *storage.BackupVersion) *BackupInfo {
	return &BackupInfo{Algorithm: b.Algorithm, AuthData: b.AuthData, Count: b.Count,
		Etag: strconv.FormatInt(b.Etag, 10), Version: formatVersion(b.Version)}
}

func checkBackupParams(algorithm string, authData json.RawMessage) ([]byte, error) {
	if algorithm == "" {
		return nil, fmt.Errorf("%w: algorithm", ErrMissingParam)
	}
	if absent(authData) {
		return nil, fmt.Errorf("%w: auth_data", ErrMissingParam)
	}
	if !isObject(authData) {
		return nil, fmt.Errorf("%w: auth_data must be an object", ErrBadJSON)
	}
	return canonical(authData)
}

// CreateBackup creates a new key backup version, which becomes the current one (POST
// /room_keys/version). The algorithm is not restricted: clients own its meaning.
func (e *Engine) CreateBackup(ctx context.Context, user id.UserID, algorithm string, authData json.RawMessage) (string, error) {
	auth, err := checkBackupParams(algorithm, authData)
	if err != nil {
		return "", err
	}
	var v int64
	err = e.db.Write(ctx, func(tx *storage.Tx) error {
		v, err = tx.CreateBackupVersion(user, algorithm, auth)
		return err
	})
	return formatVersion(v), err
}

// Backup describes one of user's backups, the current one when version is "", or returns
// ErrNotFound.
func (e *Engine) Backup(ctx context.Context, user id.UserID, version string) (*BackupInfo, error) {
	var v int64
	if version != "" {
		var err error
		if v, err = parseVersion(version); err != nil {
			return nil, err
		}
	}
	b, err := e.db.BackupVersion(ctx, user, v)
	if errors.Is(err, storage.ErrNotFound) {
		if version == "" {
			return nil, fmt.Errorf("%w: no current backup version", ErrNotFound)
		}
		return nil, fmt.Errorf("%w: unknown backup version %s", ErrNotFound, version)
	}
	if err != nil {
		return nil, err
	}
	return backupInfo(b), nil
}

// UpdateBackup replaces a backup's auth_data (PUT /room_keys/version/{version}). The
// algorithm must stay the same, and bodyVersion, when given, must match version.
func (e *Engine) UpdateBackup(ctx context.Context, user id.UserID, version, bodyVersion, algorithm string, authData json.RawMessage) error {
	v, err := parseVersion(version)
	if err != nil {
		return err
	}
	if bodyVersion != "" && bodyVersion != version {
		return fmt.Errorf("%w: the version in the body (%s) is not the one in the path (%s)", ErrInvalidParam, bodyVersion, version)
	}
	auth, err := checkBackupParams(algorithm, authData)
	if err != nil {
		return err
	}
	return e.db.Write(ctx, func(tx *storage.Tx) error {
		b, err := tx.BackupVersion(user, v)
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%w: unknown backup version %s", ErrNotFound, version)
		}
		if err != nil {
			return err
		}
		if b.Algorithm != algorithm {
			return fmt.Errorf("%w: the algorithm %q does not match the backup's %q", ErrInvalidParam, algorithm, b.Algorithm)
		}
		return tx.UpdateBackupAuthData(user, v, auth)
	})
}

// DeleteBackup deletes a backup and its keys (DELETE /room_keys/version/{version}).
// Deleting a deleted backup succeeds; a version that never existed is ErrNotFound.
func (e *Engine) DeleteBackup(ctx context.Context, user id.UserID, version string) error {
	v, err := parseVersion(version)
	if err != nil {
		return err
	}
	err = e.db.Write(ctx, func(tx *storage.Tx) error { return tx.DeleteBackupVersion(user, v) })
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: unknown backup version %s", ErrNotFound, version)
	}
	return err
}

// PutBackupKeys stores session keys in the current backup (PUT /room_keys/keys and its
// per-room and per-session forms). A key replaces the stored one of its session only if it
// is better by the spec's rules (see replaces). Writing to a version that exists but is not
// current is a *WrongVersionError; to one that does not exist, ErrNotFound.
func (e *Engine) PutBackupKeys(ctx context.Context, user id.UserID, version string, keys BackupKeys) (*BackupUpdate, error) {
	v, err := parseVersion(version)
	if err != nil {
		return nil, err
	}
	for room, sessions := range keys {
		for session, k := range sessions {
			if !isObject(k.SessionData) {
				return nil, fmt.Errorf("%w: session_data of %s %s must be an object", ErrBadJSON, room, session)
			}
			if k.FirstMessageIndex < 0 || k.ForwardedCount < 0 {
				return nil, fmt.Errorf("%w: first_message_index and forwarded_count of %s %s must not be negative", ErrInvalidParam, room, session)
			}
		}
	}
	var res *BackupUpdate
	err = e.db.Write(ctx, func(tx *storage.Tx) error {
		if err := currentVersion(tx, user, v); err != nil {
			return err
		}
		changed := false
		for _, room := range slices.Sorted(maps.Keys(keys)) {
			for _, session := range slices.Sorted(maps.Keys(keys[room])) {
				k := keys[room][session]
				old, err := tx.BackupKey(user, v, room, session)
				if err != nil && !errors.Is(err, storage.ErrNotFound) {
					return err
				}
				if old != nil && !replaces(old, k) {
					continue
				}
				data, err := canonical(k.SessionData)
				if err != nil {
					return err
				}
				if err := tx.PutBackupKey(user, v, storage.BackupKey{RoomID: room, SessionID: session, FirstMessageIndex: k.FirstMessageIndex,
					ForwardedCount: k.ForwardedCount, IsVerified: k.IsVerified, SessionData: data}); err != nil {
					return err
				}
				changed = true
			}
		}
		if changed {
			if err := tx.BumpBackupEtag(user, v); err != nil {
				return err
			}
		}
		b, err := tx.BackupVersion(user, v)
		if err != nil {
			return err
		}
		res = &BackupUpdate{Etag: strconv.FormatInt(b.Etag, 10), Count: b.Count}
		return nil
	})
	return res, err
}

// currentVersion checks that v is the user's current backup.
func currentVersion(tx *storage.Tx, user id.UserID, v int64) error {
	cur, err := tx.BackupVersion(user, 0)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if cur != nil && cur.Version == v {
		return nil
	}
	if _, err := tx.BackupVersion(user, v); errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: unknown backup version %d", ErrNotFound, v)
	} else if err != nil {
		return err
	}
	return &WrongVersionError{Current: formatVersion(cur.Version)}
}

// replaces reports whether an uploaded session key should replace the stored one, by the
// spec's rules: a verified key beats an unverified one; then the lower first_message_index
// wins; then the lower forwarded_count. A key equal on all three keeps the stored one.
//
// See https://spec.matrix.org/v1.19/client-server-api/#server-side-key-backups
func replaces(old *storage.BackupKey, k SessionKey) bool {
	if k.IsVerified != old.IsVerified {
		return k.IsVerified
	}
	if k.FirstMessageIndex != old.FirstMessageIndex {
		return k.FirstMessageIndex < old.FirstMessageIndex
	}
	return k.ForwardedCount < old.ForwardedCount
}

// BackupKeys returns keys from a backup (GET /room_keys/keys and its per-room and
// per-session forms): all keys, a room's (session ""), or one session's. Any existing
// version may be read. One session that is not there is ErrNotFound.
func (e *Engine) BackupKeys(ctx context.Context, user id.UserID, version string, room id.RoomID, session id.SessionID) (BackupKeys, error) {
	v, err := parseVersion(version)
	if err != nil {
		return nil, err
	}
	if _, err := e.db.BackupVersion(ctx, user, v); errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: unknown backup version %s", ErrNotFound, version)
	} else if err != nil {
		return nil, err
	}
	ks, err := e.db.BackupKeys(ctx, user, v, room, session)
	if err != nil {
		return nil, err
	}
	if session != "" && len(ks) == 0 {
		return nil, fmt.Errorf("%w: no key for session %s in room %s", ErrNotFound, session, room)
	}
	out := BackupKeys{}
	for _, k := range ks {
		if out[k.RoomID] == nil {
			out[k.RoomID] = map[id.SessionID]SessionKey{}
		}
		out[k.RoomID][k.SessionID] = SessionKey{FirstMessageIndex: k.FirstMessageIndex, ForwardedCount: k.ForwardedCount,
			IsVerified: k.IsVerified, SessionData: k.SessionData}
	}
	return out, nil
}

// DeleteBackupKeys deletes keys from a backup (DELETE /room_keys/keys and its per-room and
// per-session forms) and returns its new etag and count.
func (e *Engine) DeleteBackupKeys(ctx context.Context, user id.UserID, version string, room id.RoomID, session id.SessionID) (*BackupUpdate, error) {
	v, err := parseVersion(version)
	if err != nil {
		return nil, err
	}
	var res *BackupUpdate
	err = e.db.Write(ctx, func(tx *storage.Tx) error {
		if _, err := tx.BackupVersion(user, v); errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%w: unknown backup version %s", ErrNotFound, version)
		} else if err != nil {
			return err
		}
		n, err := tx.DeleteBackupKeys(user, v, room, session)
		if err != nil {
			return err
		}
		if n > 0 {
			if err := tx.BumpBackupEtag(user, v); err != nil {
				return err
			}
		}
		b, err := tx.BackupVersion(user, v)
		if err != nil {
			return err
		}
		res = &BackupUpdate{Etag: strconv.FormatInt(b.Etag, 10), Count: b.Count}
		return nil
	})
	return res, err
}
