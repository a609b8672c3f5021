-- Relations between events: every event whose content.m.relates_to names a
-- rel_type and a parent (edits, annotations, threads, references), written
-- in the transaction that stores the child and removed when the child is
-- redacted (a redaction strips m.relates_to, which breaks the relation).
-- Replies (m.in_reply_to without a rel_type) are not relations.
CREATE TABLE event_relations (
	event_id         TEXT PRIMARY KEY,       -- the child
	room_id          TEXT NOT NULL,
	relates_to       TEXT NOT NULL,          -- the parent
	rel_type         TEXT NOT NULL,
	type             TEXT NOT NULL,          -- the child's event type
	sender           TEXT NOT NULL,
	aggregation_key  TEXT,                   -- m.annotation's key
	stream_pos       INTEGER NOT NULL,
	origin_server_ts INTEGER NOT NULL
);
-- Children of a parent in stream order, by relation type: /relations and
-- the bundled aggregations.
CREATE INDEX event_relations_parent ON event_relations (relates_to, rel_type, stream_pos);
-- "Has this user already reacted with this key?"
CREATE INDEX event_relations_annotations ON event_relations (relates_to, aggregation_key, sender) WHERE rel_type = 'm.annotation';

-- Threads of a room with the position of their latest reply: /threads pages
-- through them newest first without grouping all thread replies.
CREATE TABLE threads (
	room_id    TEXT NOT NULL,
	root_id    TEXT NOT NULL,
	latest_pos INTEGER NOT NULL,
	PRIMARY KEY (room_id, root_id)
);
CREATE INDEX threads_room_latest ON threads (room_id, latest_pos);

-- Index the relations of events stored before this migration, with the
-- same rules as new events: a well-formed m.relates_to, the child neither
-- rejected nor redacted, the parent not known to be in another room.
INSERT INTO event_relations (event_id, room_id, relates_to, rel_type, type, sender, aggregation_key, stream_pos, origin_server_ts)
SELECT e.event_id, e.room_id,
	json_extract(e.pdu, '$.content."m.relates_to".event_id'),
	json_extract(e.pdu, '$.content."m.relates_to".rel_type'),
	e.type, e.sender,
	CASE WHEN json_type(e.pdu, '$.content."m.relates_to".key') = 'text'
		THEN json_extract(e.pdu, '$.content."m.relates_to".key') END,
	e.stream_pos, e.origin_server_ts
FROM events e
WHERE e.rejected = 0 AND e.redacted_by IS NULL
	AND json_type(e.pdu, '$.content."m.relates_to".rel_type') = 'text'
	AND json_extract(e.pdu, '$.content."m.relates_to".rel_type') <> ''
	AND json_type(e.pdu, '$.content."m.relates_to".event_id') = 'text'
	AND substr(json_extract(e.pdu, '$.content."m.relates_to".event_id'), 1, 1) = '$'
	AND NOT EXISTS (SELECT 1 FROM events p
		WHERE p.event_id = json_extract(e.pdu, '$.content."m.relates_to".event_id') AND p.room_id <> e.room_id);

INSERT INTO threads (room_id, root_id, latest_pos)
SELECT room_id, relates_to, MAX(stream_pos) FROM event_relations WHERE rel_type = 'm.thread' GROUP BY room_id, relates_to;
