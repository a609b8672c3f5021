-- Transaction IDs are scoped to the device and the request path (spec:
-- "Transaction identifiers"), not to the device alone: the same ID used to
-- send into another room, to send another event type, or to redact after a
-- send is a new request. The path is kept as its room and its endpoint:
-- "send/<event type>" or "redact/<event ID>".
CREATE TABLE event_txns_scoped (
	user_id    TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	room_id    TEXT NOT NULL,
	endpoint   TEXT NOT NULL,
	txn_id     TEXT NOT NULL,
	event_id   TEXT NOT NULL,
	created_ts INTEGER NOT NULL,
	PRIMARY KEY (user_id, device_id, room_id, endpoint, txn_id)
);

INSERT INTO event_txns_scoped (user_id, device_id, room_id, endpoint, txn_id, event_id, created_ts)
SELECT t.user_id, t.device_id, e.room_id,
	CASE WHEN e.type = 'm.room.redaction'
		THEN 'redact/' || COALESCE(json_extract(e.pdu, '$.content.redacts'), json_extract(e.pdu, '$.redacts'), '')
		ELSE 'send/' || e.type END,
	t.txn_id, t.event_id, t.created_ts
FROM event_txns t JOIN events e ON e.event_id = t.event_id;

DROP TABLE event_txns;
ALTER TABLE event_txns_scoped RENAME TO event_txns;
CREATE INDEX event_txns_event ON event_txns (event_id);
