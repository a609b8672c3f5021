package storage

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"strings"
	"sync"

	"maunium.net/go/mautrix/id"
)

// PushRuleRow is one of a user's own push rules.
type PushRuleRow struct {
	Kind       string
	RuleID     string
	Conditions []byte // JSON array (override and underride rules), else nil
	Pattern    *string
	Actions    []byte // JSON array
	Enabled    bool
}

// PushRuleDefault is a user's change to a server-default rule; nil fields
// keep the default.
type PushRuleDefault struct {
	Kind    string
	RuleID  string
	Enabled *bool
	Actions []byte
}

// UserPushRules returns a user's own rules, by kind in priority order, and
// their changes to the server-default rules.
func (db *DB) UserPushRules(ctx context.Context, userID id.UserID) ([]PushRuleRow, []PushRuleDefault, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT kind, rule_id, conditions, pattern, actions, enabled FROM push_rules
WHERE user_id = $1 ORDER BY kind, position`, userID)
	if err != nil {
		return nil, nil, fmt.Errorf("push rules of %s: %w", userID, err)
	}
	var own []PushRuleRow
	for rows.Next() {
		var r PushRuleRow
		var conds, pattern sql.NullString
		var actions string
		if err := rows.Scan(&r.Kind, &r.RuleID, &conds, &pattern, &actions, &r.Enabled); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("push rules of %s: %w", userID, err)
		}
		if conds.Valid {
			r.Conditions = []byte(conds.String)
		}
		if pattern.Valid {
			r.Pattern = &pattern.String
		}
		r.Actions = []byte(actions)
		own = append(own, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("push rules of %s: %w", userID, err)
	}
	rows, err = db.reader.QueryContext(ctx, `SELECT kind, rule_id, enabled, actions FROM push_rule_defaults WHERE user_id = $1`, userID)
	if err != nil {
		return nil, nil, fmt.Errorf("push rule settings of %s: %w", userID, err)
	}
	defer rows.Close()
	var defaults []PushRuleDefault
	for rows.Next() {
		var d PushRuleDefault
		var enabled sql.NullBool
		var actions sql.NullString
		if err := rows.Scan(&d.Kind, &d.RuleID, &enabled, &actions); err != nil {
			return nil, nil, fmt.Errorf("push rule settings of %s: %w", userID, err)
		}
		if enabled.Valid {
			d.Enabled = &enabled.Bool
		}
		if actions.Valid {
			d.Actions = []byte(actions.String)
		}
		defaults = append(defaults, d)
	}
	return own, defaults, rows.Err()
}

// SetUserPushRules replaces a user's own rules of one kind with rules, in
// priority order (most important first).
func (db *DB) SetUserPushRules(ctx context.Context, userID id.UserID, kind string, rules []PushRuleRow) error {
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM push_rules WHERE user_id = $1 AND kind = $2`, userID, kind); err != nil {
			return err
		}
		for i, r := range rules {
			var conds any
			if r.Conditions != nil {
				conds = string(r.Conditions)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO push_rules (user_id, kind, rule_id, position, conditions, pattern, actions, enabled)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, userID, kind, r.RuleID, i, conds, r.Pattern, string(r.Actions), r.Enabled); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save %s push rules of %s: %w", kind, userID, err)
	}
	return nil
}

// SetPushRuleDefault records a user's change to a server-default rule:
// enabled and actions when not nil, leaving the other as it was.
func (db *DB) SetPushRuleDefault(ctx context.Context, userID id.UserID, kind, ruleID string, enabled *bool, actions []byte) error {
	var act any
	if actions != nil {
		act = string(actions)
	}
	_, err := db.exec(ctx, `INSERT INTO push_rule_defaults (user_id, kind, rule_id, enabled, actions) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (user_id, kind, rule_id) DO UPDATE SET enabled = COALESCE(excluded.enabled, push_rule_defaults.enabled),
actions = COALESCE(excluded.actions, push_rule_defaults.actions)`, userID, kind, ruleID, enabled, act)
	if err != nil {
		return fmt.Errorf("change default push rule %s of %s: %w", ruleID, userID, err)
	}
	return nil
}

// Pusher is a user's pusher: where and how the server would push
// notifications for one app on one device.
type Pusher struct {
	UserID            id.UserID
	AppID             string
	PushKey           string
	Kind              string
	AppDisplayName    string
	DeviceDisplayName string
	ProfileTag        string
	Lang              string
	Data              []byte // JSON object
	DeviceID          id.DeviceID
	CreatedTS         int64
}

// SetPusher creates or replaces the user's pusher for (app ID, pushkey).
// Unless keepOthers is set, the same app ID and pushkey is taken away from
// every other user (the spec's append=false).
func (db *DB) SetPusher(ctx context.Context, p Pusher, keepOthers bool) error {
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		if !keepOthers {
			if _, err := tx.ExecContext(ctx, `DELETE FROM pushers WHERE app_id = $1 AND pushkey = $2 AND user_id <> $3`, p.AppID, p.PushKey, p.UserID); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO pushers (user_id, app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data, device_id, created_ts)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET kind = excluded.kind, app_display_name = excluded.app_display_name,
device_display_name = excluded.device_display_name, profile_tag = excluded.profile_tag, lang = excluded.lang,
data = excluded.data, device_id = excluded.device_id`,
			p.UserID, p.AppID, p.PushKey, p.Kind, p.AppDisplayName, p.DeviceDisplayName, p.ProfileTag, p.Lang, string(p.Data), p.DeviceID, p.CreatedTS)
		return err
	})
	if err != nil {
		return fmt.Errorf("set pusher of %s: %w", p.UserID, err)
	}
	return nil
}

// DeletePusher removes a user's pusher; removing one that does not exist
// is not an error.
func (db *DB) DeletePusher(ctx context.Context, userID id.UserID, appID, pushKey string) error {
	if _, err := db.exec(ctx, `DELETE FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3`, userID, appID, pushKey); err != nil {
		return fmt.Errorf("delete pusher of %s: %w", userID, err)
	}
	return nil
}

// Pushers lists a user's pushers, oldest first.
func (db *DB) Pushers(ctx context.Context, userID id.UserID) ([]Pusher, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT user_id, app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data, device_id, created_ts
FROM pushers WHERE user_id = $1 ORDER BY created_ts, app_id, pushkey`, userID)
	if err != nil {
		return nil, fmt.Errorf("pushers of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []Pusher
	for rows.Next() {
		var p Pusher
		var data string
		if err := rows.Scan(&p.UserID, &p.AppID, &p.PushKey, &p.Kind, &p.AppDisplayName, &p.DeviceDisplayName, &p.ProfileTag, &p.Lang, &data, &p.DeviceID, &p.CreatedTS); err != nil {
			return nil, fmt.Errorf("pushers of %s: %w", userID, err)
		}
		p.Data = []byte(data)
		out = append(out, p)
	}
	return out, rows.Err()
}

// PushAction is a notification push rule evaluation made for a user: an
// event whose matching rule notifies or highlights.
type PushAction struct {
	UserID    id.UserID
	RoomID    id.RoomID
	StreamPos int64
	EventID   id.EventID
	ThreadID  string // "" for the main timeline
	Notify    bool
	Highlight bool
	Actions   []byte // JSON array
	TS        int64
}

// PushSent records that a user sent an event in a room and thread.
type PushSent struct {
	UserID    id.UserID
	RoomID    id.RoomID
	ThreadID  string
	StreamPos int64
}

// insertPushActions stores the notifications an event made and the read
// markers it set, in the event's own transaction. An event's notifications
// share everything but the user and the outcome, so they go in by
// statements of up to pushRowsPerInsert rows: a message in a room of ten
// made ten statements, a tenth of its send's CPU.
func insertPushActions(ctx context.Context, tx execer, actions []PushAction, sent []PushSent) error {
	for len(actions) > 0 {
		n := sameEventRows(actions)
		a := actions[0]
		args := make([]any, 0, pushSharedParams+pushRowParams*n)
		args = append(args, a.RoomID, a.StreamPos, a.EventID, a.ThreadID, a.TS)
		for _, r := range actions[:n] {
			args = append(args, r.UserID, r.Notify, r.Highlight, string(r.Actions))
		}
		if _, err := tx.ExecContext(ctx, pushInsertQueries[n], args...); err != nil {
			return fmt.Errorf("store push actions: %w", err)
		}
		actions = actions[n:]
	}
	for _, s := range sent {
		if _, err := tx.ExecContext(ctx, `INSERT INTO push_sent (user_id, room_id, thread_id, stream_pos) VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id, room_id, thread_id) DO UPDATE SET stream_pos = excluded.stream_pos WHERE excluded.stream_pos > push_sent.stream_pos`,
			s.UserID, s.RoomID, s.ThreadID, s.StreamPos); err != nil {
			return fmt.Errorf("store push actions: %w", err)
		}
	}
	return nil
}

const (
	// pushRowsPerInsert is the most notifications one statement stores.
	pushRowsPerInsert = 8
	// The parameters every row of a statement shares (room, stream
	// position, event, thread, time) and each row's own (user, notify,
	// highlight, actions).
	pushSharedParams = 5
	pushRowParams    = 4
)

// pushInsertQueries[n] stores n notifications of one event.
var pushInsertQueries = func() []string {
	qs := make([]string, pushRowsPerInsert+1)
	for n := 1; n <= pushRowsPerInsert; n++ {
		var b strings.Builder
		b.WriteString(`INSERT INTO push_actions (user_id, room_id, stream_pos, event_id, thread_id, notify, highlight, actions, ts) VALUES `)
		for i := range n {
			p := pushSharedParams + pushRowParams*i
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "($%d, $1, $2, $3, $4, $%d, $%d, $%d, $5)", p+1, p+2, p+3, p+4)
		}
		b.WriteString(` ON CONFLICT (user_id, stream_pos) DO NOTHING`)
		qs[n] = b.String()
		preparedAlways[qs[n]] = true
	}
	return qs
}()

// sameEventRows counts the leading actions (at most pushRowsPerInsert)
// that share the first one's event, room, thread and time.
func sameEventRows(actions []PushAction) int {
	a := actions[0]
	n := 1
	for n < len(actions) && n < pushRowsPerInsert {
		r := actions[n]
		if r.RoomID != a.RoomID || r.StreamPos != a.StreamPos || r.EventID != a.EventID || r.ThreadID != a.ThreadID || r.TS != a.TS {
			break
		}
		n++
	}
	return n
}

// ReadPositions is how far a user has read a room, as stream positions:
// Unthreaded from unthreaded receipts, which cover every thread, and per
// thread ("" for the main timeline) from receipts for that thread and the
// user's own events in it.
type ReadPositions struct {
	Unthreaded int64
	Threads    map[string]int64
}

// Of is the read position of one thread ("" for the main timeline).
func (rp ReadPositions) Of(thread string) int64 {
	return max(rp.Unthreaded, rp.Threads[thread])
}

// UserReadPositions reads a user's read positions in a room: the furthest
// of their m.read and m.read.private receipts (receipts for events this
// server does not have count for nothing), and their own events.
func (db *DB) UserReadPositions(ctx context.Context, roomID id.RoomID, userID id.UserID) (ReadPositions, error) {
	rp := ReadPositions{Threads: map[string]int64{}}
	// Receipts say "main" for the main timeline and "" for unthreaded;
	// push_sent says "" for the main timeline.
	rows, err := db.reader.QueryContext(ctx, `SELECT 'r' || r.thread_id, MAX(e.stream_pos) FROM receipts r JOIN events e ON e.event_id = r.event_id
WHERE r.room_id = $1 AND r.user_id = $2 AND r.receipt_type IN ('m.read', 'm.read.private') GROUP BY r.thread_id
UNION ALL SELECT 's' || thread_id, stream_pos FROM push_sent WHERE room_id = $1 AND user_id = $2`, roomID, userID)
	if err != nil {
		return rp, fmt.Errorf("read positions of %s in %s: %w", userID, roomID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var pos int64
		if err := rows.Scan(&key, &pos); err != nil {
			return rp, fmt.Errorf("read positions of %s in %s: %w", userID, roomID, err)
		}
		src, thread := key[0], key[1:]
		switch {
		case src == 'r' && thread == "":
			rp.Unthreaded = max(rp.Unthreaded, pos)
			continue
		case src == 'r' && thread == "main":
			thread = ""
		}
		rp.Threads[thread] = max(rp.Threads[thread], pos)
	}
	return rp, rows.Err()
}

// NotificationCounts are unread notifications: how many notify and how
// many highlight.
type NotificationCounts struct {
	Notify    int
	Highlight int
}

// UnreadPushActions counts a user's notifications in a room after their
// read positions: for the main timeline, and per thread (root event ID)
// for threads with any. The main timeline's are read from the room's
// notifications after the read position, everyone's (push_actions is kept
// by event, for cheap writes): the unread messages times the room's
// members. Threads have their own index by user.
func (db *DB) UnreadPushActions(ctx context.Context, roomID id.RoomID, userID id.UserID, rp ReadPositions) (NotificationCounts, map[string]NotificationCounts, error) {
	var main NotificationCounts
	err := db.reader.QueryRowContext(ctx, `SELECT COALESCE(SUM(notify), 0), COALESCE(SUM(highlight), 0) FROM push_actions INDEXED BY push_actions_room
WHERE room_id = $2 AND thread_id = '' AND stream_pos > $3 AND user_id = $1`, userID, roomID, rp.Of("")).Scan(&main.Notify, &main.Highlight)
	if err != nil {
		return main, nil, fmt.Errorf("unread counts of %s in %s: %w", userID, roomID, err)
	}
	// Threads are the few: read their rows after the unthreaded receipt
	// and apply each thread's own position here.
	rows, err := db.reader.QueryContext(ctx, `SELECT thread_id, stream_pos, notify, highlight FROM push_actions INDEXED BY push_actions_user_thread
WHERE user_id = $1 AND room_id = $2 AND thread_id > '' AND stream_pos > $3`, userID, roomID, rp.Unthreaded)
	if err != nil {
		return main, nil, fmt.Errorf("unread thread counts of %s in %s: %w", userID, roomID, err)
	}
	defer rows.Close()
	var threads map[string]NotificationCounts
	for rows.Next() {
		var thread string
		var pos int64
		var notify, highlight bool
		if err := rows.Scan(&thread, &pos, &notify, &highlight); err != nil {
			return main, nil, fmt.Errorf("unread thread counts of %s in %s: %w", userID, roomID, err)
		}
		if pos <= rp.Of(thread) {
			continue
		}
		if threads == nil {
			threads = map[string]NotificationCounts{}
		}
		c := threads[thread]
		if notify {
			c.Notify++
		}
		if highlight {
			c.Highlight++
		}
		threads[thread] = c
	}
	return main, threads, rows.Err()
}

// Notifications lists a user's notifications, newest first, with stream
// positions below before (all when before is 0): up to limit, and whether
// more follow.
func (db *DB) Notifications(ctx context.Context, userID id.UserID, before int64, limit int, onlyHighlight bool) ([]PushAction, bool, error) {
	q := `SELECT user_id, room_id, stream_pos, event_id, thread_id, notify, highlight, actions, ts FROM push_actions WHERE user_id = $1`
	args := []any{userID}
	if before > 0 {
		args = append(args, before)
		q += fmt.Sprintf(` AND stream_pos < $%d`, len(args))
	}
	if onlyHighlight {
		q += ` AND highlight = 1`
	}
	args = append(args, limit+1)
	q += fmt.Sprintf(` ORDER BY stream_pos DESC LIMIT $%d`, len(args))
	rows, err := db.reader.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, false, fmt.Errorf("notifications of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []PushAction
	for rows.Next() {
		var a PushAction
		var actions string
		if err := rows.Scan(&a.UserID, &a.RoomID, &a.StreamPos, &a.EventID, &a.ThreadID, &a.Notify, &a.Highlight, &actions, &a.TS); err != nil {
			return nil, false, fmt.Errorf("notifications of %s: %w", userID, err)
		}
		a.Actions = []byte(actions)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// ReceiptRoomsSince lists the rooms where a user's own receipts changed at
// receipt stream positions in (from, to]: their unread counts may have.
func (db *DB) ReceiptRoomsSince(ctx context.Context, userID id.UserID, from, to int64) ([]id.RoomID, error) {
	if from >= to {
		return nil, nil
	}
	rows, err := db.reader.QueryContext(ctx, `SELECT DISTINCT room_id FROM receipts WHERE user_id = $1 AND stream_id > $2 AND stream_id <= $3`, userID, from, to)
	if err != nil {
		return nil, fmt.Errorf("receipt rooms of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []id.RoomID
	for rows.Next() {
		var r id.RoomID
		if err := rows.Scan(&r); err != nil {
			return nil, fmt.Errorf("receipt rooms of %s: %w", userID, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// IgnoredUserLists returns the m.ignored_user_list account data of those
// of users who have one. Every message asks it for each of its room's
// members, so answers are cached (ignoreListCache).
func (db *DB) IgnoredUserLists(ctx context.Context, users []id.UserID) (map[id.UserID][]byte, error) {
	out := map[id.UserID][]byte{}
	gen := db.tokens.generation()
	missing := db.ignoreLists.get(users, gen, out)
	if len(missing) == 0 {
		return out, nil
	}
	read := map[id.UserID][]byte{}
	const batch = 500
	for start := 0; start < len(missing); start += batch {
		chunk := missing[start:min(start+batch, len(missing))]
		args := make([]any, len(chunk))
		marks := make([]string, len(chunk))
		for i, u := range chunk {
			args[i] = u
			marks[i] = fmt.Sprintf("$%d", i+1)
		}
		rows, err := db.reader.QueryContext(ctx, `SELECT user_id, content FROM account_data
WHERE room_id = '' AND type = 'm.ignored_user_list' AND user_id IN (`+strings.Join(marks, ",")+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("ignore lists: %w", err)
		}
		for rows.Next() {
			var u id.UserID
			var c string
			if err := rows.Scan(&u, &c); err != nil {
				rows.Close()
				return nil, fmt.Errorf("ignore lists: %w", err)
			}
			read[u] = []byte(c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("ignore lists: %w", err)
		}
	}
	db.ignoreLists.put(missing, read, gen)
	maps.Copy(out, read)
	return out, nil
}

// ignoreListCache keeps users' ignore lists (nil: none) as read under a
// generation of the token cache's counter, which every write but event
// persistence moves on (tokencache.go): an answer is served only while no
// such write has happened since it was read, so a changed list, through
// whatever write path, is never missed. Messages, the hot path, leave it
// valid.
type ignoreListCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[id.UserID][]byte
}

// maxCachedIgnoreLists bounds the cache.
const maxCachedIgnoreLists = 4096

// get copies the cached lists of users into out and returns the users it
// has no answer for under generation gen.
func (c *ignoreListCache) get(users []id.UserID, gen uint64, out map[id.UserID][]byte) []id.UserID {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return users
	}
	var missing []id.UserID
	for _, u := range users {
		list, ok := c.m[u]
		switch {
		case !ok:
			missing = append(missing, u)
		case list != nil:
			out[u] = list
		}
	}
	return missing
}

// put records the answers read under generation gen for users (lists
// holds those who have one).
func (c *ignoreListCache) put(users []id.UserID, lists map[id.UserID][]byte, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen < c.gen {
		return // read before a write the cache already knows of
	}
	if gen != c.gen || c.m == nil || len(c.m)+len(users) > maxCachedIgnoreLists {
		c.m, c.gen = map[id.UserID][]byte{}, gen
	}
	for _, u := range users {
		c.m[u] = lists[u] // nil for none
	}
}
