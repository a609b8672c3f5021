// Command iconsizes renders assets/icon.png at every size the platforms want:
// PNGs for the freedesktop hicolor theme (Linux) and a multi-size palpo.ico
// (Windows: installer, shortcuts and the .exe's resource). It is plain Go so
// that packaging needs no ImageMagick; the results are committed in
// assets/icons and a test keeps them in step with assets/icon.png.
//
//	go run ./cmd/iconsizes -src assets/icon.png -out assets/icons
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"

	"golang.org/x/image/draw"
)

// Sizes are the hicolor sizes desktops look up (menus, docks, alt-tab, the
// software centre); 512 is the source itself.
var Sizes = []int{16, 24, 32, 48, 64, 128, 256, 512}

// icoSizes go into palpo.ico; Windows picks among them for Explorer, the
// taskbar and shortcuts.
var icoSizes = []int{16, 24, 32, 48, 64, 128, 256}

func main() {
	src := flag.String("src", "assets/icon.png", "source PNG (square, at least 256 pixels)")
	out := flag.String("out", "assets/icons", "output folder")
	flag.Parse()
	if err := Generate(*src, *out); err != nil {
		fmt.Fprintln(os.Stderr, "iconsizes:", err)
		os.Exit(1)
	}
}

// Generate writes palpo-<N>.png for every size in Sizes and palpo.ico into out.
func Generate(srcPath, out string) error {
	f, err := os.Open(srcPath)
	if err != nil {
		return err
	}
	defer f.Close()
	src, err := png.Decode(f)
	if err != nil {
		return fmt.Errorf("decoding %s: %w", srcPath, err)
	}
	if b := src.Bounds(); b.Dx() != b.Dy() || b.Dx() < 256 {
		return fmt.Errorf("%s is %dx%d; want a square of at least 256 pixels", srcPath, b.Dx(), b.Dy())
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	pngs := map[int][]byte{}
	for _, n := range Sizes {
		data, err := encode(resize(src, n))
		if err != nil {
			return err
		}
		pngs[n] = data
		if err := os.WriteFile(filepath.Join(out, fmt.Sprintf("palpo-%d.png", n)), data, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(out, "palpo.ico"), ico(pngs), 0o644)
}

func resize(src image.Image, n int) image.Image {
	if src.Bounds().Dx() == n {
		return src
	}
	dst := image.NewNRGBA(image.Rect(0, 0, n, n))
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Src, nil)
	return dst
}

func encode(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ico packs PNG images into an ICO file. Windows Vista and later read PNG
// entries at every size, which keeps the file small and the code short.
func ico(pngs map[int][]byte) []byte {
	var buf bytes.Buffer
	le := binary.LittleEndian
	_ = binary.Write(&buf, le, [3]uint16{0, 1, uint16(len(icoSizes))}) // reserved, type icon, count
	offset := 6 + 16*len(icoSizes)
	for _, n := range icoSizes {
		dim := uint8(n)
		if n >= 256 {
			dim = 0 // 0 means 256 in an ICO directory entry
		}
		_ = binary.Write(&buf, le, struct {
			W, H, Colours, Reserved uint8
			Planes, BitCount        uint16
			Size, Offset            uint32
		}{dim, dim, 0, 0, 1, 32, uint32(len(pngs[n])), uint32(offset)})
		offset += len(pngs[n])
	}
	for _, n := range icoSizes {
		buf.Write(pngs[n])
	}
	return buf.Bytes()
}
