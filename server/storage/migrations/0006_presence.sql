-- Presence: each user's last state, with a stream position per change.
CREATE TABLE presence (
	user_id          TEXT PRIMARY KEY,
	state            TEXT NOT NULL,        -- online, unavailable or offline
	status_msg       TEXT,
	last_active_ts   INTEGER NOT NULL,     -- last time the user did something
	last_sync_ts     INTEGER NOT NULL,     -- last time a client synced
	stream_id        INTEGER NOT NULL
);
CREATE INDEX presence_stream ON presence (stream_id);
