-- Inbound federation transactions already answered, by origin and transaction ID, so that a
-- sender's retry (its answer was lost) gets the same answer instead of a second application.
CREATE TABLE inbound_txns (
	origin      TEXT    NOT NULL,
	txn_id      TEXT    NOT NULL,
	response    BLOB    NOT NULL,
	received_ts INTEGER NOT NULL,
	PRIMARY KEY (origin, txn_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX inbound_txns_by_age ON inbound_txns (received_ts);
