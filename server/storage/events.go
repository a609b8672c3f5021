package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// StateKey names one piece of room state (type and state key); it is
// mautrix's type so state maps pass between layers without copying.
type StateKey = pdu.StateKey

// Event is a stored room event.
type Event struct {
	StreamPos      int64
	EventID        id.EventID
	RoomID         id.RoomID
	Type           string
	StateKey       *string
	Sender         id.UserID
	Depth          int64
	OriginServerTS int64
	PDU            []byte
	Rejected       bool
	// Outlier says the event is not in the room's timeline (OutlierState
	// or OutlierSoftFailed; 0 for timeline events).
	Outlier     int
	StateBefore int64
	StateAfter  int64
	RedactedBy  id.EventID
}

// NewEvent is an event to persist with what it does to its room.
type NewEvent struct {
	Event
	// StateBeforeOf, when set, is the event just before this one, persisted
	// earlier (in this call or before it) but not yet when this one was
	// built: its state after is this event's StateBefore.
	StateBeforeOf *NewEvent
	PrevEvents    []id.EventID
	// NewRoom, for a create event, is the room row to insert.
	NewRoom *Room
	// StateDelta, for an accepted state event, is the state it changes;
	// persisting makes a new state group from StateBefore and the delta
	// (or a full snapshot when FullState is set, to cap delta chains).
	StateDelta map[StateKey]id.EventID
	FullState  map[StateKey]id.EventID
	// DeltaOn, when set, is the state group StateDelta applies to instead
	// of StateBefore, and DeltaOnEvent (when set) an event persisted earlier
	// whose state after it is that group. A long batch of state events (a
	// room created with a long initial_state) lays each delta on an earlier
	// group than the one just before it, so neither a full copy of the state
	// per event nor unbounded delta chains are needed (rooms/build.go).
	DeltaOn      int64
	DeltaOnEvent *NewEvent
	// BeforeState, when set, is the full state before the event, which no
	// stored group holds yet (it was just resolved from several forward
	// extremities): persisting stores it as a snapshot and uses that as
	// StateBefore.
	BeforeState map[StateKey]id.EventID
	// Membership is content.membership of an m.room.member event.
	Membership string
	// Txn records the client transaction that sent the event: the device,
	// the endpoint of the request path in the event's room (TxnEndpoint,
	// see TxnEvent) and the transaction ID.
	TxnUserID   id.UserID
	TxnDeviceID id.DeviceID
	TxnEndpoint string
	TxnID       string
	// CurrentState, when set, is the room's whole current state after the
	// event: state resolution chose it over several forward extremities (an
	// event from another server that forks the room, or joins forks).
	CurrentState map[StateKey]id.EventID
	// Backfilled marks an event older than the room's timeline, fetched
	// from another server: it is stored before the first stream position
	// (a negative one), so /messages reaches it going back and /sync never
	// sees it as new, and it changes neither current state nor extremities.
	Backfilled bool
	// InviteState, for an invite from another server to a room this server
	// is not in, is the stripped state (a JSON list) sent with it.
	InviteState []byte
	// SameStateBefore, when set, is an event persisted earlier whose state
	// before is this one's too (backfilled events store newest first).
	SameStateBefore *NewEvent
	// ReplacesOutOfRoom, for a join to a room this server knew only from
	// an invite or knock of another server, takes those events (stored
	// with no state but their own) out of the timeline: the join, stored on
	// the room's real state, starts it.
	ReplacesOutOfRoom bool
	// ResetExtremities makes the event the room's only forward extremity
	// (a join to a room this server had left: its old head is history).
	ResetExtremities bool
	// Forward marks an event of another server this server accepted for it
	// (send_join and the like): the federation queue sends it on to the
	// room's other servers.
	Forward bool
	// Redacts is the event an accepted redaction applies to.
	Redacts id.EventID
	// Relation is the event's m.relates_to, indexed with it (relations.go).
	Relation *NewRelation
	// PushActions are the notifications the event makes and PushSent the
	// read markers it sets, stored with it (their StreamPos is the event's).
	PushActions []PushAction
	PushSent    []PushSent
	// pushStored is set once they are (not for a hidden or backfilled
	// event): a commit adds them to the cached unread counts.
	pushStored bool
}

// Outlier kinds (Event.Outlier).
const (
	// OutlierState is an event of a room's state or auth chain, learned
	// from another server, that is not in this server's timeline.
	OutlierState = 1
	// OutlierSoftFailed is an event that passed the auth rules at its
	// place in the DAG but not against the room's current state: kept,
	// never shown, never built upon.
	OutlierSoftFailed = 2
)

// MaxChainLen is how many deltas may follow a full snapshot; state lookups
// read at most this many groups.
const MaxChainLen = 50

// EventBatch is events of one room to persist together, in order: all of
// them or none.
type EventBatch struct {
	Events []*NewEvent
	// Skip, when set, is asked just before the batch is stored; an error
	// from it fails the batch unstored (a batch built on one that failed).
	Skip func() error
	// Err is set by PersistBatches when the batch was not stored.
	Err error
}

// PersistBatches stores several batches, of one room or several, in one
// transaction and so with one commit (and one fsync): the group commit of
// concurrent senders. Each batch is stored in a savepoint, so one that
// fails (its Err is set) leaves the others stored. The error returned is
// the transaction's own, when nothing was stored.
func (db *DB) PersistBatches(ctx context.Context, batches []*EventBatch, nowTS int64) error {
	defer db.writeStmts.prepareWanted(ctx)
	// Events change no session or account, so cached token lookups stand;
	// the cached stream positions move with them (eventsStored).
	var gen uint64
	db.unread.commitStarting()
	err := db.commitTx(ctx, func(sqlTx *sql.Tx) error {
		// Read once the writer is held: a write committed before this one
		// moves the generation past it, at the latest when it is done.
		gen = db.positions.generation()
		tx := cachedTx{sqlTx, &db.writeStmts}
		// A lone batch (one sender) is the whole transaction: its failure
		// rolls the transaction back, and it needs no savepoint.
		savepoints := len(batches) > 1
		for _, b := range batches {
			b.Err = nil
			if b.Skip != nil {
				if b.Err = b.Skip(); b.Err != nil {
					continue
				}
			}
			if savepoints {
				if _, err := tx.ExecContext(ctx, `SAVEPOINT batch`); err != nil {
					return fmt.Errorf("savepoint: %w", err)
				}
			}
			for _, ev := range b.Events {
				if err := persistEvent(ctx, tx, ev, nowTS); err != nil {
					b.Err = fmt.Errorf("persist event %s: %w", ev.EventID, err)
					break
				}
			}
			if !savepoints {
				if b.Err != nil {
					return errBatchFailed
				}
				continue
			}
			if b.Err != nil {
				if _, err := tx.ExecContext(ctx, `ROLLBACK TO batch`); err != nil {
					return fmt.Errorf("roll back a failed batch: %w", err)
				}
			}
			if _, err := tx.ExecContext(ctx, `RELEASE batch`); err != nil {
				return fmt.Errorf("release savepoint: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		db.positions.invalidate()
		db.unread.commitFailed()
		if errors.Is(err, errBatchFailed) {
			// The batch's own error is in its Err; the others' (none) stand.
			return nil
		}
		return err
	}
	var last, lastMember int64
	for _, b := range batches {
		if b.Err != nil {
			continue
		}
		for _, ev := range b.Events {
			last = max(last, ev.StreamPos)
			if ev.Type == "m.room.member" {
				lastMember = max(lastMember, ev.StreamPos)
			}
		}
	}
	db.positions.eventsStored(gen, last, lastMember)
	db.unread.eventsCommitted(batches)
	return nil
}

// errBatchFailed rolls back a transaction of one batch whose Err says why.
var errBatchFailed = errors.New("the batch failed")

// persistEvent stores one event, setting its StreamPos and state groups.
func persistEvent(ctx context.Context, tx execer, ev *NewEvent, nowTS int64) error {
	ev.pushStored = false
	if ev.StateBeforeOf != nil {
		ev.StateBefore = ev.StateBeforeOf.StateAfter
	}
	if ev.NewRoom != nil {
		r := ev.NewRoom
		if _, err := tx.ExecContext(ctx, `INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES ($1, $2, $3, $4)`,
			r.RoomID, r.RoomVersion, r.Creator, r.CreatedTS); err != nil {
			return fmt.Errorf("insert room: %w", err)
		}
	}
	if ev.SameStateBefore != nil {
		ev.StateBefore = ev.SameStateBefore.StateBefore
	}
	if ev.BeforeState != nil {
		g, err := insertStateGroup(ctx, tx, ev.RoomID, 0, nil, ev.BeforeState)
		if err != nil {
			return err
		}
		ev.StateBefore = g
		if !ev.Backfilled {
			if err := replaceCurrentState(ctx, tx, ev.RoomID, ev.BeforeState); err != nil {
				return err
			}
		}
	}
	stateAfter := ev.StateBefore
	if !ev.Rejected && ev.Outlier == 0 && (ev.StateDelta != nil || ev.FullState != nil) {
		parent := ev.StateBefore
		if ev.DeltaOnEvent != nil {
			parent = ev.DeltaOnEvent.StateAfter
		} else if ev.DeltaOn > 0 {
			parent = ev.DeltaOn
		}
		g, err := insertStateGroup(ctx, tx, ev.RoomID, parent, ev.StateDelta, ev.FullState)
		if err != nil {
			return err
		}
		stateAfter = g
	}
	ev.StateAfter = stateAfter
	var before, after any
	if ev.StateBefore > 0 {
		before = ev.StateBefore
	}
	if stateAfter > 0 {
		after = stateAfter
	}
	var membership any
	if ev.Type == "m.room.member" && ev.Membership != "" {
		membership = ev.Membership
	}
	hidden := ev.Rejected || ev.Outlier != 0
	var res sql.Result
	var err error
	if ev.Backfilled {
		// An outlier of the same event gives way: it is history now.
		if _, err := tx.ExecContext(ctx, `DELETE FROM events WHERE event_id = $1 AND outlier = $2`, ev.EventID, OutlierState); err != nil {
			return fmt.Errorf("replace outlier: %w", err)
		}
		res, err = tx.ExecContext(ctx, `INSERT INTO events (stream_pos, event_id, room_id, type, state_key, membership, sender, depth, origin_server_ts, pdu, rejected, outlier, state_before, state_after)
VALUES (MIN(0, COALESCE((SELECT MIN(stream_pos) FROM events), 0)) - 1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			ev.EventID, ev.RoomID, ev.Type, ev.StateKey, membership, ev.Sender, ev.Depth, ev.OriginServerTS, string(ev.PDU), hidden, ev.Outlier, before, after)
	} else {
		var txnDevice, txnID any
		if ev.TxnID != "" {
			txnDevice, txnID = ev.TxnDeviceID, ev.TxnID
		}
		res, err = tx.ExecContext(ctx, `INSERT INTO events (event_id, room_id, type, state_key, membership, sender, depth, origin_server_ts, pdu, rejected, outlier, state_before, state_after, forward, txn_device, txn_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`, ev.EventID, ev.RoomID, ev.Type, ev.StateKey, membership, ev.Sender, ev.Depth, ev.OriginServerTS, string(ev.PDU), hidden, ev.Outlier, before, after, ev.Forward, txnDevice, txnID)
	}
	if err != nil {
		return fmt.Errorf("insert event: %w", err)
	}
	pos, err := res.LastInsertId()
	if err != nil {
		return err
	}
	ev.StreamPos = pos
	if hidden {
		return nil
	}
	if ev.Backfilled {
		// Old history: searchable and related, but not new.
		if ev.Relation != nil {
			if err := indexRelation(ctx, tx, ev, pos); err != nil {
				return err
			}
		}
		return nil
	}
	if err := updateRoomList(ctx, tx, ev, pos); err != nil {
		return err
	}
	if len(ev.PushActions) > 0 || len(ev.PushSent) > 0 {
		for i := range ev.PushActions {
			ev.PushActions[i].StreamPos = pos
		}
		for i := range ev.PushSent {
			ev.PushSent[i].StreamPos = pos
		}
		if err := insertPushActions(ctx, tx, ev.PushActions, ev.PushSent); err != nil {
			return err
		}
		ev.pushStored = true
	}
	if ev.Relation != nil {
		if err := indexRelation(ctx, tx, ev, pos); err != nil {
			return err
		}
	}
	if ev.InviteState != nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO invite_room_state (event_id, state) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING`,
			ev.EventID, string(ev.InviteState)); err != nil {
			return fmt.Errorf("store invite state: %w", err)
		}
	}
	if ev.ReplacesOutOfRoom {
		if _, err := tx.ExecContext(ctx, `UPDATE events SET rejected = 1, outlier = $2
WHERE room_id = $1 AND rejected = 0 AND event_id IN (SELECT event_id FROM invite_room_state)`, ev.RoomID, OutlierState); err != nil {
			return fmt.Errorf("retire out-of-room events: %w", err)
		}
	}
	if ev.ResetExtremities {
		if _, err := tx.ExecContext(ctx, `DELETE FROM forward_extremities WHERE room_id = $1`, ev.RoomID); err != nil {
			return fmt.Errorf("update extremities: %w", err)
		}
	}
	for _, prev := range ev.PrevEvents {
		if _, err := tx.ExecContext(ctx, `DELETE FROM forward_extremities WHERE room_id = $1 AND event_id = $2`, ev.RoomID, prev); err != nil {
			return fmt.Errorf("update extremities: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO forward_extremities (room_id, event_id) VALUES ($1, $2)`, ev.RoomID, ev.EventID); err != nil {
		return fmt.Errorf("update extremities: %w", err)
	}
	if ev.CurrentState != nil {
		if err := replaceCurrentState(ctx, tx, ev.RoomID, ev.CurrentState); err != nil {
			return err
		}
	} else if ev.StateKey != nil && (ev.StateDelta != nil || ev.FullState != nil) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO current_state (room_id, type, state_key, event_id, membership) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id, membership = excluded.membership`,
			ev.RoomID, ev.Type, *ev.StateKey, ev.EventID, membership); err != nil {
			return fmt.Errorf("update current state: %w", err)
		}
	}
	if ev.TxnID != "" {
		// A transaction older than the rooms service remembers (a day) may
		// still be here, not yet pruned: the new event takes its place.
		if _, err := tx.ExecContext(ctx, `INSERT INTO event_txns (user_id, device_id, room_id, endpoint, txn_id, event_id, created_ts) VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (user_id, device_id, room_id, endpoint, txn_id) DO UPDATE SET event_id = excluded.event_id, created_ts = excluded.created_ts`,
			ev.TxnUserID, ev.TxnDeviceID, ev.RoomID, ev.TxnEndpoint, ev.TxnID, ev.EventID, nowTS); err != nil {
			return fmt.Errorf("record transaction: %w", err)
		}
	}
	if ev.Redacts != "" {
		if _, err := tx.ExecContext(ctx, `UPDATE events SET redacted_by = $2 WHERE event_id = $1 AND room_id = $3 AND redacted_by IS NULL`,
			ev.Redacts, ev.EventID, ev.RoomID); err != nil {
			return fmt.Errorf("apply redaction: %w", err)
		}
		// A redaction strips m.relates_to: the relation is broken.
		if err := unindexRelation(ctx, tx, ev.RoomID, ev.Redacts); err != nil {
			return err
		}
	}
	return nil
}

// replaceCurrentState makes a room's current state exactly state (after
// forks were merged, the winners may not be the events stored last).
func replaceCurrentState(ctx context.Context, tx execer, roomID id.RoomID, state map[StateKey]id.EventID) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM current_state WHERE room_id = $1`, roomID); err != nil {
		return fmt.Errorf("replace current state: %w", err)
	}
	for k, evID := range state {
		if _, err := tx.ExecContext(ctx, `INSERT INTO current_state (room_id, type, state_key, event_id, membership)
VALUES ($1, $2, $3, $4, (SELECT membership FROM events WHERE event_id = $4))`, roomID, k.Type, k.StateKey, evID); err != nil {
			return fmt.Errorf("replace current state: %w", err)
		}
	}
	return nil
}

func insertStateGroup(ctx context.Context, tx execer, roomID id.RoomID, prev int64, delta, full map[StateKey]id.EventID) (int64, error) {
	entries := delta
	var prevGroup any
	chainLen := 0
	if full == nil && prev > 0 {
		if err := tx.QueryRowContext(ctx, `SELECT chain_len FROM state_groups WHERE group_id = $1`, prev).Scan(&chainLen); err != nil {
			return 0, fmt.Errorf("read state group %d: %w", prev, err)
		}
		chainLen++
		prevGroup = prev
	}
	if full != nil {
		entries = full
		chainLen = 0
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO state_groups (room_id, prev_group, chain_len) VALUES ($1, $2, $3)`, roomID, prevGroup, chainLen)
	if err != nil {
		return 0, fmt.Errorf("insert state group: %w", err)
	}
	g, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	for k, ev := range entries {
		var evID any
		if ev != "" {
			evID = ev
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO state_group_entries (group_id, type, state_key, event_id) VALUES ($1, $2, $3, $4)`, g, k.Type, k.StateKey, evID); err != nil {
			return 0, fmt.Errorf("insert state entry: %w", err)
		}
	}
	return g, nil
}

// ChainLen returns how many deltas a state group sits on.
func (db *DB) ChainLen(ctx context.Context, group int64) (int, error) {
	var n int
	err := db.reader.QueryRowContext(ctx, `SELECT chain_len FROM state_groups WHERE group_id = $1`, group).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("read state group %d: %w", group, err)
	}
	return n, nil
}

// StateGroup returns a group's own entries ("" event ID: removed) and the
// group it is a delta on (0 for a full snapshot).
func (db *DB) StateGroup(ctx context.Context, group int64) (map[StateKey]id.EventID, int64, error) {
	var prev sql.NullInt64
	if err := db.reader.QueryRowContext(ctx, `SELECT prev_group FROM state_groups WHERE group_id = $1`, group).Scan(&prev); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, 0, ErrNotFound
		}
		return nil, 0, fmt.Errorf("read state group %d: %w", group, err)
	}
	rows, err := db.reader.QueryContext(ctx, `SELECT type, state_key, event_id FROM state_group_entries WHERE group_id = $1`, group)
	if err != nil {
		return nil, 0, fmt.Errorf("read state group %d: %w", group, err)
	}
	defer rows.Close()
	out := map[StateKey]id.EventID{}
	for rows.Next() {
		var k StateKey
		var ev sql.NullString
		if err := rows.Scan(&k.Type, &k.StateKey, &ev); err != nil {
			return nil, 0, err
		}
		out[k] = id.EventID(ev.String)
	}
	return out, prev.Int64, rows.Err()
}

const eventColumns = `stream_pos, event_id, room_id, type, state_key, sender, depth, origin_server_ts, pdu, rejected AND outlier = 0, outlier,
COALESCE(state_before, 0), COALESCE(state_after, 0), COALESCE(redacted_by, '')`

func scanEvent(s scanner) (*Event, error) {
	var e Event
	var stateKey sql.NullString
	var pduText string
	if err := s.Scan(&e.StreamPos, &e.EventID, &e.RoomID, &e.Type, &stateKey, &e.Sender, &e.Depth, &e.OriginServerTS, &pduText, &e.Rejected, &e.Outlier,
		&e.StateBefore, &e.StateAfter, &e.RedactedBy); err != nil {
		return nil, err
	}
	if stateKey.Valid {
		e.StateKey = &stateKey.String
	}
	e.PDU = []byte(pduText)
	return &e, nil
}

// GetEvent returns one event, or ErrNotFound.
func (db *DB) GetEvent(ctx context.Context, eventID id.EventID) (*Event, error) {
	e, err := scanEvent(db.reader.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM events WHERE event_id = $1`, eventID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get event %s: %w", eventID, err)
	}
	return e, nil
}

// GetEvents returns the events among ids that exist, keyed by ID.
func (db *DB) GetEvents(ctx context.Context, ids []id.EventID) (map[id.EventID]*Event, error) {
	out := make(map[id.EventID]*Event, len(ids))
	const batch = 500
	for start := 0; start < len(ids); start += batch {
		chunk := ids[start:min(start+batch, len(ids))]
		args := make([]any, len(chunk))
		marks := make([]string, len(chunk))
		for i, ev := range chunk {
			args[i] = ev
			marks[i] = fmt.Sprintf("$%d", i+1)
		}
		rows, err := db.reader.QueryContext(ctx, `SELECT `+eventColumns+` FROM events WHERE event_id IN (`+strings.Join(marks, ",")+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("get events: %w", err)
		}
		for rows.Next() {
			e, err := scanEvent(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("get events: %w", err)
			}
			out[e.EventID] = e
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ForwardExtremities lists a room's forward extremities.
func (db *DB) ForwardExtremities(ctx context.Context, roomID id.RoomID) ([]id.EventID, error) {
	out, err := queryColumn[id.EventID](ctx, db.reader, `SELECT event_id FROM forward_extremities WHERE room_id = $1 ORDER BY event_id`, roomID)
	if err != nil {
		return nil, fmt.Errorf("forward extremities: %w", err)
	}
	return out, nil
}

// CurrentState returns a room's whole current state.
func (db *DB) CurrentState(ctx context.Context, roomID id.RoomID) (map[StateKey]id.EventID, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT type, state_key, event_id FROM current_state WHERE room_id = $1`, roomID)
	if err != nil {
		return nil, fmt.Errorf("current state of %s: %w", roomID, err)
	}
	defer rows.Close()
	out := map[StateKey]id.EventID{}
	for rows.Next() {
		var k StateKey
		var ev id.EventID
		if err := rows.Scan(&k.Type, &k.StateKey, &ev); err != nil {
			return nil, err
		}
		out[k] = ev
	}
	return out, rows.Err()
}

// CurrentStateEvent returns the event ID holding one piece of current state,
// or "".
func (db *DB) CurrentStateEvent(ctx context.Context, roomID id.RoomID, evType, stateKey string) (id.EventID, error) {
	var ev id.EventID
	err := db.reader.QueryRowContext(ctx, `SELECT event_id FROM current_state WHERE room_id = $1 AND type = $2 AND state_key = $3`, roomID, evType, stateKey).Scan(&ev)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("current state: %w", err)
	}
	return ev, nil
}

// MaxStreamPos is the newest event stream position (0 when there are none).
func (db *DB) MaxStreamPos(ctx context.Context) (int64, error) {
	var n sql.NullInt64
	if err := db.reader.QueryRowContext(ctx, `SELECT MAX(stream_pos) FROM events`).Scan(&n); err != nil {
		return 0, fmt.Errorf("max stream position: %w", err)
	}
	return n.Int64, nil
}
