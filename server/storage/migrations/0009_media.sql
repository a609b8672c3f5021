-- Media repository (the spec's content repository): the files holding
-- uploaded bytes, the local media items (mxc://server/media_id) that point
-- at them, and the thumbnails generated from them.
--
-- Bytes live on disk under <data dir>/media/, named by their SHA-256
-- (media/ab/cd/abcd…), so identical uploads share one file. A file is in use
-- while a media row or a thumbnail row names it (its references are counted
-- by query, which cannot drift the way a stored counter can); the last
-- reference to go takes the row and the file with it.
CREATE TABLE media_content (
	sha256       TEXT PRIMARY KEY,   -- lowercase hex; the file's name
	size         INTEGER NOT NULL,
	sniffed_type TEXT NOT NULL,      -- what the bytes look like, whatever the uploader said
	created_ts   INTEGER NOT NULL
);

CREATE TABLE media (
	media_id     TEXT PRIMARY KEY,
	user_id      TEXT NOT NULL,      -- who uploaded it (or created the ID)
	content_type TEXT,               -- as the uploader gave it, normalised; NULL while pending
	upload_name  TEXT,               -- the uploader's file name, if any
	size         INTEGER,            -- NULL while pending
	sha256       TEXT REFERENCES media_content (sha256), -- NULL: created, not uploaded yet
	created_ts   INTEGER NOT NULL,   -- when the ID was made (ms)
	uploaded_ts  INTEGER,            -- when the bytes arrived; NULL while pending
	expires_ts   INTEGER,            -- pending IDs only: unused_expires_at
	url_cache    TEXT                -- the URL it was fetched from for a URL preview, else NULL
);
CREATE INDEX media_by_user ON media (user_id, created_ts);
CREATE INDEX media_by_sha256 ON media (sha256);

CREATE TABLE media_thumbnails (
	source_sha256 TEXT NOT NULL REFERENCES media_content (sha256),
	width         INTEGER NOT NULL,  -- the size and method asked for (a preset)
	height        INTEGER NOT NULL,
	method        TEXT NOT NULL,     -- "crop" or "scale"
	thumb_sha256  TEXT NOT NULL REFERENCES media_content (sha256),
	content_type  TEXT NOT NULL,
	thumb_width   INTEGER NOT NULL,  -- the size made
	thumb_height  INTEGER NOT NULL,
	created_ts    INTEGER NOT NULL,
	PRIMARY KEY (source_sha256, width, height, method)
);
CREATE INDEX media_thumbnails_by_thumb ON media_thumbnails (thumb_sha256);
