-- End-to-end encryption over federation: the sequence in which each local user's device
-- changes are announced to other servers (m.device_list_update), and the to-device messages
-- other servers delivered (m.direct_to_device), so that a repeated one is not delivered twice.

-- The stream_id of the newest m.device_list_update about a local user: the next update's
-- prev_id, and the version GET /user/devices reports, so that a server that fetched the list
-- recognises the update that follows it.
CREATE TABLE e2ee_device_list_stream (
	user_id   TEXT    PRIMARY KEY,
	stream_id INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- message_id of each m.direct_to_device EDU delivered, per origin server; forgotten after a
-- week, long after the origin's retries of the transaction that carried it have stopped.
CREATE TABLE e2ee_inbound_to_device (
	origin     TEXT    NOT NULL,
	message_id TEXT    NOT NULL,
	ts         INTEGER NOT NULL,
	PRIMARY KEY (origin, message_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX e2ee_inbound_to_device_by_ts ON e2ee_inbound_to_device (ts);
