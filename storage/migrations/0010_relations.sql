-- Relations by room: /threads groups a room's m.thread children by their root, ordered by
-- the newest child, and bundled aggregations look up the children of a page of events by
-- relation type. Only children that count (in the timeline, not redacted) are indexed.
CREATE INDEX events_by_room_relation ON events (room_nid, rel_type, relates_to, stream_pos)
	WHERE relates_to IS NOT NULL AND stream_pos IS NOT NULL AND redacted_by IS NULL;
