-- Rooms and their event graph. Every event is a PDU stored once; its
-- stream_pos is the order this server learned of it (what /sync follows),
-- its depth and prev_events the order of the room's DAG.
CREATE TABLE rooms (
	room_id      TEXT PRIMARY KEY,
	room_version TEXT NOT NULL,
	creator      TEXT NOT NULL,
	created_ts   INTEGER NOT NULL,
	published    INTEGER NOT NULL DEFAULT 0   -- listed in the public room directory
);

CREATE TABLE events (
	stream_pos       INTEGER PRIMARY KEY AUTOINCREMENT,
	event_id         TEXT NOT NULL UNIQUE,
	room_id          TEXT NOT NULL REFERENCES rooms (room_id),
	type             TEXT NOT NULL,
	state_key        TEXT,                  -- NULL for message events
	membership       TEXT,                  -- content.membership of m.room.member events
	sender           TEXT NOT NULL,
	depth            INTEGER NOT NULL,
	origin_server_ts INTEGER NOT NULL,
	pdu              TEXT NOT NULL,         -- the PDU's JSON as signed
	rejected         INTEGER NOT NULL DEFAULT 0,
	state_before     INTEGER,               -- state group of the room just before the event
	state_after      INTEGER,               -- and just after it (same as before for messages)
	redacted_by      TEXT                   -- the redaction event that applies, once accepted
);
CREATE INDEX events_room_stream ON events (room_id, stream_pos);
CREATE INDEX events_room_type_state ON events (room_id, type, state_key);
-- A user's membership history across rooms, in stream order (for /sync).
CREATE INDEX events_member_stream ON events (state_key, stream_pos) WHERE type = 'm.room.member';

-- The events of a room that no other event references yet: the next
-- local event's prev_events.
CREATE TABLE forward_extremities (
	room_id  TEXT NOT NULL,
	event_id TEXT NOT NULL,
	PRIMARY KEY (room_id, event_id)
);

-- State snapshots, stored as deltas: a group is its prev_group's state with
-- the group's own entries laid over it; every so often a group is a full
-- snapshot (prev_group NULL) so that no chain grows long.
CREATE TABLE state_groups (
	group_id   INTEGER PRIMARY KEY AUTOINCREMENT,
	room_id    TEXT NOT NULL,
	prev_group INTEGER REFERENCES state_groups (group_id),
	chain_len  INTEGER NOT NULL
);

CREATE TABLE state_group_entries (
	group_id  INTEGER NOT NULL REFERENCES state_groups (group_id),
	type      TEXT NOT NULL,
	state_key TEXT NOT NULL,
	event_id  TEXT,                          -- NULL: the entry is removed
	PRIMARY KEY (group_id, type, state_key)
);

-- The room's current state, denormalised for fast lookups; membership is
-- copied out of m.room.member events so "which rooms is this user in" is an
-- index scan.
CREATE TABLE current_state (
	room_id    TEXT NOT NULL,
	type       TEXT NOT NULL,
	state_key  TEXT NOT NULL,
	event_id   TEXT NOT NULL,
	membership TEXT,
	PRIMARY KEY (room_id, type, state_key)
);
CREATE INDEX current_state_membership ON current_state (state_key, membership) WHERE type = 'm.room.member';

-- Transaction IDs of sent events, per device, so a retried PUT /send
-- returns the first event instead of sending twice.
CREATE TABLE event_txns (
	user_id    TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	txn_id     TEXT NOT NULL,
	event_id   TEXT NOT NULL,
	created_ts INTEGER NOT NULL,
	PRIMARY KEY (user_id, device_id, txn_id)
);

-- Rooms a user has forgotten (after leaving): hidden from their sync.
CREATE TABLE forgotten_rooms (
	user_id TEXT NOT NULL,
	room_id TEXT NOT NULL,
	PRIMARY KEY (user_id, room_id)
);

CREATE TABLE room_aliases (
	alias      TEXT PRIMARY KEY,
	room_id    TEXT NOT NULL REFERENCES rooms (room_id),
	creator    TEXT NOT NULL,
	created_ts INTEGER NOT NULL
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);
