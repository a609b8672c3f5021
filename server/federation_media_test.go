package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	mfed "maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// makePNG draws a w×h PNG with a gradient (so it does not compress to
// nothing).
func makePNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x ^ y) & 0xff), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// countingTransport carries B's federation requests itself (TLS to the
// destination's address, trusting the test CA) and counts the media ones,
// so a test can see how often B asked A for media.
type countingTransport struct {
	tr    *http.Transport
	media atomic.Int32
}

func newCountingTransport(ca *testserver.CA) *countingTransport {
	return &countingTransport{tr: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, "/federation/v1/media/") {
		c.media.Add(1)
	}
	r = r.Clone(r.Context())
	r.URL.Scheme = "https"
	return c.tr.RoundTrip(r)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func thumbnailOf(t *testing.T, c *mautrix.Client, uri id.ContentURI, w, h int, method string) image.Image {
	t.Helper()
	resp, err := c.DownloadThumbnail(context.Background(), uri, h, w, mautrix.DownloadThumbnailExtra{Method: method})
	if err != nil {
		t.Fatalf("thumbnail of %s: %v", uri, err)
	}
	defer resp.Body.Close()
	img, _, err := image.Decode(resp.Body)
	if err != nil {
		t.Fatalf("thumbnail of %s (%s): %v", uri, resp.Header.Get("Content-Type"), err)
	}
	return img
}

// TestFederationMediaPhoto: a photo uploaded on A is downloaded and
// thumbnailed by a user of B through B's client API; concurrent first
// downloads make one federation request; once cached, B serves the photo
// and new thumbnail sizes with A switched off.
func TestFederationMediaPhoto(t *testing.T) {
	ctx := context.Background()
	ca := testserver.NewCA(t)
	a := testserver.New(t, testserver.Federated(ca))
	b := testserver.New(t, testserver.Federated(ca))
	count := newCountingTransport(ca)
	b.Federation().SetTransport(func(dest string) http.RoundTripper {
		if dest == a.ServerName() {
			return count
		}
		return nil
	})
	alice := a.RegisterUser("alice")
	bob := b.RegisterUser("bob")
	photo := makePNG(t, 640, 480)
	up, err := alice.UploadBytesWithName(ctx, photo, "image/png", "garden.png")
	if err != nil {
		t.Fatal(err)
	}
	uri := up.ContentURI

	const parallel = 8
	var wg sync.WaitGroup
	results := make([][]byte, parallel)
	types := make([]string, parallel)
	errs := make([]error, parallel)
	for i := range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := bob.Download(ctx, uri)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			types[i] = resp.Header.Get("Content-Type")
			results[i], errs[i] = io.ReadAll(resp.Body)
		}()
	}
	wg.Wait()
	for i := range parallel {
		if errs[i] != nil {
			t.Fatalf("download %d: %v", i, errs[i])
		}
		if !bytes.Equal(results[i], photo) || types[i] != "image/png" {
			t.Fatalf("download %d: %d bytes of %s, want the %d bytes of image/png", i, len(results[i]), types[i], len(photo))
		}
	}
	if n := count.media.Load(); n != 1 {
		t.Fatalf("B asked A for the photo %d times, want once", n)
	}
	resp, err := bob.Download(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, "garden.png") {
		t.Errorf("Content-Disposition %q lost the file name", cd)
	}
	resp.Body.Close()

	thumb := thumbnailOf(t, bob, uri, 96, 96, "scale")
	if bw, bh := thumb.Bounds().Dx(), thumb.Bounds().Dy(); bw >= 640 || bh >= 480 || bw < 96 && bh < 96 {
		t.Fatalf("thumbnail is %dx%d, want smaller than 640x480 and at least 96 on one side", bw, bh)
	}

	// Served from B's copy: A is off.
	a.Down()
	got, err := bob.DownloadBytes(ctx, uri)
	if err != nil {
		t.Fatalf("download with A down: %v", err)
	}
	if !bytes.Equal(got, photo) {
		t.Fatal("download with A down: other bytes")
	}
	// A size not made before, made from B's copy.
	small := thumbnailOf(t, bob, uri, 32, 32, "crop")
	if small.Bounds().Dx() != 32 || small.Bounds().Dy() != 32 {
		t.Fatalf("a 32x32 thumbnail made with A down is %v, want 32x32", small.Bounds())
	}
	if n := count.media.Load(); n != 1 {
		t.Fatalf("B asked A for media %d times, want once", n)
	}
}

// TestFederationMediaErrors: unknown remote media is 404; media over B's
// size limit is refused (502 M_TOO_LARGE) and not cached.
func TestFederationMediaErrors(t *testing.T) {
	ctx := context.Background()
	ca := testserver.NewCA(t)
	a := testserver.New(t, testserver.Federated(ca))
	b := testserver.New(t, testserver.Federated(ca), func(cfg *config.Config) { cfg.Media.MaxUploadBytes = 4096 })
	alice := a.RegisterUser("alice")
	bob := b.RegisterUser("bob")

	_, err := bob.DownloadBytes(ctx, id.ContentURI{Homeserver: a.ServerName(), FileID: "nosuchmedia"})
	if !errors.Is(err, mautrix.MNotFound) {
		t.Fatalf("unknown remote media: %v, want M_NOT_FOUND", err)
	}
	resp, err := bob.DownloadThumbnail(ctx, id.ContentURI{Homeserver: a.ServerName(), FileID: "nosuchmedia"}, 32, 32)
	if !errors.Is(err, mautrix.MNotFound) {
		t.Fatalf("thumbnail of unknown remote media: %v, want M_NOT_FOUND", err)
	}
	_ = resp

	big := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB
	up, err := alice.UploadBytes(ctx, big, "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	_, err = bob.DownloadBytes(ctx, up.ContentURI)
	var he mautrix.HTTPError
	if !errors.Is(err, mautrix.MTooLarge) || !errors.As(err, &he) || he.Response.StatusCode != http.StatusBadGateway {
		t.Fatalf("remote media over the limit: %v, want 502 M_TOO_LARGE", err)
	}
	if usage, err := b.DB().RemoteMediaUsage(ctx); err != nil || usage != 0 {
		t.Fatalf("remote cache holds %d bytes (%v), want nothing", usage, err)
	}

	// Bad input on the remote path is checked before any fetch.
	_, err = bob.DownloadBytes(ctx, id.ContentURI{Homeserver: a.ServerName(), FileID: "bad.id"})
	if !errors.Is(err, mautrix.MInvalidParam) {
		t.Fatalf("bad media ID: %v, want M_INVALID_PARAM", err)
	}
}

// TestFederationMediaEndpoints: the federation endpoints need a signed
// request, answer unknown IDs 404, and answer with the spec's multipart.
func TestFederationMediaEndpoints(t *testing.T) {
	ctx := context.Background()
	a, b := fedPair(t)
	alice := a.RegisterUser("alice")
	photo := makePNG(t, 400, 300)
	up, err := alice.UploadBytesWithName(ctx, photo, "image/png", "cat.png")
	if err != nil {
		t.Fatal(err)
	}
	mediaID := up.ContentURI.FileID

	// Unsigned: 401.
	plain := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, path := range []string{"/media/download/" + mediaID, "/media/thumbnail/" + mediaID + "?width=32&height=32"} {
		resp, err := plain.Get(a.FederationURL + "/_matrix/federation/v1" + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "M_UNAUTHORIZED") {
			t.Fatalf("unsigned %s: %d %s, want 401 M_UNAUTHORIZED", path, resp.StatusCode, body)
		}
	}

	fc := b.Federation().Client()
	get := func(path []any, query map[string][]string) (*http.Response, error) {
		_, resp, err := fc.MakeFullRequest(ctx, mfed.RequestParams{
			ServerName: a.ServerName(), Method: http.MethodGet, Path: mfed.URLPath(path),
			Query: query, Authenticate: true, DontReadBody: true,
		})
		return resp, err
	}
	for _, path := range [][]any{{"v1", "media", "download", "nosuchmedia"}, {"v1", "media", "thumbnail", "nosuchmedia"}} {
		_, err := get(path, map[string][]string{"width": {"32"}, "height": {"32"}})
		if !errors.Is(err, mautrix.MNotFound) {
			t.Fatalf("signed %v of an unknown ID: %v, want 404 M_NOT_FOUND", path, err)
		}
	}
	if _, err := get([]any{"v1", "media", "thumbnail", mediaID}, map[string][]string{"height": {"32"}}); err == nil || !strings.Contains(err.Error(), "M_MISSING_PARAM") {
		t.Fatalf("thumbnail without width: %v, want M_MISSING_PARAM", err)
	}
	// An unknown thumbnail method is refused, as for clients.
	if _, err := get([]any{"v1", "media", "thumbnail", mediaID}, map[string][]string{"width": {"32"}, "height": {"32"}, "method": {"stretch"}}); err == nil || !strings.Contains(err.Error(), "M_INVALID_PARAM") {
		t.Fatalf("thumbnail with method=stretch: %v, want M_INVALID_PARAM", err)
	}
	// The federation backfill endpoint requires its limit.
	if _, err := get([]any{"v1", "backfill", "!nowhere:" + a.ServerName()}, map[string][]string{"v": {"$x"}}); err == nil || !strings.Contains(err.Error(), "M_MISSING_PARAM") {
		t.Fatalf("backfill without limit: %v, want M_MISSING_PARAM", err)
	}

	readParts := func(resp *http.Response) (meta []byte, partType, disposition string, data []byte) {
		t.Helper()
		defer resp.Body.Close()
		mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
			t.Fatalf("answer Content-Type %q, want multipart/mixed with a boundary", resp.Header.Get("Content-Type"))
		}
		mr := multipart.NewReader(resp.Body, params["boundary"])
		p1, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		if p1.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("first part Content-Type %q", p1.Header.Get("Content-Type"))
		}
		meta, _ = io.ReadAll(p1)
		p2, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		data, err = io.ReadAll(p2)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mr.NextPart(); err != io.EOF {
			t.Fatalf("a third part: %v", err)
		}
		return meta, p2.Header.Get("Content-Type"), p2.Header.Get("Content-Disposition"), data
	}

	resp, err := get([]any{"v1", "media", "download", mediaID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	meta, ct, cd, data := readParts(resp)
	if string(meta) != "{}" || ct != "image/png" || !strings.Contains(cd, "cat.png") || !bytes.Equal(data, photo) {
		t.Fatalf("download: meta %s, %s, %q, %d bytes", meta, ct, cd, len(data))
	}
	resp, err = get([]any{"v1", "media", "thumbnail", mediaID}, map[string][]string{"width": {"32"}, "height": {"32"}, "method": {"crop"}})
	if err != nil {
		t.Fatal(err)
	}
	meta, ct, _, data = readParts(resp)
	img, _, err := image.Decode(bytes.NewReader(data))
	if string(meta) != "{}" || err != nil || img.Bounds().Dx() >= 400 || !strings.HasPrefix(ct, "image/") {
		t.Fatalf("thumbnail: meta %s, %s, %v", meta, ct, err)
	}
}

// fakeOrigin answers B's federation media requests for the server name
// "media.example.org" with answer, counting them.
func fakeOrigin(t *testing.T, b *testserver.Server, answer func() *http.Response) *atomic.Int32 {
	t.Helper()
	var calls atomic.Int32
	b.Federation().SetTransport(func(dest string) http.RoundTripper {
		if dest != "media.example.org" {
			return nil
		}
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			calls.Add(1)
			resp := answer()
			resp.Request = r
			return resp, nil
		})
	})
	return &calls
}

// multipartAnswer is a federation media answer whose second part has the
// given headers and body, streamed (as a real server's would be) so that
// the reader decides how much of it is produced.
func multipartAnswer(header map[string]string, body io.Reader) *http.Response {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			p, err := mw.CreatePart(map[string][]string{"Content-Type": {"application/json"}})
			if err != nil {
				return err
			}
			if _, err := io.WriteString(p, "{}"); err != nil {
				return err
			}
			h := map[string][]string{}
			for k, v := range header {
				h[k] = []string{v}
			}
			if p, err = mw.CreatePart(h); err != nil {
				return err
			}
			if body != nil {
				if _, err := io.Copy(p, body); err != nil {
					return err
				}
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"multipart/mixed; boundary=" + mw.Boundary()}},
		Body:          pr,
		ContentLength: -1,
	}
}

// TestFederationMediaRedirect: a remote answering with a Location on a
// private address is not followed unless federation.allow_private_addresses
// is set (the test servers federate over loopback through a transport of
// their own, so the setting is free to differ).
func TestFederationMediaRedirect(t *testing.T) {
	ctx := context.Background()
	ca := testserver.NewCA(t)
	photo := makePNG(t, 64, 64)
	var hits atomic.Int32
	target := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "image/png")
		w.Write(photo)
	}))
	certFile, keyFile := ca.Issue("127.0.0.1")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	target.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	target.StartTLS()
	t.Cleanup(target.Close)
	redirect := func() *http.Response {
		return multipartAnswer(map[string]string{"Location": target.URL + "/photo.png"}, nil)
	}

	strict := testserver.New(t, testserver.Federated(ca), func(cfg *config.Config) { cfg.Federation.AllowPrivateAddresses = false })
	fakeOrigin(t, strict, redirect)
	bob := strict.RegisterUser("bob")
	uri := id.ContentURI{Homeserver: "media.example.org", FileID: "redirected"}
	_, err = bob.DownloadBytes(ctx, uri)
	var he mautrix.HTTPError
	if err == nil || !errors.As(err, &he) || he.Response.StatusCode != http.StatusBadGateway {
		t.Fatalf("redirect to a private address: %v, want 502", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the private address was reached %d times", n)
	}

	lan := testserver.New(t, testserver.Federated(ca))
	fakeOrigin(t, lan, redirect)
	carol := lan.RegisterUser("carol")
	got, err := carol.DownloadBytes(ctx, uri)
	if err != nil || !bytes.Equal(got, photo) {
		t.Fatalf("redirect with private addresses allowed: %v (%d bytes)", err, len(got))
	}
}

// endless is a body that never ends.
type endless struct{ n atomic.Int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	e.n.Add(int64(len(p)))
	return len(p), nil
}

// TestFederationMediaStreamLimit: a remote that streams more than the
// limit without announcing a length is cut off near the limit; a failed
// fetch is answered from memory for a while, then tried again.
func TestFederationMediaStreamLimit(t *testing.T) {
	ctx := context.Background()
	ca := testserver.NewCA(t)
	b := testserver.New(t, testserver.Federated(ca), func(cfg *config.Config) { cfg.Media.MaxUploadBytes = 64 << 10 })
	body := &endless{}
	var mode atomic.Int32 // 0: endless, 1: small file
	calls := fakeOrigin(t, b, func() *http.Response {
		if mode.Load() == 0 {
			return multipartAnswer(map[string]string{"Content-Type": "application/octet-stream"}, body)
		}
		return multipartAnswer(map[string]string{"Content-Type": "text/plain"}, strings.NewReader("small"))
	})
	bob := b.RegisterUser("bob")
	uri := id.ContentURI{Homeserver: "media.example.org", FileID: "endless"}
	_, err := bob.DownloadBytes(ctx, uri)
	if !errors.Is(err, mautrix.MTooLarge) {
		t.Fatalf("endless remote media: %v, want M_TOO_LARGE", err)
	}
	// B stopped reading just past its limit (the pipe lets the origin
	// produce only what B reads, plus the copy buffers in between).
	if n := body.n.Load(); n > 64<<10+1<<20 {
		t.Fatalf("B read %d bytes of an endless answer with a limit of 64 KiB", n)
	}
	if usage, err := b.DB().RemoteMediaUsage(ctx); err != nil || usage != 0 {
		t.Fatalf("remote cache holds %d bytes (%v), want nothing", usage, err)
	}
	mode.Store(1)
	if _, err := bob.DownloadBytes(ctx, uri); !errors.Is(err, mautrix.MTooLarge) {
		t.Fatalf("second try within the failure memory: %v, want the remembered M_TOO_LARGE", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("the origin was asked %d times, want once", n)
	}
	b.Media().Now = func() time.Time { return time.Now().Add(time.Minute) }
	got, err := bob.DownloadBytes(ctx, uri)
	if err != nil || string(got) != "small" {
		t.Fatalf("after the failure expired: %q, %v", got, err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("the origin was asked %d times, want twice", n)
	}
}

// TestFederationMediaEviction: the copies of remote media stay under
// media.remote_cache_max_bytes, the least recently used going first, and
// evicting a copy keeps a local upload of the same bytes.
func TestFederationMediaEviction(t *testing.T) {
	ctx := context.Background()
	ca := testserver.NewCA(t)
	a := testserver.New(t, testserver.Federated(ca))
	b := testserver.New(t, testserver.Federated(ca), func(cfg *config.Config) { cfg.Media.RemoteCacheMaxBytes = 3000 })
	alice := a.RegisterUser("alice")
	bob := b.RegisterUser("bob")
	first := bytes.Repeat([]byte("a"), 2000)
	second := bytes.Repeat([]byte("b"), 2000)
	up1, err := alice.UploadBytes(ctx, first, "text/plain")
	if err != nil {
		t.Fatal(err)
	}
	up2, err := alice.UploadBytes(ctx, second, "text/plain")
	if err != nil {
		t.Fatal(err)
	}
	// Bob has the first file's bytes as an upload of his own too.
	local, err := bob.UploadBytes(ctx, first, "text/plain")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []id.ContentURI{up1.ContentURI, up2.ContentURI} {
		if _, err := bob.DownloadBytes(ctx, u); err != nil {
			t.Fatalf("download %s: %v", u, err)
		}
	}
	usage, err := b.DB().RemoteMediaUsage(ctx)
	if err != nil || usage > 3000 {
		t.Fatalf("remote copies take %d bytes (%v), want at most 3000", usage, err)
	}
	if _, err := b.DB().GetRemoteMedia(ctx, a.ServerName(), up1.ContentURI.FileID); err == nil {
		t.Fatal("the least recently used copy is still cached")
	}
	if got, err := bob.DownloadBytes(ctx, local.ContentURI); err != nil || !bytes.Equal(got, first) {
		t.Fatalf("local upload with the evicted copy's bytes: %v", err)
	}
	// Not cached any more: fetched again while A is up.
	if got, err := bob.DownloadBytes(ctx, up1.ContentURI); err != nil || !bytes.Equal(got, first) {
		t.Fatalf("evicted copy fetched again: %v", err)
	}
	// The deprecated unauthenticated endpoint never fetches (frozen).
	resp, err := http.Get(b.URL + "/_matrix/media/v3/download/" + a.ServerName() + "/" + up2.ContentURI.FileID)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unauthenticated download of remote media: %d, want 404", resp.StatusCode)
	}
}
