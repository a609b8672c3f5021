package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// Media errors.
var (
	// ErrMediaUploaded means a pending media ID already has its content.
	ErrMediaUploaded = errors.New("media already uploaded")
	// ErrTooManyPending means the user has as many unexpired, unused media
	// IDs as allowed.
	ErrTooManyPending = errors.New("too many pending media uploads")
	// ErrQuotaExceeded means the upload would take the user past their
	// storage quota.
	ErrQuotaExceeded = errors.New("media quota exceeded")
)

// MediaContent is one stored file, named by the SHA-256 of its bytes.
type MediaContent struct {
	SHA256      string
	Size        int64
	SniffedType string
	CreatedTS   int64
}

// Media is one local media item (mxc://<this server>/<MediaID>).
type Media struct {
	MediaID     string
	UserID      id.UserID
	ContentType string // empty while pending
	UploadName  string
	Size        int64
	SHA256      string // empty while pending
	CreatedTS   int64
	UploadedTS  int64 // 0 while pending
	ExpiresTS   int64 // pending only
	URLCache    string
	SniffedType string // from its content; empty while pending
}

// Pending reports whether the ID was created but nothing uploaded yet.
func (m *Media) Pending() bool { return m.SHA256 == "" }

// MediaThumbnail is a generated thumbnail of one content file at one
// preset size and method.
type MediaThumbnail struct {
	SourceSHA256 string
	Width        int
	Height       int
	Method       string
	SHA256       string
	ContentType  string
	ThumbWidth   int
	ThumbHeight  int
	CreatedTS    int64
	Size         int64 // from its content
}

const mediaColumns = `m.media_id, m.user_id, COALESCE(m.content_type, ''), COALESCE(m.upload_name, ''), COALESCE(m.size, 0),
COALESCE(m.sha256, ''), m.created_ts, COALESCE(m.uploaded_ts, 0), COALESCE(m.expires_ts, 0), COALESCE(m.url_cache, ''),
COALESCE(c.sniffed_type, '')`

const mediaFrom = ` FROM media m LEFT JOIN media_content c ON c.sha256 = m.sha256`

func scanMedia(s scanner) (*Media, error) {
	var m Media
	err := s.Scan(&m.MediaID, &m.UserID, &m.ContentType, &m.UploadName, &m.Size, &m.SHA256,
		&m.CreatedTS, &m.UploadedTS, &m.ExpiresTS, &m.URLCache, &m.SniffedType)
	return &m, err
}

// GetMedia returns one media item, pending or not, or ErrNotFound.
func (db *DB) GetMedia(ctx context.Context, mediaID string) (*Media, error) {
	m, err := scanMedia(db.reader.QueryRowContext(ctx, `SELECT `+mediaColumns+mediaFrom+` WHERE m.media_id = $1`, mediaID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get media %s: %w", mediaID, err)
	}
	return m, nil
}

// CreatePendingMedia stores a media ID created ahead of its upload. It
// first forgets every pending ID past its expiry (so expiry needs no
// background job), then refuses with ErrTooManyPending when the user
// already has maxPending unexpired ones.
func (db *DB) CreatePendingMedia(ctx context.Context, m *Media, maxPending int, nowMS int64) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM media WHERE sha256 IS NULL AND expires_ts <= $1`, nowMS); err != nil {
			return fmt.Errorf("expire pending media: %w", err)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM media WHERE user_id = $1 AND sha256 IS NULL`, m.UserID).Scan(&n); err != nil {
			return fmt.Errorf("count pending media: %w", err)
		}
		if n >= maxPending {
			return ErrTooManyPending
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO media (media_id, user_id, created_ts, expires_ts) VALUES ($1, $2, $3, $4)`,
			m.MediaID, m.UserID, m.CreatedTS, m.ExpiresTS)
		if err != nil {
			return fmt.Errorf("create pending media: %w", err)
		}
		return nil
	})
}

// ensureContent records a content file unless it is already known.
func ensureContent(ctx context.Context, tx *sql.Tx, c *MediaContent) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO media_content (sha256, size, sniffed_type, created_ts) VALUES ($1, $2, $3, $4)
ON CONFLICT (sha256) DO NOTHING`, c.SHA256, c.Size, c.SniffedType, c.CreatedTS)
	if err != nil {
		return fmt.Errorf("store media content %s: %w", c.SHA256, err)
	}
	return nil
}

// checkQuota refuses an upload of size bytes that would take the user past
// quota bytes (0: no quota). Media fetched for URL previews do not count.
func checkQuota(ctx context.Context, tx *sql.Tx, userID id.UserID, size, quota int64) error {
	if quota <= 0 {
		return nil
	}
	var used int64
	err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(size), 0) FROM media WHERE user_id = $1 AND sha256 IS NOT NULL AND url_cache IS NULL`, userID).Scan(&used)
	if err != nil {
		return fmt.Errorf("media usage of %s: %w", userID, err)
	}
	if used+size > quota {
		return ErrQuotaExceeded
	}
	return nil
}

// StoreMedia records a new media item with its content in one
// transaction, checking the user's quota (0: none) inside it so that
// concurrent uploads cannot both slip under it.
func (db *DB) StoreMedia(ctx context.Context, m *Media, c *MediaContent, quota int64) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		if m.URLCache == "" {
			if err := checkQuota(ctx, tx, m.UserID, m.Size, quota); err != nil {
				return err
			}
		}
		if err := ensureContent(ctx, tx, c); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO media (media_id, user_id, content_type, upload_name, size, sha256, created_ts, uploaded_ts, url_cache)
VALUES ($1, $2, $3, NULLIF($4, ''), $5, $6, $7, $8, NULLIF($9, ''))`,
			m.MediaID, m.UserID, m.ContentType, m.UploadName, m.Size, c.SHA256, m.CreatedTS, m.UploadedTS, m.URLCache)
		if err != nil {
			return fmt.Errorf("store media %s: %w", m.MediaID, err)
		}
		return nil
	})
}

// FinishPendingMedia gives a pending media ID its content: ErrNotFound if
// the ID is gone (expired and swept, or deleted), ErrMediaUploaded if some
// other request filled it first.
func (db *DB) FinishPendingMedia(ctx context.Context, m *Media, c *MediaContent, quota int64) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		if err := checkQuota(ctx, tx, m.UserID, m.Size, quota); err != nil {
			return err
		}
		if err := ensureContent(ctx, tx, c); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE media SET content_type = $1, upload_name = NULLIF($2, ''), size = $3, sha256 = $4,
uploaded_ts = $5, expires_ts = NULL WHERE media_id = $6 AND sha256 IS NULL`,
			m.ContentType, m.UploadName, m.Size, c.SHA256, m.UploadedTS, m.MediaID)
		if err != nil {
			return fmt.Errorf("finish media %s: %w", m.MediaID, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM media WHERE media_id = $1)`, m.MediaID).Scan(&exists); err != nil {
			return fmt.Errorf("finish media %s: %w", m.MediaID, err)
		}
		if exists {
			return ErrMediaUploaded
		}
		return ErrNotFound
	})
}

// MediaUsage is the bytes a user's uploads take (counting each upload, even
// of content stored once for several), URL-preview media left out.
func (db *DB) MediaUsage(ctx context.Context, userID id.UserID) (int64, error) {
	var used int64
	err := db.reader.QueryRowContext(ctx, `SELECT COALESCE(SUM(size), 0) FROM media WHERE user_id = $1 AND sha256 IS NOT NULL AND url_cache IS NULL`, userID).Scan(&used)
	if err != nil {
		return 0, fmt.Errorf("media usage of %s: %w", userID, err)
	}
	return used, nil
}

// GetMediaContent returns a content file's record, or ErrNotFound.
func (db *DB) GetMediaContent(ctx context.Context, sha256 string) (*MediaContent, error) {
	var c MediaContent
	err := db.reader.QueryRowContext(ctx, `SELECT sha256, size, sniffed_type, created_ts FROM media_content WHERE sha256 = $1`, sha256).
		Scan(&c.SHA256, &c.Size, &c.SniffedType, &c.CreatedTS)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get media content %s: %w", sha256, err)
	}
	return &c, nil
}

// CountMediaContent is the number of distinct content files recorded.
func (db *DB) CountMediaContent(ctx context.Context) (int, error) {
	var n int
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM media_content`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count media content: %w", err)
	}
	return n, nil
}

const thumbnailColumns = `t.source_sha256, t.width, t.height, t.method, t.thumb_sha256, t.content_type, t.thumb_width, t.thumb_height, t.created_ts, c.size`

// GetMediaThumbnail returns the thumbnail of a content file at a preset,
// or ErrNotFound if none was made yet.
func (db *DB) GetMediaThumbnail(ctx context.Context, sourceSHA256 string, width, height int, method string) (*MediaThumbnail, error) {
	var t MediaThumbnail
	err := db.reader.QueryRowContext(ctx, `SELECT `+thumbnailColumns+` FROM media_thumbnails t JOIN media_content c ON c.sha256 = t.thumb_sha256
WHERE t.source_sha256 = $1 AND t.width = $2 AND t.height = $3 AND t.method = $4`, sourceSHA256, width, height, method).
		Scan(&t.SourceSHA256, &t.Width, &t.Height, &t.Method, &t.SHA256, &t.ContentType, &t.ThumbWidth, &t.ThumbHeight, &t.CreatedTS, &t.Size)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get thumbnail of %s: %w", sourceSHA256, err)
	}
	return &t, nil
}

// StoreMediaThumbnail records a generated thumbnail and its content. It
// answers ErrNotFound when the source content is gone (its last media item
// was deleted while the thumbnail was being made): the caller then drops
// the thumbnail's file if nothing else uses it.
func (db *DB) StoreMediaThumbnail(ctx context.Context, t *MediaThumbnail, c *MediaContent) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM media_content WHERE sha256 = $1)`, t.SourceSHA256).Scan(&exists); err != nil {
			return fmt.Errorf("store thumbnail of %s: %w", t.SourceSHA256, err)
		}
		if !exists {
			return ErrNotFound
		}
		if err := ensureContent(ctx, tx, c); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO media_thumbnails (source_sha256, width, height, method, thumb_sha256, content_type, thumb_width, thumb_height, created_ts)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
			t.SourceSHA256, t.Width, t.Height, t.Method, c.SHA256, t.ContentType, t.ThumbWidth, t.ThumbHeight, t.CreatedTS)
		if err != nil {
			return fmt.Errorf("store thumbnail of %s: %w", t.SourceSHA256, err)
		}
		return nil
	})
}

// MediaContentInUse reports whether a content file is recorded at all; a
// file on disk without a record is unused.
func (db *DB) MediaContentInUse(ctx context.Context, sha256 string) (bool, error) {
	var exists bool
	err := db.reader.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM media_content WHERE sha256 = $1)`, sha256).Scan(&exists)
	if err != nil {
		return false, fmt.Errorf("media content %s: %w", sha256, err)
	}
	return exists, nil
}

// collectContent forgets a content file once nothing refers to it: no media
// item (local, or a copy of a remote one), and no thumbnail of some other
// file. Its own thumbnails go with it, and then their files too if nothing
// else uses them. It returns the hashes whose records were removed, so the
// caller can delete the files.
func collectContent(ctx context.Context, tx *sql.Tx, sha string) ([]string, error) {
	var live bool
	err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM media WHERE sha256 = $1)
OR EXISTS (SELECT 1 FROM remote_media WHERE sha256 = $1)
OR EXISTS (SELECT 1 FROM media_thumbnails WHERE thumb_sha256 = $1 AND source_sha256 <> $1)`, sha).Scan(&live)
	if err != nil {
		return nil, fmt.Errorf("references to %s: %w", sha, err)
	}
	if live {
		return nil, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT thumb_sha256 FROM media_thumbnails WHERE source_sha256 = $1`, sha)
	if err != nil {
		return nil, fmt.Errorf("thumbnails of %s: %w", sha, err)
	}
	var thumbs []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return nil, fmt.Errorf("thumbnails of %s: %w", sha, err)
		}
		thumbs = append(thumbs, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("thumbnails of %s: %w", sha, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM media_thumbnails WHERE source_sha256 = $1`, sha); err != nil {
		return nil, fmt.Errorf("delete thumbnails of %s: %w", sha, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM media_content WHERE sha256 = $1`, sha); err != nil {
		return nil, fmt.Errorf("delete media content %s: %w", sha, err)
	}
	gone := []string{sha}
	for _, t := range thumbs {
		if t == sha {
			continue
		}
		more, err := collectContent(ctx, tx, t)
		if err != nil {
			return nil, err
		}
		gone = append(gone, more...)
	}
	return gone, nil
}

// DeleteMedia removes media items (missing IDs are skipped) and the
// content records no longer used. It returns the IDs deleted and the
// hashes of content files that are now unused, for the caller to remove.
func (db *DB) DeleteMedia(ctx context.Context, mediaIDs []string) (deleted, unused []string, err error) {
	err = db.WriteTx(ctx, func(tx *sql.Tx) error {
		deleted, unused = nil, nil
		var shas []string
		for _, mid := range mediaIDs {
			var sha sql.NullString
			err := tx.QueryRowContext(ctx, `DELETE FROM media WHERE media_id = $1 RETURNING sha256`, mid).Scan(&sha)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return fmt.Errorf("delete media %s: %w", mid, err)
			}
			deleted = append(deleted, mid)
			if sha.Valid {
				shas = append(shas, sha.String)
			}
		}
		for _, sha := range shas {
			gone, err := collectContent(ctx, tx, sha)
			if err != nil {
				return err
			}
			unused = append(unused, gone...)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return deleted, unused, nil
}

// MediaQuery pages through a user's media, as Synapse's admin API does.
type MediaQuery struct {
	From      int
	Limit     int
	OrderBy   string // a column name of Synapse's API; see mediaOrder
	Backwards bool
}

// mediaOrder maps Synapse's order_by values to columns. Palpo has no
// quarantine and does not track access times, so those orders fall back to
// the upload time.
var mediaOrder = map[string]string{
	"":                     "m.created_ts",
	"created_ts":           "m.created_ts",
	"media_id":             "m.media_id",
	"upload_name":          "m.upload_name",
	"media_length":         "m.size",
	"media_type":           "m.content_type",
	"last_access_ts":       "m.created_ts",
	"quarantined_by":       "m.created_ts",
	"safe_from_quarantine": "m.created_ts",
}

// ValidMediaOrder reports whether order_by names a sortable column.
func ValidMediaOrder(orderBy string) bool {
	_, ok := mediaOrder[orderBy]
	return ok
}

// ListUserMedia returns one page of a user's uploaded media (pending IDs
// and URL-preview media left out) and how many there are in all.
func (db *DB) ListUserMedia(ctx context.Context, userID id.UserID, q MediaQuery) ([]Media, int, error) {
	col, ok := mediaOrder[q.OrderBy]
	if !ok {
		return nil, 0, fmt.Errorf("list media: unknown order %q", q.OrderBy)
	}
	dir := "ASC"
	if q.Backwards {
		dir = "DESC"
	}
	const where = ` WHERE m.user_id = $1 AND m.sha256 IS NOT NULL AND m.url_cache IS NULL`
	var total int
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM media m`+where, userID).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count media of %s: %w", userID, err)
	}
	rows, err := db.reader.QueryContext(ctx, `SELECT `+mediaColumns+mediaFrom+where+
		` ORDER BY `+col+` `+dir+`, m.media_id `+dir+` LIMIT $2 OFFSET $3`, userID, q.Limit, q.From)
	if err != nil {
		return nil, 0, fmt.Errorf("list media of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []Media
	for rows.Next() {
		m, err := scanMedia(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("list media of %s: %w", userID, err)
		}
		out = append(out, *m)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list media of %s: %w", userID, err)
	}
	return out, total, nil
}
