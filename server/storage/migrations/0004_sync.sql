-- What /sync needs beyond the room events: stored filters, account data
-- (global when room_id is ''), and read receipts. Each change gets a
-- stream_id, the position /sync tokens carry.
CREATE TABLE filters (
	user_id   TEXT NOT NULL,
	filter_id INTEGER NOT NULL,
	filter    TEXT NOT NULL,   -- canonical JSON
	PRIMARY KEY (user_id, filter_id)
);

CREATE TABLE account_data (
	stream_id INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id   TEXT NOT NULL,
	room_id   TEXT NOT NULL,   -- '' for global account data
	type      TEXT NOT NULL,
	content   TEXT NOT NULL,
	UNIQUE (user_id, room_id, type)
);
CREATE INDEX account_data_user_stream ON account_data (user_id, stream_id);

CREATE TABLE receipts (
	stream_id    INTEGER PRIMARY KEY AUTOINCREMENT,
	room_id      TEXT NOT NULL,
	user_id      TEXT NOT NULL,
	receipt_type TEXT NOT NULL,   -- m.read or m.read.private
	thread_id    TEXT NOT NULL,   -- '' for unthreaded receipts
	event_id     TEXT NOT NULL,
	ts           INTEGER NOT NULL,
	UNIQUE (room_id, user_id, receipt_type, thread_id)
);
CREATE INDEX receipts_room_stream ON receipts (room_id, stream_id);
