-- Per-user data: account data (global and per room, room tags among it as m.tag), filters
-- and presence. A row that sync must see carries the stream position of its last change; a
-- change rewrites the row in place with a new position, so "changed since" is a range scan
-- and only the newest content of each row is ever kept.

-- One row per (user, room, type). Global account data has room_id ''.
CREATE TABLE account_data (
	user_id    TEXT    NOT NULL,
	room_id    TEXT    NOT NULL,
	type       TEXT    NOT NULL,
	content    TEXT    NOT NULL,   -- a JSON object, compacted
	stream_pos INTEGER NOT NULL,
	PRIMARY KEY (user_id, room_id, type)
) STRICT, WITHOUT ROWID;
CREATE INDEX account_data_by_stream ON account_data (user_id, stream_pos);

-- Filters uploaded with POST /user/{userId}/filter. filter_id counts up from 1 per user;
-- json is the filter as the client sent it, compacted, and is what GET returns.
CREATE TABLE filters (
	user_id   TEXT    NOT NULL,
	filter_id INTEGER NOT NULL,
	json      TEXT    NOT NULL,
	PRIMARY KEY (user_id, filter_id)
) STRICT, WITHOUT ROWID;

-- The presence of local users (and, once federation delivers m.presence, remote ones).
CREATE TABLE presence (
	user_id        TEXT    PRIMARY KEY,
	state          TEXT    NOT NULL,              -- online, unavailable or offline
	status_msg     TEXT    NOT NULL DEFAULT '',   -- '': none
	last_active_ts INTEGER NOT NULL DEFAULT 0,    -- Unix milliseconds; 0: never active
	stream_pos     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX presence_by_stream ON presence (stream_pos);
