package ui

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"sync"

	"fyne.io/fyne/v2"
	xdraw "golang.org/x/image/draw"

	"github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/assets"
)

// The tray icon shows the state: the app icon with a dot in its corner,
// green running, amber starting or busy, red on an error, grey stopped.

const trayIconSize = 64

var (
	trayIconsMu sync.Mutex
	trayIcons   = map[color.RGBA]fyne.Resource{}
)

func trayDotColor(s app.State, busy bool) color.RGBA {
	switch {
	case busy || s == app.StateStarting:
		return color.RGBA{0xf5, 0xa6, 0x23, 0xff}
	case s == app.StateRunning:
		return color.RGBA{0x2e, 0xb8, 0x5c, 0xff}
	case s == app.StateError:
		return color.RGBA{0xe0, 0x3c, 0x31, 0xff}
	}
	return color.RGBA{0x9e, 0x9e, 0x9e, 0xff}
}

// trayIcon returns the icon for a state, made once per colour.
func trayIcon(s app.State, busy bool) fyne.Resource {
	c := trayDotColor(s, busy)
	trayIconsMu.Lock()
	defer trayIconsMu.Unlock()
	if r, ok := trayIcons[c]; ok {
		return r
	}
	r := assets.IconResource()
	if data, err := stateIcon(c); err == nil {
		r = fyne.NewStaticResource("palpo-tray.png", data)
	}
	trayIcons[c] = r
	return r
}

// stateIcon draws the app icon small with a dot of colour c (ringed in
// white so it shows on dark and light panels) in its lower right corner.
func stateIcon(c color.RGBA) ([]byte, error) {
	src, err := png.Decode(bytes.NewReader(assets.Icon))
	if err != nil {
		return nil, err
	}
	dst := image.NewRGBA(image.Rect(0, 0, trayIconSize, trayIconSize))
	xdraw.CatmullRom.Scale(dst, dst.Bounds(), src, src.Bounds(), xdraw.Over, nil)
	const r, ring = 13.0, 3.0
	cx, cy := float64(trayIconSize)-r-ring, float64(trayIconSize)-r-ring
	for y := 0; y < trayIconSize; y++ {
		for x := 0; x < trayIconSize; x++ {
			dx, dy := float64(x)+0.5-cx, float64(y)+0.5-cy
			d2 := dx*dx + dy*dy
			switch {
			case d2 <= r*r:
				dst.SetRGBA(x, y, c)
			case d2 <= (r+ring)*(r+ring):
				dst.SetRGBA(x, y, color.RGBA{0xff, 0xff, 0xff, 0xff})
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, dst); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
