-- Account locking and suspension (spec: "Account moderation"): both are
-- reversible flags an admin sets. A locked account's tokens stay valid but
-- every request but logout is refused; a suspended account can read but
-- not write.
ALTER TABLE users ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0;

-- OpenID tokens (spec: "OpenID"): short-lived tokens a user hands to a
-- widget or integration manager, which exchanges them at
-- /_matrix/federation/v1/openid/userinfo for the user's ID. Stored hashed,
-- like access tokens, so that they survive a restart within their hour.
CREATE TABLE openid_tokens (
	token_hash BLOB PRIMARY KEY,
	user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
	expires_ts INTEGER NOT NULL
);
CREATE INDEX openid_tokens_expiry ON openid_tokens (expires_ts);
