package storage

import (
	"context"
	"database/sql"
	"slices"

	"maunium.net/go/mautrix/id"
)

// RecordDeviceListChange notes, at a new stream position, that userID's devices or
// cross-signing keys changed. With viewer empty, everyone who shares a room with userID (and
// userID) hears of it; otherwise only viewer does.
func (tx *Tx) RecordDeviceListChange(userID, viewer id.UserID) (int64, error) {
	pos, err := tx.NextPos()
	if err != nil {
		return 0, err
	}
	_, err = tx.Exec(`INSERT INTO e2ee_device_list_changes (stream_pos, user_id, viewer) VALUES (?, ?, ?)`, pos, userID, viewer)
	return pos, err
}

// sqlSharing selects the users joined to a room the given user is joined to, the user
// included.
const sqlSharing = `SELECT DISTINCT o.state_key FROM current_state me
	JOIN current_state o ON o.room_nid = me.room_nid AND o.type = 'm.room.member' AND o.membership = 'join'
	WHERE me.type = 'm.room.member' AND me.state_key = ? AND me.membership = 'join'`

// UsersSharingRoom lists the users, local and remote, who are joined to at least one room the
// user is joined to. The user is included when joined to any room.
func (db *DB) UsersSharingRoom(ctx context.Context, userID id.UserID) ([]id.UserID, error) {
	return queryUsers(ctx, db.read, sqlSharing, userID)
}

// DeviceListChanges answers sync's device_lists for viewer between two stream positions,
// since < pos <= upto:
//
//   - changed: users sharing a room with viewer now (and viewer) whose devices or
//     cross-signing keys changed, users whose changes only viewer may see, and users who came to
//     share a room with viewer: they joined one of viewer's rooms, or viewer joined theirs;
//   - left: users who shared a room with viewer, or were in a room viewer left, and now share
//     none.
//
// Sharing is judged on current joined memberships. Both lists are sorted.
func (db *DB) DeviceListChanges(ctx context.Context, viewer id.UserID, since, upto int64) (changed, left []id.UserID, err error) {
	if upto <= since {
		return nil, nil, nil
	}
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback()
	var busy bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM e2ee_device_list_changes WHERE stream_pos > ?1 AND stream_pos <= ?2)
		OR EXISTS (SELECT 1 FROM membership_log WHERE stream_pos > ?1 AND stream_pos <= ?2)`, since, upto).Scan(&busy); err != nil || !busy {
		return nil, nil, err
	}
	sharing, err := queryUsers(ctx, tx, sqlSharing, viewer)
	if err != nil {
		return nil, nil, err
	}
	shares := map[id.UserID]bool{viewer: true}
	for _, u := range sharing {
		shares[u] = true
	}
	out := map[id.UserID]bool{}

	// Key changes of users in shared rooms, and those only the viewer may see.
	everyone, err := queryUsers(ctx, tx, `SELECT DISTINCT user_id FROM e2ee_device_list_changes
		WHERE stream_pos > ? AND stream_pos <= ? AND viewer = ''`, since, upto)
	if err != nil {
		return nil, nil, err
	}
	for _, u := range everyone {
		if shares[u] {
			out[u] = true
		}
	}
	private, err := queryUsers(ctx, tx, `SELECT DISTINCT user_id FROM e2ee_device_list_changes
		WHERE viewer = ? AND stream_pos > ? AND stream_pos <= ?`, viewer, since, upto)
	if err != nil {
		return nil, nil, err
	}
	for _, u := range private {
		out[u] = true
	}

	met, err := usersMet(ctx, tx, viewer, since, upto)
	if err != nil {
		return nil, nil, err
	}
	for _, u := range met {
		if u != viewer && shares[u] {
			out[u] = true
		}
	}

	// Users who left or were banned from a room the viewer was ever joined to, and the members
	// of rooms the viewer left: those who share no room with the viewer any more.
	parted, err := queryUsers(ctx, tx, `SELECT DISTINCT m.user_id FROM membership_log m
		WHERE m.stream_pos > ? AND m.stream_pos <= ? AND m.membership IN ('leave', 'ban')
		AND m.room_nid IN (SELECT room_nid FROM membership_log WHERE user_id = ? AND membership = 'join')`, since, upto, viewer)
	if err != nil {
		return nil, nil, err
	}
	abandoned, err := queryUsers(ctx, tx, `SELECT DISTINCT o.state_key FROM membership_log m
		JOIN current_state o ON o.room_nid = m.room_nid AND o.type = 'm.room.member' AND o.membership = 'join'
		WHERE m.user_id = ? AND m.stream_pos > ? AND m.stream_pos <= ? AND m.membership IN ('leave', 'ban')`, viewer, since, upto)
	if err != nil {
		return nil, nil, err
	}
	gone := map[id.UserID]bool{}
	for _, u := range append(parted, abandoned...) {
		if !shares[u] && !out[u] {
			gone[u] = true
		}
	}
	return sortedUsers(out), sortedUsers(gone), nil
}

// UsersMet returns the users who came to share a room with viewer in (since, upto]: those
// who joined one of viewer's rooms and the members of rooms viewer joined. Whether they
// still share one is for the caller to judge.
func (db *DB) UsersMet(ctx context.Context, viewer id.UserID, since, upto int64) ([]id.UserID, error) {
	if upto <= since {
		return nil, nil
	}
	return usersMet(ctx, db.read, viewer, since, upto)
}

func usersMet(ctx context.Context, q querier, viewer id.UserID, since, upto int64) ([]id.UserID, error) {
	joined, err := queryUsers(ctx, q, `SELECT DISTINCT m.user_id FROM membership_log m
		JOIN current_state me ON me.room_nid = m.room_nid AND me.type = 'm.room.member' AND me.state_key = ? AND me.membership = 'join'
		WHERE m.stream_pos > ? AND m.stream_pos <= ? AND m.membership = 'join'`, viewer, since, upto)
	if err != nil {
		return nil, err
	}
	met, err := queryUsers(ctx, q, `SELECT DISTINCT o.state_key FROM membership_log m
		JOIN current_state o ON o.room_nid = m.room_nid AND o.type = 'm.room.member' AND o.membership = 'join'
		WHERE m.user_id = ? AND m.stream_pos > ? AND m.stream_pos <= ? AND m.membership = 'join'`, viewer, since, upto)
	if err != nil {
		return nil, err
	}
	return append(joined, met...), nil
}

func queryUsers(ctx context.Context, q querier, query string, args ...any) ([]id.UserID, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []id.UserID
	for rows.Next() {
		var u id.UserID
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

func sortedUsers(set map[id.UserID]bool) []id.UserID {
	out := make([]id.UserID, 0, len(set))
	for u := range set {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}
