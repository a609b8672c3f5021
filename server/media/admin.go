package media

import (
	"context"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Info is what the admin API shows of a media item.
type Info struct {
	MediaID     string
	UserID      id.UserID
	ContentType string
	UploadName  string
	Size        int64
	SHA256      string
	CreatedTS   int64
	UploadedTS  int64
	URLCache    string
}

func infoOf(m *storage.Media) Info {
	return Info{
		MediaID: m.MediaID, UserID: m.UserID, ContentType: m.ContentType, UploadName: m.UploadName,
		Size: m.Size, SHA256: m.SHA256, CreatedTS: m.CreatedTS, UploadedTS: m.UploadedTS, URLCache: m.URLCache,
	}
}

// localOnly is the admin API's answer for another server's media, as
// Synapse's ("Can only delete local media").
func (s *Service) localOnly(serverName, mediaID string) error {
	if serverName != s.serverName && config.ValidateServerName(serverName) == nil {
		return mautrix.MInvalidParam.WithMessage("Can only manage local media; copies of remote media are managed by media.remote_cache_max_bytes")
	}
	return s.checkMXC(serverName, mediaID)
}

// Info returns one local media item (pending ones included).
func (s *Service) Info(ctx context.Context, serverName, mediaID string) (*Info, error) {
	if err := s.localOnly(serverName, mediaID); err != nil {
		return nil, err
	}
	m, err := s.db.GetMedia(ctx, mediaID)
	if err == storage.ErrNotFound {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	info := infoOf(m)
	return &info, nil
}

// Delete removes one local media item. Its file goes too unless other
// media items (the same bytes uploaded again) or thumbnails still use it;
// its thumbnails go with the file.
func (s *Service) Delete(ctx context.Context, serverName, mediaID string) error {
	if err := s.localOnly(serverName, mediaID); err != nil {
		return err
	}
	deleted, err := s.delete(ctx, []string{mediaID})
	if err != nil {
		return err
	}
	if len(deleted) == 0 {
		return errNotFound
	}
	return nil
}

// delete removes media items and then the files nothing uses any more.
func (s *Service) delete(ctx context.Context, mediaIDs []string) ([]string, error) {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	deleted, unused, err := s.db.DeleteMedia(ctx, mediaIDs)
	if err != nil {
		return nil, err
	}
	for _, sha := range unused {
		if err := s.store.remove(sha); err != nil {
			// The record is gone, so the file is only wasted space.
			s.log.Warn("could not remove an unused media file", "sha256", sha, "error", err)
		}
	}
	if len(deleted) > 0 {
		s.log.Info("media deleted", "media_ids", deleted, "files_removed", len(unused))
	}
	return deleted, nil
}

// UserMediaQuery pages through a user's media (Synapse's parameters).
type UserMediaQuery = storage.MediaQuery

// ValidOrder reports whether order_by is one the media list accepts.
func ValidOrder(orderBy string) bool { return storage.ValidMediaOrder(orderBy) }

// ListUserMedia returns a page of a user's uploads and their total count.
// Media being uploaded and copies made for URL previews are left out.
func (s *Service) ListUserMedia(ctx context.Context, userID id.UserID, q UserMediaQuery) ([]Info, int, error) {
	ms, total, err := s.db.ListUserMedia(ctx, userID, q)
	if err != nil {
		return nil, 0, err
	}
	out := make([]Info, len(ms))
	for i := range ms {
		out[i] = infoOf(&ms[i])
	}
	return out, total, nil
}

// DeleteUserMedia deletes the page of a user's media that ListUserMedia
// would return, and returns the IDs deleted.
func (s *Service) DeleteUserMedia(ctx context.Context, userID id.UserID, q UserMediaQuery) ([]string, error) {
	ms, _, err := s.db.ListUserMedia(ctx, userID, q)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(ms))
	for i := range ms {
		ids[i] = ms[i].MediaID
	}
	return s.delete(ctx, ids)
}

// Usage is the bytes of a user's uploads (as their quota counts them).
func (s *Service) Usage(ctx context.Context, userID id.UserID) (int64, error) {
	return s.db.MediaUsage(ctx, userID)
}
