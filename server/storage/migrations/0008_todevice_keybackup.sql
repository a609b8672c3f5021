-- To-device messages and server-side key backups.

-- Messages waiting for their recipient device, in order of arrival. A
-- message stays until the device syncs with a token at or past its
-- stream_id (the client's acknowledgement that it received it), and goes
-- with its device.
CREATE TABLE to_device_messages (
	stream_id INTEGER PRIMARY KEY,
	user_id   TEXT NOT NULL,
	device_id TEXT NOT NULL,
	sender    TEXT NOT NULL,
	type      TEXT NOT NULL,
	content   TEXT NOT NULL,   -- JSON object
	FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);
CREATE INDEX to_device_messages_device ON to_device_messages (user_id, device_id, stream_id);

-- The newest to-device position ever handed out. Delivered messages are
-- deleted, so MAX(stream_id) could go backwards, and a sync token past the
-- maximum is refused as coming from another database.
CREATE TABLE to_device_stream (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	pos INTEGER NOT NULL
);
INSERT INTO to_device_stream (id, pos) VALUES (1, 0);

-- Transaction IDs of PUT /sendToDevice per sending device and event type
-- (the path is part of what identifies a retransmission), so a retried
-- request delivers nothing twice.
CREATE TABLE to_device_txns (
	user_id    TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	event_type TEXT NOT NULL,
	txn_id     TEXT NOT NULL,
	created_ts INTEGER NOT NULL,
	PRIMARY KEY (user_id, device_id, event_type, txn_id),
	FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);

-- Key backup versions, numbered per user. A deleted version keeps its row
-- (deleted = 1) so its number is never reused and deleting it again
-- succeeds, as the spec asks. etag counts changes to the version's keys.
CREATE TABLE key_backup_versions (
	user_id   TEXT NOT NULL,
	version   INTEGER NOT NULL,
	algorithm TEXT NOT NULL,
	auth_data TEXT NOT NULL,   -- JSON object
	etag      INTEGER NOT NULL DEFAULT 0,
	deleted   INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, version)
);

-- The backed-up (encrypted) Megolm session keys of a version.
CREATE TABLE key_backup_sessions (
	user_id             TEXT NOT NULL,
	version             INTEGER NOT NULL,
	room_id             TEXT NOT NULL,
	session_id          TEXT NOT NULL,
	first_message_index INTEGER NOT NULL,
	forwarded_count     INTEGER NOT NULL,
	is_verified         INTEGER NOT NULL,
	session_data        TEXT NOT NULL,   -- JSON object, opaque to the server
	PRIMARY KEY (user_id, version, room_id, session_id),
	FOREIGN KEY (user_id, version) REFERENCES key_backup_versions (user_id, version) ON DELETE CASCADE
);
