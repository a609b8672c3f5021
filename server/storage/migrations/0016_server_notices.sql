-- Server notices: each user's current notices room (the admin API's
-- send_server_notice). A user who leaves it gets a new one with the next
-- notice, and this row then names the new room.
CREATE TABLE server_notice_rooms (
	user_id TEXT PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
	room_id TEXT NOT NULL
);
