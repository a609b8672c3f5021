package assets

import (
	"bytes"
	"image/png"
	"testing"
)

func TestIconIsSquarePNG(t *testing.T) {
	cfg, err := png.DecodeConfig(bytes.NewReader(Icon))
	if err != nil {
		t.Fatalf("decode icon: %v", err)
	}
	if cfg.Width != 512 || cfg.Height != 512 {
		t.Fatalf("icon is %dx%d, want 512x512", cfg.Width, cfg.Height)
	}
	res := IconResource()
	if res.Name() != "icon.png" || !bytes.Equal(res.Content(), Icon) {
		t.Fatalf("IconResource = %q (%d bytes), want icon.png with the embedded bytes", res.Name(), len(res.Content()))
	}
}
