-- Outbound federation: one durable queue per destination server. Items are sent in seq order,
-- batched into transactions; a batch in flight is remembered (txn_id and its last seq) so a
-- retry after a lost response resends exactly the same transaction, which the receiver then
-- recognises by its ID instead of applying it twice.

CREATE TABLE outbound_items (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	destination TEXT    NOT NULL,
	kind        INTEGER NOT NULL,   -- 0: PDU, 1: EDU
	body        BLOB    NOT NULL,   -- the PDU or EDU JSON as sent
	created_ts  INTEGER NOT NULL,
	expires_ts  INTEGER             -- EDUs like typing go stale; NULL: never
) STRICT;
CREATE INDEX outbound_items_by_destination ON outbound_items (destination, seq);

CREATE TABLE outbound_destinations (
	destination     TEXT    PRIMARY KEY,
	failures        INTEGER NOT NULL DEFAULT 0,
	down_since_ts   INTEGER,            -- first failure of the current outage
	retry_at_ts     INTEGER NOT NULL DEFAULT 0,
	txn_id          TEXT,               -- the transaction in flight, if any …
	txn_last_seq    INTEGER,            -- … and the last item it holds
	txn_counter     INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;
