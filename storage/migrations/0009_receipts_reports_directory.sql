-- Read receipts: the newest receipt of each user, type and thread in a room. A receipt only
-- moves forwards (to an event later in the room's timeline), and each move takes a stream
-- position, so sync sends the receipts of a room that changed since a token. thread_id is ''
-- for an unthreaded receipt, 'main' or a thread root's event ID for a threaded one.
-- receipt_type is m.read, m.read.private (shown to its owner only) or m.fully_read (the
-- position behind the m.fully_read account data, never sent as a receipt).
CREATE TABLE receipts (
	room_nid     INTEGER NOT NULL,
	user_id      TEXT    NOT NULL,
	receipt_type TEXT    NOT NULL,
	thread_id    TEXT    NOT NULL,
	event_id     TEXT    NOT NULL,
	-- the stream position of the acknowledged event: what "forwards" is measured by
	event_pos    INTEGER NOT NULL,
	ts           INTEGER NOT NULL,
	stream_pos   INTEGER NOT NULL,
	PRIMARY KEY (room_nid, user_id, receipt_type, thread_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX receipts_by_room_stream ON receipts (room_nid, stream_pos);

-- Reports of events, rooms and users, for this server's admins. Rows are never changed.
CREATE TABLE reports (
	report_id   INTEGER PRIMARY KEY,
	kind        TEXT    NOT NULL CHECK (kind IN ('event', 'room', 'user')),
	reporter    TEXT    NOT NULL,
	room_id     TEXT,              -- event and room reports
	event_id    TEXT,              -- event reports
	target_user TEXT,              -- user reports; for event reports, the event's sender
	reason      TEXT    NOT NULL,
	score       INTEGER,           -- deprecated field of event reports: -100 (worst) to 0
	received_ts INTEGER NOT NULL
) STRICT;
CREATE INDEX reports_by_kind ON reports (kind, report_id);

-- The user directory's search index over local users: their user ID and display name,
-- tokenised with Unicode case folding and diacritics removed, so that a search matches word
-- prefixes ("ali" finds "@alice:example.org" and "Alice Cooper"; "asa" finds "Åsa").
-- Triggers keep it in step with users and profile_fields, whoever writes them.
-- rowid is the user's rowid in users.
CREATE VIRTUAL TABLE user_directory USING fts5 (
	user_id, display_name,
	tokenize = 'unicode61 remove_diacritics 2'
);

INSERT INTO user_directory (rowid, user_id, display_name)
	SELECT u.rowid, '@' || u.localpart || ':' || (SELECT value FROM meta WHERE key = 'server_name'),
		(SELECT p.value ->> '$' FROM profile_fields p WHERE p.localpart = u.localpart AND p.field = 'displayname')
	FROM users u WHERE u.deactivated = 0;

CREATE TRIGGER user_directory_add AFTER INSERT ON users WHEN new.deactivated = 0 BEGIN
	INSERT INTO user_directory (rowid, user_id, display_name)
		VALUES (new.rowid, '@' || new.localpart || ':' || (SELECT value FROM meta WHERE key = 'server_name'), NULL);
END;

CREATE TRIGGER user_directory_deactivate AFTER UPDATE OF deactivated ON users
	WHEN new.deactivated != 0 AND old.deactivated = 0 BEGIN
	DELETE FROM user_directory WHERE rowid = new.rowid;
END;

CREATE TRIGGER user_directory_name_insert AFTER INSERT ON profile_fields WHEN new.field = 'displayname' BEGIN
	UPDATE user_directory SET display_name = new.value ->> '$'
		WHERE rowid = (SELECT rowid FROM users WHERE localpart = new.localpart);
END;

CREATE TRIGGER user_directory_name_update AFTER UPDATE OF value ON profile_fields WHEN new.field = 'displayname' BEGIN
	UPDATE user_directory SET display_name = new.value ->> '$'
		WHERE rowid = (SELECT rowid FROM users WHERE localpart = new.localpart);
END;

CREATE TRIGGER user_directory_name_delete AFTER DELETE ON profile_fields WHEN old.field = 'displayname' BEGIN
	UPDATE user_directory SET display_name = NULL
		WHERE rowid = (SELECT rowid FROM users WHERE localpart = old.localpart);
END;
