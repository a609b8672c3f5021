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
	// A joined room counts when it has a notification after the user's read
	// position in any of its threads.
	rows, err := db.reader.QueryContext(ctx, `SELECT room_id FROM current_state
WHERE type = 'm.room.member' AND state_key = $1 AND membership = 'join'`, userID)
	if err != nil {
		return 0, fmt.Errorf("badge of %s: %w", userID, err)
	}
	var joined []id.RoomID
	for rows.Next() {
		var room id.RoomID
		if err := rows.Scan(&room); err != nil {
			rows.Close()
			return 0, fmt.Errorf("badge of %s: %w", userID, err)
		}
		joined = append(joined, room)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("badge of %s: %w", userID, err)
	}
	for _, room := range joined {
		unread, err := db.hasUnreadNotification(ctx, room, userID)
		if err != nil {
			return 0, fmt.Errorf("badge of %s: %w", userID, err)
		}
		if unread {
			badge++
		}
	}
	return badge, nil
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

// hasUnreadNotification tells whether a user has a notification that
// notifies in a room after their read position there, in any thread.
func (db *DB) hasUnreadNotification(ctx context.Context, roomID id.RoomID, userID id.UserID) (bool, error) {
	threads, err := db.notifiedThreads(ctx, roomID)
	if err != nil {
		return false, err
	}
	rp, err := db.UserReadPositions(ctx, roomID, userID)
	if err != nil {
		return false, err
	}
	for _, thread := range append([]string{""}, threads...) {
		var unread bool
		if err := db.reader.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM push_actions INDEXED BY push_actions_room
WHERE room_id = $2 AND thread_id = $3 AND stream_pos > $4 AND user_id = $1 AND notify = 1)`, userID, roomID, thread, rp.Of(thread)).Scan(&unread); err != nil {
			return false, err
		}
		if unread {
			return true, nil
		}
	}
	return false, nil
}
