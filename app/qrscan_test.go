package app

import (
	"bytes"
	"image"
	imgpng "image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	qrcode "github.com/skip2/go-qrcode"
)

// A QR code the app drew reads back from its file; a picture without one
// and a file that is no picture are refused in a sentence.
func TestReadQRImage(t *testing.T) {
	dir := t.TempDir()
	link := "palpo-p2p:duafvfkasysx6g3mesqxlgct7bhkun6bhff5bjyjebmlut7uhcva.p2p.alt?addr=/ip4/192.0.2.7/tcp/8449&addr=/ip6/2001:db8::7/udp/8449/quic-v1"
	png, err := qrcode.Encode(link, qrcode.Medium, -4) // whole pixels per module, as the app draws codes
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if got, err := ReadQRImage(write("code.png", png)); err != nil || got != link {
		t.Fatalf("read %q, %v", got, err)
	}
	var white bytes.Buffer
	img := image.NewGray(image.Rect(0, 0, 64, 64))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	if err := imgpng.Encode(&white, img); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadQRImage(write("white.png", white.Bytes())); err == nil || !strings.Contains(err.Error(), "no QR code") {
		t.Errorf("white picture: %v", err)
	}
	if _, err := ReadQRImage(write("text.png", []byte("not a picture"))); err == nil || !strings.Contains(err.Error(), "not a picture") {
		t.Errorf("text file: %v", err)
	}
	if _, err := ReadQRImage(filepath.Join(dir, "missing.png")); err == nil {
		t.Error("missing file read")
	}
}
