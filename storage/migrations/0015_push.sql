-- Push notifications: each user's push rules, the notifications their rules made of room
-- events (the source of unread counts and GET /notifications), how far their own events
-- moved their read position, and their pushers (where to send notifications).

-- A user's changes to their push rules as one JSON document: their own rules by kind, most
-- important first, and their settings of the server-default rules. What clients see (and
-- the m.push_rules account data) is this merged with the server's defaults. No row: the
-- defaults alone.
CREATE TABLE push_rules (
	user_id TEXT PRIMARY KEY,
	rules   TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- One row per room event that notified a local user (its actions include "notify"), written
-- in the same transaction as the event. A notification is unread while its stream_pos is
-- after the user's read position in its thread: their newest m.read or m.read.private
-- receipt, unthreaded or for that thread (receipts table), or their own newest event there
-- (push_read).
CREATE TABLE push_notifications (
	user_id    TEXT    NOT NULL,
	event_nid  INTEGER NOT NULL,
	room_nid   INTEGER NOT NULL,
	stream_pos INTEGER NOT NULL,   -- the event's position
	thread_id  TEXT    NOT NULL,   -- 'main', or the thread root's event ID
	highlight  INTEGER NOT NULL,   -- 1: the actions set the highlight tweak
	actions    TEXT    NOT NULL,   -- JSON array: the matching rule's actions
	ts         INTEGER NOT NULL,   -- when the notification was made, Unix milliseconds
	PRIMARY KEY (user_id, event_nid)
) STRICT, WITHOUT ROWID;
CREATE INDEX push_notifications_by_room ON push_notifications (user_id, room_nid, stream_pos);
CREATE INDEX push_notifications_by_stream ON push_notifications (user_id, stream_pos);
CREATE INDEX push_notifications_by_ts ON push_notifications (ts);

-- The read position a user's own events give them in a room: sending an event reads the
-- thread before it (spec: "Marking notifications as read"), and joining reads every thread
-- before the join (thread_id ''), so an invite or what came before a rejoin stays read.
CREATE TABLE push_read (
	user_id   TEXT    NOT NULL,
	room_nid  INTEGER NOT NULL,
	thread_id TEXT    NOT NULL,   -- 'main', a thread root's event ID, or '': every thread
	event_pos INTEGER NOT NULL,
	PRIMARY KEY (user_id, room_nid, thread_id)
) STRICT, WITHOUT ROWID;

-- Pushers set with POST /pushers/set. data is the JSON object the client gave, url
-- included. device_id is the device whose access token set the pusher: the pusher goes when
-- the device does ('' for none).
CREATE TABLE pushers (
	user_id             TEXT    NOT NULL,
	app_id              TEXT    NOT NULL,
	pushkey             TEXT    NOT NULL,
	kind                TEXT    NOT NULL,
	app_display_name    TEXT    NOT NULL,
	device_display_name TEXT    NOT NULL,
	profile_tag         TEXT    NOT NULL DEFAULT '',
	lang                TEXT    NOT NULL,
	data                TEXT    NOT NULL,
	device_id           TEXT    NOT NULL DEFAULT '',
	pushkey_ts          INTEGER NOT NULL,   -- Unix seconds of the last change
	PRIMARY KEY (user_id, app_id, pushkey)
) STRICT, WITHOUT ROWID;
CREATE INDEX pushers_by_key ON pushers (app_id, pushkey);
