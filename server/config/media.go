package config

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Media configures the media repository (uploads, downloads, thumbnails
// and URL previews).
type Media struct {
	// MaxUploadBytes is the largest file accepted; larger uploads get
	// M_TOO_LARGE. Clients read it from /media/config.
	MaxUploadBytes int64 `toml:"max_upload_bytes"`
	// MaxBytesPerUser is a quota over all of one user's uploads; 0 means
	// none.
	MaxBytesPerUser int64 `toml:"max_bytes_per_user"`
	// MaxPendingUploads is how many media IDs made with /create and not yet
	// uploaded one user may hold at once.
	MaxPendingUploads int `toml:"max_pending_uploads"`
	// PendingExpirySeconds is how long a media ID from /create waits for
	// its upload (the spec recommends 24 hours).
	PendingExpirySeconds int `toml:"pending_expiry_seconds"`
	// UnauthenticatedBefore is the moment the deprecated unauthenticated
	// download endpoints were frozen (RFC 3339): media uploaded before it
	// stay reachable there. Empty means frozen for all media.
	UnauthenticatedBefore string `toml:"unauthenticated_before"`
	// MaxImagePixels, MaxImageWidth and MaxImageHeight bound the images
	// Palpo decodes to make thumbnails; they are checked from the image's
	// header before decoding, so a small file claiming a huge picture (a
	// decompression bomb) is refused without allocating it.
	MaxImagePixels int64 `toml:"max_image_pixels"`
	MaxImageWidth  int   `toml:"max_image_width"`
	MaxImageHeight int   `toml:"max_image_height"`
	// RemoteCacheMaxBytes caps the bytes of the copies kept of other
	// servers' media; past it the least recently used copies are evicted.
	// 0 means no cap.
	RemoteCacheMaxBytes int64 `toml:"remote_cache_max_bytes"`

	URLPreview URLPreview `toml:"url_preview"`
}

// URLPreview configures /preview_url, which makes the server fetch web
// pages that users' messages link to.
type URLPreview struct {
	// Enabled turns previews on. Off by default: every preview tells the
	// linked site that someone on this server is reading the link.
	Enabled bool `toml:"enabled"`
	// AllowNetworks lists networks (CIDR, such as "192.168.1.0/24") that
	// previews may reach although they are private, loopback or link-local.
	AllowNetworks []string `toml:"allow_networks"`
	// MaxBytes is the most Palpo reads of a page or image.
	MaxBytes int64 `toml:"max_bytes"`
	// TimeoutSeconds bounds one whole preview fetch.
	TimeoutSeconds int `toml:"timeout_seconds"`
}

// defaultMedia is the media part of Default().
func defaultMedia() Media {
	return Media{
		MaxUploadBytes:       100 << 20,
		MaxPendingUploads:    10,
		PendingExpirySeconds: 24 * 60 * 60,
		MaxImagePixels:       32_000_000,
		MaxImageWidth:        16384,
		MaxImageHeight:       16384,
		RemoteCacheMaxBytes:  1 << 30,
		URLPreview: URLPreview{
			AllowNetworks:  []string{},
			MaxBytes:       10 << 20,
			TimeoutSeconds: 10,
		},
	}
}

// UnauthenticatedCutoff parses UnauthenticatedBefore; ok is false when it
// is empty (no media reachable without authentication).
func (m Media) UnauthenticatedCutoff() (t time.Time, ok bool) {
	if m.UnauthenticatedBefore == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, m.UnauthenticatedBefore)
	return t, err == nil
}

// AllowedPrefixes parses URLPreview.AllowNetworks (validated already).
func (p URLPreview) AllowedPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(p.AllowNetworks))
	for _, n := range p.AllowNetworks {
		if pfx, err := parsePrefix(n); err == nil {
			out = append(out, pfx)
		}
	}
	return out
}

// parsePrefix accepts a CIDR or a single address (a /32 or /128).
func parsePrefix(s string) (netip.Prefix, error) {
	if pfx, err := netip.ParsePrefix(s); err == nil {
		return pfx.Masked(), nil
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	addr = addr.Unmap()
	return netip.PrefixFrom(addr, addr.BitLen()), nil
}

func (m Media) validate() error {
	if m.MaxUploadBytes < 1024 {
		return fmt.Errorf("media.max_upload_bytes %d: must be at least 1024; the default is 104857600 (100 MiB)", m.MaxUploadBytes)
	}
	if m.MaxBytesPerUser < 0 {
		return fmt.Errorf("media.max_bytes_per_user %d: must be 0 (no quota) or a number of bytes", m.MaxBytesPerUser)
	}
	if m.MaxPendingUploads < 1 || m.MaxPendingUploads > 10000 {
		return fmt.Errorf("media.max_pending_uploads %d: must be between 1 and 10000; the default is 10", m.MaxPendingUploads)
	}
	if m.PendingExpirySeconds < 60 {
		return fmt.Errorf("media.pending_expiry_seconds %d: must be at least 60; the default is 86400 (24 hours)", m.PendingExpirySeconds)
	}
	if m.UnauthenticatedBefore != "" {
		if _, err := time.Parse(time.RFC3339, m.UnauthenticatedBefore); err != nil {
			return fmt.Errorf("media.unauthenticated_before %q: must be empty or a time such as \"2024-09-01T00:00:00Z\"", m.UnauthenticatedBefore)
		}
	}
	if m.MaxImagePixels < 1 {
		return fmt.Errorf("media.max_image_pixels %d: must be at least 1; the default is 32000000", m.MaxImagePixels)
	}
	if m.MaxImageWidth < 1 {
		return fmt.Errorf("media.max_image_width %d: must be at least 1; the default is 16384", m.MaxImageWidth)
	}
	if m.MaxImageHeight < 1 {
		return fmt.Errorf("media.max_image_height %d: must be at least 1; the default is 16384", m.MaxImageHeight)
	}
	if m.RemoteCacheMaxBytes < 0 {
		return fmt.Errorf("media.remote_cache_max_bytes %d: must be 0 (no cap) or a number of bytes; the default is 1073741824 (1 GiB)", m.RemoteCacheMaxBytes)
	}
	p := m.URLPreview
	for _, n := range p.AllowNetworks {
		if _, err := parsePrefix(n); err != nil {
			return fmt.Errorf("media.url_preview.allow_networks %q: not a network; use CIDR notation such as \"192.168.1.0/24\" or an address", n)
		}
	}
	if p.MaxBytes < 1024 {
		return fmt.Errorf("media.url_preview.max_bytes %d: must be at least 1024; the default is 10485760", p.MaxBytes)
	}
	if p.TimeoutSeconds < 1 || p.TimeoutSeconds > 300 {
		return errors.New("media.url_preview.timeout_seconds: must be between 1 and 300; the default is 10")
	}
	return nil
}
