package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// The OAuth 2.0 authorization server's rows (migration 0023): registered
// clients, authorization codes, device grants, which client each OAuth
// device signed in through, and the sign-in pages' browser sessions. The
// sessions themselves are devices and tokens (tokens.go).
//
// A token lookup (LookupAccessToken) reads access_tokens, users and
// whether oauth_sessions has a row for the device; nothing else here. So
// the writes in this file to clients, codes, device grants, browser
// sessions and spent refresh tokens go through writeTx and leave the token
// cache (tokencache.go) alone: every sign-in would otherwise drop every
// cached lookup. Writes that add or remove oauth_sessions rows, tokens or
// devices (tokens.go, devices.go) keep invalidating.

// OAuthSession is what an OAuth sign-in records beside its device.
type OAuthSession struct {
	ClientID string
	Scope    string
	// GrantHash is the hash of the authorization code or device code the
	// session was issued from, so a replayed code can revoke it.
	GrantHash []byte
}

const (
	deleteOAuthSession = `DELETE FROM oauth_sessions WHERE user_id = $1 AND device_id = $2`
	insertOAuthSession = `INSERT INTO oauth_sessions (user_id, device_id, client_id, scope, grant_hash, created_ts) VALUES ($1, $2, $3, $4, $5, $6)`
)

const (
	insertOAuthClient = `INSERT INTO oauth_clients (client_id, metadata, created_ts) VALUES ($1, $2, $3)`
	selectOAuthClient = `SELECT metadata FROM oauth_clients WHERE client_id = $1`
)

// InsertOAuthClient stores a registered client's metadata (JSON).
func (db *DB) InsertOAuthClient(ctx context.Context, clientID string, metadata []byte, nowTS int64) error {
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, insertOAuthClient, clientID, string(metadata), nowTS); err != nil {
			return fmt.Errorf("insert oauth client: %w", err)
		}
		return nil
	})
}

// OAuthClient returns a registered client's metadata, or ErrNotFound.
func (db *DB) OAuthClient(ctx context.Context, clientID string) ([]byte, error) {
	var metadata string
	err := db.reader.QueryRowContext(ctx, selectOAuthClient, clientID).Scan(&metadata)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get oauth client: %w", err)
	}
	return []byte(metadata), nil
}

// OAuthCode is an authorization code's grant.
type OAuthCode struct {
	Hash          []byte
	ClientID      string
	UserID        id.UserID
	DeviceID      id.DeviceID
	RedirectURI   string
	Scope         string
	CodeChallenge string
	CreatedTS     int64
	ExpiresTS     int64
	Used          bool
}

const (
	insertOAuthCode = `INSERT INTO oauth_codes (code_hash, client_id, user_id, device_id, redirect_uri, scope, code_challenge, created_ts, expires_ts)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`
	// Used codes are kept a day past their expiry, so a replay is still
	// recognised (and revokes what the code gave) rather than just unknown.
	sweepOAuthCodes  = `DELETE FROM oauth_codes WHERE expires_ts < $1`
	selectOAuthCode  = `SELECT client_id, user_id, device_id, redirect_uri, scope, code_challenge, created_ts, expires_ts, used_ts IS NOT NULL FROM oauth_codes WHERE code_hash = $1`
	useOAuthCode     = `UPDATE oauth_codes SET used_ts = $2 WHERE code_hash = $1`
	oauthCodeKeepFor = 24 * 60 * 60 * 1000
)

// InsertOAuthCode stores a new authorization code, and sweeps old ones.
func (db *DB) InsertOAuthCode(ctx context.Context, c *OAuthCode) error {
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, sweepOAuthCodes, c.CreatedTS-oauthCodeKeepFor); err != nil {
			return fmt.Errorf("sweep oauth codes: %w", err)
		}
		if _, err := tx.ExecContext(ctx, insertOAuthCode, c.Hash, c.ClientID, c.UserID, c.DeviceID, c.RedirectURI, c.Scope, c.CodeChallenge, c.CreatedTS, c.ExpiresTS); err != nil {
			return fmt.Errorf("insert oauth code: %w", err)
		}
		return nil
	})
}

// ConsumeOAuthCode marks an authorization code used and returns it. A code
// used before comes back with Used set (and stays used): the caller treats
// that as a replay. ErrNotFound for unknown codes.
func (db *DB) ConsumeOAuthCode(ctx context.Context, hash []byte, nowTS int64) (*OAuthCode, error) {
	c := &OAuthCode{Hash: hash}
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, selectOAuthCode, hash).Scan(&c.ClientID, &c.UserID, &c.DeviceID, &c.RedirectURI, &c.Scope, &c.CodeChallenge, &c.CreatedTS, &c.ExpiresTS, &c.Used)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("get oauth code: %w", err)
		}
		if c.Used {
			return nil
		}
		if _, err := tx.ExecContext(ctx, useOAuthCode, hash, nowTS); err != nil {
			return fmt.Errorf("use oauth code: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

const selectOAuthSessionByGrant = `SELECT user_id, device_id FROM oauth_sessions WHERE grant_hash = $1`

// OAuthSessionByGrant finds the device a code or device code signed in,
// or ErrNotFound (never exchanged, or signed out since).
func (db *DB) OAuthSessionByGrant(ctx context.Context, grantHash []byte) (id.UserID, id.DeviceID, error) {
	var userID id.UserID
	var deviceID id.DeviceID
	err := db.reader.QueryRowContext(ctx, selectOAuthSessionByGrant, grantHash).Scan(&userID, &deviceID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", ErrNotFound
	}
	if err != nil {
		return "", "", fmt.Errorf("oauth session by grant: %w", err)
	}
	return userID, deviceID, nil
}

// OAuthSessionInfo is an OAuth device's session.
type OAuthSessionInfo struct {
	UserID   id.UserID
	DeviceID id.DeviceID
	ClientID string
	Scope    string
}

const selectOAuthSessionByRefresh = `SELECT o.user_id, o.device_id, o.client_id, o.scope FROM refresh_tokens r
JOIN oauth_sessions o ON o.user_id = r.user_id AND o.device_id = r.device_id WHERE r.token_hash = $1`

// OAuthSessionByRefreshToken finds the OAuth session a refresh token acts
// for; ErrNotFound when the token is unknown or its device did not sign in
// through OAuth.
func (db *DB) OAuthSessionByRefreshToken(ctx context.Context, refreshHash []byte) (*OAuthSessionInfo, error) {
	var s OAuthSessionInfo
	err := db.reader.QueryRowContext(ctx, selectOAuthSessionByRefresh, refreshHash).Scan(&s.UserID, &s.DeviceID, &s.ClientID, &s.Scope)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("oauth session by refresh token: %w", err)
	}
	return &s, nil
}

const selectOAuthSessionClients = `SELECT device_id, client_id FROM oauth_sessions WHERE user_id = $1`

// OAuthSessionClients maps each of a user's OAuth devices to its client.
func (db *DB) OAuthSessionClients(ctx context.Context, userID id.UserID) (map[id.DeviceID]string, error) {
	rows, err := db.reader.QueryContext(ctx, selectOAuthSessionClients, userID)
	if err != nil {
		return nil, fmt.Errorf("oauth sessions of %s: %w", userID, err)
	}
	defer rows.Close()
	out := map[id.DeviceID]string{}
	for rows.Next() {
		var d id.DeviceID
		var c string
		if err := rows.Scan(&d, &c); err != nil {
			return nil, fmt.Errorf("oauth sessions of %s: %w", userID, err)
		}
		out[d] = c
	}
	return out, rows.Err()
}

const (
	selectAccessTokenDevice  = `SELECT user_id, device_id FROM access_tokens WHERE token_hash = $1`
	selectRefreshTokenDevice = `SELECT user_id, device_id FROM refresh_tokens WHERE token_hash = $1`
)

// TokenDevice finds the device an access or refresh token (by hash) acts
// for, or ErrNotFound.
func (db *DB) TokenDevice(ctx context.Context, hash []byte) (id.UserID, id.DeviceID, error) {
	for _, q := range []string{selectAccessTokenDevice, selectRefreshTokenDevice} {
		var userID id.UserID
		var deviceID id.DeviceID
		err := db.reader.QueryRowContext(ctx, q, hash).Scan(&userID, &deviceID)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return "", "", fmt.Errorf("token device: %w", err)
		}
		return userID, deviceID, nil
	}
	return "", "", ErrNotFound
}

// Device grant states.
const (
	OAuthDevicePending  = "pending"
	OAuthDeviceApproved = "approved"
	OAuthDeviceDenied   = "denied"
	OAuthDeviceDone     = "done"
)

// OAuthDeviceGrant is a device authorization grant (RFC 8628).
type OAuthDeviceGrant struct {
	DeviceCodeHash []byte
	UserCode       string
	ClientID       string
	DeviceID       id.DeviceID
	Scope          string
	State          string
	UserID         id.UserID // once approved
	CreatedTS      int64
	ExpiresTS      int64
	LastPollTS     int64
}

const (
	sweepOAuthDeviceGrants = `DELETE FROM oauth_device_grants WHERE expires_ts < $1`
	insertOAuthDeviceGrant = `INSERT INTO oauth_device_grants (device_code_hash, user_code, client_id, device_id, scope, created_ts, expires_ts)
VALUES ($1, $2, $3, $4, $5, $6, $7)`
	oauthDeviceGrantColumns = `device_code_hash, user_code, client_id, device_id, scope, state, COALESCE(user_id, ''), created_ts, expires_ts, last_poll_ts`
	selectOAuthDeviceByUser = `SELECT ` + oauthDeviceGrantColumns + ` FROM oauth_device_grants WHERE user_code = $1`
	selectOAuthDeviceByCode = `SELECT ` + oauthDeviceGrantColumns + ` FROM oauth_device_grants WHERE device_code_hash = $1`
	decideOAuthDeviceGrant  = `UPDATE oauth_device_grants SET state = $2, user_id = $3 WHERE user_code = $1 AND state = 'pending' AND expires_ts > $4`
	pollOAuthDeviceGrant    = `UPDATE oauth_device_grants SET last_poll_ts = $2, state = $3 WHERE device_code_hash = $1`
)

func scanOAuthDeviceGrant(s scanner) (*OAuthDeviceGrant, error) {
	var g OAuthDeviceGrant
	err := s.Scan(&g.DeviceCodeHash, &g.UserCode, &g.ClientID, &g.DeviceID, &g.Scope, &g.State, &g.UserID, &g.CreatedTS, &g.ExpiresTS, &g.LastPollTS)
	return &g, err
}

// InsertOAuthDeviceGrant stores a new device grant, and sweeps those
// expired a day ago. A user code already in use is ErrTokenExists.
func (db *DB) InsertOAuthDeviceGrant(ctx context.Context, g *OAuthDeviceGrant) error {
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, sweepOAuthDeviceGrants, g.CreatedTS-oauthCodeKeepFor); err != nil {
			return fmt.Errorf("sweep device grants: %w", err)
		}
		_, err := tx.ExecContext(ctx, insertOAuthDeviceGrant, g.DeviceCodeHash, g.UserCode, g.ClientID, g.DeviceID, g.Scope, g.CreatedTS, g.ExpiresTS)
		if err != nil && isUniqueViolation(err) {
			return ErrTokenExists
		}
		if err != nil {
			return fmt.Errorf("insert device grant: %w", err)
		}
		return nil
	})
}

// OAuthDeviceGrantByUserCode returns a device grant by its user code, or
// ErrNotFound.
func (db *DB) OAuthDeviceGrantByUserCode(ctx context.Context, userCode string) (*OAuthDeviceGrant, error) {
	g, err := scanOAuthDeviceGrant(db.reader.QueryRowContext(ctx, selectOAuthDeviceByUser, userCode))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("device grant by user code: %w", err)
	}
	return g, nil
}

// DecideOAuthDeviceGrant approves (for userID) or denies a pending,
// unexpired device grant; ErrNotFound when there is none such.
func (db *DB) DecideOAuthDeviceGrant(ctx context.Context, userCode string, userID id.UserID, approve bool, nowTS int64) error {
	state := OAuthDeviceDenied
	if approve {
		state = OAuthDeviceApproved
	}
	// A grant's state is read by no token lookup: no invalidation.
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		return updateOne(ctx, tx, "decide device grant", decideOAuthDeviceGrant, userCode, state, userID, nowTS)
	})
}

// PollOAuthDeviceGrant records a poll of a device grant and returns the
// grant as it was before the poll. An approved grant is claimed by the
// poll that sees it (its state becomes done), so tokens are issued once.
func (db *DB) PollOAuthDeviceGrant(ctx context.Context, deviceCodeHash []byte, nowTS int64) (*OAuthDeviceGrant, error) {
	var g *OAuthDeviceGrant
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		var err error
		g, err = scanOAuthDeviceGrant(tx.QueryRowContext(ctx, selectOAuthDeviceByCode, deviceCodeHash))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("poll device grant: %w", err)
		}
		state := g.State
		if state == OAuthDeviceApproved {
			state = OAuthDeviceDone
		}
		if _, err := tx.ExecContext(ctx, pollOAuthDeviceGrant, deviceCodeHash, nowTS, state); err != nil {
			return fmt.Errorf("poll device grant: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

const (
	sweepBrowserSessions  = `DELETE FROM oauth_browser_sessions WHERE expires_ts < $1`
	insertBrowserSession  = `INSERT INTO oauth_browser_sessions (session_hash, user_id, created_ts, expires_ts) VALUES ($1, $2, $3, $4)`
	selectBrowserSession  = `SELECT b.user_id FROM oauth_browser_sessions b JOIN users u ON u.user_id = b.user_id WHERE b.session_hash = $1 AND b.expires_ts > $2 AND u.deactivated = 0`
	deleteBrowserSession  = `DELETE FROM oauth_browser_sessions WHERE session_hash = $1`
	deleteBrowserSessions = `DELETE FROM oauth_browser_sessions WHERE user_id = $1`
)

// InsertBrowserSession records a browser signed in to the account pages,
// and sweeps expired ones.
func (db *DB) InsertBrowserSession(ctx context.Context, hash []byte, userID id.UserID, nowTS, expiresTS int64) error {
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, sweepBrowserSessions, nowTS); err != nil {
			return fmt.Errorf("sweep browser sessions: %w", err)
		}
		if _, err := tx.ExecContext(ctx, insertBrowserSession, hash, userID, nowTS, expiresTS); err != nil {
			return fmt.Errorf("insert browser session: %w", err)
		}
		return nil
	})
}

// BrowserSessionUser returns the active user a browser session is signed
// in as, or ErrNotFound (unknown, expired, or the account deactivated).
func (db *DB) BrowserSessionUser(ctx context.Context, hash []byte, nowTS int64) (id.UserID, error) {
	var userID id.UserID
	err := db.reader.QueryRowContext(ctx, selectBrowserSession, hash, nowTS).Scan(&userID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("browser session: %w", err)
	}
	return userID, nil
}

// DeleteBrowserSession signs a browser out of the account pages.
func (db *DB) DeleteBrowserSession(ctx context.Context, hash []byte) error {
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, deleteBrowserSession, hash); err != nil {
			return fmt.Errorf("delete browser session: %w", err)
		}
		return nil
	})
}

// DeleteBrowserSessions signs every browser of a user out.
func (db *DB) DeleteBrowserSessions(ctx context.Context, userID id.UserID) error {
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, deleteBrowserSessions, userID); err != nil {
			return fmt.Errorf("delete browser sessions of %s: %w", userID, err)
		}
		return nil
	})
}

const (
	// Spent refresh tokens are remembered for 30 days: a copy used later
	// than that is only unknown.
	spentRefreshKeepFor     = 30 * 24 * 60 * 60 * 1000
	sweepSpentRefreshTokens = `DELETE FROM oauth_spent_refresh_tokens WHERE spent_ts < $1`
	insertSpentRefreshToken = `INSERT INTO oauth_spent_refresh_tokens (token_hash, user_id, device_id, spent_ts) VALUES ($1, $2, $3, $4)
ON CONFLICT (token_hash) DO NOTHING`
	selectSpentRefreshToken = `SELECT user_id, device_id FROM oauth_spent_refresh_tokens WHERE token_hash = $1`
)

// RecordSpentRefreshToken remembers that an OAuth session's refresh token
// was exchanged, and forgets those spent long ago.
func (db *DB) RecordSpentRefreshToken(ctx context.Context, hash []byte, userID id.UserID, deviceID id.DeviceID, nowTS int64) error {
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, sweepSpentRefreshTokens, nowTS-spentRefreshKeepFor); err != nil {
			return fmt.Errorf("sweep spent refresh tokens: %w", err)
		}
		if _, err := tx.ExecContext(ctx, insertSpentRefreshToken, hash, userID, deviceID, nowTS); err != nil {
			return fmt.Errorf("record spent refresh token: %w", err)
		}
		return nil
	})
}

// SpentRefreshTokenDevice finds the device whose exchanged refresh token
// this is, or ErrNotFound.
func (db *DB) SpentRefreshTokenDevice(ctx context.Context, hash []byte) (id.UserID, id.DeviceID, error) {
	var userID id.UserID
	var deviceID id.DeviceID
	err := db.reader.QueryRowContext(ctx, selectSpentRefreshToken, hash).Scan(&userID, &deviceID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", ErrNotFound
	}
	if err != nil {
		return "", "", fmt.Errorf("spent refresh token: %w", err)
	}
	return userID, deviceID, nil
}
