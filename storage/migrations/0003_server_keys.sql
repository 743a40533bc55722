-- Remote servers' federation signing keys (see federation/keys). Kept on disk so that keys
-- already seen keep verifying signatures while a server and the notaries are unreachable.

-- Signed /_matrix/key/v2/server responses as their origin signed them (other notaries'
-- signatures removed), so this server can re-serve them as a notary. A response is kept while
-- some row of server_keys points at it.
CREATE TABLE server_key_responses (
	response_id    INTEGER PRIMARY KEY,
	server_name    TEXT    NOT NULL,
	sha256         BLOB    NOT NULL UNIQUE,   -- of json, so a response fetched twice is kept once
	json           TEXT    NOT NULL,          -- canonical JSON
	valid_until_ts INTEGER NOT NULL,          -- the response's own valid_until_ts
	fetched_ts     INTEGER NOT NULL           -- when this server last received it
) STRICT;
CREATE INDEX server_key_responses_by_server ON server_key_responses (server_name, valid_until_ts);

-- One row per (server, key): what the newest response that lists the key says about it.
CREATE TABLE server_keys (
	server_name    TEXT    NOT NULL,
	key_id         TEXT    NOT NULL,
	public_key     BLOB    NOT NULL,          -- 32-byte ed25519 public key
	valid_until_ts INTEGER NOT NULL,          -- signatures made up to this time verify
	expired_ts     INTEGER,                   -- set when listed under old_verify_keys
	response_id    INTEGER NOT NULL REFERENCES server_key_responses (response_id),
	PRIMARY KEY (server_name, key_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX server_keys_by_response ON server_keys (response_id);
