-- Server notices: the accounts the server itself speaks as, each user's notices room, and
-- the transaction IDs that make the admin API's PUT idempotent.

-- An account the server speaks as (the server notices user). Its users row has no password
-- and it never has devices; it is kept out of the user directory.
CREATE TABLE system_users (
	localpart  TEXT    PRIMARY KEY REFERENCES users (localpart),
	-- purpose says what the account is for, e.g. 'server_notices'.
	purpose    TEXT    NOT NULL,
	created_ts INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- The one notices room of each user, per notices sender: a room stays the user's notices
-- room after they leave it, and the next notice invites them back.
CREATE TABLE server_notice_rooms (
	user_id    TEXT    NOT NULL,
	-- sender is the system user who created the room and speaks in it.
	sender     TEXT    NOT NULL,
	room_id    TEXT    NOT NULL,
	created_ts INTEGER NOT NULL,
	PRIMARY KEY (user_id, sender)
) STRICT, WITHOUT ROWID;
CREATE INDEX server_notice_rooms_by_room ON server_notice_rooms (room_id, user_id);

-- A notice sent with a transaction ID (PUT /_synapse/admin/v1/send_server_notice/{txnId}),
-- scoped to the admin's device as the spec scopes client transaction IDs.
CREATE TABLE server_notice_txns (
	admin_user TEXT    NOT NULL,
	device_id  TEXT    NOT NULL,
	txn_id     TEXT    NOT NULL,
	event_id   TEXT    NOT NULL,
	ts         INTEGER NOT NULL,
	PRIMARY KEY (admin_user, device_id, txn_id)
) STRICT, WITHOUT ROWID;
