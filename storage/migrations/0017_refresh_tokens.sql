-- Refresh tokens (spec: "Refreshing access tokens"). A client that asks for one at login or
-- registration gets an access token that expires and a refresh token that renews it through
-- POST /refresh, on the same device. Tokens are stored as SHA-256 digests, like access tokens.

-- expires_ts: Unix milliseconds after which the token answers soft_logout; NULL never expires.
ALTER TABLE access_tokens ADD COLUMN expires_ts INTEGER;
-- refresh_hash: the refresh token issued together with this access token; NULL for none.
ALTER TABLE access_tokens ADD COLUMN refresh_hash BLOB;
CREATE INDEX access_tokens_by_refresh ON access_tokens (refresh_hash) WHERE refresh_hash IS NOT NULL;

CREATE TABLE refresh_tokens (
	token_hash BLOB    PRIMARY KEY,
	localpart  TEXT    NOT NULL,
	device_id  TEXT    NOT NULL,
	created_ts INTEGER NOT NULL,
	-- prev_hash is the refresh token this one replaced. That one stays valid until this token
	-- or its access token is first used; then it is deleted and prev_hash set to NULL.
	prev_hash  BLOB,
	FOREIGN KEY (localpart, device_id) REFERENCES devices (localpart, device_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX refresh_tokens_by_device ON refresh_tokens (localpart, device_id);
CREATE INDEX refresh_tokens_by_prev ON refresh_tokens (prev_hash) WHERE prev_hash IS NOT NULL;
