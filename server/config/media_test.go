package config

import (
	"strings"
	"testing"
	"time"
)

func TestMediaConfigNamesTheKey(t *testing.T) {
	cases := map[string]string{
		"[media]\nmax_upload_bytes = 10":                          "media.max_upload_bytes",
		"[media]\nmax_bytes_per_user = -1":                        "media.max_bytes_per_user",
		"[media]\nmax_pending_uploads = 0":                        "media.max_pending_uploads",
		"[media]\npending_expiry_seconds = 5":                     "media.pending_expiry_seconds",
		"[media]\nunauthenticated_before = \"yesterday\"":         "media.unauthenticated_before",
		"[media]\nmax_image_pixels = 0":                           "media.max_image_pixels",
		"[media]\nmax_image_width = 0":                            "media.max_image_width",
		"[media]\nmax_image_height = -3":                          "media.max_image_height",
		"[media.url_preview]\nallow_networks = [\"10.0.0.0/99\"]": "media.url_preview.allow_networks",
		"[media.url_preview]\nallow_networks = [\"example.org\"]": "media.url_preview.allow_networks",
		"[media.url_preview]\nmax_bytes = 1":                      "media.url_preview.max_bytes",
		"[media.url_preview]\ntimeout_seconds = 0":                "media.url_preview.timeout_seconds",
		"[media.url_preview]\nenabeld = true":                     "enabeld",
		"[media]\nmax_upload_bytes = \"big\"":                     "max_upload_bytes",
	}
	for text, key := range cases {
		_, err := Parse(text)
		if err == nil {
			t.Errorf("%q: expected an error", text)
			continue
		}
		if !strings.Contains(err.Error(), key) {
			t.Errorf("%q: error %q does not name %q", text, err, key)
		}
	}
}

func TestMediaConfigValues(t *testing.T) {
	cfg, err := Parse("[media]\nunauthenticated_before = \"2024-09-01T00:00:00Z\"\n[media.url_preview]\nenabled = true\nallow_networks = [\"192.168.1.0/24\", \"127.0.0.1\", \"::1\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	cutoff, ok := cfg.Media.UnauthenticatedCutoff()
	if !ok || !cutoff.Equal(time.Date(2024, 9, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("cutoff %v %v", cutoff, ok)
	}
	var got []string
	for _, p := range cfg.Media.URLPreview.AllowedPrefixes() {
		got = append(got, p.String())
	}
	if strings.Join(got, " ") != "192.168.1.0/24 127.0.0.1/32 ::1/128" {
		t.Fatalf("allowed networks %v", got)
	}
	if _, ok := Default().Media.UnauthenticatedCutoff(); ok {
		t.Fatal("by default no media may be downloaded without authentication, but a cut-off is set")
	}
}
