-- Facts about this server that must never silently change, such as the
-- server name every user ID and room is named after.
CREATE TABLE server_meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
