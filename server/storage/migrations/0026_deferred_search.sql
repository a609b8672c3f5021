-- The full-text index is kept behind the events instead of in their
-- transaction. Indexing one message in its own commit cost FTS5 a flush of
-- its pending terms and three to four pages written and fsynced (a fifth
-- of a one-sender message's pages); indexed a few hundred at a time, the
-- same work is shared. search_indexed is how far the index has caught up
-- (every event at or below it was considered); the rooms service indexes
-- behind the committer when it goes quiet or falls far behind, and every
-- search catches up first, so a search still finds a message sent just
-- before it. Backfilled history (negative positions) is indexed as it
-- arrives, as before: it comes in large batches already.
DROP TRIGGER event_search_insert;

CREATE TRIGGER event_search_backfill AFTER INSERT ON events
WHEN NEW.stream_pos < 0 AND NEW.rejected = 0 AND NEW.type IN ('m.room.message', 'm.room.name', 'm.room.topic')
BEGIN
	INSERT INTO event_search (rowid, value)
	SELECT stream_pos, value FROM event_search_text
	WHERE stream_pos = NEW.stream_pos AND value IS NOT NULL AND value != '';
END;

CREATE TABLE search_indexed (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	stream_pos INTEGER NOT NULL
);
INSERT INTO search_indexed (id, stream_pos) SELECT 1, COALESCE(MAX(stream_pos), 0) FROM events;
