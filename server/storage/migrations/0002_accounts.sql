-- Accounts: users, their devices and the tokens that act for those devices,
-- profile fields, single-use login tokens and registration (invite) tokens.
-- Tokens are stored only as SHA-256 hashes: a copied database file must not
-- let anyone act as a user.
CREATE TABLE users (
	user_id       TEXT PRIMARY KEY,
	password_hash TEXT,                         -- NULL: no password login
	is_admin      INTEGER NOT NULL DEFAULT 0,
	deactivated   INTEGER NOT NULL DEFAULT 0,
	erased        INTEGER NOT NULL DEFAULT 0,   -- deactivated with erase=true
	user_type     TEXT,                         -- NULL for ordinary users
	created_ts    INTEGER NOT NULL              -- milliseconds since the epoch
);

CREATE TABLE profile_fields (
	user_id TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
	field   TEXT NOT NULL,   -- "displayname", "avatar_url", or a namespaced key
	value   TEXT NOT NULL,   -- JSON
	PRIMARY KEY (user_id, field)
);

CREATE TABLE devices (
	user_id              TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
	device_id            TEXT NOT NULL,
	display_name         TEXT,
	created_ts           INTEGER NOT NULL,
	last_seen_ts         INTEGER,
	last_seen_ip         TEXT,
	last_seen_user_agent TEXT,
	PRIMARY KEY (user_id, device_id)
);

CREATE TABLE access_tokens (
	token_hash    BLOB PRIMARY KEY,
	user_id       TEXT NOT NULL,
	device_id     TEXT NOT NULL,
	created_ts    INTEGER NOT NULL,
	expires_ts    INTEGER,           -- NULL: never expires
	refresh_hash  BLOB,              -- the refresh token issued with it, if any
	used          INTEGER NOT NULL DEFAULT 0,
	FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);
CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);

CREATE TABLE refresh_tokens (
	token_hash   BLOB PRIMARY KEY,
	user_id      TEXT NOT NULL,
	device_id    TEXT NOT NULL,
	created_ts   INTEGER NOT NULL,
	-- After a refresh the old token stays valid until its successor is used
	-- (the spec lets a client retry a refresh whose answer it lost).
	replaced_by  BLOB,
	FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_device ON refresh_tokens (user_id, device_id);

CREATE TABLE login_tokens (
	token_hash BLOB PRIMARY KEY,
	user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
	expires_ts INTEGER NOT NULL
);

CREATE TABLE registration_tokens (
	token        TEXT PRIMARY KEY,
	uses_allowed INTEGER,            -- NULL: unlimited
	completed    INTEGER NOT NULL DEFAULT 0,
	expiry_time  INTEGER,            -- milliseconds since the epoch; NULL: never
	created_ts   INTEGER NOT NULL
);
