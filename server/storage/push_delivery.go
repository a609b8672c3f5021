package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// Push delivery: the pushers to deliver to, how far each has got, the
// notifications waiting for it, and the badge count sent along.

// HTTPPushers lists every pusher of kind http, of every user.
func (db *DB) HTTPPushers(ctx context.Context) ([]Pusher, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT user_id, app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data, device_id, created_ts
FROM pushers WHERE kind = 'http' ORDER BY user_id, created_ts, app_id, pushkey`)
	if err != nil {
		return nil, fmt.Errorf("http pushers: %w", err)
	}
	defer rows.Close()
	var out []Pusher
	for rows.Next() {
		var p Pusher
		var data string
		if err := rows.Scan(&p.UserID, &p.AppID, &p.PushKey, &p.Kind, &p.AppDisplayName, &p.DeviceDisplayName, &p.ProfileTag, &p.Lang, &data, &p.DeviceID, &p.CreatedTS); err != nil {
			return nil, fmt.Errorf("http pushers: %w", err)
		}
		p.Data = []byte(data)
		out = append(out, p)
	}
	return out, rows.Err()
}

// StartPusherPosition gives a pusher a delivery position at the newest
// event, unless it has one: a new pusher delivers notifications of events
// sent from now on, and a replaced one carries on where it was.
func (db *DB) StartPusherPosition(ctx context.Context, userID id.UserID, appID, pushKey string) error {
	_, err := db.exec(ctx, `INSERT INTO pusher_positions (user_id, app_id, pushkey, stream_pos)
SELECT user_id, app_id, pushkey, (SELECT COALESCE(MAX(stream_pos), 0) FROM events) FROM pushers
WHERE user_id = $1 AND app_id = $2 AND pushkey = $3
ON CONFLICT (user_id, app_id, pushkey) DO NOTHING`, userID, appID, pushKey)
	if err != nil {
		return fmt.Errorf("start delivery position of pusher %s of %s: %w", appID, userID, err)
	}
	return nil
}

// PusherPosition reads a pusher's delivery position; ok is false when it
// has none yet.
func (db *DB) PusherPosition(ctx context.Context, userID id.UserID, appID, pushKey string) (pos int64, ok bool, err error) {
	err = db.reader.QueryRowContext(ctx, `SELECT stream_pos FROM pusher_positions WHERE user_id = $1 AND app_id = $2 AND pushkey = $3`,
		userID, appID, pushKey).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("delivery position of pusher %s of %s: %w", appID, userID, err)
	}
	return pos, true, nil
}

// SetPusherPosition moves a pusher's delivery position forward (never
// back). A pusher removed meanwhile stays removed.
func (db *DB) SetPusherPosition(ctx context.Context, userID id.UserID, appID, pushKey string, pos int64) error {
	_, err := db.exec(ctx, `UPDATE pusher_positions SET stream_pos = $4
WHERE user_id = $1 AND app_id = $2 AND pushkey = $3 AND stream_pos < $4`, userID, appID, pushKey, pos)
	if err != nil {
		return fmt.Errorf("save delivery position of pusher %s of %s: %w", appID, userID, err)
	}
	return nil
}

// PendingPushes lists up to limit of a user's notifications (rows that
// notify) after stream position after, oldest first: what a pusher still
// has to deliver.
func (db *DB) PendingPushes(ctx context.Context, userID id.UserID, after int64, limit int) ([]PushAction, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT user_id, room_id, stream_pos, event_id, thread_id, notify, highlight, actions, ts FROM push_actions
WHERE user_id = $1 AND stream_pos > $2 AND notify = 1 ORDER BY stream_pos LIMIT $3`, userID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("pending pushes of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []PushAction
	for rows.Next() {
		var a PushAction
		var actions string
		if err := rows.Scan(&a.UserID, &a.RoomID, &a.StreamPos, &a.EventID, &a.ThreadID, &a.Notify, &a.Highlight, &actions, &a.TS); err != nil {
			return nil, fmt.Errorf("pending pushes of %s: %w", userID, err)
		}
		a.Actions = []byte(actions)
		out = append(out, a)
	}
	return out, rows.Err()
}

// PushBadge is the badge count a user's devices show: the rooms they are
// joined to with unread notifications, plus the rooms they are invited to
// (Synapse's default, push.group_unread_count_by_room).
func (db *DB) PushBadge(ctx context.Context, userID id.UserID) (int, error) {
	var badge int
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM current_state
WHERE type = 'm.room.member' AND state_key = $1 AND membership = 'invite'`, userID).Scan(&badge); err != nil {
		return 0, fmt.Errorf("badge of %s: %w", userID, err)
	}
	// Joined rooms with a notification in the main timeline after the
	// user's read position there (the furthest of their unthreaded and
	// main-timeline receipts and their own last event), found in one
	// statement: per room, the index by room from that position on.
	rows, err := db.reader.QueryContext(ctx, `SELECT c.room_id FROM current_state c
WHERE c.type = 'm.room.member' AND c.state_key = $1 AND c.membership = 'join'
AND EXISTS (SELECT 1 FROM push_actions p INDEXED BY push_actions_room
	WHERE p.room_id = c.room_id AND p.thread_id = '' AND p.user_id = $1 AND p.notify = 1
	AND p.stream_pos > MAX(
		COALESCE((SELECT MAX(e.stream_pos) FROM receipts r JOIN events e ON e.event_id = r.event_id
			WHERE r.room_id = c.room_id AND r.user_id = $1 AND r.receipt_type IN ('m.read', 'm.read.private') AND r.thread_id IN ('', 'main')), 0),
		COALESCE((SELECT s.stream_pos FROM push_sent s WHERE s.user_id = $1 AND s.room_id = c.room_id AND s.thread_id = ''), 0)))`, userID)
	if err != nil {
		return 0, fmt.Errorf("badge of %s: %w", userID, err)
	}
	unread := map[id.RoomID]bool{}
	for rows.Next() {
		var room id.RoomID
		if err := rows.Scan(&room); err != nil {
			rows.Close()
			return 0, fmt.Errorf("badge of %s: %w", userID, err)
		}
		unread[room] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("badge of %s: %w", userID, err)
	}
	// Threads, by their own index: the newest notification per joined room
	// and thread, against the read position there.
	rows, err = db.reader.QueryContext(ctx, `SELECT p.room_id, p.thread_id, MAX(p.stream_pos) FROM push_actions p INDEXED BY push_actions_user_thread
JOIN current_state c ON c.room_id = p.room_id AND c.type = 'm.room.member' AND c.state_key = p.user_id AND c.membership = 'join'
WHERE p.user_id = $1 AND p.thread_id > '' AND p.notify = 1 GROUP BY p.room_id, p.thread_id`, userID)
	if err != nil {
		return 0, fmt.Errorf("badge of %s: %w", userID, err)
	}
	newest := map[id.RoomID]map[string]int64{}
	for rows.Next() {
		var room id.RoomID
		var thread string
		var pos int64
		if err := rows.Scan(&room, &thread, &pos); err != nil {
			rows.Close()
			return 0, fmt.Errorf("badge of %s: %w", userID, err)
		}
		if newest[room] == nil {
			newest[room] = map[string]int64{}
		}
		newest[room][thread] = pos
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("badge of %s: %w", userID, err)
	}
	for room, threads := range newest {
		if unread[room] {
			continue
		}
		rp, err := db.UserReadPositions(ctx, room, userID)
		if err != nil {
			return 0, err
		}
		for thread, pos := range threads {
			if pos > rp.Of(thread) {
				unread[room] = true
				break
			}
		}
	}
	return badge + len(unread), nil
}

// DeletePushersOfRemovedDevices removes a user's pushers whose device no
// longer exists (signed out or deleted), returning how many went. Pushers
// without a device are kept.
func (db *DB) DeletePushersOfRemovedDevices(ctx context.Context, userID id.UserID) (int64, error) {
	res, err := db.exec(ctx, `DELETE FROM pushers WHERE user_id = $1 AND device_id <> ''
AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.user_id = pushers.user_id AND d.device_id = pushers.device_id)`, userID)
	if err != nil {
		return 0, fmt.Errorf("delete pushers of removed devices of %s: %w", userID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete pushers of removed devices of %s: %w", userID, err)
	}
	return n, nil
}
