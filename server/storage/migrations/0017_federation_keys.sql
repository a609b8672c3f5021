-- Federation signing keys. federation_own_keys remembers every signing key
-- this server has used, so a key rotation keeps the previous public key in
-- old_verify_keys (expired_ts is when it stopped being used; NULL for the
-- key in use).
CREATE TABLE federation_own_keys (
	key_id        TEXT PRIMARY KEY,
	public_key    TEXT NOT NULL,
	first_used_ts INTEGER NOT NULL,
	expired_ts    INTEGER
);

-- Other servers' public keys, as fetched (directly or through a notary):
-- valid_until_ts bounds the events a verify key may sign; an old verify key
-- has expired_ts instead and signs nothing after it.
CREATE TABLE federation_server_keys (
	server_name    TEXT NOT NULL,
	key_id         TEXT NOT NULL,
	public_key     TEXT NOT NULL,
	valid_until_ts INTEGER NOT NULL,
	expired_ts     INTEGER,
	fetched_ts     INTEGER NOT NULL,
	PRIMARY KEY (server_name, key_id)
);

-- The newest signed key response of each server, as it was received, so
-- this server can answer notary queries with the origin's own signature.
CREATE TABLE federation_key_responses (
	server_name    TEXT PRIMARY KEY,
	response       TEXT NOT NULL,
	valid_until_ts INTEGER NOT NULL,
	fetched_ts     INTEGER NOT NULL
);

-- Failed key fetches, for backoff: a dead server is not asked again on
-- every request that names it.
CREATE TABLE federation_key_failures (
	server_name     TEXT PRIMARY KEY,
	failures        INTEGER NOT NULL,
	last_failure_ts INTEGER NOT NULL
);
