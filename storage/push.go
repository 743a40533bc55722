package storage

import (
	"context"
	"encoding/json"
)

// PushRules returns a user's stored push rule changes (server/push owns the document's
// shape), or ErrNotFound when they have none.
func (db *DB) PushRules(ctx context.Context, userID string) (json.RawMessage, error) {
	var s string
	if err := db.queryRow(ctx, `SELECT rules FROM push_rules WHERE user_id = ?`, userID).Scan(&s); err != nil {
		return nil, notFound(err)
	}
	return json.RawMessage(s), nil
}

// PushRules is DB.PushRules inside the write transaction, for read-modify-write.
func (tx *Tx) PushRules(userID string) (json.RawMessage, error) {
	var s string
	if err := tx.QueryRow(`SELECT rules FROM push_rules WHERE user_id = ?`, userID).Scan(&s); err != nil {
		return nil, notFound(err)
	}
	return json.RawMessage(s), nil
}

// SetPushRules stores a user's push rule changes, replacing what was there.
func (tx *Tx) SetPushRules(userID string, rules json.RawMessage) error {
	_, err := tx.Exec(`INSERT INTO push_rules (user_id, rules) VALUES (?, ?)
		ON CONFLICT (user_id) DO UPDATE SET rules = excluded.rules`, userID, string(rules))
	return err
}

// Notification is a room event that notified a local user.
type Notification struct {
	UserID   string
	EventNID int64
	RoomNID  int64
	// StreamPos is the event's stream position.
	StreamPos int64
	// ThreadID is "main" or the thread root's event ID.
	ThreadID  string
	Highlight bool
	// Actions is the JSON array of the rule that matched.
	Actions json.RawMessage
	// TS is when the notification was made, in Unix milliseconds.
	TS int64

	// RoomID, EventID and Read are filled in by DB.Notifications. Read says that the user's
	// read position in the event's thread is at or after the event.
	RoomID  string
	EventID string
	Read    bool
}

// AddNotification records that an event notified a user. Recording the same event for the
// same user again changes nothing.
func (tx *Tx) AddNotification(n Notification) error {
	_, err := tx.Exec(`INSERT INTO push_notifications
		(user_id, event_nid, room_nid, stream_pos, thread_id, highlight, actions, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (user_id, event_nid) DO NOTHING`,
		n.UserID, n.EventNID, n.RoomNID, n.StreamPos, n.ThreadID, n.Highlight, string(n.Actions), n.TS)
	return err
}

// MarkOwnRead moves a user's read position in a thread of a room to pos, the position of an
// event they sent, unless it is already there or later. threadID "" moves it in every
// thread: a join reads what came before it.
func (tx *Tx) MarkOwnRead(userID string, roomNID int64, threadID string, pos int64) error {
	_, err := tx.Exec(`INSERT INTO push_read (user_id, room_nid, thread_id, event_pos) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, room_nid, thread_id) DO UPDATE SET event_pos = max(event_pos, excluded.event_pos)`,
		userID, roomNID, threadID, pos)
	return err
}

// readPos is the position up to which the user of notification row n has read n's thread:
// their newest m.read or m.read.private receipt, unthreaded or in that thread, or what their
// own events read (push_read), for every thread or that one.
const readPos = `max(
	coalesce((SELECT max(c.event_pos) FROM receipts c WHERE c.room_nid = n.room_nid AND c.user_id = n.user_id
		AND c.receipt_type IN ('m.read', 'm.read.private') AND c.thread_id IN ('', n.thread_id)), 0),
	coalesce((SELECT max(p.event_pos) FROM push_read p
		WHERE p.user_id = n.user_id AND p.room_nid = n.room_nid AND p.thread_id IN ('', n.thread_id)), 0))`

// UnreadCount is the unread notifications of one thread of a room.
type UnreadCount struct {
	RoomID string
	// ThreadID is "main" or the thread root's event ID.
	ThreadID      string
	Notifications int
	Highlights    int
}

// UnreadCounts returns a user's unread notifications in the given rooms, per room and
// thread; threads without any are left out.
func (db *DB) UnreadCounts(ctx context.Context, userID string, roomIDs []string) ([]UnreadCount, error) {
	if len(roomIDs) == 0 {
		return nil, nil
	}
	list, err := json.Marshal(roomIDs)
	if err != nil {
		return nil, err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT r.room_id, n.thread_id, count(*), total(n.highlight)
		FROM rooms r JOIN push_notifications n ON n.user_id = ? AND n.room_nid = r.room_nid
		WHERE r.room_id IN (SELECT value FROM json_each(?)) AND n.stream_pos > `+readPos+`
		GROUP BY r.room_id, n.thread_id`, userID, string(list))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []UnreadCount
	for rows.Next() {
		var c UnreadCount
		var hl float64
		if err := rows.Scan(&c.RoomID, &c.ThreadID, &c.Notifications, &hl); err != nil {
			return nil, err
		}
		c.Highlights = int(hl)
		out = append(out, c)
	}
	return out, rows.Err()
}

// UnreadTotal is how many unread notifications a user has in the rooms they are joined to
// (the badge count push gateways are sent).
func (db *DB) UnreadTotal(ctx context.Context, userID string) (int, error) {
	var n int
	err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM push_notifications n
		WHERE n.user_id = ? AND n.stream_pos > `+readPos+`
		AND EXISTS (SELECT 1 FROM current_state s WHERE s.room_nid = n.room_nid AND s.type = 'm.room.member'
			AND s.state_key = n.user_id AND s.membership = 'join')`, userID).Scan(&n)
	return n, err
}

// Notifications returns up to limit of a user's notifications with stream positions before
// before (0: the newest), newest first; onlyHighlight keeps those that highlighted.
func (db *DB) Notifications(ctx context.Context, userID string, before int64, limit int, onlyHighlight bool) ([]Notification, error) {
	if before <= 0 {
		before = 1 << 62
	}
	rows, err := db.read.QueryContext(ctx, `SELECT n.event_nid, n.room_nid, n.stream_pos, n.thread_id, n.highlight,
			n.actions, n.ts, r.room_id, e.event_id, n.stream_pos <= `+readPos+`
		FROM push_notifications n JOIN rooms r USING (room_nid) JOIN events e USING (event_nid)
		WHERE n.user_id = ? AND n.stream_pos < ? AND (? = 0 OR n.highlight = 1)
		ORDER BY n.stream_pos DESC LIMIT ?`, userID, before, onlyHighlight, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Notification
	for rows.Next() {
		n := Notification{UserID: userID}
		var actions string
		if err := rows.Scan(&n.EventNID, &n.RoomNID, &n.StreamPos, &n.ThreadID, &n.Highlight, &actions, &n.TS,
			&n.RoomID, &n.EventID, &n.Read); err != nil {
			return nil, err
		}
		n.Actions = json.RawMessage(actions)
		out = append(out, n)
	}
	return out, rows.Err()
}

// PruneNotifications deletes up to limit notifications made before ts (Unix milliseconds)
// and returns how many it deleted.
func (tx *Tx) PruneNotifications(ts int64, limit int) (int64, error) {
	res, err := tx.Exec(`DELETE FROM push_notifications WHERE (user_id, event_nid) IN
		(SELECT user_id, event_nid FROM push_notifications WHERE ts < ? LIMIT ?)`, ts, limit)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Pusher is one of a user's pushers.
type Pusher struct {
	UserID            string
	AppID             string
	PushKey           string
	Kind              string
	AppDisplayName    string
	DeviceDisplayName string
	ProfileTag        string
	Lang              string
	// Data is the JSON object the client gave, url included.
	Data json.RawMessage
	// DeviceID is the device that set the pusher; "" for none.
	DeviceID string
	// PushKeyTS is when the pusher last changed, in Unix seconds.
	PushKeyTS int64
}

const pusherCols = `user_id, app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data, device_id, pushkey_ts`

// Pushers returns a user's pushers, in the order they were first set.
func (db *DB) Pushers(ctx context.Context, userID string) ([]Pusher, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+pusherCols+` FROM pushers WHERE user_id = ? ORDER BY pushkey_ts, app_id, pushkey`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Pusher
	for rows.Next() {
		var p Pusher
		var data string
		if err := rows.Scan(&p.UserID, &p.AppID, &p.PushKey, &p.Kind, &p.AppDisplayName, &p.DeviceDisplayName,
			&p.ProfileTag, &p.Lang, &data, &p.DeviceID, &p.PushKeyTS); err != nil {
			return nil, err
		}
		p.Data = json.RawMessage(data)
		out = append(out, p)
	}
	return out, rows.Err()
}

// SetPusher creates or replaces the user's pusher with p's app ID and pushkey. Unless
// keepOthers, other users' pushers with the same app ID and pushkey are deleted (the spec's
// append: false).
func (tx *Tx) SetPusher(p Pusher, keepOthers bool) error {
	if !keepOthers {
		if _, err := tx.Exec(`DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id != ?`,
			p.AppID, p.PushKey, p.UserID); err != nil {
			return err
		}
	}
	_, err := tx.Exec(`INSERT INTO pushers (`+pusherCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET kind = excluded.kind,
			app_display_name = excluded.app_display_name, device_display_name = excluded.device_display_name,
			profile_tag = excluded.profile_tag, lang = excluded.lang, data = excluded.data,
			device_id = excluded.device_id, pushkey_ts = excluded.pushkey_ts`,
		p.UserID, p.AppID, p.PushKey, p.Kind, p.AppDisplayName, p.DeviceDisplayName, p.ProfileTag, p.Lang,
		string(p.Data), p.DeviceID, p.PushKeyTS)
	return err
}

// DeletePusher deletes one of a user's pushers and reports whether there was one.
func (tx *Tx) DeletePusher(userID, appID, pushKey string) (bool, error) {
	res, err := tx.Exec(`DELETE FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?`, userID, appID, pushKey)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// DeletePushersOfGoneDevices deletes a user's pushers whose device no longer exists, and
// returns how many it deleted. localpart is the user's localpart (devices are kept by it).
func (tx *Tx) DeletePushersOfGoneDevices(userID, localpart string) (int64, error) {
	res, err := tx.Exec(`DELETE FROM pushers WHERE user_id = ? AND device_id != ''
		AND device_id NOT IN (SELECT device_id FROM devices WHERE localpart = ?)`, userID, localpart)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// PusherUsers returns the users who have at least one pusher.
func (db *DB) PusherUsers(ctx context.Context) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT DISTINCT user_id FROM pushers`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}
