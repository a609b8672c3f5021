-- What a room list needs without reading each room's events (sliding
-- sync, MSC4186): the stream position of the room's latest "bump" event,
-- which orders rooms by recent activity; of its latest event of any kind,
-- which tells whether a room changed since a client last saw it; and the
-- create event's room type (spaces are filtered out of chat lists by it).
ALTER TABLE rooms ADD COLUMN bump_pos INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rooms ADD COLUMN last_pos INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rooms ADD COLUMN room_type TEXT;

UPDATE rooms SET last_pos = COALESCE((SELECT MAX(stream_pos) FROM events e
	WHERE e.room_id = rooms.room_id AND e.rejected = 0), 0);

UPDATE rooms SET bump_pos = COALESCE((SELECT MAX(stream_pos) FROM events e
	WHERE e.room_id = rooms.room_id AND e.rejected = 0
	AND e.type IN ('m.room.create', 'm.room.message', 'm.room.encrypted', 'm.sticker', 'm.call.invite', 'm.poll.start', 'm.beacon_info')), 0);

UPDATE rooms SET room_type = (SELECT json_extract(e.pdu, '$.content.type') FROM events e
	WHERE e.room_id = rooms.room_id AND e.type = 'm.room.create' AND e.state_key = '' AND e.rejected = 0 LIMIT 1);
