-- The built-in OAuth 2.0 authorization server (spec: "OAuth 2.0 API").
-- Its sessions are ordinary devices with ordinary access and refresh tokens;
-- these tables hold only what OAuth adds. Secrets (codes, device codes,
-- browser session cookies) are stored as SHA-256 hashes, like tokens.

-- Clients registered dynamically (RFC 7591). metadata is the registered
-- client metadata as JSON, as it is answered to the client.
CREATE TABLE oauth_clients (
	client_id  TEXT PRIMARY KEY,
	metadata   TEXT NOT NULL,
	created_ts INTEGER NOT NULL
);

-- Authorization codes (RFC 6749 section 4.1), single use: used_ts is set
-- when a code is exchanged, and a second exchange revokes the session the
-- first one made (the oauth_sessions row with the same grant_hash).
CREATE TABLE oauth_codes (
	code_hash      BLOB PRIMARY KEY,
	client_id      TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
	user_id        TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
	device_id      TEXT NOT NULL,
	redirect_uri   TEXT NOT NULL,
	scope          TEXT NOT NULL,
	code_challenge TEXT NOT NULL,   -- PKCE S256 challenge
	created_ts     INTEGER NOT NULL,
	expires_ts     INTEGER NOT NULL,
	used_ts        INTEGER          -- NULL until exchanged
);
CREATE INDEX oauth_codes_expiry ON oauth_codes (expires_ts);

-- Device authorization grants (RFC 8628). state is pending, approved
-- (user_id set), denied or done (tokens issued).
CREATE TABLE oauth_device_grants (
	device_code_hash BLOB PRIMARY KEY,
	user_code        TEXT NOT NULL UNIQUE,
	client_id        TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
	device_id        TEXT NOT NULL,
	scope            TEXT NOT NULL,
	state            TEXT NOT NULL DEFAULT 'pending',
	user_id          TEXT REFERENCES users (user_id) ON DELETE CASCADE,
	created_ts       INTEGER NOT NULL,
	expires_ts       INTEGER NOT NULL,
	last_poll_ts     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX oauth_device_grants_expiry ON oauth_device_grants (expires_ts);

-- Which client a device signed in through, with what scope and grant. It
-- goes with the device (logout, revocation, DELETE /devices).
CREATE TABLE oauth_sessions (
	user_id    TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	client_id  TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
	scope      TEXT NOT NULL,
	grant_hash BLOB,                -- the authorization code or device code it came from
	created_ts INTEGER NOT NULL,
	PRIMARY KEY (user_id, device_id),
	FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);
CREATE INDEX oauth_sessions_grant ON oauth_sessions (grant_hash);

-- Signed-in browsers of the sign-in pages (the cookie's hash).
CREATE TABLE oauth_browser_sessions (
	session_hash BLOB PRIMARY KEY,
	user_id      TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
	created_ts   INTEGER NOT NULL,
	expires_ts   INTEGER NOT NULL
);
CREATE INDEX oauth_browser_sessions_expiry ON oauth_browser_sessions (expires_ts);

-- Refresh tokens of OAuth sessions that have been exchanged. Once one is
-- gone from refresh_tokens (its successor was used), presenting it again
-- means it was copied: the session is revoked (spec: "Refresh token
-- grant"). Kept for a while, and with the device.
CREATE TABLE oauth_spent_refresh_tokens (
	token_hash BLOB PRIMARY KEY,
	user_id    TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	spent_ts   INTEGER NOT NULL,
	FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);
CREATE INDEX oauth_spent_refresh_tokens_ts ON oauth_spent_refresh_tokens (spent_ts);
