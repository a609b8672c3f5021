-- Copies of other servers' media (mxc://<origin>/<media_id>), fetched over
-- federation for local clients and kept so that later requests, and the
-- thumbnails made from them, need no fetch. Their bytes are ordinary
-- content files (media_content), shared with local media of the same
-- bytes; a content file stays while a local or a remote media row names it.
CREATE TABLE remote_media (
	origin         TEXT NOT NULL,    -- the server of the mxc:// URI
	media_id       TEXT NOT NULL,    -- the media ID on that server
	content_type   TEXT NOT NULL,    -- as the origin sent it, normalised
	upload_name    TEXT,             -- from the origin's Content-Disposition, if any
	size           INTEGER NOT NULL,
	sha256         TEXT NOT NULL REFERENCES media_content (sha256),
	fetched_ts     INTEGER NOT NULL, -- when the copy was made (ms)
	last_access_ts INTEGER NOT NULL, -- last served; the cache evicts the oldest first
	PRIMARY KEY (origin, media_id)
);
CREATE INDEX remote_media_by_sha256 ON remote_media (sha256);
CREATE INDEX remote_media_by_access ON remote_media (last_access_ts);
