-- Events that came over federation but are not part of the room's timeline.
-- outlier = 1: an event of the room's state or auth chain learned when
-- joining or filling a gap; outlier = 2: an event that passed the auth rules
-- against the state before it but failed against the room's current state
-- (soft-failed), which the timeline and forward extremities skip. Both are
-- stored with rejected = 1, so every timeline query (which reads only
-- rejected = 0) skips them without change; they are not rejected, and may
-- be used as auth events and state (storage reads rejected AND NOT outlier).
ALTER TABLE events ADD COLUMN outlier INTEGER NOT NULL DEFAULT 0;

-- forward = 1: an event of another server's user that this server accepted
-- on its behalf (send_join, send_leave, send_knock) and so must send to the
-- room's other servers, as it sends its own events.
ALTER TABLE events ADD COLUMN forward INTEGER NOT NULL DEFAULT 0;

-- Inbound federation transactions, per origin server, so a retried PUT
-- /send/{txnId} is answered without processing its PDUs twice.
CREATE TABLE federation_inbound_txns (
	origin      TEXT NOT NULL,
	txn_id      TEXT NOT NULL,
	response    TEXT NOT NULL,
	received_ts INTEGER NOT NULL,
	PRIMARY KEY (origin, txn_id)
);

-- The stripped state another server sent with an invite of one of our users
-- to a room this server is not in: what the invitee sees of the room
-- before joining.
CREATE TABLE invite_room_state (
	event_id TEXT PRIMARY KEY,
	state    TEXT NOT NULL
);
