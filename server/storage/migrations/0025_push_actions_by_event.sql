-- Notifications clustered by event. A message in a room of n local members
-- stores n-1 notification rows. Keyed by user, and indexed by user, room
-- and thread, they landed on 2(n-1) different B-tree pages, each written
-- and fsynced with the message: in the load driver's room of nine, more
-- pages than the event itself, and the eight-sender rate's largest cost.
-- Keyed by the event's stream position, a message's rows are appended
-- together: one page of the table and one of the index by room.
--
-- Unread counts of the main timeline read the index by room from the read
-- position on, skipping other members' rows (a room's unread messages
-- times its members); those of threads, which are the few, keep an index
-- by user. A user's notification list and pushers read the table newest or
-- oldest first, skipping other users' rows.
CREATE TABLE push_actions_by_event (
	stream_pos INTEGER NOT NULL,   -- the event's stream_pos in events
	user_id    TEXT NOT NULL,
	room_id    TEXT NOT NULL,
	event_id   TEXT NOT NULL,
	thread_id  TEXT NOT NULL,      -- '' for the main timeline, else the thread root's event ID
	notify     INTEGER NOT NULL,
	highlight  INTEGER NOT NULL,
	actions    TEXT NOT NULL,      -- the matching rule's actions, JSON
	ts         INTEGER NOT NULL,   -- when the notification was made (ms)
	PRIMARY KEY (stream_pos, user_id)
) WITHOUT ROWID;
INSERT INTO push_actions_by_event (stream_pos, user_id, room_id, event_id, thread_id, notify, highlight, actions, ts)
SELECT stream_pos, user_id, room_id, event_id, thread_id, notify, highlight, actions, ts FROM push_actions;
DROP TABLE push_actions;
ALTER TABLE push_actions_by_event RENAME TO push_actions;
CREATE INDEX push_actions_room ON push_actions (room_id, thread_id, stream_pos, user_id, notify, highlight);
CREATE INDEX push_actions_user_thread ON push_actions (user_id, room_id, thread_id, stream_pos) WHERE thread_id > '';
