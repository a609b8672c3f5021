package media

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	xdraw "golang.org/x/image/draw"
	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/internal/testmedia"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

func TestChoosePreset(t *testing.T) {
	cases := []struct {
		name         string
		ow, oh, w, h int
		method       string
		want         preset
		wantOriginal bool
	}{
		{name: "avatar crop", ow: 1000, oh: 800, w: 32, h: 32, method: "crop", want: preset{32, 32, "crop"}},
		{name: "crop between presets takes the larger", ow: 1000, oh: 800, w: 50, h: 50, method: "crop", want: preset{96, 96, "crop"}},
		{name: "crop beyond crop presets takes a covering scale", ow: 4000, oh: 3000, w: 200, h: 200, method: "crop", want: preset{320, 240, "scale"}},
		{name: "scale small", ow: 4000, oh: 3000, w: 100, h: 100, method: "scale", want: preset{320, 240, "scale"}},
		{name: "scale exact preset", ow: 4000, oh: 3000, w: 640, h: 480, method: "scale", want: preset{640, 480, "scale"}},
		{name: "scale between presets", ow: 4000, oh: 3000, w: 700, h: 500, method: "scale", want: preset{800, 600, "scale"}},
		{name: "scale larger than every preset", ow: 4000, oh: 3000, w: 1000, h: 1000, method: "scale", wantOriginal: true},
		{name: "image smaller than request", ow: 200, oh: 100, w: 320, h: 240, method: "scale", wantOriginal: true},
		{name: "image smaller than crop request", ow: 20, oh: 20, w: 32, h: 32, method: "crop", wantOriginal: true},
		{name: "tall thin image cannot be cropped", ow: 20, oh: 4000, w: 32, h: 32, method: "crop", wantOriginal: true},
		{name: "preset as big as the image is the original", ow: 320, oh: 240, w: 100, h: 100, method: "scale", wantOriginal: true},
		{name: "wide panorama", ow: 12000, oh: 1000, w: 320, h: 240, method: "scale", want: preset{320, 240, "scale"}},
	}
	for _, c := range cases {
		p, ok := choosePreset(c.ow, c.oh, c.w, c.h, c.method)
		if c.wantOriginal {
			if ok {
				t.Errorf("%s: got preset %v, want the original", c.name, p)
			}
			continue
		}
		if !ok || p != c.want {
			t.Errorf("%s: got %v (ok %v), want %v", c.name, p, ok, c.want)
			continue
		}
		// Never smaller than asked: a scale result must contain the
		// requested box's fit, a crop result must cover the box.
		tw, th := p.w, p.h
		if p.method == "scale" {
			tw, th = fitDims(c.ow, c.oh, p.w, p.h)
		}
		needW, needH := c.w, c.h
		if c.method == "scale" {
			needW, needH = fitDims(c.ow, c.oh, c.w, c.h)
		}
		if tw < needW || th < needH {
			t.Errorf("%s: thumbnail %dx%d is smaller than the %dx%d asked", c.name, tw, th, needW, needH)
		}
	}
}

func TestFitDims(t *testing.T) {
	for _, c := range []struct{ w, h, bw, bh, ww, wh int }{
		{1000, 800, 320, 240, 300, 240},
		{800, 1000, 320, 240, 192, 240},
		{4000, 3000, 800, 600, 800, 600},
		{10000, 10, 320, 240, 320, 1},
	} {
		if w, h := fitDims(c.w, c.h, c.bw, c.bh); w != c.ww || h != c.wh {
			t.Errorf("fitDims(%d,%d into %d,%d) = %d,%d; want %d,%d", c.w, c.h, c.bw, c.bh, w, h, c.ww, c.wh)
		}
	}
}

func TestContentDisposition(t *testing.T) {
	for _, c := range []struct {
		inline bool
		name   string
		want   string
	}{
		{true, "", "inline"},
		{false, "", "attachment"},
		{true, "cat.png", `inline; filename="cat.png"`},
		{false, "War and Peace.pdf", `attachment; filename="War and Peace.pdf"`},
		{false, `evil".html`, `attachment; filename*=utf-8''evil%22.html`},
		{false, "a\r\nSet-Cookie: x", `attachment; filename*=utf-8''a%0D%0ASet-Cookie%3A%20x`},
		{true, "résumé.txt", `inline; filename*=utf-8''r%C3%A9sum%C3%A9.txt`},
		{false, "日本.txt", `attachment; filename*=utf-8''%E6%97%A5%E6%9C%AC.txt`},
	} {
		if got := ContentDisposition(c.inline, c.name); got != c.want {
			t.Errorf("ContentDisposition(%v, %q) = %q; want %q", c.inline, c.name, got, c.want)
		}
	}
}

func TestContentTypeRules(t *testing.T) {
	for in, want := range map[string]string{
		"":                          "application/octet-stream",
		"garbage":                   "application/octet-stream",
		"IMAGE/PNG":                 "image/png",
		"text/plain; charset=UTF-8": "text/plain; charset=utf-8",
		"image/png; name=x":         "image/png",
		"text/html\r\nX-Evil: 1":    "application/octet-stream",
	} {
		if got := NormalizeContentType(in); got != want {
			t.Errorf("NormalizeContentType(%q) = %q; want %q", in, got, want)
		}
	}
	pngBytes := encodePNG(t, image.NewRGBA(image.Rect(0, 0, 2, 2)))
	for _, c := range []struct {
		claimed string
		body    []byte
		inline  bool
	}{
		{"image/png", pngBytes, true},
		{"text/plain", []byte("hello"), true},
		{"text/plain", []byte("<html><script>alert(1)</script>"), false},
		{"image/png", []byte("  <svg xmlns='http://www.w3.org/2000/svg'><script/></svg>"), false},
		{"text/html", []byte("<p>hi"), false},
		{"image/svg+xml", []byte("<svg/>"), false},
		{"application/javascript", []byte("alert(1)"), false},
		{"application/pdf", []byte("%PDF-1.4"), false},
		{"video/mp4", []byte("whatever"), true},
	} {
		if got := Inline(NormalizeContentType(c.claimed), Sniff(c.body)); got != c.inline {
			t.Errorf("Inline(%s, %q) = %v; want %v", c.claimed, c.body, got, c.inline)
		}
	}
}

func TestValidMediaID(t *testing.T) {
	for _, ok := range []string{"abc", "A-b_9", newMediaID()} {
		if !ValidMediaID(ok) {
			t.Errorf("%q should be valid", ok)
		}
	}
	for _, bad := range []string{"", "..", "a/b", "a.b", "a%2Fb", "ü", strings.Repeat("a", 256)} {
		if ValidMediaID(bad) {
			t.Errorf("%q should be invalid", bad)
		}
	}
	if id := newMediaID(); len(id) != 24 {
		t.Errorf("media ID %q is not 24 characters", id)
	}
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// newTestService is a media service on a fresh database.
func newTestService(t *testing.T, opts ...func(*config.Config)) *Service {
	t.Helper()
	dir := t.TempDir()
	db, err := storage.Open(context.Background(), filepath.Join(dir, "palpo.db"), 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg := config.Default()
	for _, o := range opts {
		o(cfg)
	}
	return New(db, cfg, dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func TestPNGBombRejectedWithoutDecoding(t *testing.T) {
	// The generator makes real PNGs: a small one decodes.
	if img, err := png.Decode(bytes.NewReader(testmedia.PNGBomb(300, 2500))); err != nil || img.Bounds().Dy() != 2500 {
		t.Fatalf("small bomb does not decode: %v", err)
	}
	bomb := testmedia.PNGBomb(40000, 40000)
	t.Logf("bomb: %d bytes claiming 40000x40000", len(bomb))
	s := newTestService(t)
	ctx := context.Background()
	uri, err := s.Upload(ctx, "@alice:localhost", UploadRequest{Body: bytes.NewReader(bomb), ContentLength: int64(len(bomb)), ContentType: "image/png"})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = s.Thumbnail(ctx, ThumbnailRequest{ServerName: uri.Homeserver, MediaID: uri.FileID, Width: 96, Height: 96, Method: "crop"})
	runtime.ReadMemStats(&after)
	var re mautrix.RespError
	if !errors.As(err, &re) || re.ErrCode != "M_TOO_LARGE" || re.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("thumbnail of a bomb: %v; want 413 M_TOO_LARGE", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Fatalf("refusing the bomb allocated %d bytes; it must not be decoded", alloc)
	}
	// The file itself is still there to download.
	c, err := s.Download(ctx, DownloadRequest{ServerName: uri.Homeserver, MediaID: uri.FileID})
	if err != nil {
		t.Fatal(err)
	}
	c.File.Close()
	if c.Size != int64(len(bomb)) {
		t.Fatalf("download size %d, want %d", c.Size, len(bomb))
	}
}

func TestProbeLimits(t *testing.T) {
	lim := limits{maxPixels: 100 * 100, maxW: 200, maxH: 200}
	for _, c := range []struct {
		w, h int
		ok   bool
	}{{100, 100, true}, {101, 100, false}, {201, 10, false}, {10, 201, false}, {50, 200, true}} {
		_, err := probeImage(bytes.NewReader(encodePNG(t, image.NewGray(image.Rect(0, 0, c.w, c.h)))), lim)
		if (err == nil) != c.ok {
			t.Errorf("%dx%d: error %v, want ok=%v", c.w, c.h, err, c.ok)
		}
	}
	if _, err := probeImage(bytes.NewReader([]byte("not an image at all")), lim); !errors.Is(err, errNotImage) {
		t.Errorf("text: %v, want errNotImage", err)
	}
}

func twoFrameGIF(t testing.TB, w, h int) []byte {
	t.Helper()
	pal := color.Palette{color.Black, color.White, color.RGBA{255, 0, 0, 255}}
	g := &gif.GIF{}
	for i := range 2 {
		f := image.NewPaletted(image.Rect(0, 0, w, h), pal)
		for j := range f.Pix {
			f.Pix[j] = uint8(1 + i)
		}
		g.Image = append(g.Image, f)
		g.Delay = append(g.Delay, 10)
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, g); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestAnimationDetection(t *testing.T) {
	lim := limits{maxPixels: 1 << 30, maxW: 1 << 15, maxH: 1 << 15}
	still := new(bytes.Buffer)
	gif.Encode(still, image.NewPaletted(image.Rect(0, 0, 10, 10), color.Palette{color.Black}), nil)
	anim, _ := os.ReadFile("testdata/anim.webp")
	photo, _ := os.ReadFile("testdata/photo.webp")
	for name, c := range map[string]struct {
		data     []byte
		animated bool
	}{
		"animated gif":  {twoFrameGIF(t, 20, 10), true},
		"still gif":     {still.Bytes(), false},
		"animated webp": {anim, true},
		"still webp":    {photo, false},
		"png":           {encodePNG(t, image.NewGray(image.Rect(0, 0, 5, 5))), false},
		"apng":          {fakeAPNG(t), true},
	} {
		info, err := probeImage(bytes.NewReader(c.data), lim)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if info.animated != c.animated {
			t.Errorf("%s: animated %v, want %v", name, info.animated, c.animated)
		}
	}
}

// fakeAPNG inserts an acTL chunk before a PNG's IDAT, which is what makes
// a PNG an APNG for a reader looking for animation.
func fakeAPNG(t testing.TB) []byte {
	p := encodePNG(t, image.NewGray(image.Rect(0, 0, 5, 5)))
	i := bytes.Index(p, []byte("IDAT")) - 4
	actl := []byte{0, 0, 0, 8, 'a', 'c', 'T', 'L', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0}
	return append(append(append([]byte{}, p[:i]...), actl...), p[i:]...)
}

// exifJPEG is a JPEG of w×h (stored) carrying an EXIF orientation.
func exifJPEG(t testing.TB, w, h, orientation int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{0, 0, 255, 255}
			if x < w/2 && y < h/2 { // top-left quadrant red, the rest blue
				c = color.RGBA{255, 0, 0, 255}
			}
			img.Set(x, y, c)
		}
	}
	var j bytes.Buffer
	if err := jpeg.Encode(&j, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	tiff := []byte{'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, byte(orientation), 0, 0, 0, 0, 0, 0}
	app1 := append([]byte("Exif\x00\x00"), tiff...)
	seg := []byte{0xff, 0xe1, byte((len(app1) + 2) >> 8), byte(len(app1) + 2)}
	out := append([]byte{0xff, 0xd8}, seg...)
	out = append(out, app1...)
	return append(out, j.Bytes()[2:]...)
}

func TestEXIFOrientation(t *testing.T) {
	lim := limits{maxPixels: 1 << 30, maxW: 1 << 15, maxH: 1 << 15}
	data := exifJPEG(t, 800, 400, 6) // stored landscape, shown portrait
	info, err := probeImage(bytes.NewReader(data), lim)
	if err != nil {
		t.Fatal(err)
	}
	if info.orientation != 6 || info.width != 400 || info.height != 800 {
		t.Fatalf("orientation %d, shown %dx%d; want 6, 400x800", info.orientation, info.width, info.height)
	}
	src, err := decodeImage(bytes.NewReader(data), info)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := choosePreset(info.width, info.height, 320, 240, "scale")
	if !ok {
		t.Fatal("no preset")
	}
	out := render(src, info, p)
	if b := out.Bounds(); b.Dx() != 120 || b.Dy() != 240 {
		t.Fatalf("thumbnail %v, want 120x240 (portrait)", b)
	}
	// Rotated 90° clockwise, the red top-left quadrant is at the top right.
	r, _, b, _ := out.At(out.Bounds().Dx()-10, 10).RGBA()
	if r < 0xc000 || b > 0x4000 {
		t.Fatalf("top right is not red after rotation: r=%x b=%x", r, b)
	}
}

func TestRenderSizes(t *testing.T) {
	src := image.NewRGBA(image.Rect(0, 0, 1000, 800))
	info := &imageInfo{format: "png", rawW: 1000, rawH: 800, width: 1000, height: 800, orientation: 1}
	for _, c := range []struct {
		p    preset
		w, h int
	}{
		{preset{32, 32, "crop"}, 32, 32},
		{preset{96, 96, "crop"}, 96, 96},
		{preset{320, 240, "scale"}, 300, 240},
		{preset{640, 480, "scale"}, 600, 480},
		{preset{800, 600, "scale"}, 750, 600},
		{preset{method: "still"}, 1000, 800},
	} {
		if b := render(src, info, c.p).Bounds(); b.Dx() != c.w || b.Dy() != c.h {
			t.Errorf("%v: %dx%d, want %dx%d", c.p, b.Dx(), b.Dy(), c.w, c.h)
		}
	}
}

func TestBlockedAddresses(t *testing.T) {
	p := &previewer{allow: []netip.Prefix{netip.MustParsePrefix("192.168.7.0/24")}}
	for addr, want := range map[string]bool{
		"127.0.0.1": true, "127.1.2.3": true, "::1": true, "10.1.2.3": true, "172.16.0.1": true,
		"192.168.1.1": true, "169.254.169.254": true, "fe80::1": true, "fc00::1": true, "224.0.0.1": true,
		"ff02::1": true, "0.0.0.0": true, "::": true, "100.64.0.1": true, "::ffff:127.0.0.1": true,
		"::ffff:10.0.0.1": true, "64:ff9b::a00:1": true, "255.255.255.255": true, "198.18.0.1": true,
		"93.184.216.34": false, "2606:4700::1111": false, "8.8.8.8": false,
		"192.168.7.20": false, // allowed by config
	} {
		if got := p.blocked(netip.MustParseAddr(addr)); got != want {
			t.Errorf("blocked(%s) = %v; want %v", addr, got, want)
		}
	}
}

// TestPreviewDialerDefeatsRebinding makes the early check see a public
// address (as a rebinding DNS server would answer first) while the real
// connection goes to loopback: the dialer's check at connect time must
// refuse it, and the server must see no request.
func TestPreviewDialerDefeatsRebinding(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<title>secret</title>")
	}))
	defer srv.Close()
	s := newTestService(t, func(c *config.Config) { c.Media.URLPreview.Enabled = true })
	s.preview.lookup = func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	_, err := s.PreviewURL(context.Background(), "@alice:localhost", "http://localhost:"+port+"/")
	var re mautrix.RespError
	if !errors.As(err, &re) || re.ErrCode != "M_FORBIDDEN" {
		t.Fatalf("preview through a rebinding name: %v; want M_FORBIDDEN", err)
	}
	if hits.Load() != 0 {
		t.Fatal("the private server was reached")
	}
}

func TestParseOpenGraph(t *testing.T) {
	page := `<!doctype html><html><head>
<meta charset="iso-8859-1">
<title>Fallback title</title>
<meta property="og:title" content="  The Title ">
<meta name="description" content="A description">
<meta property="og:image" content="/pic.png">
<meta property="og:image:width" content="48">
<meta property="og:type" content="article">
<meta property="og:type" content="ignored duplicate">
<meta property="twitter:card" content="not og">
</head><body><meta property="og:site_name" content="too late"></body></html>`
	og, img := parseOpenGraph(strings.NewReader(page), "text/html")
	want := map[string]any{"og:title": "The Title", "og:description": "A description", "og:image:width": 48, "og:type": "article"}
	if img != "/pic.png" {
		t.Errorf("image %q", img)
	}
	if len(og) != len(want) {
		t.Errorf("got %v, want %v", og, want)
	}
	for k, v := range want {
		if og[k] != v {
			t.Errorf("%s = %#v, want %#v", k, og[k], v)
		}
	}
	og, _ = parseOpenGraph(strings.NewReader("<title>Only a title</title><p>x"), "text/html; charset=utf-8")
	if og["og:title"] != "Only a title" {
		t.Errorf("title fallback: %v", og)
	}
	latin1 := "<meta property=\"og:title\" content=\"caf\xe9\">"
	og, _ = parseOpenGraph(strings.NewReader(latin1), "text/html; charset=iso-8859-1")
	if og["og:title"] != "café" {
		t.Errorf("charset: %q", og["og:title"])
	}
}

func TestWriteTempLeavesNothingOnFailure(t *testing.T) {
	st := &store{dir: t.TempDir()}
	if _, err := st.writeTemp(strings.NewReader(strings.Repeat("x", 2000)), 1000); err == nil {
		t.Fatal("over the limit: no error")
	}
	if _, err := st.writeTemp(io.MultiReader(strings.NewReader("abc"), iotestErrReader{}), 1000); err == nil {
		t.Fatal("read error: no error")
	}
	entries, _ := os.ReadDir(st.tempDir())
	if len(entries) != 0 {
		t.Fatalf("%d temporary files left", len(entries))
	}
	tf, err := st.writeTemp(bufio.NewReader(strings.NewReader("hello")), 5)
	if err != nil {
		t.Fatal(err)
	}
	if tf.sha256 != "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" || tf.size != 5 || string(tf.head) != "hello" {
		t.Fatalf("temp file %+v", tf)
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestPreviewURLValidation(t *testing.T) {
	s := newTestService(t, func(c *config.Config) { c.Media.URLPreview.Enabled = true })
	for _, u := range []string{"ftp://example.org/", "file:///etc/passwd", "/relative", "http://", "javascript:alert(1)"} {
		_, err := s.PreviewURL(context.Background(), "@a:localhost", u)
		var re mautrix.RespError
		if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
			t.Errorf("%q: %v; want a 400", u, err)
		}
	}
	off := newTestService(t)
	_, err := off.PreviewURL(context.Background(), "@a:localhost", "https://example.org/")
	var re mautrix.RespError
	if !errors.As(err, &re) || re.ErrCode != "M_UNRECOGNIZED" || re.StatusCode != http.StatusNotFound {
		t.Errorf("disabled: %v; want 404 M_UNRECOGNIZED", err)
	}
}

// photo12MP is a 4000×3000 JPEG with gradients and noise, like a photo.
func photo12MP(b testing.TB) []byte {
	const w, h = 4000, 3000
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	seed := uint32(7)
	for y := range h {
		for x := range w {
			seed = seed*1664525 + 1013904223
			img.Y[img.YOffset(x, y)] = uint8(x*200/w) + uint8(seed>>27)
			img.Cb[img.COffset(x, y)] = uint8(y * 255 / h)
			img.Cr[img.COffset(x, y)] = uint8((x + y) * 255 / (w + h))
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkThumbnail12MP times each stage of making the 800×600 and 96×96
// thumbnails of a 12-megapixel JPEG.
func BenchmarkThumbnail12MP(b *testing.B) {
	data := photo12MP(b)
	lim := limits{maxPixels: 32e6, maxW: 16384, maxH: 16384}
	info, err := probeImage(bytes.NewReader(data), lim)
	if err != nil {
		b.Fatal(err)
	}
	src, err := decodeImage(bytes.NewReader(data), info)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			decodeImage(bytes.NewReader(data), info)
		}
	})
	for _, p := range []preset{{800, 600, "scale"}, {96, 96, "crop"}} {
		b.Run(fmt.Sprintf("render-%dx%d-%s", p.w, p.h, p.method), func(b *testing.B) {
			for b.Loop() {
				render(src, info, p)
			}
		})
	}
	out := render(src, info, preset{800, 600, "scale"})
	b.Run("encode-800x600", func(b *testing.B) {
		for b.Loop() {
			encodeThumbnail(io.Discard, out, info)
		}
	})
}

// TestHalveFastPathMatchesGeneric compares the 4:2:0 halving with x/image's
// generic 2×2 average on the same photo.
func TestHalveFastPathMatchesGeneric(t *testing.T) {
	img := image.NewYCbCr(image.Rect(0, 0, 64, 48), image.YCbCrSubsampleRatio420)
	// A photo-like picture: luma varying pixel to pixel, chroma within the
	// range real colours use (far from the clamping at 0 and 255).
	for y := range 48 {
		for x := range 64 {
			img.Y[img.YOffset(x, y)] = uint8(40 + x*2 + y + (x*y)%9)
			img.Cb[img.COffset(x, y)] = uint8(100 + x/2)
			img.Cr[img.COffset(x, y)] = uint8(150 - y)
		}
	}
	for _, sr := range []image.Rectangle{img.Bounds(), image.Rect(8, 6, 40, 30)} {
		fast := image.NewRGBA(image.Rect(0, 0, sr.Dx()/2, sr.Dy()/2))
		if !halveYCbCr420(fast, fast.Bounds(), img, sr) {
			t.Fatal("fast path not taken")
		}
		slow := image.NewRGBA(fast.Bounds())
		xdraw.ApproxBiLinear.Scale(slow, slow.Bounds(), img, sr, xdraw.Src, nil)
		for i := range fast.Pix {
			if d := int(fast.Pix[i]) - int(slow.Pix[i]); d > 3 || d < -3 {
				t.Fatalf("%v: byte %d: fast %d, generic %d", sr, i, fast.Pix[i], slow.Pix[i])
			}
		}
	}
	if halveYCbCr420(image.NewRGBA(image.Rect(0, 0, 4, 4)), image.Rect(0, 0, 4, 4), img, image.Rect(1, 0, 9, 8)) {
		t.Fatal("odd-aligned region took the fast path")
	}
}

// TestConcurrentUploadsAndDeletesOfOneContent races uploads and deletions
// of the same bytes: whatever the interleaving, every media item that
// survives must still have its file, and no file may outlive its last user.
func TestConcurrentUploadsAndDeletesOfOneContent(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	data := bytes.Repeat([]byte("same bytes "), 5000)
	var wg sync.WaitGroup
	kept := make(chan string, 16)
	for i := range 16 {
		wg.Go(func() {
			uri, err := s.Upload(ctx, "@alice:localhost", UploadRequest{Body: bytes.NewReader(data), ContentLength: int64(len(data))})
			if err != nil {
				t.Error(err)
				return
			}
			if i%2 == 0 {
				if err := s.Delete(ctx, uri.Homeserver, uri.FileID); err != nil {
					t.Error(err)
				}
				return
			}
			kept <- uri.FileID
		})
	}
	wg.Wait()
	close(kept)
	n := 0
	for mediaID := range kept {
		n++
		c, err := s.Download(ctx, DownloadRequest{ServerName: "localhost", MediaID: mediaID})
		if err != nil {
			t.Fatalf("surviving media %s: %v", mediaID, err)
		}
		got, _ := io.ReadAll(c.File)
		c.File.Close()
		if !bytes.Equal(got, data) {
			t.Fatalf("surviving media %s has other bytes", mediaID)
		}
		if err := s.Delete(ctx, "localhost", mediaID); err != nil {
			t.Fatal(err)
		}
	}
	if n != 8 {
		t.Fatalf("%d media kept, want 8", n)
	}
	var files int
	filepath.WalkDir(s.Dir(), func(_ string, d os.DirEntry, _ error) error {
		if d != nil && !d.IsDir() {
			files++
		}
		return nil
	})
	if files != 0 {
		t.Fatalf("%d files left after deleting everything", files)
	}
}
