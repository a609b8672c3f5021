package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// InboundTxn returns the answer given to a federation transaction already
// processed (origin, txnID), so a retry is answered the same.
func (db *DB) InboundTxn(ctx context.Context, origin, txnID string) ([]byte, bool, error) {
	var resp string
	err := db.reader.QueryRowContext(ctx, `SELECT response FROM federation_inbound_txns WHERE origin = $1 AND txn_id = $2`, origin, txnID).Scan(&resp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("inbound transaction: %w", err)
	}
	return []byte(resp), true, nil
}

// PutInboundTxn records the answer to a processed federation transaction,
// and forgets the origin's transactions older than a day.
func (db *DB) PutInboundTxn(ctx context.Context, origin, txnID string, response []byte, nowTS int64) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO federation_inbound_txns (origin, txn_id, response, received_ts) VALUES ($1, $2, $3, $4)
ON CONFLICT (origin, txn_id) DO NOTHING`, origin, txnID, string(response), nowTS); err != nil {
			return fmt.Errorf("record inbound transaction: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM federation_inbound_txns WHERE origin = $1 AND received_ts < $2`, origin, nowTS-24*3600*1000); err != nil {
			return fmt.Errorf("forget old inbound transactions: %w", err)
		}
		return nil
	})
}

// InviteRoomState returns the stripped state stored with an invite from
// another server (a JSON list), if any.
func (db *DB) InviteRoomState(ctx context.Context, eventID string) ([]byte, bool, error) {
	var state string
	err := db.reader.QueryRowContext(ctx, `SELECT state FROM invite_room_state WHERE event_id = $1`, eventID).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("invite state of %s: %w", eventID, err)
	}
	return []byte(state), true, nil
}

// OldestTimelineEvent returns the event of a room's timeline with the
// lowest stream position ("" when it has none): where backfill starts.
func (db *DB) OldestTimelineEvent(ctx context.Context, roomID string) (string, error) {
	var evID string
	err := db.reader.QueryRowContext(ctx, `SELECT event_id FROM events WHERE room_id = $1 AND rejected = 0 ORDER BY stream_pos LIMIT 1`, roomID).Scan(&evID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("oldest event of %s: %w", roomID, err)
	}
	return evID, nil
}
