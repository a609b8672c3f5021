package app

import (
	"errors"
	"fmt"
	"image"
	_ "image/gif" // decoders for image.Decode
	_ "image/jpeg"
	_ "image/png"
	"os"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
)

// ReadQRImage reads the QR code in a picture file (PNG, JPEG or GIF). A
// desktop has no camera to scan another server's code with, so a photo
// or screenshot of it is opened instead.
func ReadQRImage(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open the picture: %w", err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return "", errors.New("this file is not a picture Palpo can read: open a PNG, JPEG or GIF")
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		return "", fmt.Errorf("read the picture: %w", err)
	}
	hints := map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_TRY_HARDER: true}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, hints)
	if err != nil {
		return "", errors.New("no QR code was found in this picture: crop it closer around the code, or ask for the address as text")
	}
	return res.GetText(), nil
}
