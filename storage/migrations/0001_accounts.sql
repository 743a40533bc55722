-- Accounts: users, their profiles, devices and access tokens, and registration tokens.
-- Secrets are never stored: passwords as argon2id PHC strings, tokens as SHA-256 digests.

CREATE TABLE users (
	localpart     TEXT    PRIMARY KEY,
	password_hash TEXT,                       -- NULL: password login disabled
	is_admin      INTEGER NOT NULL DEFAULT 0,
	deactivated   INTEGER NOT NULL DEFAULT 0, -- the localpart stays reserved forever
	created_ts    INTEGER NOT NULL
) STRICT;

-- One row per profile field (displayname, avatar_url and custom keys); value is JSON.
CREATE TABLE profile_fields (
	localpart TEXT NOT NULL REFERENCES users (localpart),
	field     TEXT NOT NULL,
	value     TEXT NOT NULL,
	PRIMARY KEY (localpart, field)
) STRICT, WITHOUT ROWID;

CREATE TABLE devices (
	localpart    TEXT    NOT NULL REFERENCES users (localpart),
	device_id    TEXT    NOT NULL,
	display_name TEXT,
	created_ts   INTEGER NOT NULL,
	last_seen_ts INTEGER,
	last_seen_ip TEXT,
	PRIMARY KEY (localpart, device_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE access_tokens (
	token_hash BLOB    PRIMARY KEY,
	localpart  TEXT    NOT NULL,
	device_id  TEXT    NOT NULL,
	created_ts INTEGER NOT NULL,
	FOREIGN KEY (localpart, device_id) REFERENCES devices (localpart, device_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX access_tokens_by_device ON access_tokens (localpart, device_id);

CREATE TABLE registration_tokens (
	token_hash   BLOB    PRIMARY KEY,
	uses_allowed INTEGER,                       -- NULL: unlimited
	completed    INTEGER NOT NULL DEFAULT 0,
	expiry_ts    INTEGER,                       -- NULL: never expires
	grants_admin INTEGER NOT NULL DEFAULT 0,    -- the bootstrap token makes its user an admin
	created_ts   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Facts about this database, e.g. the server name it was created for.
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
