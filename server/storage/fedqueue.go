package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// This file is the outbound federation queue (migration 0018): which
// events and EDUs each destination server is owed, the transaction being
// sent to it, and its backoff.

// OwnEvent is an accepted event this server sent, as the federation queue
// needs it to choose destinations.
type OwnEvent struct {
	StreamPos  int64
	EventID    id.EventID
	RoomID     id.RoomID
	Type       string
	StateKey   *string
	Membership string
	// Sender is who sent it: a user of another server for an event this
	// server accepted for it, whose server needs no copy.
	Sender id.UserID
}

const (
	selectFedQueuedThrough = `SELECT queued_through FROM federation_queue_position WHERE id = 1`
	updateFedQueuedThrough = `UPDATE federation_queue_position SET queued_through = $1 WHERE id = 1 AND queued_through < $1`
	// The sender's server name is what follows the user ID's first colon;
	// comparing the suffix ":name" is the same test, and server names
	// hold no colon but a port's, which the suffix includes.
	// Events this server accepted for another server's user (forward = 1)
	// are sent on too.
	selectOwnEventsAfter = `SELECT stream_pos, event_id, room_id, type, state_key, COALESCE(membership, ''), sender FROM events
WHERE stream_pos > $1 AND stream_pos <= $2 AND rejected = 0 AND (substr(sender, length(sender) - length($3) + 1) = $3 OR forward = 1)
ORDER BY stream_pos LIMIT $4`
)

// FederationQueuedThrough is the stream position up to which events have
// been turned into federation queue rows.
func (db *DB) FederationQueuedThrough(ctx context.Context) (int64, error) {
	var pos int64
	if err := db.reader.QueryRowContext(ctx, selectFedQueuedThrough).Scan(&pos); err != nil {
		return 0, fmt.Errorf("federation queue position: %w", err)
	}
	return pos, nil
}

// OwnEventsAfter returns up to limit accepted events sent by users of
// serverName with stream positions after after, oldest first, and the
// position the scan covered: the last event's when the page is full,
// otherwise the newest event's of the whole stream (the events of other
// servers in between need no queueing). The newest position is read
// before the events, so an event committed meanwhile lies past it.
func (db *DB) OwnEventsAfter(ctx context.Context, after int64, serverName string, limit int) ([]OwnEvent, int64, error) {
	maxPos, err := db.MaxStreamPos(ctx)
	if err != nil {
		return nil, 0, err
	}
	if maxPos <= after {
		return nil, after, nil
	}
	rows, err := db.reader.QueryContext(ctx, selectOwnEventsAfter, after, maxPos, ":"+serverName, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("own events after %d: %w", after, err)
	}
	defer rows.Close()
	var out []OwnEvent
	for rows.Next() {
		var e OwnEvent
		var sk sql.NullString
		if err := rows.Scan(&e.StreamPos, &e.EventID, &e.RoomID, &e.Type, &sk, &e.Membership, &e.Sender); err != nil {
			return nil, 0, fmt.Errorf("own events after %d: %w", after, err)
		}
		if sk.Valid {
			e.StateKey = &sk.String
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("own events after %d: %w", after, err)
	}
	through := maxPos
	if len(out) == limit {
		through = out[len(out)-1].StreamPos
	}
	return out, through, nil
}

const (
	selectJoinedMembers  = `SELECT state_key FROM current_state WHERE room_id = $1 AND type = 'm.room.member' AND membership = 'join'`
	selectMembersChanged = `SELECT DISTINCT state_key FROM events WHERE room_id = $1 AND type = 'm.room.member' AND state_key IS NOT NULL AND rejected = 0 AND stream_pos > $2`
	selectMembershipAt   = `SELECT COALESCE(membership, '') FROM events
WHERE room_id = $1 AND type = 'm.room.member' AND state_key = $2 AND rejected = 0 AND stream_pos <= $3
ORDER BY stream_pos DESC LIMIT 1`
)

// JoinedMembersAt lists the users joined to a room as of stream position
// pos: the current state's joined members, corrected for the users whose
// membership changed after pos by their latest membership event at or
// before it. That correction is usually empty (pos is the room's newest
// event), so a large room costs one index scan. Stream order stands in for
// the room's DAG order, which is the same for a room no other server forks.
func (db *DB) JoinedMembersAt(ctx context.Context, roomID id.RoomID, pos int64) ([]id.UserID, error) {
	joined, err := queryColumn[id.UserID](ctx, db.reader, selectJoinedMembers, roomID)
	if err != nil {
		return nil, fmt.Errorf("joined members of %s: %w", roomID, err)
	}
	changed, err := queryColumn[id.UserID](ctx, db.reader, selectMembersChanged, roomID, pos)
	if err != nil {
		return nil, fmt.Errorf("membership changes in %s: %w", roomID, err)
	}
	if len(changed) == 0 {
		return joined, nil
	}
	set := make(map[id.UserID]bool, len(joined))
	for _, u := range joined {
		set[u] = true
	}
	for _, u := range changed {
		var m string
		err := db.reader.QueryRowContext(ctx, selectMembershipAt, roomID, u, pos).Scan(&m)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("membership of %s in %s at %d: %w", u, roomID, pos, err)
		}
		set[u] = m == "join"
	}
	out := joined[:0]
	for u, in := range set {
		if in {
			out = append(out, u)
		}
	}
	return out, nil
}

// QueuedPDU is one event owed to one destination.
type QueuedPDU struct {
	Destination string
	StreamPos   int64
}

const (
	insertFedDestination = `INSERT INTO federation_destinations (destination) VALUES ($1) ON CONFLICT (destination) DO NOTHING`
	insertFedPDU         = `INSERT INTO federation_pdu_queue (destination, stream_pos) VALUES ($1, $2) ON CONFLICT (destination, stream_pos) DO NOTHING`
)

// QueueFederationPDUs stores events owed to destinations and moves the
// queue position to through, in one transaction: either both or neither
// survive a crash.
func (db *DB) QueueFederationPDUs(ctx context.Context, pdus []QueuedPDU, through int64) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		seen := map[string]bool{}
		for _, p := range pdus {
			if !seen[p.Destination] {
				seen[p.Destination] = true
				if _, err := tx.ExecContext(ctx, insertFedDestination, p.Destination); err != nil {
					return fmt.Errorf("queue pdus: destination %s: %w", p.Destination, err)
				}
			}
			if _, err := tx.ExecContext(ctx, insertFedPDU, p.Destination, p.StreamPos); err != nil {
				return fmt.Errorf("queue pdu %d for %s: %w", p.StreamPos, p.Destination, err)
			}
		}
		if _, err := tx.ExecContext(ctx, updateFedQueuedThrough, through); err != nil {
			return fmt.Errorf("queue pdus: move position: %w", err)
		}
		return nil
	})
}

// QueuedEDU is one EDU owed to one destination. A non-empty CoalesceKey
// replaces an unsent EDU with the same key for that destination.
type QueuedEDU struct {
	Destination string
	Type        string
	Content     []byte
	CoalesceKey string
}

const (
	deleteFedEDUByKey = `DELETE FROM federation_edu_queue WHERE destination = $1 AND coalesce_key = $2 AND txn_id IS NULL`
	insertFedEDU      = `INSERT INTO federation_edu_queue (destination, edu_type, content, coalesce_key) VALUES ($1, $2, $3, $4)`
)

// QueueFederationEDUs stores EDUs owed to destinations, in one transaction.
// (Typing and receipts queue often; they change nothing a token lookup
// reads, so the token cache stands.)
func (db *DB) QueueFederationEDUs(ctx context.Context, edus []QueuedEDU) error {
	return db.writeTx(ctx, func(tx *sql.Tx) error { return queueFedEDUsTx(ctx, tx, edus) })
}

// queueFedEDUsTx queues EDUs in tx; one with a coalesce key replaces the
// queued one of its key and destination.
func queueFedEDUsTx(ctx context.Context, tx *sql.Tx, edus []QueuedEDU) error {
	seen := map[string]bool{}
	for _, e := range edus {
		if !seen[e.Destination] {
			seen[e.Destination] = true
			if _, err := tx.ExecContext(ctx, insertFedDestination, e.Destination); err != nil {
				return fmt.Errorf("queue edus: destination %s: %w", e.Destination, err)
			}
		}
		if e.CoalesceKey != "" {
			if _, err := tx.ExecContext(ctx, deleteFedEDUByKey, e.Destination, e.CoalesceKey); err != nil {
				return fmt.Errorf("queue %s for %s: %w", e.Type, e.Destination, err)
			}
		}
		if _, err := tx.ExecContext(ctx, insertFedEDU, e.Destination, e.Type, string(e.Content), e.CoalesceKey); err != nil {
			return fmt.Errorf("queue %s for %s: %w", e.Type, e.Destination, err)
		}
	}
	return nil
}

// FederationDestination is a destination's row: its backoff and last
// outcome.
type FederationDestination struct {
	Destination   string
	RetryCount    int
	NextRetryTS   int64
	LastError     string
	LastSuccessTS int64
	// Queued counts the PDUs and EDUs owed, in flight or not.
	Queued int
}

const selectFedDestinations = `SELECT d.destination, d.retry_count, d.next_retry_ts, d.last_error, d.last_success_ts,
	(SELECT COUNT(*) FROM federation_pdu_queue p WHERE p.destination = d.destination) +
	(SELECT COUNT(*) FROM federation_edu_queue e WHERE e.destination = d.destination)
FROM federation_destinations d`

func scanFedDestinations(rows *sql.Rows) ([]FederationDestination, error) {
	defer rows.Close()
	var out []FederationDestination
	for rows.Next() {
		var d FederationDestination
		if err := rows.Scan(&d.Destination, &d.RetryCount, &d.NextRetryTS, &d.LastError, &d.LastSuccessTS, &d.Queued); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// FederationDestinations lists every destination ever queued for, by name.
func (db *DB) FederationDestinations(ctx context.Context) ([]FederationDestination, error) {
	rows, err := db.reader.QueryContext(ctx, selectFedDestinations+` ORDER BY d.destination`)
	if err != nil {
		return nil, fmt.Errorf("federation destinations: %w", err)
	}
	out, err := scanFedDestinations(rows)
	if err != nil {
		return nil, fmt.Errorf("federation destinations: %w", err)
	}
	return out, nil
}

// GetFederationDestination returns one destination's row, or ErrNotFound.
func (db *DB) GetFederationDestination(ctx context.Context, dest string) (*FederationDestination, error) {
	rows, err := db.reader.QueryContext(ctx, selectFedDestinations+` WHERE d.destination = $1`, dest)
	if err != nil {
		return nil, fmt.Errorf("federation destination %s: %w", dest, err)
	}
	out, err := scanFedDestinations(rows)
	if err != nil {
		return nil, fmt.Errorf("federation destination %s: %w", dest, err)
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	return &out[0], nil
}

// FederationTxn is a transaction for one destination: its ID, timestamp
// and contents, oldest first.
type FederationTxn struct {
	ID   string
	TS   int64
	PDUs [][]byte
	EDUs []FederationEDU
}

// FederationEDU is a queued EDU's type and content.
type FederationEDU struct {
	Type    string
	Content []byte
}

const (
	selectFedTxn       = `SELECT COALESCE(txn_id, ''), txn_ts FROM federation_destinations WHERE destination = $1`
	clearFedTxn        = `UPDATE federation_destinations SET txn_id = NULL, txn_ts = 0 WHERE destination = $1`
	setFedTxn          = `UPDATE federation_destinations SET txn_id = $2, txn_ts = $3 WHERE destination = $1`
	selectFedTxnPDUs   = `SELECT e.pdu FROM federation_pdu_queue q JOIN events e ON e.stream_pos = q.stream_pos WHERE q.destination = $1 AND q.txn_id = $2 ORDER BY q.stream_pos`
	selectFedTxnEDUs   = `SELECT edu_type, content FROM federation_edu_queue WHERE destination = $1 AND txn_id = $2 ORDER BY edu_id`
	assignFedTxnPDUs   = `UPDATE federation_pdu_queue SET txn_id = $2 WHERE destination = $1 AND stream_pos IN (SELECT stream_pos FROM federation_pdu_queue WHERE destination = $1 AND txn_id IS NULL ORDER BY stream_pos LIMIT $3)`
	assignFedTxnEDUs   = `UPDATE federation_edu_queue SET txn_id = $2 WHERE edu_id IN (SELECT edu_id FROM federation_edu_queue WHERE destination = $1 AND txn_id IS NULL ORDER BY edu_id LIMIT $3)`
	deleteFedTxnPDUs   = `DELETE FROM federation_pdu_queue WHERE destination = $1 AND txn_id = $2`
	deleteFedTxnEDUs   = `DELETE FROM federation_edu_queue WHERE destination = $1 AND txn_id = $2`
	updateFedTxnSent   = `UPDATE federation_destinations SET txn_id = NULL, txn_ts = 0, retry_count = 0, next_retry_ts = 0, last_error = '', last_success_ts = $2 WHERE destination = $1`
	updateFedTxnFailed = `UPDATE federation_destinations SET retry_count = $2, next_retry_ts = $3, last_error = $4 WHERE destination = $1`
	resetFedBackoff    = `UPDATE federation_destinations SET retry_count = 0, next_retry_ts = 0 WHERE destination = $1 AND (retry_count <> 0 OR next_retry_ts <> 0)`
	selectFedWork      = `SELECT destination FROM federation_destinations d WHERE txn_id IS NOT NULL
	OR EXISTS (SELECT 1 FROM federation_pdu_queue p WHERE p.destination = d.destination)
	OR EXISTS (SELECT 1 FROM federation_edu_queue e WHERE e.destination = d.destination)
ORDER BY destination`
)

// NextFederationTxn returns the transaction to send a destination next:
// the one already in flight, exactly as it was first made (a retry must
// resend the same transaction under the same ID), or else a new one of up
// to maxPDUs PDUs and maxEDUs EDUs, the oldest owed, recorded under newID
// and ts. It returns nil when nothing is owed.
func (db *DB) NextFederationTxn(ctx context.Context, dest, newID string, ts int64, maxPDUs, maxEDUs int) (*FederationTxn, error) {
	var txn *FederationTxn
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		txn = nil
		var cur string
		var curTS int64
		err := tx.QueryRowContext(ctx, selectFedTxn, dest).Scan(&cur, &curTS)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if cur != "" {
			t, err := loadFedTxn(ctx, tx, dest, cur, curTS)
			if err != nil {
				return err
			}
			if len(t.PDUs)+len(t.EDUs) > 0 {
				txn = t
				return nil
			}
			// No rows under the in-flight ID (rows and ID are cleared in
			// one transaction, so this should not happen): drop the ID.
			if _, err := tx.ExecContext(ctx, clearFedTxn, dest); err != nil {
				return err
			}
		}
		p, err := tx.ExecContext(ctx, assignFedTxnPDUs, dest, newID, maxPDUs)
		if err != nil {
			return err
		}
		e, err := tx.ExecContext(ctx, assignFedTxnEDUs, dest, newID, maxEDUs)
		if err != nil {
			return err
		}
		np, _ := p.RowsAffected()
		ne, _ := e.RowsAffected()
		if np+ne == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, setFedTxn, dest, newID, ts); err != nil {
			return err
		}
		txn, err = loadFedTxn(ctx, tx, dest, newID, ts)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("next transaction for %s: %w", dest, err)
	}
	return txn, nil
}

func loadFedTxn(ctx context.Context, tx *sql.Tx, dest, txnID string, ts int64) (*FederationTxn, error) {
	t := &FederationTxn{ID: txnID, TS: ts}
	pdus, err := queryColumn[string](ctx, tx, selectFedTxnPDUs, dest, txnID)
	if err != nil {
		return nil, err
	}
	for _, p := range pdus {
		t.PDUs = append(t.PDUs, []byte(p))
	}
	rows, err := tx.QueryContext(ctx, selectFedTxnEDUs, dest, txnID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var e FederationEDU
		var content string
		if err := rows.Scan(&e.Type, &content); err != nil {
			return nil, err
		}
		e.Content = []byte(content)
		t.EDUs = append(t.EDUs, e)
	}
	return t, rows.Err()
}

// FederationTxnSent records that a destination answered 200 to a
// transaction: its rows are done, and the destination's backoff ends.
func (db *DB) FederationTxnSent(ctx context.Context, dest, txnID string, nowTS int64) error {
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, deleteFedTxnPDUs, dest, txnID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, deleteFedTxnEDUs, dest, txnID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, updateFedTxnSent, dest, nowTS)
		return err
	})
	if err != nil {
		return fmt.Errorf("transaction %s to %s sent: %w", txnID, dest, err)
	}
	return nil
}

// FederationTxnFailed records a failed attempt and when to try again.
func (db *DB) FederationTxnFailed(ctx context.Context, dest string, retryCount int, nextRetryTS int64, lastError string) error {
	if _, err := db.exec(ctx, insertFedDestination, dest); err != nil {
		return fmt.Errorf("record failure for %s: %w", dest, err)
	}
	if _, err := db.exec(ctx, updateFedTxnFailed, dest, retryCount, nextRetryTS, lastError); err != nil {
		return fmt.Errorf("record failure for %s: %w", dest, err)
	}
	return nil
}

// ResetFederationBackoff ends a destination's backoff (it has shown it is
// up) and tells whether there was one.
func (db *DB) ResetFederationBackoff(ctx context.Context, dest string) (bool, error) {
	res, err := db.exec(ctx, resetFedBackoff, dest)
	if err != nil {
		return false, fmt.Errorf("reset backoff of %s: %w", dest, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// FederationDestinationsWithWork lists destinations owed something.
func (db *DB) FederationDestinationsWithWork(ctx context.Context) ([]string, error) {
	out, err := queryColumn[string](ctx, db.reader, selectFedWork)
	if err != nil {
		return nil, fmt.Errorf("destinations with work: %w", err)
	}
	return out, nil
}
