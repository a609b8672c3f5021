// Package keybackup owns server-side key backups (spec: "Server-side key
// backups"): backup versions per user, the encrypted Megolm session keys
// stored in them, the rule that decides whether an uploaded key replaces
// the stored one, and the etag and count clients use to notice changes.
// The server never decrypts anything: auth_data and session_data are
// opaque JSON objects.
package keybackup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Matrix errors of key backups that mautrix does not define.
var (
	mMissingParam         = mautrix.RespError{ErrCode: "M_MISSING_PARAM", StatusCode: http.StatusBadRequest}
	mWrongRoomKeysVersion = mautrix.RespError{ErrCode: "M_WRONG_ROOM_KEYS_VERSION", StatusCode: http.StatusForbidden}

	errUnknownVersion = mautrix.MNotFound.WithMessage("Unknown backup version")
	errNoVersion      = mautrix.MNotFound.WithMessage("No current backup version")
	errKeyNotFound    = mautrix.MNotFound.WithMessage("Key not found")
)

// Service is the key backup service.
type Service struct {
	db *storage.DB
}

// New builds the service.
func New(db *storage.DB) *Service { return &Service{db: db} }

// VersionInfo is a backup version as GET /room_keys/version answers it.
type VersionInfo struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Count     int             `json:"count"`
	ETag      string          `json:"etag"`
	Version   string          `json:"version"`
}

// Update answers a change to a backup's keys.
type Update struct {
	ETag  string `json:"etag"`
	Count int    `json:"count"`
}

// SessionKey is one backed-up session key (KeyBackupData). The fields are
// pointers so a missing one can be told from a zero one.
type SessionKey struct {
	FirstMessageIndex *int64          `json:"first_message_index"`
	ForwardedCount    *int64          `json:"forwarded_count"`
	IsVerified        *bool           `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

// RoomKeys is the backed-up keys of a room (RoomKeyBackup).
type RoomKeys struct {
	Sessions map[id.SessionID]*SessionKey `json:"sessions"`
}

// Keys is the backed-up keys of several rooms.
type Keys struct {
	Rooms map[id.RoomID]*RoomKeys `json:"rooms"`
}

// parseVersion reads a version as this server writes it (a positive
// decimal number). Anything else names no backup, so it is not found
// rather than malformed: versions are opaque strings to clients.
func parseVersion(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || strconv.FormatInt(n, 10) != v {
		return 0, errUnknownVersion
	}
	return n, nil
}

func formatVersion(v int64) string { return strconv.FormatInt(v, 10) }

func isObject(raw json.RawMessage) bool {
	s := strings.TrimLeft(string(raw), " \t\r\n")
	return strings.HasPrefix(s, "{")
}

// checkConfig checks the algorithm and auth_data of a create or update.
// Any algorithm is accepted: the server never interprets the backup, so a
// new algorithm needs no server change (Synapse does the same).
func checkConfig(algorithm string, authData json.RawMessage) error {
	if algorithm == "" {
		return mMissingParam.WithMessage("algorithm is required")
	}
	if len(authData) == 0 || string(authData) == "null" {
		return mMissingParam.WithMessage("auth_data is required")
	}
	if !isObject(authData) {
		return mautrix.MBadJSON.WithMessage("auth_data must be an object")
	}
	return nil
}

// CreateVersion creates a backup version, which becomes the current one,
// and returns its version string.
func (s *Service) CreateVersion(ctx context.Context, user id.UserID, algorithm string, authData json.RawMessage) (string, error) {
	if err := checkConfig(algorithm, authData); err != nil {
		return "", err
	}
	v, err := s.db.CreateKeyBackupVersion(ctx, user, algorithm, authData)
	if err != nil {
		return "", err
	}
	return formatVersion(v), nil
}

// LatestVersion returns the user's current backup version.
func (s *Service) LatestVersion(ctx context.Context, user id.UserID) (*VersionInfo, error) {
	v, err := s.db.LatestKeyBackupVersion(ctx, user)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errNoVersion
	}
	if err != nil {
		return nil, err
	}
	return versionInfo(v), nil
}

// GetVersion returns a version of the user's backup. Another user's
// versions are not found: backups are per user.
func (s *Service) GetVersion(ctx context.Context, user id.UserID, version string) (*VersionInfo, error) {
	n, err := parseVersion(version)
	if err != nil {
		return nil, err
	}
	v, err := s.db.GetKeyBackupVersion(ctx, user, n)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errUnknownVersion
	}
	if err != nil {
		return nil, err
	}
	return versionInfo(v), nil
}

func versionInfo(v *storage.KeyBackupVersion) *VersionInfo {
	return &VersionInfo{Algorithm: v.Algorithm, AuthData: v.AuthData, Count: v.Count, ETag: strconv.FormatInt(v.ETag, 10), Version: formatVersion(v.Version)}
}

// UpdateVersion replaces a version's auth_data. bodyVersion, when given,
// must equal version; the algorithm cannot change.
func (s *Service) UpdateVersion(ctx context.Context, user id.UserID, version, bodyVersion, algorithm string, authData json.RawMessage) error {
	if err := checkConfig(algorithm, authData); err != nil {
		return err
	}
	if bodyVersion != "" && bodyVersion != version {
		return mautrix.MInvalidParam.WithMessage("version in the body does not match the version in the path")
	}
	n, err := parseVersion(version)
	if err != nil {
		return err
	}
	old, err := s.db.GetKeyBackupVersion(ctx, user, n)
	if errors.Is(err, storage.ErrNotFound) {
		return errUnknownVersion
	}
	if err != nil {
		return err
	}
	if old.Algorithm != algorithm {
		return mautrix.MInvalidParam.WithMessage("Algorithm does not match: a backup's algorithm cannot change; create a new version instead")
	}
	err = s.db.UpdateKeyBackupAuthData(ctx, user, n, algorithm, authData)
	if errors.Is(err, storage.ErrNotFound) {
		// Deleted since we looked.
		return errUnknownVersion
	}
	return err
}

// DeleteVersion deletes a version and its keys. Deleting a deleted version
// again succeeds, as the spec asks; a version that never existed is not
// found.
func (s *Service) DeleteVersion(ctx context.Context, user id.UserID, version string) error {
	n, err := parseVersion(version)
	if err != nil {
		return err
	}
	err = s.db.DeleteKeyBackupVersion(ctx, user, n)
	if errors.Is(err, storage.ErrNotFound) {
		return errUnknownVersion
	}
	return err
}

// checkKeys checks an upload's shape and turns it into rows to store.
func checkKeys(keys *Keys) ([]storage.BackedUpSession, error) {
	if keys.Rooms == nil {
		return nil, mMissingParam.WithMessage("rooms is required")
	}
	var out []storage.BackedUpSession
	for roomID, room := range keys.Rooms {
		if !strings.HasPrefix(string(roomID), "!") || len(roomID) < 2 {
			return nil, mautrix.MInvalidParam.WithMessage(fmt.Sprintf("Invalid room ID %q", roomID))
		}
		if room == nil {
			return nil, mautrix.MBadJSON.WithMessage(fmt.Sprintf("Keys of room %s must be an object", roomID))
		}
		if room.Sessions == nil {
			return nil, mMissingParam.WithMessage(fmt.Sprintf("sessions is required (room %s)", roomID))
		}
		for sessionID, k := range room.Sessions {
			if sessionID == "" {
				return nil, mautrix.MInvalidParam.WithMessage("Session IDs cannot be empty")
			}
			if k == nil {
				return nil, mautrix.MBadJSON.WithMessage(fmt.Sprintf("Key of session %s must be an object", sessionID))
			}
			row, err := checkKey(k)
			if err != nil {
				return nil, err
			}
			row.RoomID, row.SessionID = roomID, sessionID
			out = append(out, row)
		}
	}
	return out, nil
}

func checkKey(k *SessionKey) (storage.BackedUpSession, error) {
	switch {
	case k.FirstMessageIndex == nil:
		return storage.BackedUpSession{}, mMissingParam.WithMessage("first_message_index is required")
	case k.ForwardedCount == nil:
		return storage.BackedUpSession{}, mMissingParam.WithMessage("forwarded_count is required")
	case k.IsVerified == nil:
		return storage.BackedUpSession{}, mMissingParam.WithMessage("is_verified is required")
	case len(k.SessionData) == 0 || string(k.SessionData) == "null":
		return storage.BackedUpSession{}, mMissingParam.WithMessage("session_data is required")
	case !isObject(k.SessionData):
		return storage.BackedUpSession{}, mautrix.MBadJSON.WithMessage("session_data must be an object")
	case *k.FirstMessageIndex < 0:
		return storage.BackedUpSession{}, mautrix.MInvalidParam.WithMessage("first_message_index cannot be negative")
	case *k.ForwardedCount < 0:
		return storage.BackedUpSession{}, mautrix.MInvalidParam.WithMessage("forwarded_count cannot be negative")
	}
	return storage.BackedUpSession{
		FirstMessageIndex: *k.FirstMessageIndex,
		ForwardedCount:    *k.ForwardedCount,
		IsVerified:        *k.IsVerified,
		SessionData:       k.SessionData,
	}, nil
}

// replaces is the spec's rule for a key uploaded for a session the backup
// already has: the verified key wins; between equals in that, the lower
// first_message_index (it decrypts more); then the lower forwarded_count
// (fewer hands it went through). A tie keeps the stored key.
func replaces(old, new *storage.BackedUpSession) bool {
	if old.IsVerified != new.IsVerified {
		return new.IsVerified
	}
	if old.FirstMessageIndex != new.FirstMessageIndex {
		return new.FirstMessageIndex < old.FirstMessageIndex
	}
	return new.ForwardedCount < old.ForwardedCount
}

// PutKeys stores keys in the user's current backup version, all in one
// transaction. A version that exists but is not the current one is
// refused with M_WRONG_ROOM_KEYS_VERSION and the current version, so the
// client can notice another device made a new backup.
func (s *Service) PutKeys(ctx context.Context, user id.UserID, version string, keys *Keys) (*Update, error) {
	rows, err := checkKeys(keys)
	if err != nil {
		return nil, err
	}
	n, err := parseVersion(version)
	if err != nil {
		return nil, err
	}
	etag, count, err := s.db.PutKeyBackupSessions(ctx, user, n, rows, replaces)
	var notCurrent *storage.NotCurrentKeyBackupError
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, errUnknownVersion
	case errors.As(err, &notCurrent):
		return nil, mWrongRoomKeysVersion.WithMessage("Wrong backup version: keys can only be added to the current one").
			WithExtraField("current_version", formatVersion(notCurrent.Current))
	case err != nil:
		return nil, err
	}
	return &Update{ETag: strconv.FormatInt(etag, 10), Count: count}, nil
}

// GetKeys reads a version's keys: all of them (roomID ""), a room's
// (sessionID "") or one session's, which is M_NOT_FOUND when absent.
func (s *Service) GetKeys(ctx context.Context, user id.UserID, version string, roomID id.RoomID, sessionID id.SessionID) (*Keys, error) {
	n, err := parseVersion(version)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.KeyBackupSessions(ctx, user, n, roomID, sessionID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errUnknownVersion
	}
	if err != nil {
		return nil, err
	}
	if sessionID != "" && len(rows) == 0 {
		return nil, errKeyNotFound
	}
	out := &Keys{Rooms: map[id.RoomID]*RoomKeys{}}
	for i := range rows {
		r := &rows[i]
		room := out.Rooms[r.RoomID]
		if room == nil {
			room = &RoomKeys{Sessions: map[id.SessionID]*SessionKey{}}
			out.Rooms[r.RoomID] = room
		}
		room.Sessions[r.SessionID] = &SessionKey{
			FirstMessageIndex: &r.FirstMessageIndex,
			ForwardedCount:    &r.ForwardedCount,
			IsVerified:        &r.IsVerified,
			SessionData:       r.SessionData,
		}
	}
	return out, nil
}

// DeleteKeys deletes keys from a version (any existing version, not only
// the current one): all of them (roomID ""), a room's or one session's.
func (s *Service) DeleteKeys(ctx context.Context, user id.UserID, version string, roomID id.RoomID, sessionID id.SessionID) (*Update, error) {
	n, err := parseVersion(version)
	if err != nil {
		return nil, err
	}
	etag, count, err := s.db.DeleteKeyBackupSessions(ctx, user, n, roomID, sessionID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errUnknownVersion
	}
	if err != nil {
		return nil, err
	}
	return &Update{ETag: strconv.FormatInt(etag, 10), Count: count}, nil
}
