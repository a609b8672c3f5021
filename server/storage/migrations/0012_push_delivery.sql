-- Push delivery: how far each pusher has delivered its user's
-- notifications to its push gateway, so a restart resumes where it
-- stopped (as Synapse's pushers.last_stream_ordering does).

CREATE TABLE pusher_positions (
	user_id    TEXT NOT NULL,
	app_id     TEXT NOT NULL,
	pushkey    TEXT NOT NULL,
	-- Every notification (push_actions row of the user) at or below this
	-- stream position has been delivered, dropped or skipped.
	stream_pos INTEGER NOT NULL,
	PRIMARY KEY (user_id, app_id, pushkey),
	-- A removed pusher takes its position with it; re-creating it later
	-- starts from the events sent after that.
	FOREIGN KEY (user_id, app_id, pushkey) REFERENCES pushers (user_id, app_id, pushkey) ON DELETE CASCADE
);

-- Pushers made before delivery existed start from now, not from the
-- beginning of history.
INSERT INTO pusher_positions (user_id, app_id, pushkey, stream_pos)
SELECT user_id, app_id, pushkey, (SELECT COALESCE(MAX(stream_pos), 0) FROM events) FROM pushers;
