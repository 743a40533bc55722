-- OpenID tokens: short-lived proofs of identity a user hands to another service, which checks
-- them at GET /_matrix/federation/v1/openid/userinfo. Stored as SHA-256 digests.
CREATE TABLE openid_tokens (
	token_hash BLOB    PRIMARY KEY,
	localpart  TEXT    NOT NULL REFERENCES users (localpart),
	expires_ts INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX openid_tokens_by_expiry ON openid_tokens (expires_ts);
