-- The stream: one sequence that orders everything a client's sync can see (events, account
-- data, receipts, memberships …). A sync token is a position in it; a write takes the next
-- positions inside its own transaction, so a reader that sees position N sees all before it.
CREATE TABLE stream (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	pos INTEGER NOT NULL,
	-- history fetched from other servers (backfill) goes before everything else: its
	-- positions count down from -1, so no sync token ever covers it
	backfill_pos INTEGER NOT NULL DEFAULT 0
) STRICT;
INSERT INTO stream (id, pos) VALUES (1, 0);

CREATE TABLE rooms (
	room_nid     INTEGER PRIMARY KEY,
	room_id      TEXT    NOT NULL UNIQUE,
	version      TEXT    NOT NULL,
	-- the snapshot of the room's current state, and its depth and extremities
	snapshot_nid INTEGER NOT NULL DEFAULT 0,
	max_depth    INTEGER NOT NULL DEFAULT 0,
	extremities  TEXT    NOT NULL DEFAULT '[]',   -- JSON array of event IDs
	published    INTEGER NOT NULL DEFAULT 0,      -- listed in the public room directory
	created_ts   INTEGER NOT NULL
) STRICT;

-- Every event we hold. json is the PDU exactly as built or received (signed, unredacted);
-- redacted rooms keep the original here for this server's admins and serve the pruned form.
CREATE TABLE events (
	event_nid    INTEGER PRIMARY KEY,
	event_id     TEXT    NOT NULL UNIQUE,
	room_nid     INTEGER NOT NULL REFERENCES rooms (room_nid),
	type         TEXT    NOT NULL,
	state_key    TEXT,                         -- NULL: not a state event
	sender       TEXT    NOT NULL,
	depth        INTEGER NOT NULL,
	origin_ts    INTEGER NOT NULL,
	-- position in the stream; NULL for outliers and rejected or soft-failed events, which
	-- clients never see in timelines
	stream_pos   INTEGER UNIQUE,
	-- the state before this event, as a snapshot; 0 when unknown (outliers)
	state_before INTEGER NOT NULL DEFAULT 0,
	-- for state events: the event this one replaced in the room's state (for prev_content)
	replaces_nid INTEGER NOT NULL DEFAULT 0,
	rejected     INTEGER NOT NULL DEFAULT 0,
	soft_failed  INTEGER NOT NULL DEFAULT 0,
	redacted_by  TEXT,                         -- event ID of the redaction that applied
	-- m.relates_to, for relations, threads and aggregations
	relates_to   TEXT,
	rel_type     TEXT,
	json         BLOB    NOT NULL
) STRICT;
CREATE INDEX events_by_room_stream ON events (room_nid, stream_pos) WHERE stream_pos IS NOT NULL;
CREATE INDEX events_by_relation ON events (relates_to, rel_type) WHERE relates_to IS NOT NULL;
CREATE INDEX events_by_room_ts ON events (room_nid, origin_ts);

-- State snapshots. Each snapshot stores only its difference from a base ancestor chosen as in
-- a Fenwick tree: the base of the snapshot with sequence number s along its parent chain is
-- the ancestor with sequence s & (s-1). Reading a snapshot is at most log2(s) hops, and the
-- deltas of the whole chain hold about s·log2(s)/2 rows, never a full copy per event.
CREATE TABLE state_snapshots (
	snapshot_nid INTEGER PRIMARY KEY,
	room_nid     INTEGER NOT NULL,
	parent_nid   INTEGER NOT NULL,   -- 0: the empty state
	seq          INTEGER NOT NULL,
	base_nid     INTEGER NOT NULL    -- 0: the empty state
) STRICT;

CREATE TABLE state_deltas (
	snapshot_nid INTEGER NOT NULL,
	type         TEXT    NOT NULL,
	state_key    TEXT    NOT NULL,
	event_nid    INTEGER NOT NULL,   -- 0: removed (only state resolution removes)
	PRIMARY KEY (snapshot_nid, type, state_key)
) STRICT, WITHOUT ROWID;

-- The current state of each room, kept in place for fast lookups (members, joined rooms).
CREATE TABLE current_state (
	room_nid   INTEGER NOT NULL,
	type       TEXT    NOT NULL,
	state_key  TEXT    NOT NULL,
	event_nid  INTEGER NOT NULL,
	membership TEXT,                   -- for m.room.member: its membership
	stream_pos INTEGER NOT NULL,       -- when it became current
	PRIMARY KEY (room_nid, type, state_key)
) STRICT, WITHOUT ROWID;
CREATE INDEX current_members ON current_state (state_key, membership) WHERE type = 'm.room.member';

-- Every membership change of a local or remote user, in stream order: sync uses it to find
-- the rooms a user joined, left or was invited to since a token.
CREATE TABLE membership_log (
	stream_pos INTEGER PRIMARY KEY,
	room_nid   INTEGER NOT NULL,
	user_id    TEXT    NOT NULL,
	membership TEXT    NOT NULL,
	event_nid  INTEGER NOT NULL
) STRICT;
CREATE INDEX membership_log_by_user ON membership_log (user_id, stream_pos);

-- Transaction IDs of PUT /send and PUT /redact, per device, for idempotency.
CREATE TABLE room_txn_ids (
	user_id   TEXT    NOT NULL,
	device_id TEXT    NOT NULL,
	txn_id    TEXT    NOT NULL,
	event_id  TEXT    NOT NULL,
	ts        INTEGER NOT NULL,
	PRIMARY KEY (user_id, device_id, txn_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE room_aliases (
	alias      TEXT PRIMARY KEY,
	room_id    TEXT NOT NULL,
	creator    TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX room_aliases_by_room ON room_aliases (room_id);

-- Rooms a user has forgotten: hidden from sync and /joined_rooms-like listings after leaving.
CREATE TABLE forgotten_rooms (
	user_id  TEXT    NOT NULL,
	room_nid INTEGER NOT NULL,
	PRIMARY KEY (user_id, room_nid)
) STRICT, WITHOUT ROWID;

-- Stripped state that came with an invite or knock from another server, shown to the user
-- (sync's invite_state) until they join or reject.
CREATE TABLE stripped_state (
	room_nid INTEGER NOT NULL,
	user_id  TEXT    NOT NULL,
	state    BLOB    NOT NULL,   -- JSON array of stripped state events
	PRIMARY KEY (room_nid, user_id)
) STRICT, WITHOUT ROWID;
