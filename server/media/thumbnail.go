package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

var (
	errCannotThumbnail = mautrix.MUnknown.WithStatus(http.StatusBadRequest).WithMessage("Cannot generate thumbnails for the requested content")
	errThumbTooLarge   = mautrix.MTooLarge.WithMessage("Content is too large to thumbnail")
)

// maxAnimatedOriginal is the largest animated image returned as is for
// animated=true. Palpo does not re-encode animations, so an animated
// thumbnail is the original; past this size a still frame is the better
// answer for a client that wanted a small picture.
const maxAnimatedOriginal = 4 << 20

// ThumbnailRequest is one thumbnail request.
type ThumbnailRequest struct {
	ServerName string
	MediaID    string
	// Width and Height are the smallest size the client wants (positive).
	Width, Height int
	// Method is "crop" or "scale".
	Method string
	// Animated is the client's animated preference: nil when not given.
	Animated *bool
	// Timeout and Unauthenticated are as for DownloadRequest.
	Timeout         time.Duration
	Unauthenticated bool
}

// ValidMethod reports whether m is a thumbnail method of the spec.
func ValidMethod(m string) bool { return m == methodCrop || m == methodScale }

func (s *Service) limits() limits {
	return limits{maxPixels: s.cfg.MaxImagePixels, maxW: s.cfg.MaxImageWidth, maxH: s.cfg.MaxImageHeight}
}

// Thumbnail returns a thumbnail of a JPEG, PNG, GIF or WebP image at one
// of the spec's preset sizes: the smallest one that is not smaller than
// asked, generated on first request and stored (content-addressed, like
// uploads) for every later one. The original image is returned when it is
// no bigger than the request, or when no preset is big enough.
//
// Animation: a thumbnail is never animated, except that for animated=true
// an animated original of at most 4 MiB is returned as it is. Otherwise an
// animated GIF or APNG gives its first frame; an animated WebP, which Go
// cannot decode, gives no thumbnail (M_UNKNOWN).
//
// An image whose header announces more pixels than the configured limits
// is refused (413 M_TOO_LARGE) before anything is decoded.
func (s *Service) Thumbnail(ctx context.Context, req ThumbnailRequest) (*Content, error) {
	if req.Width < 1 || req.Height < 1 {
		return nil, mautrix.MInvalidParam.WithMessage("width and height must be positive integers")
	}
	if !ValidMethod(req.Method) {
		return nil, mautrix.MInvalidParam.WithMessage("method must be \"crop\" or \"scale\"")
	}
	m, err := s.mediaFor(ctx, req.ServerName, req.MediaID, req.Timeout, req.Unauthenticated)
	if err != nil {
		return nil, err
	}
	f, err := s.store.open(m.SHA256)
	if err != nil {
		return nil, err
	}
	info, err := probeImage(f, s.limits())
	if err != nil {
		f.Close()
		switch {
		case errors.Is(err, errImageTooBig):
			return nil, errThumbTooLarge
		case errors.Is(err, errNotImage):
			return nil, errCannotThumbnail
		}
		return nil, err
	}
	p, scaled := choosePreset(info.width, info.height, req.Width, req.Height, req.Method)
	if info.animated {
		if req.Animated != nil && *req.Animated && m.Size <= maxAnimatedOriginal {
			return s.original(f, m, info)
		}
		if info.format == "webp" {
			f.Close()
			return nil, errCannotThumbnail
		}
		if !scaled {
			p, scaled = preset{method: methodStill}, true
		}
	}
	if !scaled {
		return s.original(f, m, info)
	}
	f.Close()
	t, err := s.thumbnail(ctx, m.SHA256, info, p)
	if err != nil {
		return nil, err
	}
	tf, err := s.store.open(t.SHA256)
	if err != nil {
		return nil, err
	}
	return &Content{
		File: tf, Size: t.Size, ContentType: t.ContentType,
		Disposition: ContentDisposition(true, "thumbnail"+extension(t.ContentType)),
		ModTime:     time.UnixMilli(t.CreatedTS),
		ETag:        `"` + t.SHA256 + `"`,
	}, nil
}

// original serves the source image itself as the thumbnail, with the
// content type its bytes have (not its uploader's claim).
func (s *Service) original(f *os.File, m *storage.Media, info *imageInfo) (*Content, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("rewind media file: %w", err)
	}
	return &Content{
		File: f, Size: m.Size, ContentType: info.contentType(),
		Disposition: ContentDisposition(true, "thumbnail"+extension(info.contentType())),
		ModTime:     time.UnixMilli(m.UploadedTS),
		ETag:        `"` + m.SHA256 + `"`,
	}, nil
}

func extension(contentType string) string {
	switch contentType {
	case "image/jpeg":
		return ".jpg"
	case "image/png":
		return ".png"
	case "image/gif":
		return ".gif"
	case "image/webp":
		return ".webp"
	}
	return ""
}

// thumbnail returns the stored thumbnail of a content file at a preset,
// making it first if needed. Concurrent requests for the same one share a
// single generation.
func (s *Service) thumbnail(ctx context.Context, sha string, info *imageInfo, p preset) (*storage.MediaThumbnail, error) {
	w, h := p.w, p.h
	if p.method == methodStill {
		w, h = info.width, info.height
	}
	t, err := s.db.GetMediaThumbnail(ctx, sha, w, h, p.method)
	if err == nil {
		return t, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	key := sha + "/" + strconv.Itoa(w) + "x" + strconv.Itoa(h) + "/" + p.method
	v, err, _ := s.thumbGroup.Do(key, func() (any, error) {
		// The request that started the generation may be cancelled; the
		// others still want the result.
		genCtx := context.WithoutCancel(ctx)
		if err := s.generate(genCtx, sha, info, p, w, h); err != nil {
			return nil, err
		}
		return s.db.GetMediaThumbnail(genCtx, sha, w, h, p.method)
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errNotFound // the source was deleted meanwhile
	}
	if err != nil {
		return nil, err
	}
	return v.(*storage.MediaThumbnail), nil
}

// generate decodes the source, renders and encodes the thumbnail, and
// stores it.
func (s *Service) generate(ctx context.Context, sha string, info *imageInfo, p preset, w, h int) error {
	select {
	case s.thumbSlots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	start := time.Now()
	var buf bytes.Buffer
	contentType, err := func() (string, error) {
		defer func() { <-s.thumbSlots }()
		f, err := s.store.open(sha)
		if err != nil {
			return "", err
		}
		defer f.Close()
		img, err := decodeImage(f, info)
		if err != nil {
			return "", err
		}
		return encodeThumbnail(&buf, render(img, info, p), info)
	}()
	if err != nil {
		s.log.Warn("could not make a thumbnail", "sha256", sha, "error", err)
		return errCannotThumbnail
	}
	tw, th := p.w, p.h
	if p.method == methodStill {
		tw, th = info.width, info.height
	} else if p.method == methodScale {
		tw, th = fitDims(info.width, info.height, p.w, p.h)
	}
	tmp, err := s.store.writeTemp(&buf, int64(buf.Len()))
	if err != nil {
		return err
	}
	t := &storage.MediaThumbnail{
		SourceSHA256: sha, Width: w, Height: h, Method: p.method,
		ContentType: contentType, ThumbWidth: tw, ThumbHeight: th, CreatedTS: s.nowMS(),
	}
	err = s.commit(tmp, contentType, func(c *storage.MediaContent) error {
		return s.db.StoreMediaThumbnail(ctx, t, c)
	})
	if err != nil {
		return err
	}
	s.log.Debug("thumbnail made", "sha256", sha, "preset", fmt.Sprintf("%dx%d %s", w, h, p.method), "took", time.Since(start))
	return nil
}
