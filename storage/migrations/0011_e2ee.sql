-- End-to-end encryption: device keys, one-time and fallback keys, cross-signing keys and
-- signatures, device-list changes, send-to-device inboxes and server-side key backups.
-- User IDs are full Matrix IDs, so remote users' keys can share these tables later. Key
-- objects are kept as uploaded (canonical JSON): their signatures cover fields we may not know.

-- Each device's identity keys (POST /keys/upload device_keys). ed25519 is the device's signing
-- key, copied out of key_json: a device's identity keys never change once uploaded.
CREATE TABLE e2ee_device_keys (
	user_id    TEXT    NOT NULL,
	device_id  TEXT    NOT NULL,
	ed25519    TEXT    NOT NULL,
	key_json   BLOB    NOT NULL,
	stream_pos INTEGER NOT NULL,
	PRIMARY KEY (user_id, device_id)
) STRICT, WITHOUT ROWID;

-- One-time keys waiting to be claimed. The rowid orders them by upload, as claims hand them
-- out oldest first (MSC4225); a claim deletes the row in the same statement that reads it.
CREATE TABLE e2ee_one_time_keys (
	user_id   TEXT NOT NULL,
	device_id TEXT NOT NULL,
	algorithm TEXT NOT NULL,
	key_id    TEXT NOT NULL,
	key_json  BLOB NOT NULL,
	UNIQUE (user_id, device_id, algorithm, key_id)
) STRICT;

-- At most one fallback key per device and algorithm; used is set when a claim hands it out.
CREATE TABLE e2ee_fallback_keys (
	user_id   TEXT    NOT NULL,
	device_id TEXT    NOT NULL,
	algorithm TEXT    NOT NULL,
	key_id    TEXT    NOT NULL,
	key_json  BLOB    NOT NULL,
	used      INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, device_id, algorithm)
) STRICT, WITHOUT ROWID;

-- Cross-signing keys: usage is master, self_signing or user_signing; public_key is the
-- unpadded base64 ed25519 key, which is also the key's ID in signatures.
CREATE TABLE e2ee_cross_signing_keys (
	user_id    TEXT    NOT NULL,
	usage      TEXT    NOT NULL CHECK (usage IN ('master', 'self_signing', 'user_signing')),
	public_key TEXT    NOT NULL,
	key_json   BLOB    NOT NULL,
	stream_pos INTEGER NOT NULL,
	PRIMARY KEY (user_id, usage)
) STRICT, WITHOUT ROWID;

-- Signatures uploaded with POST /keys/signatures/upload, merged into the signed key when it is
-- queried. target_key is a device ID or a cross-signing public key (one namespace, per spec);
-- signer_key is a key ID such as ed25519:<device or public key>.
CREATE TABLE e2ee_signatures (
	target_user TEXT NOT NULL,
	target_key  TEXT NOT NULL,
	signer_user TEXT NOT NULL,
	signer_key  TEXT NOT NULL,
	signature   TEXT NOT NULL,
	PRIMARY KEY (target_user, target_key, signer_user, signer_key)
) STRICT, WITHOUT ROWID;
CREATE INDEX e2ee_signatures_by_signer ON e2ee_signatures (signer_user, signer_key);

-- Device-list changes in stream order: user_id's devices or cross-signing keys changed.
-- viewer is empty when everyone sharing a room with user_id should hear of it, or names the
-- one user who should (a user-signing key or a signature only its owner sees).
CREATE TABLE e2ee_device_list_changes (
	stream_pos INTEGER PRIMARY KEY,
	user_id    TEXT    NOT NULL,
	viewer     TEXT    NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX e2ee_device_list_changes_by_viewer ON e2ee_device_list_changes (viewer, stream_pos) WHERE viewer != '';

-- Send-to-device inboxes: one message per device and stream position (a sendToDevice call
-- takes one position); deleted when the device's next sync acknowledges it.
CREATE TABLE e2ee_to_device (
	user_id    TEXT    NOT NULL,
	device_id  TEXT    NOT NULL,
	stream_pos INTEGER NOT NULL,
	message    BLOB    NOT NULL,   -- the event as sync serves it: sender, type, content
	PRIMARY KEY (user_id, device_id, stream_pos)
) STRICT, WITHOUT ROWID;

-- Transaction IDs of PUT /sendToDevice, per device, for idempotency.
CREATE TABLE e2ee_to_device_txns (
	user_id   TEXT    NOT NULL,
	device_id TEXT    NOT NULL,
	txn_id    TEXT    NOT NULL,
	ts        INTEGER NOT NULL,
	PRIMARY KEY (user_id, device_id, txn_id)
) STRICT, WITHOUT ROWID;

-- Server-side key backup versions. A deleted version keeps its row (deleted = 1) so that its
-- number is never reused and deleting it again succeeds; its keys are removed.
CREATE TABLE e2ee_backup_versions (
	user_id   TEXT    NOT NULL,
	version   INTEGER NOT NULL,
	algorithm TEXT    NOT NULL,
	auth_data BLOB    NOT NULL,
	etag      INTEGER NOT NULL DEFAULT 0,
	deleted   INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, version)
) STRICT, WITHOUT ROWID;

CREATE TABLE e2ee_backup_keys (
	user_id             TEXT    NOT NULL,
	version             INTEGER NOT NULL,
	room_id             TEXT    NOT NULL,
	session_id          TEXT    NOT NULL,
	first_message_index INTEGER NOT NULL,
	forwarded_count     INTEGER NOT NULL,
	is_verified         INTEGER NOT NULL,
	session_data        BLOB    NOT NULL,
	PRIMARY KEY (user_id, version, room_id, session_id)
) STRICT, WITHOUT ROWID;
