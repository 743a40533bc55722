-- Media: metadata of uploaded (and, later, cached remote) content. The bytes live in files
-- under the data directory named by their SHA-256, so identical uploads are stored once.

CREATE TABLE media (
	origin        TEXT    NOT NULL,            -- server name from the mxc:// URI
	media_id      TEXT    NOT NULL,
	sha256        BLOB,                        -- NULL while an async upload is pending
	size          INTEGER NOT NULL DEFAULT 0,
	content_type  TEXT    NOT NULL DEFAULT '',
	filename      TEXT    NOT NULL DEFAULT '',
	uploader      TEXT,                        -- local user's localpart; NULL for remote media
	created_ts    INTEGER NOT NULL,
	expires_ts    INTEGER,                     -- pending uploads only: reserved until then
	quarantined   INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (origin, media_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX media_by_uploader ON media (uploader, created_ts);
CREATE INDEX media_by_sha256 ON media (sha256);

-- Thumbnail files are named by source hash, size and method.
CREATE TABLE media_thumbnails (
	sha256       BLOB    NOT NULL,              -- of the source
	width        INTEGER NOT NULL,
	height       INTEGER NOT NULL,
	method       TEXT    NOT NULL,              -- crop or scale
	content_type TEXT    NOT NULL,
	size         INTEGER NOT NULL,
	PRIMARY KEY (sha256, width, height, method)
) STRICT, WITHOUT ROWID;
