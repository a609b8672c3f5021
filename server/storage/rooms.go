package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// Room is a room this server knows.
type Room struct {
	RoomID      id.RoomID
	RoomVersion id.RoomVersion
	Creator     id.UserID
	CreatedTS   int64
	Published   bool
}

// GetRoom returns a room, or ErrNotFound.
func (db *DB) GetRoom(ctx context.Context, roomID id.RoomID) (*Room, error) {
	var r Room
	err := db.reader.QueryRowContext(ctx, `SELECT room_id, room_version, creator, created_ts, published FROM rooms WHERE room_id = $1`, roomID).
		Scan(&r.RoomID, &r.RoomVersion, &r.Creator, &r.CreatedTS, &r.Published)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get room %s: %w", roomID, err)
	}
	return &r, nil
}

// SetRoomPublished lists a room in (or removes it from) the public directory.
func (db *DB) SetRoomPublished(ctx context.Context, roomID id.RoomID, published bool) error {
	return updateOne(ctx, db.writes(), "publish room", `UPDATE rooms SET published = $2 WHERE room_id = $1`, roomID, published)
}

// RoomsWithMembership lists the rooms where a user's current membership is
// one of the given values (join, invite, leave, ban, knock).
func (db *DB) RoomsWithMembership(ctx context.Context, userID id.UserID, memberships ...string) ([]id.RoomID, error) {
	var out []id.RoomID
	for _, m := range memberships {
		rows, err := db.reader.QueryContext(ctx, `SELECT room_id FROM current_state WHERE type = 'm.room.member' AND state_key = $1 AND membership = $2 ORDER BY room_id`, userID, m)
		if err != nil {
			return nil, fmt.Errorf("rooms of %s: %w", userID, err)
		}
		for rows.Next() {
			var r id.RoomID
			if err := rows.Scan(&r); err != nil {
				rows.Close()
				return nil, fmt.Errorf("rooms of %s: %w", userID, err)
			}
			out = append(out, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Membership is a user's current membership of a room ("" if none) and the
// event that set it.
func (db *DB) Membership(ctx context.Context, roomID id.RoomID, userID id.UserID) (string, id.EventID, error) {
	var m sql.NullString
	var ev id.EventID
	err := db.reader.QueryRowContext(ctx, `SELECT membership, event_id FROM current_state WHERE room_id = $1 AND type = 'm.room.member' AND state_key = $2`, roomID, userID).Scan(&m, &ev)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("membership of %s in %s: %w", userID, roomID, err)
	}
	return m.String, ev, nil
}

// Members lists the users with the given current membership of a room.
func (db *DB) Members(ctx context.Context, roomID id.RoomID, membership string) ([]id.UserID, error) {
	out, err := queryColumn[id.UserID](ctx, db.reader, `SELECT state_key FROM current_state WHERE room_id = $1 AND type = 'm.room.member' AND membership = $2 ORDER BY state_key`, roomID, membership)
	if err != nil {
		return nil, fmt.Errorf("members of %s: %w", roomID, err)
	}
	return out, nil
}

// ForgetRoom hides a left room from a user.
func (db *DB) ForgetRoom(ctx context.Context, userID id.UserID, roomID id.RoomID) error {
	_, err := db.exec(ctx, `INSERT INTO forgotten_rooms (user_id, room_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, userID, roomID)
	if err != nil {
		return fmt.Errorf("forget room: %w", err)
	}
	return nil
}

// IsRoomForgotten tells whether a user forgot a room.
func (db *DB) IsRoomForgotten(ctx context.Context, userID id.UserID, roomID id.RoomID) (bool, error) {
	var n int
	err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM forgotten_rooms WHERE user_id = $1 AND room_id = $2`, userID, roomID).Scan(&n)
	return n > 0, err
}

// Alias is a room alias of this server.
type Alias struct {
	Alias   id.RoomAlias
	RoomID  id.RoomID
	Creator id.UserID
}

// CreateAlias maps an alias to a room; ErrAliasExists if taken.
func (db *DB) CreateAlias(ctx context.Context, a Alias, nowTS int64) error {
	_, err := db.exec(ctx, `INSERT INTO room_aliases (alias, room_id, creator, created_ts) VALUES ($1, $2, $3, $4)`, a.Alias, a.RoomID, a.Creator, nowTS)
	if err != nil && isUniqueViolation(err) {
		return ErrAliasExists
	}
	if err != nil {
		return fmt.Errorf("create alias: %w", err)
	}
	return nil
}

// ErrAliasExists means the alias is already taken.
var ErrAliasExists = errors.New("alias already exists")

// GetAlias resolves an alias, or ErrNotFound.
func (db *DB) GetAlias(ctx context.Context, alias id.RoomAlias) (*Alias, error) {
	a := Alias{Alias: alias}
	err := db.reader.QueryRowContext(ctx, `SELECT room_id, creator FROM room_aliases WHERE alias = $1`, alias).Scan(&a.RoomID, &a.Creator)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get alias: %w", err)
	}
	return &a, nil
}

// DeleteAlias removes an alias; ErrNotFound if unknown.
func (db *DB) DeleteAlias(ctx context.Context, alias id.RoomAlias) error {
	return updateOne(ctx, db.writes(), "delete alias", `DELETE FROM room_aliases WHERE alias = $1`, alias)
}

// RoomAliases lists a room's local aliases.
func (db *DB) RoomAliases(ctx context.Context, roomID id.RoomID) ([]id.RoomAlias, error) {
	out, err := queryColumn[id.RoomAlias](ctx, db.reader, `SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY alias`, roomID)
	if err != nil {
		return nil, fmt.Errorf("room aliases: %w", err)
	}
	return out, nil
}

// TxnEvent returns the event a device already sent with a transaction ID
// on the same request path, or "". The spec scopes transaction IDs to the
// device and the path: endpoint is the path after the room ID, "send/<event
// type>" or "redact/<event ID>".
func (db *DB) TxnEvent(ctx context.Context, userID id.UserID, deviceID id.DeviceID, roomID id.RoomID, endpoint, txnID string) (id.EventID, error) {
	var ev id.EventID
	err := db.reader.QueryRowContext(ctx, `SELECT event_id FROM event_txns WHERE user_id = $1 AND device_id = $2 AND room_id = $3 AND endpoint = $4 AND txn_id = $5`,
		userID, deviceID, roomID, endpoint, txnID).Scan(&ev)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look up transaction: %w", err)
	}
	return ev, nil
}

// Txn is a client transaction recorded with its event (see TxnEvent).
type Txn struct {
	UserID    id.UserID
	DeviceID  id.DeviceID
	RoomID    id.RoomID
	Endpoint  string
	TxnID     string
	CreatedTS int64
}

// TxnsSince calls fn with every client transaction recorded at or after
// sinceTS (ms).
func (db *DB) TxnsSince(ctx context.Context, sinceTS int64, fn func(Txn)) error {
	rows, err := db.reader.QueryContext(ctx, `SELECT user_id, device_id, room_id, endpoint, txn_id, created_ts FROM event_txns WHERE created_ts >= $1`, sinceTS)
	if err != nil {
		return fmt.Errorf("list transactions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t Txn
		if err := rows.Scan(&t.UserID, &t.DeviceID, &t.RoomID, &t.Endpoint, &t.TxnID, &t.CreatedTS); err != nil {
			return fmt.Errorf("list transactions: %w", err)
		}
		fn(t)
	}
	return rows.Err()
}

// pruneTxnsChunk is how many transactions one write transaction of
// PruneTxns forgets.
const pruneTxnsChunk = 1000

// PruneTxns forgets the client transactions recorded before beforeTS (ms),
// in at most chunks write transactions of pruneTxnsChunk, so that the first
// prune of a long history never holds the writer for long; done reports
// that none is left.
func (db *DB) PruneTxns(ctx context.Context, beforeTS int64, chunks int) (done bool, err error) {
	for range chunks {
		var n int64
		// Transactions change no session or account, move no stream and
		// touch no keys: nothing cached is invalidated (quiet-time work).
		err := db.commitTx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM event_txns WHERE (user_id, device_id, room_id, endpoint, txn_id) IN
(SELECT user_id, device_id, room_id, endpoint, txn_id FROM event_txns WHERE created_ts < $1 LIMIT $2)`, beforeTS, pruneTxnsChunk)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return false, fmt.Errorf("prune transactions: %w", err)
		}
		if n < pruneTxnsChunk {
			return true, nil
		}
	}
	return false, nil
}

// MoveAliases points every local alias of one room at another (room upgrades).
func (db *DB) MoveAliases(ctx context.Context, from, to id.RoomID) error {
	if _, err := db.exec(ctx, `UPDATE room_aliases SET room_id = $2 WHERE room_id = $1`, from, to); err != nil {
		return fmt.Errorf("move aliases: %w", err)
	}
	return nil
}

// mutualRoomsFrom is the rooms two users ($1 and $2) are both joined to.
const mutualRoomsFrom = ` FROM current_state x JOIN current_state y ON y.room_id = x.room_id
WHERE x.type = 'm.room.member' AND x.state_key = $1 AND x.membership = 'join'
AND y.type = 'm.room.member' AND y.state_key = $2 AND y.membership = 'join'`

// MutualRooms lists, in room ID order, the rooms both users are joined to
// whose IDs sort after the given one ("" for the first), at most limit.
func (db *DB) MutualRooms(ctx context.Context, a, b id.UserID, after id.RoomID, limit int) ([]id.RoomID, error) {
	out, err := queryColumn[id.RoomID](ctx, db.reader, `SELECT x.room_id`+mutualRoomsFrom+` AND x.room_id > $3 ORDER BY x.room_id LIMIT $4`, a, b, after, limit)
	if err != nil {
		return nil, fmt.Errorf("mutual rooms of %s and %s: %w", a, b, err)
	}
	return out, nil
}

// CountMutualRooms counts the rooms both users are joined to.
func (db *DB) CountMutualRooms(ctx context.Context, a, b id.UserID) (int, error) {
	var n int
	err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*)`+mutualRoomsFrom, a, b).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count mutual rooms of %s and %s: %w", a, b, err)
	}
	return n, nil
}
