package media

import (
	"context"
	"errors"
	"io"
	"time"
	"unicode/utf8"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// UploadRequest is one upload: its body and what the uploader said of it.
type UploadRequest struct {
	Body io.Reader
	// ContentLength is the body's announced size, or -1 if unknown.
	ContentLength int64
	ContentType   string
	FileName      string
}

// maxFileNameBytes bounds stored file names; real ones are far shorter.
const maxFileNameBytes = 1024

func (s *Service) checkUpload(ctx context.Context, userID id.UserID, req *UploadRequest) error {
	if len(req.FileName) > maxFileNameBytes {
		return mautrix.MInvalidParam.WithMessage("filename is longer than %d bytes", maxFileNameBytes)
	}
	if !utf8.ValidString(req.FileName) {
		return mautrix.MInvalidParam.WithMessage("filename must be UTF-8")
	}
	if req.ContentLength > s.cfg.MaxUploadBytes {
		return tooLarge(s.cfg.MaxUploadBytes)
	}
	// Refuse an upload that announces it will break the quota before
	// reading it; the quota is checked again, exactly, when it is stored.
	if q := s.cfg.MaxBytesPerUser; q > 0 && req.ContentLength > 0 {
		used, err := s.db.MediaUsage(ctx, userID)
		if err != nil {
			return err
		}
		if used+req.ContentLength > q {
			return errQuota
		}
	}
	return nil
}

// commit places a temporary file under its content name and records it
// with record, as one step for concurrent deletions of the same content.
// If record fails, a file that commit itself placed is removed again.
func (s *Service) commit(tmp *tempFile, sniffed string, record func(*storage.MediaContent) error) error {
	c := &storage.MediaContent{SHA256: tmp.sha256, Size: tmp.size, SniffedType: sniffed, CreatedTS: s.nowMS()}
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	created, err := s.store.place(tmp)
	if err != nil {
		return err
	}
	if err := record(c); err != nil {
		if created {
			if rmErr := s.store.remove(c.SHA256); rmErr != nil {
				s.log.Warn("could not remove a media file after a failed upload", "sha256", c.SHA256, "error", rmErr)
			}
		}
		return err
	}
	return nil
}

func storeErr(err error) error {
	switch {
	case errors.Is(err, storage.ErrQuotaExceeded):
		return errQuota
	case errors.Is(err, storage.ErrMediaUploaded):
		return ErrCannotOverwrite
	case errors.Is(err, storage.ErrNotFound):
		return errNotFound
	}
	return err
}

// Upload stores a new upload (POST /upload) and returns its mxc:// URI.
// The body is streamed to disk; content already stored is kept once.
func (s *Service) Upload(ctx context.Context, userID id.UserID, req UploadRequest) (id.ContentURI, error) {
	if err := s.checkUpload(ctx, userID, &req); err != nil {
		return id.ContentURI{}, err
	}
	tmp, err := s.store.writeTemp(req.Body, s.cfg.MaxUploadBytes)
	if err != nil {
		return id.ContentURI{}, err
	}
	now := s.nowMS()
	m := &storage.Media{
		MediaID: newMediaID(), UserID: userID, ContentType: NormalizeContentType(req.ContentType),
		UploadName: req.FileName, Size: tmp.size, CreatedTS: now, UploadedTS: now,
	}
	err = s.commit(tmp, Sniff(tmp.head), func(c *storage.MediaContent) error {
		return s.db.StoreMedia(ctx, m, c, s.cfg.MaxBytesPerUser)
	})
	if err != nil {
		return id.ContentURI{}, storeErr(err)
	}
	s.log.Debug("media uploaded", "user", userID, "media_id", m.MediaID, "size", m.Size)
	return s.URI(m.MediaID), nil
}

// CreatePending makes a media ID for a later upload (POST /create) and
// returns it with the time it expires unused.
func (s *Service) CreatePending(ctx context.Context, userID id.UserID) (id.ContentURI, time.Time, error) {
	now := s.Now()
	expires := now.Add(time.Duration(s.cfg.PendingExpirySeconds) * time.Second)
	m := &storage.Media{MediaID: newMediaID(), UserID: userID, CreatedTS: now.UnixMilli(), ExpiresTS: expires.UnixMilli()}
	err := s.db.CreatePendingMedia(ctx, m, s.cfg.MaxPendingUploads, now.UnixMilli())
	if errors.Is(err, storage.ErrTooManyPending) {
		return id.ContentURI{}, time.Time{}, errTooManyUnused
	}
	if err != nil {
		return id.ContentURI{}, time.Time{}, err
	}
	return s.URI(m.MediaID), time.UnixMilli(m.ExpiresTS), nil
}

// UploadPending uploads the content of a media ID made by CreatePending
// (PUT /upload/{serverName}/{mediaId}). Only its creator may, and only
// once: M_CANNOT_OVERWRITE_MEDIA afterwards. An unknown or expired ID is
// M_NOT_FOUND, as is one of another server (it cannot have been made here).
func (s *Service) UploadPending(ctx context.Context, userID id.UserID, serverName, mediaID string, req UploadRequest) error {
	if err := s.checkMXC(serverName, mediaID); err != nil {
		return err
	}
	m, err := s.getLive(ctx, mediaID)
	if err != nil {
		return err
	}
	if m.UserID != userID {
		return mautrix.MForbidden.WithMessage("Only the user who created this media ID may upload to it")
	}
	if !m.Pending() {
		return ErrCannotOverwrite
	}
	if err := s.checkUpload(ctx, userID, &req); err != nil {
		return err
	}
	tmp, err := s.store.writeTemp(req.Body, s.cfg.MaxUploadBytes)
	if err != nil {
		return err
	}
	m.ContentType = NormalizeContentType(req.ContentType)
	m.UploadName = req.FileName
	m.Size = tmp.size
	m.UploadedTS = s.nowMS()
	err = s.commit(tmp, Sniff(tmp.head), func(c *storage.MediaContent) error {
		return s.db.FinishPendingMedia(ctx, m, c, s.cfg.MaxBytesPerUser)
	})
	if err != nil {
		return storeErr(err)
	}
	s.uploaded(mediaID)
	return nil
}
