-- The outbound federation queue: what this server owes each other server,
-- kept until that server answers 200, so a crash or a long outage loses
-- nothing.

-- How far the event stream has been turned into queue rows. Queue rows and
-- this position are written in one transaction, so after a crash the
-- events past it are queued again, and only those. A new database (or one
-- upgraded from before federation) starts at its newest event: what was
-- sent while federation did not exist is not owed to anyone.
CREATE TABLE federation_queue_position (
	id             INTEGER PRIMARY KEY CHECK (id = 1),
	queued_through INTEGER NOT NULL
);
INSERT INTO federation_queue_position (id, queued_through) SELECT 1, COALESCE(MAX(stream_pos), 0) FROM events;

-- One row per destination server: its backoff, and the transaction being
-- sent to it. A transaction keeps its ID and its rows until answered 200,
-- so a retry (even after a restart) resends the same transaction.
CREATE TABLE federation_destinations (
	destination     TEXT PRIMARY KEY,
	retry_count     INTEGER NOT NULL DEFAULT 0,  -- failures since the last success
	next_retry_ts   INTEGER NOT NULL DEFAULT 0,  -- no attempt before this (ms); 0: now
	last_error      TEXT NOT NULL DEFAULT '',
	last_success_ts INTEGER NOT NULL DEFAULT 0,
	txn_id          TEXT,                        -- the transaction in flight, if any
	txn_ts          INTEGER NOT NULL DEFAULT 0   -- its origin_server_ts
);

-- PDUs owed: events of this server, by stream position (the order they are
-- sent in); the JSON is the events row's.
CREATE TABLE federation_pdu_queue (
	destination TEXT NOT NULL,
	stream_pos  INTEGER NOT NULL REFERENCES events (stream_pos),
	txn_id      TEXT,                            -- set once part of a transaction
	PRIMARY KEY (destination, stream_pos)
);

-- EDUs owed, in the order queued. A row with a coalesce key replaces an
-- unsent row with the same key (a user's newer presence, a newer receipt),
-- so a server that is away long gets the latest, not every step.
CREATE TABLE federation_edu_queue (
	edu_id       INTEGER PRIMARY KEY AUTOINCREMENT,
	destination  TEXT NOT NULL,
	edu_type     TEXT NOT NULL,
	content      TEXT NOT NULL,
	coalesce_key TEXT NOT NULL DEFAULT '',
	txn_id       TEXT
);
CREATE INDEX federation_edu_queue_dest ON federation_edu_queue (destination, edu_id);
CREATE INDEX federation_edu_queue_key ON federation_edu_queue (destination, coalesce_key) WHERE coalesce_key <> '';
