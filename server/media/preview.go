package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/charset"
	"golang.org/x/sync/singleflight"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// previewTTL is how long a preview is reused before the page is fetched
// again.
const previewTTL = time.Hour

// maxCachedPreviews bounds the cache's memory.
const maxCachedPreviews = 1000

// maxRedirects a preview follows.
const maxRedirects = 5

// ErrPreviewsOff answers preview requests when previews are disabled, as
// Synapse does (it does not serve the endpoint then).
var ErrPreviewsOff = mautrix.MUnrecognized.WithMessage("URL previews are disabled on this server")

// PreviewsEnabled reports whether URL previews are on.
func (s *Service) PreviewsEnabled() bool { return s.preview.cfg.Enabled }

var (
	errPreviewFetch = mautrix.MUnknown.WithStatus(http.StatusBadGateway)
	// errBlockedAddr is what the dialer's check returns for a refused
	// address; PreviewURL turns it into 403 M_FORBIDDEN.
	errBlockedAddr = errors.New("address not allowed for URL previews")
)

// blockedNetworks are never fetched for a preview unless allowed by
// config: besides what netip's predicates cover (loopback, private,
// link-local, multicast, unspecified), the shared, reserved, documentation
// and benchmarking ranges, as Synapse's default url_preview_ip_range_blacklist,
// and NAT64, through which a v6 address can reach a private v4 one.
var blockedNetworks = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24",
		"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
		"::/96", "64:ff9b::/96", "100::/64", "2001:db8::/32", "fec0::/10",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// previewer fetches web pages for URL previews, refusing private targets.
type previewer struct {
	s      *Service
	cfg    config.URLPreview
	allow  []netip.Prefix
	client *http.Client
	// lookup resolves a host name; tests replace it.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)

	mu    sync.Mutex
	cache map[string]cachedPreview
	group singleflight.Group
}

type cachedPreview struct {
	data    map[string]any
	expires time.Time
}

func newPreviewer(s *Service, cfg config.URLPreview) *previewer {
	p := &previewer{s: s, cfg: cfg, allow: cfg.AllowedPrefixes(), cache: map[string]cachedPreview{}}
	p.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}
	dialer := &net.Dialer{
		Timeout: time.Duration(cfg.TimeoutSeconds) * time.Second,
		// Control runs after name resolution and before connect(), with
		// the address really dialled: checking here defeats DNS rebinding,
		// where a name resolves to a public address for the check and to a
		// private one for the connection.
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s", errBlockedAddr, address)
			}
			if p.blocked(ap.Addr()) {
				return fmt.Errorf("%w: %s", errBlockedAddr, ap.Addr())
			}
			return nil
		},
	}
	p.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil, // a proxy would dial for us, unchecked
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: time.Duration(cfg.TimeoutSeconds) * time.Second,
			MaxIdleConns:          10,
			IdleConnTimeout:       30 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects {
				return errors.New("too many redirects")
			}
			return p.checkURL(req.Context(), req.URL)
		},
	}
	return p
}

// blocked reports whether previews may not connect to addr.
func (p *previewer) blocked(addr netip.Addr) bool { return blockedAddr(addr, p.allow) }

// blockedAddr reports whether the server may not connect to addr for a
// URL someone else chose (a preview, a media redirect): private, loopback,
// link-local and the reserved ranges, unless in allow.
func blockedAddr(addr netip.Addr, allow []netip.Prefix) bool {
	addr = addr.Unmap()
	for _, a := range allow {
		if a.Contains(addr) {
			return false
		}
	}
	if !addr.IsValid() || addr.IsLoopback() || addr.IsPrivate() || addr.IsUnspecified() || addr.IsMulticast() ||
		addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast() {
		return true
	}
	if addr.Is4() && addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return true
	}
	for _, n := range blockedNetworks {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}

// checkURL refuses what previews must not fetch: schemes other than
// http(s), and hosts with any address that is blocked. (The dialer checks
// again at connect time; this check gives a clear answer early and covers
// every address a name has, not just the one dialled.)
func (p *previewer) checkURL(ctx context.Context, u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return mautrix.MInvalidParam.WithMessage("Only http and https URLs can be previewed")
	}
	host := u.Hostname()
	if host == "" {
		return mautrix.MInvalidParam.WithMessage("The URL has no host")
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		addrs, err = p.lookup(ctx, host)
		if err != nil || len(addrs) == 0 {
			return errPreviewFetch.WithMessage("Could not resolve the URL's host")
		}
	}
	for _, a := range addrs {
		if p.blocked(a) {
			return fmt.Errorf("%w: %s", errBlockedAddr, a)
		}
	}
	return nil
}

// PreviewURL answers GET /preview_url: the OpenGraph data of a web page
// (og:title, og:description, og:image as an mxc:// URI of a stored copy,
// …), or of an image. Previews are off unless configured (404
// M_UNRECOGNIZED, as Synapse answers); pages on private, loopback and
// link-local addresses are refused (403 M_FORBIDDEN) unless allowed.
// Results are kept for an hour.
func (s *Service) PreviewURL(ctx context.Context, userID id.UserID, rawURL string) (map[string]any, error) {
	p := s.preview
	if !p.cfg.Enabled {
		return nil, ErrPreviewsOff
	}
	u, err := url.Parse(rawURL)
	if err != nil || !u.IsAbs() {
		return nil, mautrix.MInvalidParam.WithMessage("url must be an absolute http or https URL")
	}
	u.Fragment, u.RawFragment = "", ""
	key := u.String()
	now := s.Now()
	p.mu.Lock()
	if c, ok := p.cache[key]; ok && now.Before(c.expires) {
		p.mu.Unlock()
		return c.data, nil
	}
	p.mu.Unlock()
	v, err, _ := p.group.Do(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(p.cfg.TimeoutSeconds)*time.Second)
		defer cancel()
		data, err := p.fetch(fctx, userID, u)
		if err != nil {
			return nil, err
		}
		p.remember(key, data, s.Now())
		return data, nil
	})
	if errors.Is(err, errBlockedAddr) {
		return nil, mautrix.MForbidden.WithMessage("This URL cannot be previewed: it points to a private or local address")
	}
	if err != nil {
		return nil, err
	}
	return v.(map[string]any), nil
}

func (p *previewer) remember(key string, data map[string]any, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.cache) >= maxCachedPreviews {
		for k, c := range p.cache {
			if now.After(c.expires) {
				delete(p.cache, k)
			}
		}
		for k := range p.cache {
			if len(p.cache) < maxCachedPreviews {
				break
			}
			delete(p.cache, k)
		}
	}
	p.cache[key] = cachedPreview{data: data, expires: now.Add(previewTTL)}
}

// get fetches a URL after checking it, answering errBlockedAddr for a
// refused target and a 502 for any other failure.
func (p *previewer) get(ctx context.Context, u *url.URL, accept string) (*http.Response, error) {
	if err := p.checkURL(ctx, u); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, mautrix.MInvalidParam.WithMessage("url is not a valid URL")
	}
	req.Header.Set("User-Agent", "Palpo URL preview (Matrix homeserver)")
	req.Header.Set("Accept", accept)
	resp, err := p.client.Do(req)
	if err != nil {
		if errors.Is(err, errBlockedAddr) {
			return nil, errBlockedAddr
		}
		var re mautrix.RespError
		if errors.As(err, &re) {
			return nil, re
		}
		return nil, errPreviewFetch.WithMessage("Could not fetch the URL")
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		resp.Body.Close()
		return nil, errPreviewFetch.WithMessage("The URL answered HTTP %d", resp.StatusCode)
	}
	return resp, nil
}

func (p *previewer) fetch(ctx context.Context, userID id.UserID, u *url.URL) (map[string]any, error) {
	resp, err := p.get(ctx, u, "text/html,application/xhtml+xml,image/*;q=0.9,*/*;q=0.1")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	ct := resp.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	switch {
	case mt == "text/html" || mt == "application/xhtml+xml":
		og, imageURL := parseOpenGraph(io.LimitReader(resp.Body, p.cfg.MaxBytes), ct)
		if imageURL != "" {
			if iu, err := resp.Request.URL.Parse(imageURL); err == nil {
				p.addImage(ctx, userID, iu, og)
			}
		}
		return og, nil
	case strings.HasPrefix(mt, "image/"):
		out := map[string]any{}
		p.storeImage(ctx, userID, resp, out)
		return out, nil
	}
	return map[string]any{}, nil
}

// addImage fetches a page's og:image and stores it as media, setting
// og:image to its mxc:// URI; on any failure og:image is left out.
func (p *previewer) addImage(ctx context.Context, userID id.UserID, u *url.URL, og map[string]any) {
	resp, err := p.get(ctx, u, "image/*")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if !strings.HasPrefix(mt, "image/") {
		return
	}
	p.storeImage(ctx, userID, resp, og)
}

// storeImage stores a fetched image as media of the requesting user
// (marked as URL-preview media, outside their quota and media list) and
// fills in og:image, its type, size and dimensions.
func (p *previewer) storeImage(ctx context.Context, userID id.UserID, resp *http.Response, og map[string]any) {
	s := p.s
	limit := min(p.cfg.MaxBytes, s.cfg.MaxUploadBytes)
	tmp, err := s.store.writeTemp(resp.Body, limit)
	if err != nil {
		return
	}
	sniffed := Sniff(tmp.head)
	if !strings.HasPrefix(sniffed, "image/") || sniffed == "image/svg+xml" {
		tmp.discard()
		return
	}
	var info *imageInfo
	if f, err := os.Open(tmp.path); err == nil {
		info, _ = probeImage(f, s.limits())
		f.Close()
	}
	now := s.nowMS()
	m := &storage.Media{
		MediaID: newMediaID(), UserID: userID, ContentType: sniffed, Size: tmp.size,
		CreatedTS: now, UploadedTS: now, URLCache: resp.Request.URL.String(),
	}
	err = s.commit(tmp, sniffed, func(c *storage.MediaContent) error {
		return s.db.StoreMedia(ctx, m, c, 0)
	})
	if err != nil {
		s.log.Warn("could not store a URL preview image", "error", err)
		return
	}
	og["og:image"] = s.URI(m.MediaID).String()
	og["og:image:type"] = sniffed
	og["matrix:image:size"] = m.Size
	if info != nil {
		og["og:image:width"] = info.width
		og["og:image:height"] = info.height
	} else {
		delete(og, "og:image:width")
		delete(og, "og:image:height")
	}
}

// Bounds on what a page can put in a preview.
const (
	maxOGProperties = 64
	maxOGValueBytes = 4096
)

// parseOpenGraph reads a page's <head> for og:* meta properties, with the
// <title> and the description meta tag as fallbacks for og:title and
// og:description. It returns the properties (og:image left out, since it
// must become an mxc:// URI) and the og:image URL.
func parseOpenGraph(r io.Reader, contentType string) (og map[string]any, imageURL string) {
	og = map[string]any{}
	if cr, err := charset.NewReader(r, contentType); err == nil {
		r = cr
	}
	z := html.NewTokenizer(r)
	var title, description string
	inTitle := false
	for {
		switch z.Next() {
		case html.ErrorToken:
			return finishOpenGraph(og, title, description), imageURL
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			switch string(name) {
			case "body":
				return finishOpenGraph(og, title, description), imageURL
			case "title":
				inTitle = title == ""
			case "meta":
				if !hasAttr {
					continue
				}
				var prop, content string
				hasContent := false
				for {
					k, v, more := z.TagAttr()
					switch string(k) {
					case "property":
						prop = string(v)
					case "name":
						if prop == "" {
							prop = string(v)
						}
					case "content":
						content, hasContent = string(v), true
					}
					if !more {
						break
					}
				}
				prop = strings.ToLower(strings.TrimSpace(prop))
				content = clip(strings.TrimSpace(content))
				switch {
				case !hasContent:
				case prop == "description":
					description = content
				case prop == "og:image" || prop == "og:image:url" || prop == "og:image:secure_url":
					if imageURL == "" {
						imageURL = content
					}
				case strings.HasPrefix(prop, "og:") && len(og) < maxOGProperties:
					if _, dup := og[prop]; !dup {
						og[prop] = ogValue(prop, content)
					}
				}
			}
		case html.TextToken:
			if inTitle {
				title = clip(strings.TrimSpace(string(z.Text())))
				inTitle = false
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "head":
				return finishOpenGraph(og, title, description), imageURL
			case "title":
				inTitle = false
			}
		}
	}
}

func finishOpenGraph(og map[string]any, title, description string) map[string]any {
	if _, ok := og["og:title"]; !ok && title != "" {
		og["og:title"] = title
	}
	if _, ok := og["og:description"]; !ok && description != "" {
		og["og:description"] = description
	}
	return og
}

// ogValue keeps numbers numeric where the spec's example has them.
func ogValue(prop, v string) any {
	switch prop {
	case "og:image:width", "og:image:height":
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return v
}

func clip(s string) string {
	if len(s) <= maxOGValueBytes {
		return s
	}
	s = s[:maxOGValueBytes]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
