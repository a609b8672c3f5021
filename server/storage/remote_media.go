package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// RemoteMedia is a cached copy of another server's media item
// (mxc://<Origin>/<MediaID>).
type RemoteMedia struct {
	Origin       string
	MediaID      string
	ContentType  string
	UploadName   string
	Size         int64
	SHA256       string
	FetchedTS    int64
	LastAccessTS int64
	SniffedType  string // from its content
}

const (
	selectRemoteMedia = `SELECT r.origin, r.media_id, r.content_type, COALESCE(r.upload_name, ''), r.size, r.sha256,
r.fetched_ts, r.last_access_ts, COALESCE(c.sniffed_type, '')
FROM remote_media r LEFT JOIN media_content c ON c.sha256 = r.sha256 WHERE r.origin = $1 AND r.media_id = $2`
	insertRemoteMedia = `INSERT INTO remote_media (origin, media_id, content_type, upload_name, size, sha256, fetched_ts, last_access_ts)
VALUES ($1, $2, $3, NULLIF($4, ''), $5, $6, $7, $8) ON CONFLICT (origin, media_id) DO NOTHING`
	touchRemoteMedia  = `UPDATE remote_media SET last_access_ts = $3 WHERE origin = $1 AND media_id = $2 AND last_access_ts < $3`
	remoteMediaUsage  = `SELECT COALESCE(SUM(size), 0) FROM remote_media`
	oldestRemoteMedia = `SELECT origin, media_id, size FROM remote_media ORDER BY last_access_ts, origin, media_id LIMIT $1`
	deleteRemoteMedia = `DELETE FROM remote_media WHERE origin = $1 AND media_id = $2 RETURNING sha256`
)

// GetRemoteMedia returns the cached copy of another server's media item,
// or ErrNotFound.
func (db *DB) GetRemoteMedia(ctx context.Context, origin, mediaID string) (*RemoteMedia, error) {
	var r RemoteMedia
	err := db.reader.QueryRowContext(ctx, selectRemoteMedia, origin, mediaID).Scan(&r.Origin, &r.MediaID, &r.ContentType,
		&r.UploadName, &r.Size, &r.SHA256, &r.FetchedTS, &r.LastAccessTS, &r.SniffedType)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get remote media %s/%s: %w", origin, mediaID, err)
	}
	return &r, nil
}

// StoreRemoteMedia records a fetched copy of another server's media with
// its content. If a copy was recorded meanwhile, that one is kept, and the
// hashes of content files left unused by the refused one are returned for
// the caller to remove.
func (db *DB) StoreRemoteMedia(ctx context.Context, r *RemoteMedia, c *MediaContent) (unused []string, err error) {
	err = db.WriteTx(ctx, func(tx *sql.Tx) error {
		unused = nil
		if err := ensureContent(ctx, tx, c); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, insertRemoteMedia, r.Origin, r.MediaID, r.ContentType, r.UploadName, r.Size,
			c.SHA256, r.FetchedTS, r.LastAccessTS)
		if err != nil {
			return fmt.Errorf("store remote media %s/%s: %w", r.Origin, r.MediaID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			unused, err = collectContent(ctx, tx, c.SHA256)
			return err
		}
		return nil
	})
	return unused, err
}

// TouchRemoteMedia moves a cached copy's last access forward to nowMS,
// which keeps it from eviction longer.
func (db *DB) TouchRemoteMedia(ctx context.Context, origin, mediaID string, nowMS int64) error {
	return db.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, touchRemoteMedia, origin, mediaID, nowMS); err != nil {
			return fmt.Errorf("touch remote media %s/%s: %w", origin, mediaID, err)
		}
		return nil
	})
}

// RemoteMediaUsage is the bytes the cached copies of other servers' media
// take (each copy counted, as MediaUsage counts uploads).
func (db *DB) RemoteMediaUsage(ctx context.Context) (int64, error) {
	var n int64
	if err := db.reader.QueryRowContext(ctx, remoteMediaUsage).Scan(&n); err != nil {
		return 0, fmt.Errorf("remote media usage: %w", err)
	}
	return n, nil
}

// evictBatch is how many candidates one eviction step reads.
const evictBatch = 100

// EvictRemoteMedia forgets the least recently used copies of remote media
// until all of them together take at most maxBytes, in one transaction. It
// returns how many copies went and the hashes of the content files that
// are now unused, for the caller to remove.
func (db *DB) EvictRemoteMedia(ctx context.Context, maxBytes int64) (evicted int, unused []string, err error) {
	err = db.WriteTx(ctx, func(tx *sql.Tx) error {
		evicted, unused = 0, nil
		var total int64
		if err := tx.QueryRowContext(ctx, remoteMediaUsage).Scan(&total); err != nil {
			return fmt.Errorf("remote media usage: %w", err)
		}
		for total > maxBytes {
			type key struct {
				origin, mediaID string
				size            int64
			}
			rows, err := tx.QueryContext(ctx, oldestRemoteMedia, evictBatch)
			if err != nil {
				return fmt.Errorf("oldest remote media: %w", err)
			}
			var batch []key
			for rows.Next() {
				var k key
				if err := rows.Scan(&k.origin, &k.mediaID, &k.size); err != nil {
					rows.Close()
					return fmt.Errorf("oldest remote media: %w", err)
				}
				batch = append(batch, k)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("oldest remote media: %w", err)
			}
			if len(batch) == 0 {
				return nil
			}
			for _, k := range batch {
				if total <= maxBytes {
					break
				}
				var sha string
				if err := tx.QueryRowContext(ctx, deleteRemoteMedia, k.origin, k.mediaID).Scan(&sha); err != nil {
					return fmt.Errorf("evict remote media %s/%s: %w", k.origin, k.mediaID, err)
				}
				total -= k.size
				evicted++
				gone, err := collectContent(ctx, tx, sha)
				if err != nil {
					return err
				}
				unused = append(unused, gone...)
			}
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return evicted, unused, nil
}
