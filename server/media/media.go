// Package media is Palpo's media repository (the spec's content
// repository): uploads streamed to disk and stored once per distinct
// content, downloads with safe headers, thumbnails made once and cached,
// the limits that keep a server safe from big or malicious files, and URL
// previews. Bytes live under <data dir>/media/, named by their SHA-256;
// what is known about them (uploader, type, name, size) is in the database.
//
// Media of other servers is fetched over federation and kept as cached
// copies (remote.go); with federation off it is M_NOT_FOUND.
package media

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"maunium.net/go/mautrix"
	mfed "maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Errors with the spec's codes.
var (
	// ErrNotYetUploaded is the spec's 504 for media created but not
	// uploaded within the caller's timeout.
	ErrNotYetUploaded = mautrix.RespError{ErrCode: "M_NOT_YET_UPLOADED", StatusCode: http.StatusGatewayTimeout, Err: "Content has not yet been uploaded"}
	// ErrCannotOverwrite is the spec's 409 for a second upload to one ID.
	ErrCannotOverwrite = mautrix.RespError{ErrCode: "M_CANNOT_OVERWRITE_MEDIA", StatusCode: http.StatusConflict, Err: "Media already uploaded"}

	errNotFound      = mautrix.MNotFound.WithMessage("Media not found")
	errRemote        = mautrix.MNotFound.WithMessage("Media from other servers is not available: this server does not federate")
	errFrozen        = mautrix.MNotFound.WithMessage("Media not found: use the authenticated endpoint /_matrix/client/v1/media/")
	errInterrupted   = mautrix.MUnknown.WithStatus(http.StatusBadRequest).WithMessage("The upload ended before all of its bytes arrived")
	errQuota         = mautrix.MForbidden.WithMessage("Cannot upload this content: it would exceed your storage quota")
	errTooManyUnused = mautrix.MLimitExceeded.WithMessage("Too many media IDs are waiting for their upload; upload to them or wait for them to expire")
)

// Service is the media repository.
type Service struct {
	db         *storage.DB
	cfg        config.Media
	serverName string
	store      *store
	log        *slog.Logger
	// Now is the clock (tests move it).
	Now func() time.Time

	waitMu  sync.Mutex
	waiters map[string]*waiter

	thumbGroup singleflight.Group
	// thumbSlots bounds how many images are decoded at once: a decoded
	// image takes up to max_image_pixels × 8 bytes.
	thumbSlots chan struct{}

	preview *previewer

	// Other servers' media (remote.go).
	remoteMu    sync.Mutex
	remote      *mfed.Client
	redirects   *http.Client
	remoteGroup singleflight.Group
	failMu      sync.Mutex
	failures    map[string]failure
}

// New makes the media service for files under dataDir/media. It touches
// neither the disk nor the network until used.
func New(db *storage.DB, cfg *config.Config, dataDir string, log *slog.Logger) *Service {
	s := &Service{
		db:         db,
		cfg:        cfg.Media,
		serverName: cfg.ServerName,
		store:      &store{dir: filepath.Join(dataDir, "media")},
		log:        log,
		Now:        time.Now,
		waiters:    map[string]*waiter{},
		thumbSlots: make(chan struct{}, 2),
		failures:   map[string]failure{},
	}
	s.preview = newPreviewer(s, cfg.Media.URLPreview)
	return s
}

// Start removes temporary files an interrupted run left behind. It runs
// before the server takes requests, so no upload is in progress.
func (s *Service) Start() error {
	return s.store.cleanTemp()
}

// MaxUploadBytes is the largest upload accepted.
func (s *Service) MaxUploadBytes() int64 { return s.cfg.MaxUploadBytes }

// Dir is the directory holding the media files.
func (s *Service) Dir() string { return s.store.dir }

func (s *Service) nowMS() int64 { return s.Now().UnixMilli() }

// mediaIDChars are the characters of the media IDs Palpo makes: the spec
// allows [A-Za-z0-9_-]; leaving out '_' and '-' keeps IDs easy to select.
const mediaIDChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newMediaID returns 24 random characters (142 bits), as Synapse's are.
func newMediaID() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	for i := range b {
		// 256 = 4×62 + 8: the bias is negligible for an unguessable name.
		b[i] = mediaIDChars[int(b[i])%len(mediaIDChars)]
	}
	return string(b)
}

// ValidMediaID reports whether a media ID has only the characters the spec
// allows (A-Z, a-z, 0-9, '_' and '-'); the spec requires this check so that
// an ID can never be used to walk a file system.
func ValidMediaID(mediaID string) bool {
	if mediaID == "" || len(mediaID) > 255 {
		return false
	}
	for i := 0; i < len(mediaID); i++ {
		c := mediaID[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validMXC validates the two parts of an mxc:// URI from a request path:
// malformed parts are M_INVALID_PARAM.
func validMXC(serverName, mediaID string) error {
	if err := config.ValidateServerName(serverName); err != nil {
		return mautrix.MInvalidParam.WithMessage("Invalid server name %q in the media URI: %v", serverName, err)
	}
	if !ValidMediaID(mediaID) {
		return mautrix.MInvalidParam.WithMessage("Invalid media ID %q: only letters, digits, '_' and '-' are allowed", mediaID)
	}
	return nil
}

// checkMXC validates an mxc:// URI of local media: malformed parts are
// M_INVALID_PARAM, another server's media M_NOT_FOUND.
func (s *Service) checkMXC(serverName, mediaID string) error {
	if err := validMXC(serverName, mediaID); err != nil {
		return err
	}
	if serverName != s.serverName {
		return errRemote
	}
	return nil
}

// URI is the mxc:// URI of a local media ID.
func (s *Service) URI(mediaID string) id.ContentURI {
	return id.ContentURI{Homeserver: s.serverName, FileID: mediaID}
}

// waiter lets downloads of a pending media ID wait for its upload.
type waiter struct {
	done chan struct{}
	refs int
}

// watch returns a channel closed when mediaID is uploaded, and a release
// function. Watch before reading the database, so that an upload landing
// between the read and the wait is not missed.
func (s *Service) watch(mediaID string) (<-chan struct{}, func()) {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	w := s.waiters[mediaID]
	if w == nil {
		w = &waiter{done: make(chan struct{})}
		s.waiters[mediaID] = w
	}
	w.refs++
	return w.done, func() {
		s.waitMu.Lock()
		defer s.waitMu.Unlock()
		w.refs--
		if w.refs == 0 && s.waiters[mediaID] == w {
			delete(s.waiters, mediaID)
		}
	}
}

// uploaded wakes the downloads waiting for mediaID.
func (s *Service) uploaded(mediaID string) {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	if w := s.waiters[mediaID]; w != nil {
		close(w.done)
		delete(s.waiters, mediaID)
	}
}

// maxWait caps the timeout_ms a client may ask for.
const maxWait = 60 * time.Second

// getReady returns a local media item that has content, waiting up to
// timeout for a pending one's upload.
func (s *Service) getReady(ctx context.Context, mediaID string, timeout time.Duration) (*storage.Media, error) {
	done, release := s.watch(mediaID)
	defer release()
	m, err := s.getLive(ctx, mediaID)
	if err != nil || !m.Pending() {
		return m, err
	}
	timeout = min(timeout, maxWait)
	if deadline := time.UnixMilli(m.ExpiresTS); s.Now().Add(timeout).After(deadline) {
		timeout = max(0, deadline.Sub(s.Now()))
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		m, err := s.getLive(ctx, mediaID)
		if err == nil && m.Pending() {
			return nil, ErrNotYetUploaded
		}
		return m, err
	case <-t.C:
		return nil, ErrNotYetUploaded
	case <-ctx.Done():
		// The client is gone; nobody reads this answer.
		return nil, ErrNotYetUploaded
	}
}

// getLive reads a media item; an expired pending ID is not found.
func (s *Service) getLive(ctx context.Context, mediaID string) (*storage.Media, error) {
	m, err := s.db.GetMedia(ctx, mediaID)
	if err == storage.ErrNotFound {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	if m.Pending() && m.ExpiresTS <= s.nowMS() {
		return nil, errNotFound
	}
	return m, nil
}
