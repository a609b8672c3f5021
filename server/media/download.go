package media

import (
	"context"
	"os"
	"time"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Content is a file ready to be served, with the headers that go with it.
// The caller closes File.
type Content struct {
	File        *os.File
	Size        int64
	ContentType string
	// Disposition is the Content-Disposition header.
	Disposition string
	ModTime     time.Time
	// ETag is quoted, ready for the header. Content never changes under a
	// media ID, so the hash of the bytes is a strong validator.
	ETag string
}

// DownloadRequest identifies the media to download and how.
type DownloadRequest struct {
	ServerName string
	MediaID    string
	// FileName, when set, replaces the uploader's file name.
	FileName *string
	// Timeout is how long to wait for a pending upload (timeout_ms).
	Timeout time.Duration
	// Unauthenticated marks the deprecated /_matrix/media/v3 endpoints,
	// which serve only media uploaded before the configured freeze.
	Unauthenticated bool
}

// mediaFor finds a media item with its content for a download or a
// thumbnail, applying the freeze of unauthenticated access: a local one, or
// the cached copy of another server's (fetched first if needed).
func (s *Service) mediaFor(ctx context.Context, serverName, mediaID string, timeout time.Duration, unauthenticated bool) (*storage.Media, error) {
	if err := validMXC(serverName, mediaID); err != nil {
		return nil, err
	}
	if serverName != s.serverName {
		return s.remoteMedia(ctx, serverName, mediaID, timeout, unauthenticated)
	}
	if !unauthenticated {
		return s.getReady(ctx, mediaID, timeout)
	}
	// Frozen media are answered as the spec says (404 M_NOT_FOUND) without
	// waiting. Media created before the freeze but still being uploaded is
	// waited for like on the authenticated endpoints (504
	// M_NOT_YET_UPLOADED after timeout_ms), then judged by its upload time.
	cutoff, ok := s.cfg.UnauthenticatedCutoff()
	if !ok {
		return nil, errFrozen
	}
	m, err := s.getLive(ctx, mediaID)
	if err != nil {
		return nil, err
	}
	if m.Pending() {
		if m.CreatedTS >= cutoff.UnixMilli() {
			return nil, errFrozen
		}
		if m, err = s.getReady(ctx, mediaID, timeout); err != nil {
			return nil, err
		}
	}
	if m.UploadedTS >= cutoff.UnixMilli() {
		return nil, errFrozen
	}
	return m, nil
}

// Download opens a media item's content with the headers to serve it: its
// uploader's content type, and inline only for the spec's safe types whose
// bytes do not look like HTML or SVG.
func (s *Service) Download(ctx context.Context, req DownloadRequest) (*Content, error) {
	m, err := s.mediaFor(ctx, req.ServerName, req.MediaID, req.Timeout, req.Unauthenticated)
	if err != nil {
		return nil, err
	}
	f, err := s.store.open(m.SHA256)
	if err != nil {
		return nil, err
	}
	name := m.UploadName
	if req.FileName != nil {
		name = *req.FileName
	}
	ct := m.ContentType
	if ct == "" {
		ct = defaultContentType
	}
	return &Content{
		File:        f,
		Size:        m.Size,
		ContentType: ct,
		Disposition: ContentDisposition(Inline(ct, m.SniffedType), name),
		ModTime:     time.UnixMilli(m.UploadedTS),
		ETag:        `"` + m.SHA256 + `"`,
	}, nil
}
