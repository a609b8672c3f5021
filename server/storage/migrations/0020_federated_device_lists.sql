-- Device lists over federation: what this server announced of its own
-- users' devices to other servers, and its cache of other servers' users'
-- devices, kept current by their m.device_list_update EDUs.

-- Per local user, the stream_id of the latest m.device_list_update sent
-- for them: the next one names it as its prev_id, and GET /user/devices
-- answers it, so other servers can tell when they missed an update.
CREATE TABLE device_list_outbound (
	user_id   TEXT PRIMARY KEY,
	stream_id INTEGER NOT NULL
);

-- The devices of a local user as last announced, by a digest of what was
-- sent (keys with their signatures, display name): a change of digest is
-- an update to send, a device no longer there a deletion.
CREATE TABLE device_list_announced (
	user_id   TEXT NOT NULL,
	device_id TEXT NOT NULL,
	digest    TEXT NOT NULL,
	PRIMARY KEY (user_id, device_id)
);

-- A remote user whose device list this server caches, at stream_id of
-- their server's sequence. stale marks a list that missed an update: it
-- is fetched again before it is used.
CREATE TABLE remote_device_lists (
	user_id   TEXT PRIMARY KEY,
	stream_id INTEGER NOT NULL,
	stale     INTEGER NOT NULL DEFAULT 0
);

-- The cached devices of those users: identity keys as their server sent
-- them (canonical JSON without unsigned) and display names. Their master
-- and self-signing keys are kept in cross_signing_keys, like local ones.
CREATE TABLE remote_device_keys (
	user_id      TEXT NOT NULL,
	device_id    TEXT NOT NULL,
	display_name TEXT NOT NULL DEFAULT '',
	key_json     TEXT NOT NULL,
	PRIMARY KEY (user_id, device_id),
	FOREIGN KEY (user_id) REFERENCES remote_device_lists (user_id) ON DELETE CASCADE
);
