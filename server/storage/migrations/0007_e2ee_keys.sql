-- End-to-end encryption keys: device identity keys, one-time and fallback
-- keys, cross-signing keys and the signatures uploaded for them, and the
-- device-list stream that tells clients whose keys changed. The server
-- only stores and hands out public keys; it never sees a private one.

-- A device's identity keys, as the device signed them (canonical JSON,
-- without unsigned). They go with their device.
CREATE TABLE device_keys (
	user_id    TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	key_json   TEXT NOT NULL,
	created_ts INTEGER NOT NULL,
	PRIMARY KEY (user_id, device_id),
	FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);

-- One-time keys waiting to be claimed. seq is the upload order: keys are
-- handed out oldest first, as the spec asks.
CREATE TABLE one_time_keys (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id   TEXT NOT NULL,
	device_id TEXT NOT NULL,
	algorithm TEXT NOT NULL,
	key_id    TEXT NOT NULL,
	key_json  TEXT NOT NULL,   -- the key object (or string), canonical JSON
	UNIQUE (user_id, device_id, algorithm, key_id),
	FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);
CREATE INDEX one_time_keys_claim ON one_time_keys (user_id, device_id, algorithm, seq);

-- At most one fallback key per device and algorithm; used once a claim had
-- to fall back to it, until the device uploads a new one.
CREATE TABLE fallback_keys (
	user_id   TEXT NOT NULL,
	device_id TEXT NOT NULL,
	algorithm TEXT NOT NULL,
	key_id    TEXT NOT NULL,
	key_json  TEXT NOT NULL,
	used      INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, device_id, algorithm),
	FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);

-- A user's cross-signing keys: master, self_signing and user_signing.
-- public_key is the unpadded base64 ed25519 key (the key ID without
-- "ed25519:"), which signatures name as their target.
CREATE TABLE cross_signing_keys (
	user_id    TEXT NOT NULL,
	key_type   TEXT NOT NULL,
	public_key TEXT NOT NULL,
	key_json   TEXT NOT NULL,   -- as uploaded, canonical JSON
	updated_ts INTEGER NOT NULL,
	PRIMARY KEY (user_id, key_type)
);

-- Signatures uploaded with POST /keys/signatures/upload, merged into the
-- signed keys by /keys/query. The target is a device (target_key is its
-- device ID) or a cross-signing key (target_key is its public key).
CREATE TABLE key_signatures (
	target_user_id TEXT NOT NULL,
	target_key     TEXT NOT NULL,
	signer_user_id TEXT NOT NULL,
	signer_key_id  TEXT NOT NULL,   -- such as ed25519:<public key or device ID>
	signature      TEXT NOT NULL,
	PRIMARY KEY (target_user_id, target_key, signer_user_id, signer_key_id)
);

-- The device-list stream: one row per change to a user's devices,
-- identity keys, cross-signing keys or signatures. Rows with only_for
-- NULL concern everyone who shares a room with user_id (and user_id
-- itself); a row with only_for set is private to that user (their own
-- user-signing key, or their signature of another user's master key).
-- stream_id is the position sync tokens carry; rows are never deleted.
CREATE TABLE device_list_changes (
	stream_id INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id   TEXT NOT NULL,
	only_for  TEXT
);

-- Devices are deleted by several paths (logout, DELETE /devices,
-- deactivation, password change); their keys go by cascade, and these
-- triggers make the deletion visible in the same transaction: others learn
-- the device is gone, and signatures of it and by it are forgotten.
CREATE TRIGGER device_keys_deleted AFTER DELETE ON device_keys BEGIN
	INSERT INTO device_list_changes (user_id) VALUES (OLD.user_id);
	DELETE FROM key_signatures WHERE target_user_id = OLD.user_id AND target_key = OLD.device_id;
	DELETE FROM key_signatures WHERE signer_user_id = OLD.user_id AND signer_key_id = 'ed25519:' || OLD.device_id;
END;
