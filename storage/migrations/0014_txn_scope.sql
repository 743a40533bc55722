-- A transaction ID is scoped to one device and one endpoint path (the spec's "Transaction
-- identifiers"): the same ID sent to another room or event type is a new request.
CREATE TABLE room_txn_ids_scoped (
	user_id   TEXT    NOT NULL,
	device_id TEXT    NOT NULL,
	-- scope is the request path without the transaction ID, e.g. "send/!room/m.room.message".
	scope     TEXT    NOT NULL,
	txn_id    TEXT    NOT NULL,
	event_id  TEXT    NOT NULL,
	ts        INTEGER NOT NULL,
	PRIMARY KEY (user_id, device_id, scope, txn_id)
) STRICT, WITHOUT ROWID;

-- Rows from before scoping keep an empty scope: they are never matched again, and only serve
-- unsigned.transaction_id.
INSERT INTO room_txn_ids_scoped (user_id, device_id, scope, txn_id, event_id, ts)
	SELECT user_id, device_id, '', txn_id, event_id, ts FROM room_txn_ids;
DROP TABLE room_txn_ids;
ALTER TABLE room_txn_ids_scoped RENAME TO room_txn_ids;
CREATE INDEX room_txn_ids_event ON room_txn_ids (event_id);
