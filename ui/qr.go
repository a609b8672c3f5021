package ui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	qrcode "github.com/skip2/go-qrcode"
)

// qrResourceName names every QR code's image (tests look for it).
const qrResourceName = "address-qr.png"

// qrPixelsPerModule is the drawn size of one module of a QR code.
const qrPixelsPerModule = 6

// qrImage is a QR code of text for a phone's camera, or nil if text cannot
// be encoded (it always can for an address).
func qrImage(text string, size float32) *canvas.Image {
	// Whole pixels per module (a negative size to the encoder): at a fixed
	// 256 pixels a long code (a peer-to-peer link with several addresses)
	// gets modules of uneven width, which readers then miss.
	png, err := qrcode.Encode(text, qrcode.Medium, -qrPixelsPerModule)
	if err != nil {
		return nil
	}
	img := canvas.NewImageFromResource(fyne.NewStaticResource(qrResourceName, png))
	img.FillMode = canvas.ImageFillContain
	// Crisp modules: smoothing blurs the edges a camera looks for.
	img.ScaleMode = canvas.ImageScalePixels
	img.SetMinSize(fyne.NewSquareSize(size))
	return img
}
