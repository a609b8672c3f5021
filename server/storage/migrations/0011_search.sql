-- Full-text search over what the spec makes searchable (POST /search):
-- content.body of m.room.message, content.name of m.room.name, and
-- content.topic plus the text/plain m.topic of m.room.topic.
--
-- The index is contentless: the text already lives in events.pdu, so
-- FTS5 keeps only its tokens; rowid is the event's stream_pos. Triggers
-- keep it in step with events inside the same transaction as the insert
-- or the redaction, on every path that writes events (local sends today,
-- federation later), and the view below says once what text an event
-- contributes, for the trigger and for the backfill of existing events.
CREATE VIRTUAL TABLE event_search USING fts5 (
	value,
	content = '',
	contentless_delete = 1,
	tokenize = 'unicode61 remove_diacritics 2'
);

-- Every expression is guarded with json_type / CASE so that no content,
-- however malformed, can make the trigger (and so the event's insert)
-- fail: an event whose text is not a string is simply not indexed.
CREATE VIEW event_search_text AS
SELECT stream_pos, CASE type
	WHEN 'm.room.message' THEN
		CASE WHEN json_type(pdu, '$.content.body') = 'text' THEN json_extract(pdu, '$.content.body') END
	WHEN 'm.room.name' THEN
		CASE WHEN json_type(pdu, '$.content.name') = 'text' THEN json_extract(pdu, '$.content.name') END
	WHEN 'm.room.topic' THEN
		trim(
			COALESCE(CASE WHEN json_type(pdu, '$.content.topic') = 'text' THEN json_extract(pdu, '$.content.topic') END, '')
			|| ' ' ||
			COALESCE(CASE WHEN json_type(pdu, '$.content."m.topic"."m.text"') = 'array' THEN (
				SELECT group_concat(b, ' ') FROM (
					-- Nested CASEs, not AND: t.value is only JSON for objects.
					SELECT CASE WHEN t.type = 'object' THEN
						CASE WHEN json_type(t.value, '$.body') = 'text'
							AND COALESCE(CASE WHEN json_type(t.value, '$.mimetype') = 'text' THEN json_extract(t.value, '$.mimetype') END, 'text/plain') = 'text/plain'
						THEN json_extract(t.value, '$.body') END
					END AS b
					FROM json_each(pdu, '$.content."m.topic"."m.text"') AS t
				) WHERE b IS NOT NULL
			) END, '')
		)
	END AS value
FROM events
WHERE rejected = 0 AND redacted_by IS NULL AND type IN ('m.room.message', 'm.room.name', 'm.room.topic');

CREATE TRIGGER event_search_insert AFTER INSERT ON events
WHEN NEW.rejected = 0 AND NEW.type IN ('m.room.message', 'm.room.name', 'm.room.topic')
BEGIN
	INSERT INTO event_search (rowid, value)
	SELECT stream_pos, value FROM event_search_text
	WHERE stream_pos = NEW.stream_pos AND value IS NOT NULL AND value != '';
END;

-- A redacted event must never match again.
CREATE TRIGGER event_search_redact AFTER UPDATE OF redacted_by ON events
WHEN NEW.redacted_by IS NOT NULL
BEGIN
	DELETE FROM event_search WHERE rowid = NEW.stream_pos;
END;

CREATE TRIGGER event_search_delete AFTER DELETE ON events
BEGIN
	DELETE FROM event_search WHERE rowid = OLD.stream_pos;
END;

INSERT INTO event_search (rowid, value)
SELECT stream_pos, value FROM event_search_text WHERE value IS NOT NULL AND value != '';

-- GET /rooms/{roomId}/timestamp_to_event walks a room's events by time.
CREATE INDEX events_room_ts ON events (room_id, origin_server_ts, stream_pos);

-- Reports of events, rooms and users (POST .../report), kept for the
-- server's admins (Synapse's admin API: /_synapse/admin/v1/event_reports).
CREATE TABLE reports (
	report_id   INTEGER PRIMARY KEY AUTOINCREMENT,
	kind        TEXT NOT NULL,              -- 'event', 'room' or 'user'
	reporter    TEXT NOT NULL,
	room_id     TEXT,                       -- event and room reports
	event_id    TEXT,                       -- event reports
	target_user TEXT,                       -- the reported user, or the reported event's sender
	reason      TEXT,                       -- NULL when the reporter gave none
	score       INTEGER,                    -- event reports before spec v1.18 carried one
	content     TEXT NOT NULL,              -- the request body as sent
	received_ts INTEGER NOT NULL
);
CREATE INDEX reports_kind ON reports (kind, received_ts);
