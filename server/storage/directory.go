package storage

import (
	"context"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/id"
)

// This file holds the queries of the room directory, the user directory and
// the space hierarchy: published rooms, the state that summarises a room,
// and the users a searcher may find.

// PublishedRooms lists the rooms listed in the public room directory.
func (db *DB) PublishedRooms(ctx context.Context) ([]id.RoomID, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT room_id FROM rooms WHERE published = 1 ORDER BY room_id`)
	if err != nil {
		return nil, fmt.Errorf("published rooms: %w", err)
	}
	defer rows.Close()
	var out []id.RoomID
	for rows.Next() {
		var r id.RoomID
		if err := rows.Scan(&r); err != nil {
			return nil, fmt.Errorf("published rooms: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// CurrentStateOfTypes returns the events holding a room's current state of
// the given types with an empty state key, by type. It reads only those rows,
// so a large room's membership is never loaded to summarise it.
func (db *DB) CurrentStateOfTypes(ctx context.Context, roomID id.RoomID, types []string) (map[string]id.EventID, error) {
	if len(types) == 0 {
		return map[string]id.EventID{}, nil
	}
	args := []any{roomID}
	marks := make([]string, len(types))
	for i, t := range types {
		args = append(args, t)
		marks[i] = fmt.Sprintf("$%d", i+2)
	}
	rows, err := db.reader.QueryContext(ctx, `SELECT type, event_id FROM current_state
WHERE room_id = $1 AND state_key = '' AND type IN (`+strings.Join(marks, ", ")+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("summary state of %s: %w", roomID, err)
	}
	defer rows.Close()
	out := make(map[string]id.EventID, len(types))
	for rows.Next() {
		var t string
		var ev id.EventID
		if err := rows.Scan(&t, &ev); err != nil {
			return nil, fmt.Errorf("summary state of %s: %w", roomID, err)
		}
		out[t] = ev
	}
	return out, rows.Err()
}

// CurrentStateByKey returns the events holding a room's current state of
// one type, by state key (a space's m.space.child events, say).
func (db *DB) CurrentStateByKey(ctx context.Context, roomID id.RoomID, evType string) (map[string]id.EventID, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT state_key, event_id FROM current_state WHERE room_id = $1 AND type = $2`, roomID, evType)
	if err != nil {
		return nil, fmt.Errorf("%s state of %s: %w", evType, roomID, err)
	}
	defer rows.Close()
	out := map[string]id.EventID{}
	for rows.Next() {
		var key string
		var ev id.EventID
		if err := rows.Scan(&key, &ev); err != nil {
			return nil, fmt.Errorf("%s state of %s: %w", evType, roomID, err)
		}
		out[key] = ev
	}
	return out, rows.Err()
}

// JoinedMemberCount counts a room's joined members.
func (db *DB) JoinedMemberCount(ctx context.Context, roomID id.RoomID) (int, error) {
	var n int
	err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM current_state WHERE room_id = $1 AND type = 'm.room.member' AND membership = 'join'`, roomID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("joined members of %s: %w", roomID, err)
	}
	return n, nil
}

// DirectoryUser is a user the user directory may show.
type DirectoryUser struct {
	UserID      id.UserID
	DisplayName string
	AvatarURL   string
}

// visibleMembersQuery lists the joined members of the rooms a searcher can
// see members of: the rooms they are joined to, and every room with a public
// join rule or world-readable history (the spec's minimum for the user
// directory). For local users it also brings their global profile and
// account state; for others, the profile their member event carries.
// Redaction keeps join_rule and history_visibility, so redacted events still
// count; a redacted member event has lost its name and avatar.
const visibleMembersQuery = `WITH visible_rooms AS (
	SELECT room_id FROM current_state WHERE type = 'm.room.member' AND state_key = $1 AND membership = 'join'
	UNION
	SELECT cs.room_id FROM current_state cs JOIN events e ON e.event_id = cs.event_id
	WHERE cs.type = 'm.room.join_rules' AND cs.state_key = '' AND json_extract(e.pdu, '$.content.join_rule') = 'public'
	UNION
	SELECT cs.room_id FROM current_state cs JOIN events e ON e.event_id = cs.event_id
	WHERE cs.type = 'm.room.history_visibility' AND cs.state_key = '' AND json_extract(e.pdu, '$.content.history_visibility') = 'world_readable'
)
SELECT m.state_key,
	CASE WHEN e.redacted_by IS NULL AND json_type(e.pdu, '$.content.displayname') = 'text' THEN json_extract(e.pdu, '$.content.displayname') ELSE '' END,
	CASE WHEN e.redacted_by IS NULL AND json_type(e.pdu, '$.content.avatar_url') = 'text' THEN json_extract(e.pdu, '$.content.avatar_url') ELSE '' END,
	u.user_id IS NOT NULL, COALESCE(u.deactivated, 0), COALESCE(u.user_type, ''),
	COALESCE(json_extract(dn.value, '$'), ''), COALESCE(json_extract(av.value, '$'), '')
FROM current_state m
JOIN events e ON e.event_id = m.event_id
LEFT JOIN users u ON u.user_id = m.state_key
LEFT JOIN profile_fields dn ON dn.user_id = m.state_key AND dn.field = 'displayname'
LEFT JOIN profile_fields av ON av.user_id = m.state_key AND av.field = 'avatar_url'
WHERE m.type = 'm.room.member' AND m.membership = 'join' AND m.room_id IN (SELECT room_id FROM visible_rooms)
ORDER BY e.stream_pos DESC`

// allLocalUsersQuery lists every active local account with its profile.
const allLocalUsersQuery = `SELECT u.user_id, COALESCE(json_extract(dn.value, '$'), ''), COALESCE(json_extract(av.value, '$'), '')
FROM users u
LEFT JOIN profile_fields dn ON dn.user_id = u.user_id AND dn.field = 'displayname'
LEFT JOIN profile_fields av ON av.user_id = u.user_id AND av.field = 'avatar_url'
WHERE u.deactivated = 0 AND COALESCE(u.user_type, '') <> 'support'
ORDER BY u.user_id`

// DirectoryUsers returns the users a searcher may find in the user
// directory, each once: the members of the rooms visibleMembersQuery
// describes, and with allLocal every active local account. Local accounts
// show their global profile; remote users the profile of their latest member
// event. Deactivated accounts and support users are left out.
func (db *DB) DirectoryUsers(ctx context.Context, searcher id.UserID, allLocal bool) ([]DirectoryUser, error) {
	seen := map[id.UserID]bool{}
	var out []DirectoryUser
	rows, err := db.reader.QueryContext(ctx, visibleMembersQuery, searcher)
	if err != nil {
		return nil, fmt.Errorf("user directory: %w", err)
	}
	for rows.Next() {
		var u DirectoryUser
		var memberName, memberAvatar, userType, globalName, globalAvatar string
		var local, deactivated bool
		if err := rows.Scan(&u.UserID, &memberName, &memberAvatar, &local, &deactivated, &userType, &globalName, &globalAvatar); err != nil {
			rows.Close()
			return nil, fmt.Errorf("user directory: %w", err)
		}
		if seen[u.UserID] {
			continue
		}
		seen[u.UserID] = true
		switch {
		case local && (deactivated || userType == "support"):
			continue
		case local:
			u.DisplayName, u.AvatarURL = globalName, globalAvatar
		default:
			u.DisplayName, u.AvatarURL = memberName, memberAvatar
		}
		out = append(out, u)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("user directory: %w", err)
	}
	if !allLocal {
		return out, nil
	}
	rows, err = db.reader.QueryContext(ctx, allLocalUsersQuery)
	if err != nil {
		return nil, fmt.Errorf("user directory: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u DirectoryUser
		if err := rows.Scan(&u.UserID, &u.DisplayName, &u.AvatarURL); err != nil {
			return nil, fmt.Errorf("user directory: %w", err)
		}
		if !seen[u.UserID] {
			seen[u.UserID] = true
			out = append(out, u)
		}
	}
	return out, rows.Err()
}
