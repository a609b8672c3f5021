package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"maunium.net/go/mautrix/id"
)

// This file holds the end-to-end encryption keys: device keys, one-time
// and fallback keys, cross-signing keys, their signatures and the
// device-list stream (migration 0007_e2ee_keys).

// Errors of a key upload that the e2ee rules turn into Matrix errors.
var (
	// ErrDeviceKeysChanged: the device already has different identity keys.
	ErrDeviceKeysChanged = errors.New("device already has different identity keys")
	// ErrDeviceGone: the uploading device was deleted meanwhile.
	ErrDeviceGone = errors.New("device no longer exists")
)

// OneTimeKeyConflictError says a one-time key ID was uploaded before with
// different content.
type OneTimeKeyConflictError struct{ KeyID string }

func (e *OneTimeKeyConflictError) Error() string {
	return "one-time key " + e.KeyID + " already exists with different content"
}

// UploadedKey is a one-time or fallback key of an upload.
type UploadedKey struct {
	Algorithm string
	KeyID     string
	JSON      json.RawMessage // canonical
}

// KeyUpload is one POST /keys/upload, validated.
type KeyUpload struct {
	UserID   id.UserID
	DeviceID id.DeviceID
	NowTS    int64
	// DeviceKeys are the device's identity keys (canonical JSON), or nil.
	DeviceKeys json.RawMessage
	// SameDeviceKeys tells whether stored identity keys and the uploaded
	// ones are the same keys (signatures aside).
	SameDeviceKeys func(stored, uploaded json.RawMessage) bool
	OneTimeKeys    []UploadedKey
	// SameOneTimeKey tells whether a re-uploaded one-time key is the one
	// stored under its ID (signatures aside).
	SameOneTimeKey func(stored, uploaded json.RawMessage) bool
	FallbackKeys   []UploadedKey // at most one per algorithm
}

// UploadKeys stores an upload in one transaction and returns the device's
// one-time key counts afterwards, and whether its identity keys are new
// (in which case a device-list change was recorded).
func (db *DB) UploadKeys(ctx context.Context, up *KeyUpload) (counts map[string]int, newDeviceKeys bool, err error) {
	err = db.WriteTx(ctx, func(tx *sql.Tx) error {
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM devices WHERE user_id = $1 AND device_id = $2)`,
			up.UserID, up.DeviceID).Scan(&exists); err != nil {
			return fmt.Errorf("upload keys: %w", err)
		}
		if !exists {
			return ErrDeviceGone
		}
		if up.DeviceKeys != nil {
			var stored string
			err := tx.QueryRowContext(ctx, `SELECT key_json FROM device_keys WHERE user_id = $1 AND device_id = $2`,
				up.UserID, up.DeviceID).Scan(&stored)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				if _, err := tx.ExecContext(ctx, `INSERT INTO device_keys (user_id, device_id, key_json, created_ts) VALUES ($1, $2, $3, $4)`,
					up.UserID, up.DeviceID, string(up.DeviceKeys), up.NowTS); err != nil {
					return fmt.Errorf("store device keys: %w", err)
				}
				if err := addDeviceListChange(ctx, tx, up.UserID, ""); err != nil {
					return err
				}
				newDeviceKeys = true
			case err != nil:
				return fmt.Errorf("read device keys: %w", err)
			case !up.SameDeviceKeys(json.RawMessage(stored), up.DeviceKeys):
				return ErrDeviceKeysChanged
			}
		}
		if len(up.OneTimeKeys) > 0 {
			if err := insertOneTimeKeys(ctx, tx, up); err != nil {
				return err
			}
		}
		for _, k := range up.FallbackKeys {
			// The same key again keeps its used flag; a new key is unused.
			if _, err := tx.ExecContext(ctx, `INSERT INTO fallback_keys (user_id, device_id, algorithm, key_id, key_json, used)
VALUES ($1, $2, $3, $4, $5, 0)
ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET key_id = excluded.key_id, key_json = excluded.key_json, used = 0
WHERE fallback_keys.key_id <> excluded.key_id OR fallback_keys.key_json <> excluded.key_json`,
				up.UserID, up.DeviceID, k.Algorithm, k.KeyID, string(k.JSON)); err != nil {
				return fmt.Errorf("store fallback key: %w", err)
			}
		}
		counts, err = oneTimeKeyCounts(ctx, tx, up.UserID, up.DeviceID)
		return err
	})
	return counts, newDeviceKeys, err
}

func insertOneTimeKeys(ctx context.Context, tx *sql.Tx, up *KeyUpload) error {
	ins, err := tx.PrepareContext(ctx, `INSERT INTO one_time_keys (user_id, device_id, algorithm, key_id, key_json)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, device_id, algorithm, key_id) DO NOTHING`)
	if err != nil {
		return fmt.Errorf("store one-time keys: %w", err)
	}
	defer ins.Close()
	for _, k := range up.OneTimeKeys {
		res, err := ins.ExecContext(ctx, up.UserID, up.DeviceID, k.Algorithm, k.KeyID, string(k.JSON))
		if err != nil {
			return fmt.Errorf("store one-time key: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			continue
		}
		// Already there: a retried upload is fine, a different key under
		// the same ID is not.
		var stored string
		if err := tx.QueryRowContext(ctx, `SELECT key_json FROM one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 AND key_id = $4`,
			up.UserID, up.DeviceID, k.Algorithm, k.KeyID).Scan(&stored); err != nil {
			return fmt.Errorf("read one-time key: %w", err)
		}
		if !up.SameOneTimeKey(json.RawMessage(stored), k.JSON) {
			return &OneTimeKeyConflictError{KeyID: k.Algorithm + ":" + k.KeyID}
		}
	}
	return nil
}

type rowsQueryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func oneTimeKeyCounts(ctx context.Context, q rowsQueryer, userID id.UserID, deviceID id.DeviceID) (map[string]int, error) {
	rows, err := q.QueryContext(ctx, `SELECT algorithm, COUNT(*) FROM one_time_keys WHERE user_id = $1 AND device_id = $2 GROUP BY algorithm`, userID, deviceID)
	if err != nil {
		return nil, fmt.Errorf("count one-time keys: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var alg string
		var n int
		if err := rows.Scan(&alg, &n); err != nil {
			return nil, fmt.Errorf("count one-time keys: %w", err)
		}
		out[alg] = n
	}
	return out, rows.Err()
}

// DeviceKeyCounts returns what every sync tells a device about its own
// keys: how many unclaimed one-time keys it has, per algorithm, and the
// algorithms of its fallback keys that no claim has used yet. They are
// kept in memory between writes (keyCountsCache), so a long-poll woken by
// a message reads neither again.
func (db *DB) DeviceKeyCounts(ctx context.Context, userID id.UserID, deviceID id.DeviceID) (map[string]int, []string, error) {
	k := keyCountsKey{userID, deviceID}
	if e, ok := db.keyCounts.get(k); ok {
		return e.otk, e.fallback, nil
	}
	gen := db.keyCounts.generation()
	otk, err := oneTimeKeyCounts(ctx, db.reader, userID, deviceID)
	if err != nil {
		return nil, nil, err
	}
	fallback, err := db.unusedFallbackKeyTypes(ctx, userID, deviceID)
	if err != nil {
		return nil, nil, err
	}
	db.keyCounts.put(k, keyCountsEntry{otk: otk, fallback: fallback}, gen)
	return maps.Clone(otk), slices.Clone(fallback), nil
}

// unusedFallbackKeyTypes lists the algorithms for which a device has a
// fallback key that no claim has used yet.
func (db *DB) unusedFallbackKeyTypes(ctx context.Context, userID id.UserID, deviceID id.DeviceID) ([]string, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT algorithm FROM fallback_keys WHERE user_id = $1 AND device_id = $2 AND used = 0 ORDER BY algorithm`, userID, deviceID)
	if err != nil {
		return nil, fmt.Errorf("fallback keys: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var alg string
		if err := rows.Scan(&alg); err != nil {
			return nil, err
		}
		out = append(out, alg)
	}
	return out, rows.Err()
}

// keyCountsCache keeps DeviceKeyCounts' answers under the same rule as
// the token cache: every write but event persistence moves its generation
// once committed (claims by other users included), and an answer read
// while a write was committing is never served.
type keyCountsCache struct {
	gen atomic.Uint64
	mu  sync.Mutex
	m   map[keyCountsKey]keyCountsEntry
}

type keyCountsKey struct {
	user   id.UserID
	device id.DeviceID
}

type keyCountsEntry struct {
	otk      map[string]int
	fallback []string
	gen      uint64
}

// maxCachedKeyCounts bounds the cache: one entry a syncing device.
const maxCachedKeyCounts = 4096

func (c *keyCountsCache) generation() uint64 { return c.gen.Load() }

// get returns copies: callers may change theirs.
func (c *keyCountsCache) get(k keyCountsKey) (keyCountsEntry, bool) {
	g := c.gen.Load()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || e.gen != g {
		return keyCountsEntry{}, false
	}
	return keyCountsEntry{otk: maps.Clone(e.otk), fallback: slices.Clone(e.fallback)}, true
}

func (c *keyCountsCache) put(k keyCountsKey, e keyCountsEntry, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if c.m == nil || len(c.m) >= maxCachedKeyCounts {
		c.m = map[keyCountsKey]keyCountsEntry{}
	}
	e.gen = gen
	c.m[k] = e
}

func (c *keyCountsCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
}

// KeyClaim asks for one key of a device.
type KeyClaim struct {
	UserID    id.UserID
	DeviceID  id.DeviceID
	Algorithm string
}

// ClaimedKey is a key handed out by ClaimKeys.
type ClaimedKey struct {
	KeyClaim
	KeyID    string
	JSON     json.RawMessage
	Fallback bool
}

// ClaimKeys hands out one key per claim, in one write transaction so that
// no one-time key is ever given twice: the oldest one-time key of the
// algorithm, deleted as it is returned, or else the fallback key, marked
// used and kept. Claims that find neither are left out.
func (db *DB) ClaimKeys(ctx context.Context, claims []KeyClaim) ([]ClaimedKey, error) {
	var out []ClaimedKey
	err := db.WriteTx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		otk, err := tx.PrepareContext(ctx, `DELETE FROM one_time_keys WHERE seq = (
	SELECT seq FROM one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 ORDER BY seq LIMIT 1
) RETURNING key_id, key_json`)
		if err != nil {
			return fmt.Errorf("claim keys: %w", err)
		}
		defer otk.Close()
		fb, err := tx.PrepareContext(ctx, `UPDATE fallback_keys SET used = 1 WHERE user_id = $1 AND device_id = $2 AND algorithm = $3
RETURNING key_id, key_json`)
		if err != nil {
			return fmt.Errorf("claim keys: %w", err)
		}
		defer fb.Close()
		for _, c := range claims {
			k := ClaimedKey{KeyClaim: c}
			var js string
			err := otk.QueryRowContext(ctx, c.UserID, c.DeviceID, c.Algorithm).Scan(&k.KeyID, &js)
			if errors.Is(err, sql.ErrNoRows) {
				k.Fallback = true
				err = fb.QueryRowContext(ctx, c.UserID, c.DeviceID, c.Algorithm).Scan(&k.KeyID, &js)
				if errors.Is(err, sql.ErrNoRows) {
					continue
				}
			}
			if err != nil {
				return fmt.Errorf("claim key of %s %s: %w", c.UserID, c.DeviceID, err)
			}
			k.JSON = json.RawMessage(js)
			out = append(out, k)
		}
		return nil
	})
	return out, err
}

// DeviceKeysRow is a device's stored identity keys.
type DeviceKeysRow struct {
	UserID      id.UserID
	DeviceID    id.DeviceID
	DisplayName string
	JSON        json.RawMessage
}

// maxInList bounds the parameters of one IN (...) query; SQLite allows
// 32,766 but shorter statements plan faster.
const maxInList = 500

// chunks splits a list for IN (...) queries.
func chunks[T any](list []T, n int) [][]T {
	var out [][]T
	for len(list) > n {
		out = append(out, list[:n])
		list = list[n:]
	}
	if len(list) > 0 {
		out = append(out, list)
	}
	return out
}

// inList returns "$from, $from+1, …" for n parameters and the arguments.
func inList[T ~string](vals []T, from int) (string, []any) {
	var b strings.Builder
	args := make([]any, len(vals))
	for i, v := range vals {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", from+i)
		args[i] = string(v)
	}
	return b.String(), args
}

// DeviceKeysOf returns the identity keys of every device of the given
// users, with the devices' display names.
func (db *DB) DeviceKeysOf(ctx context.Context, users []id.UserID) ([]DeviceKeysRow, error) {
	return db.deviceKeyRows(ctx, users, "device keys", `SELECT k.user_id, k.device_id, COALESCE(d.display_name, ''), k.key_json
FROM device_keys k JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id
WHERE k.user_id IN (%s) ORDER BY k.user_id, k.device_id`)
}

// deviceKeyRows runs query (user ID, device ID, display name, key JSON,
// with %s for the user list) over users, a chunk at a time.
func (db *DB) deviceKeyRows(ctx context.Context, users []id.UserID, what, query string) ([]DeviceKeysRow, error) {
	var out []DeviceKeysRow
	for _, part := range chunks(users, maxInList) {
		in, args := inList(part, 1)
		rows, err := db.reader.QueryContext(ctx, fmt.Sprintf(query, in), args...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		for rows.Next() {
			var r DeviceKeysRow
			var js string
			if err := rows.Scan(&r.UserID, &r.DeviceID, &r.DisplayName, &js); err != nil {
				rows.Close()
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			r.JSON = json.RawMessage(js)
			out = append(out, r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
	}
	return out, nil
}

// ExistingUsers returns which of the given users have an account here.
func (db *DB) ExistingUsers(ctx context.Context, users []id.UserID) (map[id.UserID]bool, error) {
	out := map[id.UserID]bool{}
	for _, part := range chunks(users, maxInList) {
		in, args := inList(part, 1)
		rows, err := db.reader.QueryContext(ctx, `SELECT user_id FROM users WHERE user_id IN (`+in+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("existing users: %w", err)
		}
		for rows.Next() {
			var u id.UserID
			if err := rows.Scan(&u); err != nil {
				rows.Close()
				return nil, err
			}
			out[u] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Cross-signing key types, as the spec names their usage.
const (
	KeyTypeMaster      = "master"
	KeyTypeSelfSigning = "self_signing"
	KeyTypeUserSigning = "user_signing"
)

// CrossSigningKey is one of a user's cross-signing keys.
type CrossSigningKey struct {
	UserID    id.UserID
	Type      string // KeyTypeMaster, KeyTypeSelfSigning or KeyTypeUserSigning
	PublicKey string // unpadded base64
	JSON      json.RawMessage
}

// CrossSigningKeysOf returns the cross-signing keys of the given users.
func (db *DB) CrossSigningKeysOf(ctx context.Context, users []id.UserID) ([]CrossSigningKey, error) {
	var out []CrossSigningKey
	for _, part := range chunks(users, maxInList) {
		in, args := inList(part, 1)
		rows, err := db.reader.QueryContext(ctx, `SELECT user_id, key_type, public_key, key_json FROM cross_signing_keys WHERE user_id IN (`+in+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("cross-signing keys: %w", err)
		}
		for rows.Next() {
			var k CrossSigningKey
			var js string
			if err := rows.Scan(&k.UserID, &k.Type, &k.PublicKey, &js); err != nil {
				rows.Close()
				return nil, err
			}
			k.JSON = json.RawMessage(js)
			out = append(out, k)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DeviceListChange is one entry of the device-list stream: UserID's keys
// changed, for everyone who shares a room with them, or (OnlyFor set)
// for that one user.
type DeviceListChange struct {
	UserID  id.UserID
	OnlyFor id.UserID
}

func addDeviceListChange(ctx context.Context, tx *sql.Tx, userID, onlyFor id.UserID) error {
	var of any
	if onlyFor != "" {
		of = string(onlyFor)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO device_list_changes (user_id, only_for) VALUES ($1, $2)`, userID, of); err != nil {
		return fmt.Errorf("record device list change of %s: %w", userID, err)
	}
	return nil
}

// SetCrossSigningKeys stores (replacing) cross-signing keys of one user
// and records the device-list changes, in one transaction.
func (db *DB) SetCrossSigningKeys(ctx context.Context, keys []CrossSigningKey, changes []DeviceListChange, nowTS int64) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		for _, k := range keys {
			if _, err := tx.ExecContext(ctx, `INSERT INTO cross_signing_keys (user_id, key_type, public_key, key_json, updated_ts)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (user_id, key_type) DO UPDATE SET public_key = excluded.public_key, key_json = excluded.key_json, updated_ts = excluded.updated_ts`,
				k.UserID, k.Type, k.PublicKey, string(k.JSON), nowTS); err != nil {
				return fmt.Errorf("store %s key of %s: %w", k.Type, k.UserID, err)
			}
		}
		for _, c := range changes {
			if err := addDeviceListChange(ctx, tx, c.UserID, c.OnlyFor); err != nil {
				return err
			}
		}
		return nil
	})
}

// KeySignature is a signature of a device or cross-signing key.
type KeySignature struct {
	TargetUserID id.UserID
	TargetKey    string // device ID, or a cross-signing key's public key
	SignerUserID id.UserID
	SignerKeyID  string // such as ed25519:<key>
	Signature    string
}

// StoreSignatures adds signatures (replacing one by the same signer key
// of the same target) and records the device-list changes, in one
// transaction.
func (db *DB) StoreSignatures(ctx context.Context, sigs []KeySignature, changes []DeviceListChange) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		for _, s := range sigs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO key_signatures (target_user_id, target_key, signer_user_id, signer_key_id, signature)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (target_user_id, target_key, signer_user_id, signer_key_id) DO UPDATE SET signature = excluded.signature`,
				s.TargetUserID, s.TargetKey, s.SignerUserID, s.SignerKeyID, s.Signature); err != nil {
				return fmt.Errorf("store signature of %s %s: %w", s.TargetUserID, s.TargetKey, err)
			}
		}
		for _, c := range changes {
			if err := addDeviceListChange(ctx, tx, c.UserID, c.OnlyFor); err != nil {
				return err
			}
		}
		return nil
	})
}

// SignaturesOf returns the uploaded signatures of the given users' keys
// that viewer may see: those made by the key's owner, and those made by
// viewer. Signatures by a third user's user-signing key stay private, so
// the server does not leak who verified whom.
func (db *DB) SignaturesOf(ctx context.Context, users []id.UserID, viewer id.UserID) ([]KeySignature, error) {
	var out []KeySignature
	for _, part := range chunks(users, maxInList) {
		in, args := inList(part, 2)
		rows, err := db.reader.QueryContext(ctx, `SELECT target_user_id, target_key, signer_user_id, signer_key_id, signature FROM key_signatures
WHERE target_user_id IN (`+in+`) AND (signer_user_id = target_user_id OR signer_user_id = $1)`, append([]any{viewer}, args...)...)
		if err != nil {
			return nil, fmt.Errorf("signatures: %w", err)
		}
		for rows.Next() {
			var s KeySignature
			if err := rows.Scan(&s.TargetUserID, &s.TargetKey, &s.SignerUserID, &s.SignerKeyID, &s.Signature); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, s)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// sharesRoomWith is an SQL condition: the user in column col is joined or
// invited to a room that the user in parameter $1 is joined to.
func sharesRoomWith(col string) string {
	return `EXISTS (SELECT 1 FROM current_state a JOIN current_state b ON b.room_id = a.room_id
	WHERE a.type = 'm.room.member' AND a.state_key = $1 AND a.membership = 'join'
	AND b.type = 'm.room.member' AND b.state_key = ` + col + ` AND b.membership IN ('join', 'invite'))`
}

// DeviceListChangesFor returns the users whose device-list changes in
// the stream range (from, to] concern viewer: viewer themself, users
// viewer now shares a room with, and changes recorded only for viewer.
func (db *DB) DeviceListChangesFor(ctx context.Context, viewer id.UserID, from, to int64) ([]id.UserID, error) {
	if from >= to {
		return nil, nil
	}
	out, err := queryColumn[id.UserID](ctx, db.reader, `SELECT DISTINCT c.user_id FROM device_list_changes c
WHERE c.stream_id > $2 AND c.stream_id <= $3
AND (c.only_for = $1 OR (c.only_for IS NULL AND (c.user_id = $1 OR `+sharesRoomWith("c.user_id")+`)))`, viewer, from, to)
	if err != nil {
		return nil, fmt.Errorf("device list changes for %s: %w", viewer, err)
	}
	return out, nil
}

// SharingRoomWith returns which of the candidates share a room with
// viewer now (are joined or invited where viewer is joined).
func (db *DB) SharingRoomWith(ctx context.Context, viewer id.UserID, candidates []id.UserID) (map[id.UserID]bool, error) {
	out := map[id.UserID]bool{}
	for _, part := range chunks(candidates, maxInList) {
		in, args := inList(part, 2)
		rows, err := db.reader.QueryContext(ctx, `SELECT DISTINCT b.state_key FROM current_state a JOIN current_state b ON b.room_id = a.room_id
WHERE a.type = 'm.room.member' AND a.state_key = $1 AND a.membership = 'join'
AND b.type = 'm.room.member' AND b.membership IN ('join', 'invite') AND b.state_key IN (`+in+`)`, append([]any{viewer}, args...)...)
		if err != nil {
			return nil, fmt.Errorf("shared rooms of %s: %w", viewer, err)
		}
		for rows.Next() {
			var u id.UserID
			if err := rows.Scan(&u); err != nil {
				rows.Close()
				return nil, err
			}
			out[u] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DeviceListAudience returns the users to tell about a change to user's
// devices: the joined members of every room user is joined or invited to.
func (db *DB) DeviceListAudience(ctx context.Context, userID id.UserID) ([]id.UserID, error) {
	out, err := queryColumn[id.UserID](ctx, db.reader, `SELECT DISTINCT a.state_key FROM current_state b JOIN current_state a ON a.room_id = b.room_id
WHERE b.type = 'm.room.member' AND b.state_key = $1 AND b.membership IN ('join', 'invite')
AND a.type = 'm.room.member' AND a.membership = 'join'`, userID)
	if err != nil {
		return nil, fmt.Errorf("device list audience of %s: %w", userID, err)
	}
	return out, nil
}

// MemberDelta is how a user's membership of a room changed over a stream
// range: Before is the membership at its start ("" for none), After at
// its end.
type MemberDelta struct {
	RoomID id.RoomID
	UserID id.UserID
	Before string
	After  string
}

// memberDeltas folds membership events, oldest first, into one delta per
// room and user.
func memberDeltas(rows *sql.Rows) ([]MemberDelta, error) {
	defer rows.Close()
	type key struct {
		room id.RoomID
		user id.UserID
	}
	idx := map[key]int{}
	var out []MemberDelta
	for rows.Next() {
		var d MemberDelta
		if err := rows.Scan(&d.RoomID, &d.UserID, &d.Before, &d.After); err != nil {
			return nil, err
		}
		k := key{d.RoomID, d.UserID}
		if i, ok := idx[k]; ok {
			out[i].After = d.After
			continue
		}
		idx[k] = len(out)
		out = append(out, d)
	}
	return out, rows.Err()
}

// memberBefore is the membership of e's room and user as of stream
// position $2 (the start of the range).
const memberBefore = `COALESCE((SELECT p.membership FROM events p WHERE p.room_id = e.room_id AND p.type = 'm.room.member'
	AND p.state_key = e.state_key AND p.stream_pos <= $2 AND p.rejected = 0 ORDER BY p.stream_pos DESC LIMIT 1), '')`

// OwnMemberDeltas returns how user's own memberships changed in the
// stream range (from, to].
func (db *DB) OwnMemberDeltas(ctx context.Context, userID id.UserID, from, to int64) ([]MemberDelta, error) {
	if from >= to || !db.positions.membershipAfter(from) {
		return nil, nil
	}
	rows, err := db.reader.QueryContext(ctx, `SELECT e.room_id, e.state_key, `+memberBefore+`, COALESCE(e.membership, '') FROM events e
WHERE e.type = 'm.room.member' AND e.state_key = $1 AND e.stream_pos > $2 AND e.stream_pos <= $3 AND e.rejected = 0
ORDER BY e.stream_pos`, userID, from, to)
	if err != nil {
		return nil, fmt.Errorf("membership changes of %s: %w", userID, err)
	}
	return memberDeltas(rows)
}

// RoomMemberDeltas returns how other users' memberships changed in the
// stream range (from, to] in the rooms user is joined to now.
func (db *DB) RoomMemberDeltas(ctx context.Context, userID id.UserID, from, to int64) ([]MemberDelta, error) {
	if from >= to || !db.positions.membershipAfter(from) {
		return nil, nil
	}
	rows, err := db.reader.QueryContext(ctx, `SELECT e.room_id, e.state_key, `+memberBefore+`, COALESCE(e.membership, '') FROM events e
WHERE e.room_id IN (SELECT room_id FROM current_state WHERE type = 'm.room.member' AND state_key = $1 AND membership = 'join')
AND e.type = 'm.room.member' AND e.state_key <> $1 AND e.stream_pos > $2 AND e.stream_pos <= $3 AND e.rejected = 0
ORDER BY e.stream_pos`, userID, from, to)
	if err != nil {
		return nil, fmt.Errorf("membership changes in rooms of %s: %w", userID, err)
	}
	return memberDeltas(rows)
}

// GetDeviceKeys returns one device's stored identity keys, or ErrNotFound.
func (db *DB) GetDeviceKeys(ctx context.Context, userID id.UserID, deviceID id.DeviceID) (json.RawMessage, error) {
	var js string
	err := db.reader.QueryRowContext(ctx, `SELECT key_json FROM device_keys WHERE user_id = $1 AND device_id = $2`, userID, deviceID).Scan(&js)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("device keys of %s %s: %w", userID, deviceID, err)
	}
	return json.RawMessage(js), nil
}
