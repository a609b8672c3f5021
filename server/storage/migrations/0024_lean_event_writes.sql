-- Fewer pages written per event. Every sent message touches each B-tree
-- of the tables it writes: a table with a rowid plus a primary key is two
-- B-trees, so the tables written with every event become WITHOUT ROWID
-- tables (their primary key is the table), the transaction ID a device
-- sent an event with moves onto the event's own row (so event_txns needs
-- no index by event), and the index of events by state key leaves message
-- events out. Measured on a one-sender workload: about 19 pages (76 KiB)
-- written and fsynced per message before.

CREATE TABLE forward_extremities_lean (
	room_id  TEXT NOT NULL,
	event_id TEXT NOT NULL,
	PRIMARY KEY (room_id, event_id)
) WITHOUT ROWID;
INSERT INTO forward_extremities_lean (room_id, event_id) SELECT room_id, event_id FROM forward_extremities;
DROP TABLE forward_extremities;
ALTER TABLE forward_extremities_lean RENAME TO forward_extremities;

-- The sending device and its transaction ID, for unsigned.transaction_id
-- in that device's sync (NULL for events not sent with one).
ALTER TABLE events ADD COLUMN txn_device TEXT;
ALTER TABLE events ADD COLUMN txn_id TEXT;
UPDATE events SET txn_device = t.device_id, txn_id = t.txn_id
FROM event_txns t WHERE t.event_id = events.event_id AND t.user_id = events.sender;

-- A retried request finds its event here.
CREATE TABLE event_txns_lean (
	user_id    TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	room_id    TEXT NOT NULL,
	endpoint   TEXT NOT NULL,
	txn_id     TEXT NOT NULL,
	event_id   TEXT NOT NULL,
	created_ts INTEGER NOT NULL,
	PRIMARY KEY (user_id, device_id, room_id, endpoint, txn_id)
) WITHOUT ROWID;
INSERT INTO event_txns_lean (user_id, device_id, room_id, endpoint, txn_id, event_id, created_ts)
SELECT user_id, device_id, room_id, endpoint, txn_id, event_id, created_ts FROM event_txns;
DROP TABLE event_txns;
ALTER TABLE event_txns_lean RENAME TO event_txns;

CREATE TABLE push_actions_lean (
	user_id    TEXT NOT NULL,
	room_id    TEXT NOT NULL,
	stream_pos INTEGER NOT NULL,   -- the event's stream_pos in events
	event_id   TEXT NOT NULL,
	thread_id  TEXT NOT NULL,      -- '' for the main timeline, else the thread root's event ID
	notify     INTEGER NOT NULL,
	highlight  INTEGER NOT NULL,
	actions    TEXT NOT NULL,      -- the matching rule's actions, JSON
	ts         INTEGER NOT NULL,   -- when the notification was made (ms)
	PRIMARY KEY (user_id, stream_pos)
) WITHOUT ROWID;
INSERT INTO push_actions_lean SELECT user_id, room_id, stream_pos, event_id, thread_id, notify, highlight, actions, ts FROM push_actions;
DROP TABLE push_actions;
ALTER TABLE push_actions_lean RENAME TO push_actions;
CREATE INDEX push_actions_room_thread ON push_actions (user_id, room_id, thread_id, stream_pos);

-- Queries by (room, type, state key) are of state events; a condition on
-- state_key (=, <>, IS NOT NULL) lets SQLite use this index.
DROP INDEX events_room_type_state;
CREATE INDEX events_room_type_state ON events (room_id, type, state_key) WHERE state_key IS NOT NULL;
