-- Full-text search over room events (POST /search): one row per timeline event that has
-- searchable text, keyed by the event's NID (rowid = events.event_nid). The columns are the
-- spec's search keys:
--   body   content.body of m.room.message
--   name   content.name of m.room.name
--   topic  content.topic of m.room.topic, and the text/plain bodies of its m.topic
--
-- Contentless (content = ''): the text already lives in events.json, so the index keeps only
-- what it needs to find and rank events (terms, positions, column sizes), not a second copy
-- of every message on a small box's disk. contentless_delete = 1 lets a redaction drop an
-- event's row with a plain DELETE by rowid, without handing back the original text, so the
-- index cannot drift from what was indexed. What we give up is FTS5's highlight() and
-- snippet(), which need the text: the engine finds the highlighted words itself.
--
-- Tokenizer: unicode61 with remove_diacritics 0. Case is folded (Å matches å) but diacritics
-- are kept: in Swedish, as in Finnish, Norwegian, Danish, Icelandic and Estonian, å, ä and ö
-- are letters of their own, not accented a and o. Folding them would make "får" (sheep) match
-- "far" (father), "mål" (goal) match "mal" (moth), and "är" (is) and "år" (year) both "ar".
-- The price is that "eleve" does not find the French "élève".
--
-- The UNINDEXED columns copy what search filters on and what history visibility depends on
-- from the event's row (contentless_unindexed = 1 keeps them, in a small table of their own).
-- A common word matches thousands of events, and looking each up in events, whose rows hold
-- whole signed PDUs, costs more than the full-text search itself.
--
-- Virtual tables cannot be STRICT. DROP TABLE event_search leaves the shadow table
-- event_search_content behind (SQLite 3.54, with contentless_unindexed): drop both.
CREATE VIRTUAL TABLE event_search USING fts5 (
	body, name, topic,
	room_nid UNINDEXED, stream_pos UNINDEXED, state_before UNINDEXED, type UNINDEXED, sender UNINDEXED,
	content = '', contentless_delete = 1, contentless_unindexed = 1,
	tokenize = 'unicode61 remove_diacritics 0'
);

-- Index the events already stored, as PersistEvent would have (storage/search.go), except
-- for the m.topic bodies of old topic events, which SQL cannot pick out as simply.
INSERT INTO event_search (rowid, body, room_nid, stream_pos, state_before, type, sender)
	SELECT event_nid, CAST(json AS TEXT) ->> '$.content.body', room_nid, stream_pos, state_before, type, sender FROM events
	WHERE type = 'm.room.message' AND stream_pos IS NOT NULL AND redacted_by IS NULL
		AND json_type(CAST(json AS TEXT), '$.content.body') = 'text'
		AND CAST(json AS TEXT) ->> '$.content.body' != '';
INSERT INTO event_search (rowid, name, room_nid, stream_pos, state_before, type, sender)
	SELECT event_nid, CAST(json AS TEXT) ->> '$.content.name', room_nid, stream_pos, state_before, type, sender FROM events
	WHERE type = 'm.room.name' AND stream_pos IS NOT NULL AND redacted_by IS NULL
		AND json_type(CAST(json AS TEXT), '$.content.name') = 'text'
		AND CAST(json AS TEXT) ->> '$.content.name' != '';
INSERT INTO event_search (rowid, topic, room_nid, stream_pos, state_before, type, sender)
	SELECT event_nid, CAST(json AS TEXT) ->> '$.content.topic', room_nid, stream_pos, state_before, type, sender FROM events
	WHERE type = 'm.room.topic' AND stream_pos IS NOT NULL AND redacted_by IS NULL
		AND json_type(CAST(json AS TEXT), '$.content.topic') = 'text'
		AND CAST(json AS TEXT) ->> '$.content.topic' != '';
