package media

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"maunium.net/go/mautrix"
	mfed "maunium.net/go/mautrix/federation"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// Media of other servers is fetched over federation
// (GET /_matrix/federation/v1/media/download/{mediaId}, signed), once per
// item however many clients ask at the same time, and kept as a cached copy:
// its bytes are a content file like an upload's, recorded in remote_media
// with its origin and media ID. Later downloads and thumbnails are served
// from the copy, also while the origin is away.
//
// Thumbnails of remote media are made here from the cached original, not
// fetched from the origin's thumbnail endpoint: one fetch then serves the
// download and every thumbnail size, Palpo's own limits on decoding
// (decompression bombs) apply to whatever the remote sent, and thumbnails
// keep working when the origin is down. The cost is fetching a big original
// for a small picture, bounded by max_upload_bytes; Synapse does the same.
//
// The deprecated unauthenticated /_matrix/media/v3 endpoints of other
// servers are not used as a fallback: every maintained server has had the
// federation endpoint since Matrix 1.11 (2024), and servers that froze
// unauthenticated media would not answer there anyway.

var (
	// errRemoteTooLarge is the spec's 502 for remote content over the limit.
	errRemoteTooLarge = mautrix.MTooLarge.WithStatus(http.StatusBadGateway)
	errRemoteFetch    = mautrix.MUnknown.WithStatus(http.StatusBadGateway)
	// errBlockedRedirect is what the redirect dialer's check returns.
	errBlockedRedirect = errors.New("media redirect to an address that is not allowed")
)

const (
	// remoteFetchTimeout bounds one whole fetch (headers and bytes).
	remoteFetchTimeout = 5 * time.Minute
	// failureTTL is how long a failed fetch is answered from memory, so
	// clients retrying a broken or missing item do not hammer its server.
	failureTTL = 30 * time.Second
	// maxFailures bounds the failure memory.
	maxFailures = 1000
	// touchInterval is how stale a copy's last access may get before a
	// download records it again (one write per download would be waste).
	touchInterval = 10 * time.Minute
	// maxMetadataBytes bounds the JSON part of a federation media answer.
	maxMetadataBytes = 64 << 10
	// maxMediaRedirects a redirected download follows.
	maxMediaRedirects = 5
)

// Remote is what the media repository needs to fetch other servers' media.
type Remote struct {
	// Client is the signed federation client (its transport chooses the
	// route to each server, and its address rules apply to them).
	Client *mfed.Client
	// TLS is the trust for redirect targets (the federation trust).
	TLS *tls.Config
	// AllowPrivateAddresses lets a redirect reach private, loopback and
	// link-local addresses (federation.allow_private_addresses).
	AllowPrivateAddresses bool
}

type failure struct {
	err   error
	until time.Time
}

// SetRemote turns on fetching media of other servers. Without it (with
// federation off) their media is M_NOT_FOUND.
func (s *Service) SetRemote(r Remote) {
	s.remoteMu.Lock()
	defer s.remoteMu.Unlock()
	s.remote = r.Client
	s.redirects = newRedirectClient(r.TLS, r.AllowPrivateAddresses)
}

func (s *Service) remoteClient() (*mfed.Client, *http.Client) {
	s.remoteMu.Lock()
	defer s.remoteMu.Unlock()
	return s.remote, s.redirects
}

// newRedirectClient is the client for the URL a remote server may answer
// with instead of the bytes. That URL is chosen by the remote, so its
// addresses are checked as a URL preview's are: at connect time (which
// defeats DNS rebinding), never through a proxy, https only.
func newRedirectClient(tlsCfg *tls.Config, allowPrivate bool) *http.Client {
	if tlsCfg == nil {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	dialer := &net.Dialer{
		Timeout: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s", errBlockedRedirect, address)
			}
			if redirectBlocked(ap.Addr(), allowPrivate) {
				return fmt.Errorf("%w: %s", errBlockedRedirect, ap.Addr())
			}
			return nil
		},
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			TLSClientConfig:       tlsCfg.Clone(),
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: time.Minute,
			MaxIdleConns:          10,
			IdleConnTimeout:       30 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxMediaRedirects {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "https" {
				return errors.New("redirect to a URL that is not https")
			}
			return nil
		},
	}
}

// redirectBlocked reports whether a media redirect may not connect to
// addr: the URL-preview block list, unless private addresses are allowed,
// and then still the addresses nothing can be fetched from.
func redirectBlocked(addr netip.Addr, allowPrivate bool) bool {
	addr = addr.Unmap()
	if allowPrivate {
		return !addr.IsValid() || addr.IsUnspecified() || addr.IsMulticast()
	}
	return blockedAddr(addr, nil)
}

func remoteKey(origin, mediaID string) string { return origin + "/" + mediaID }

// remoteMedia returns the cached copy of another server's media item as a
// media item, fetching it first if needed.
func (s *Service) remoteMedia(ctx context.Context, origin, mediaID string, timeout time.Duration, unauthenticated bool) (*storage.Media, error) {
	r, err := s.db.GetRemoteMedia(ctx, origin, mediaID)
	if err == nil {
		if unauthenticated {
			// As for local media: only what this server had before the
			// freeze is served without authentication.
			if cutoff, ok := s.cfg.UnauthenticatedCutoff(); !ok || r.FetchedTS >= cutoff.UnixMilli() {
				return nil, errFrozen
			}
		}
		s.touch(ctx, r)
		return remoteAsMedia(r), nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if unauthenticated {
		// Never fetch for the frozen endpoints.
		return nil, errFrozen
	}
	client, redirects := s.remoteClient()
	if client == nil {
		return nil, errRemote
	}
	key := remoteKey(origin, mediaID)
	if err := s.recentFailure(key); err != nil {
		return nil, err
	}
	ch := s.remoteGroup.DoChan(key, func() (any, error) {
		// The request that started the fetch may go away; the others
		// (and the cache) still want the result.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), remoteFetchTimeout)
		defer cancel()
		r, err := s.fetchRemote(fctx, client, redirects, origin, mediaID, timeout)
		if err != nil {
			s.log.Info("could not fetch remote media", "origin", origin, "media_id", mediaID, "error", err)
			err = clientErr(err)
			if !errors.Is(err, ErrNotYetUploaded) {
				// Not this one: the upload may land any moment.
				s.rememberFailure(key, err)
			}
			return nil, err
		}
		return r, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return remoteAsMedia(res.Val.(*storage.RemoteMedia)), nil
	case <-ctx.Done():
		return nil, errRemoteFetch.WithMessage("The request ended before the media arrived from %s", origin)
	}
}

func remoteAsMedia(r *storage.RemoteMedia) *storage.Media {
	return &storage.Media{
		MediaID: r.MediaID, ContentType: r.ContentType, UploadName: r.UploadName, Size: r.Size, SHA256: r.SHA256,
		CreatedTS: r.FetchedTS, UploadedTS: r.FetchedTS, SniffedType: r.SniffedType,
	}
}

// touch records an access to a cached copy, at most every touchInterval.
func (s *Service) touch(ctx context.Context, r *storage.RemoteMedia) {
	now := s.nowMS()
	if now-r.LastAccessTS < touchInterval.Milliseconds() {
		return
	}
	if err := s.db.TouchRemoteMedia(ctx, r.Origin, r.MediaID, now); err != nil {
		s.log.Warn("could not record a remote media access", "origin", r.Origin, "media_id", r.MediaID, "error", err)
	}
}

func (s *Service) recentFailure(key string) error {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	f, ok := s.failures[key]
	if !ok {
		return nil
	}
	if s.Now().After(f.until) {
		delete(s.failures, key)
		return nil
	}
	return f.err
}

func (s *Service) rememberFailure(key string, err error) {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	now := s.Now()
	if len(s.failures) >= maxFailures {
		for k, f := range s.failures {
			if now.After(f.until) {
				delete(s.failures, k)
			}
		}
		if len(s.failures) >= maxFailures {
			clear(s.failures)
		}
	}
	s.failures[key] = failure{err: err, until: now.Add(failureTTL)}
}

// clientErr turns a fetch failure into the one answer clients get. The
// Matrix errors here are fetchRemote's own (the remote's answer is never
// passed on as it is: remoteAnswerErr keeps only its text).
func clientErr(err error) error {
	var re mautrix.RespError
	if errors.As(err, &re) {
		return err
	}
	return errRemoteFetch.WithMessage("Could not fetch the media from its server")
}

// fetchRemote downloads one media item from its server and stores it.
func (s *Service) fetchRemote(ctx context.Context, client *mfed.Client, redirects *http.Client, origin, mediaID string, timeout time.Duration) (*storage.RemoteMedia, error) {
	q := url.Values{"timeout_ms": {strconv.FormatInt(min(timeout, maxWait).Milliseconds(), 10)}}
	_, resp, err := client.MakeFullRequest(ctx, mfed.RequestParams{
		ServerName:   origin,
		Method:       http.MethodGet,
		Path:         mfed.URLPath{"v1", "media", "download", mediaID},
		Query:        q,
		Authenticate: true,
		DontReadBody: true,
	})
	if err != nil {
		return nil, remoteAnswerErr(origin, err)
	}
	defer resp.Body.Close()
	body, header, closeBody, err := s.mediaPart(ctx, redirects, resp)
	if err != nil {
		return nil, err
	}
	defer closeBody()
	limit := s.cfg.MaxUploadBytes
	if n, err := strconv.ParseInt(header.Get("Content-Length"), 10, 64); err == nil && n > limit {
		return nil, errRemoteTooLarge.WithMessage("The media is larger than this server accepts (%d bytes)", limit)
	}
	tmp, err := s.store.writeTemp(body, limit)
	if err != nil {
		if errors.Is(err, mautrix.MTooLarge) {
			return nil, errRemoteTooLarge.WithMessage("The media is larger than this server accepts (%d bytes)", limit)
		}
		if errors.Is(err, errInterrupted) {
			return nil, fmt.Errorf("media from %s ended early", origin)
		}
		return nil, err
	}
	now := s.nowMS()
	r := &storage.RemoteMedia{
		Origin: origin, MediaID: mediaID, ContentType: NormalizeContentType(header.Get("Content-Type")),
		UploadName: fileNameOf(header.Get("Content-Disposition")), Size: tmp.size, FetchedTS: now, LastAccessTS: now,
	}
	if capBytes := s.cfg.RemoteCacheMaxBytes; capBytes > 0 {
		// Room for the new copy first: evicting afterwards could take the
		// file just placed, if an evicted copy had the same bytes.
		s.evictRemote(ctx, capBytes-tmp.size)
	}
	r.SniffedType = Sniff(tmp.head)
	err = s.commit(tmp, r.SniffedType, func(c *storage.MediaContent) error {
		unused, err := s.db.StoreRemoteMedia(ctx, r, c)
		for _, sha := range unused {
			// The caller holds s.store.mu.
			if rmErr := s.store.remove(sha); rmErr != nil {
				s.log.Warn("could not remove an unused media file", "sha256", sha, "error", rmErr)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	s.log.Debug("remote media cached", "origin", origin, "media_id", mediaID, "size", r.Size)
	// A copy stored meanwhile wins; read what is recorded.
	return s.db.GetRemoteMedia(ctx, origin, mediaID)
}

// remoteAnswerErr maps the remote's error answer (or a failure to reach
// it) to ours.
func remoteAnswerErr(origin string, err error) error {
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.Response != nil {
		code := ""
		if he.RespError != nil {
			code = he.RespError.ErrCode
		}
		switch {
		case he.Response.StatusCode == http.StatusNotFound:
			// M_NOT_FOUND, and M_UNRECOGNIZED from a server without the
			// federation media endpoints (see the package comment).
			return errNotFound
		case code == "M_NOT_YET_UPLOADED":
			return ErrNotYetUploaded
		case code == "M_TOO_LARGE":
			return errRemoteTooLarge.WithMessage("The media is too large for its server to serve")
		}
	}
	return fmt.Errorf("media from %s: %v", origin, err)
}

// mediaPart reads a federation media answer: multipart/mixed with exactly
// a JSON metadata part and then the media, as bytes or as a Location to
// fetch them from. It returns the media's bytes and headers.
func (s *Service) mediaPart(ctx context.Context, redirects *http.Client, resp *http.Response) (io.Reader, http.Header, func(), error) {
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		return nil, nil, nil, fmt.Errorf("media answer is not multipart/mixed with a boundary (Content-Type %q)", resp.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	meta, err := mr.NextPart()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("media answer metadata part: %w", err)
	}
	if mt, _, _ := mime.ParseMediaType(meta.Header.Get("Content-Type")); mt != "application/json" {
		return nil, nil, nil, fmt.Errorf("media answer metadata part has Content-Type %q, not application/json", meta.Header.Get("Content-Type"))
	}
	var metadata map[string]any
	if err := json.NewDecoder(io.LimitReader(meta, maxMetadataBytes)).Decode(&metadata); err != nil {
		return nil, nil, nil, fmt.Errorf("media answer metadata part: %w", err)
	}
	part, err := mr.NextPart()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("media answer media part: %w", err)
	}
	loc := part.Header.Get("Location")
	if loc == "" {
		// Not part.Close: it reads the part to its end, which from a server
		// sending too much is forever. Closing the response body (the
		// caller's) cuts it off.
		return part, http.Header(part.Header), func() {}, nil
	}
	// The URL is not kept (the spec: it may expire); its bytes are.
	u, err := url.Parse(loc)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, nil, nil, fmt.Errorf("media answer redirects to %q, not an https URL", loc)
	}
	if redirects == nil {
		return nil, nil, nil, errors.New("media answer redirects, and redirects are not set up")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("media redirect: %w", err)
	}
	rr, err := redirects.Do(req)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("media redirect to %s: %w", u.Host, err)
	}
	if rr.StatusCode != http.StatusOK {
		rr.Body.Close()
		return nil, nil, nil, fmt.Errorf("media redirect to %s answered %s", u.Host, rr.Status)
	}
	h := rr.Header.Clone()
	if rr.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(rr.ContentLength, 10))
	}
	return rr.Body, h, func() { rr.Body.Close() }, nil
}

// fileNameOf is the file name of a Content-Disposition header, if it has
// a usable one.
func fileNameOf(disposition string) string {
	_, params, err := mime.ParseMediaType(disposition)
	if err != nil {
		return ""
	}
	name := params["filename"]
	if len(name) > maxFileNameBytes || !utf8.ValidString(name) || strings.ContainsAny(name, "\x00\r\n") {
		return ""
	}
	return name
}

// evictRemote removes the least recently used copies of remote media until
// they take at most maxBytes.
func (s *Service) evictRemote(ctx context.Context, maxBytes int64) {
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	n, unused, err := s.db.EvictRemoteMedia(ctx, max(0, maxBytes))
	if err != nil {
		s.log.Warn("could not evict remote media", "error", err)
		return
	}
	for _, sha := range unused {
		if err := s.store.remove(sha); err != nil {
			s.log.Warn("could not remove an unused media file", "sha256", sha, "error", err)
		}
	}
	if n > 0 {
		s.log.Info("remote media evicted", "copies", n, "files_removed", len(unused))
	}
}
