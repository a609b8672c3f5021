-- Push: each user's own push rules and their changes to the server-default
-- rules, pushers, and the notifications push rule evaluation produced
-- (what unread counts and GET /notifications are made of).

-- A user's own rules, in priority order within each kind.
CREATE TABLE push_rules (
	user_id    TEXT NOT NULL,
	kind       TEXT NOT NULL,      -- override, content, room, sender or underride
	rule_id    TEXT NOT NULL,
	position   INTEGER NOT NULL,   -- 0 is the most important rule of its kind
	conditions TEXT,               -- JSON array, for override and underride rules
	pattern    TEXT,               -- for content rules
	actions    TEXT NOT NULL,      -- JSON array
	enabled    INTEGER NOT NULL DEFAULT 1,
	PRIMARY KEY (user_id, kind, rule_id)
);

-- A user's changes to server-default rules (rule IDs starting with '.'):
-- NULL keeps the default.
CREATE TABLE push_rule_defaults (
	user_id TEXT NOT NULL,
	kind    TEXT NOT NULL,
	rule_id TEXT NOT NULL,
	enabled INTEGER,
	actions TEXT,
	PRIMARY KEY (user_id, kind, rule_id)
);

CREATE TABLE pushers (
	user_id             TEXT NOT NULL,
	app_id              TEXT NOT NULL,
	pushkey             TEXT NOT NULL,
	kind                TEXT NOT NULL,
	app_display_name    TEXT NOT NULL,
	device_display_name TEXT NOT NULL,
	profile_tag         TEXT NOT NULL DEFAULT '',
	lang                TEXT NOT NULL,
	data                TEXT NOT NULL,   -- JSON object
	device_id           TEXT NOT NULL,   -- the device that set it
	created_ts          INTEGER NOT NULL,
	PRIMARY KEY (user_id, app_id, pushkey)
);
CREATE INDEX pushers_app_pushkey ON pushers (app_id, pushkey);

-- One row per event that notifies or highlights for a user.
CREATE TABLE push_actions (
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
);
CREATE INDEX push_actions_room_thread ON push_actions (user_id, room_id, thread_id, stream_pos);

-- The newest event each local user sent per room and thread: sending an
-- event marks everything before it read, like a receipt (spec: "Marking
-- notifications as read").
CREATE TABLE push_sent (
	user_id    TEXT NOT NULL,
	room_id    TEXT NOT NULL,
	thread_id  TEXT NOT NULL,      -- '' for the main timeline
	stream_pos INTEGER NOT NULL,
	PRIMARY KEY (user_id, room_id, thread_id)
);
