-- To-device messages received over federation, by sending server and the
-- message_id it gave them, so a transaction resent after a lost answer
-- does not deliver a message twice. Kept a week: a sender resends an
-- unanswered transaction within hours, even after a restart.
CREATE TABLE federation_todevice_received (
	origin      TEXT NOT NULL,
	message_id  TEXT NOT NULL,
	received_ts INTEGER NOT NULL,
	PRIMARY KEY (origin, message_id)
);
CREATE INDEX federation_todevice_received_ts ON federation_todevice_received (received_ts);
