package clientapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	_ "golang.org/x/image/webp"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/internal/testmedia"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

const (
	mediaUploadPath   = "/_matrix/media/v3/upload"
	mediaClientPrefix = "/_matrix/client/v1/media"
)

func mediaDownloadPath(uri id.ContentURI) string {
	return mediaClientPrefix + "/download/" + uri.Homeserver + "/" + uri.FileID
}

func mediaThumbPath(uri id.ContentURI, w, h int, method string) string {
	return fmt.Sprintf("%s/thumbnail/%s/%s?width=%d&height=%d&method=%s", mediaClientPrefix, uri.Homeserver, uri.FileID, w, h, method)
}

// mediaDo sends a raw request (token may be empty) and returns the answer
// with its body read.
func mediaDo(t *testing.T, ts *testserver.Server, token, method, path string, body io.Reader, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, data
}

// mediaWantErr checks a raw answer is a Matrix error.
func mediaWantErr(t *testing.T, what string, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	var e struct {
		ErrCode string `json:"errcode"`
		Error   string `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	if resp.StatusCode != status || e.ErrCode != code {
		t.Fatalf("%s: got %d %s (%s); want %d %s", what, resp.StatusCode, e.ErrCode, body, status, code)
	}
}

func mediaUpload(t *testing.T, c *mautrix.Client, data []byte, contentType, name string) id.ContentURI {
	t.Helper()
	resp, err := c.UploadMedia(t.Context(), mautrix.ReqUploadMedia{ContentBytes: data, ContentType: contentType, FileName: name})
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	if resp.ContentURI.Homeserver != "localhost" || len(resp.ContentURI.FileID) != 24 {
		t.Fatalf("content_uri %s", resp.ContentURI)
	}
	return resp.ContentURI
}

func mediaRandom(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// mediaFiles lists the content files under the media directory.
func mediaFiles(t *testing.T, ts *testserver.Server) (content, temp []string) {
	t.Helper()
	root := filepath.Join(ts.DataDir, "media")
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if strings.HasPrefix(p, filepath.Join(root, "tmp")+string(filepath.Separator)) {
			temp = append(temp, p)
		} else {
			content = append(content, p)
		}
		return nil
	})
	return content, temp
}

func TestMediaUploadDownloadRoundTrip(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	data := mediaRandom(3<<20+17, 1)
	uri := mediaUpload(t, alice, data, "application/octet-stream", "War and Peace.bin")

	got, err := bob.DownloadBytes(t.Context(), uri)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes differ from the %d uploaded", len(got), len(data))
	}
	resp, err := bob.Download(t.Context(), uri)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for k, want := range map[string]string{
		"Content-Type":                 "application/octet-stream",
		"Content-Disposition":          `attachment; filename="War and Peace.bin"`,
		"Content-Security-Policy":      "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';",
		"Cross-Origin-Resource-Policy": "cross-origin",
		"X-Content-Type-Options":       "nosniff",
		"Content-Length":               fmt.Sprint(len(data)),
		"Accept-Ranges":                "bytes",
		"Access-Control-Allow-Origin":  "*",
	} {
		if v := resp.Header.Get(k); v != want {
			t.Errorf("%s: %q, want %q", k, v, want)
		}
	}

	// The file name in the path replaces the uploader's.
	r, body := mediaDo(t, ts, bob.AccessToken, http.MethodGet, mediaDownloadPath(uri)+"/r%C3%A9sum%C3%A9.pdf", nil, nil)
	if r.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("download with a file name: %d", r.StatusCode)
	}
	if cd := r.Header.Get("Content-Disposition"); cd != "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf" {
		t.Fatalf("Content-Disposition %q", cd)
	}
	// HEAD gives the headers without the body.
	r, body = mediaDo(t, ts, bob.AccessToken, http.MethodHead, mediaDownloadPath(uri), nil, nil)
	if r.StatusCode != http.StatusOK || len(body) != 0 || r.Header.Get("Content-Length") != fmt.Sprint(len(data)) {
		t.Fatalf("HEAD: %d, %d body bytes, length %s", r.StatusCode, len(body), r.Header.Get("Content-Length"))
	}
	// An upload without a name or type.
	r, body = mediaDo(t, ts, alice.AccessToken, http.MethodPost, mediaUploadPath, bytes.NewReader([]byte("plain")), http.Header{"Content-Type": nil})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("upload without a type: %d %s", r.StatusCode, body)
	}
	var up struct {
		ContentURI id.ContentURI `json:"content_uri"`
	}
	if err := json.Unmarshal(body, &up); err != nil {
		t.Fatal(err)
	}
	r, _ = mediaDo(t, ts, alice.AccessToken, http.MethodGet, mediaDownloadPath(up.ContentURI), nil, nil)
	if r.Header.Get("Content-Type") != "application/octet-stream" || r.Header.Get("Content-Disposition") != "attachment" {
		t.Fatalf("no type or name: %q, %q", r.Header.Get("Content-Type"), r.Header.Get("Content-Disposition"))
	}
	// An empty file is a file.
	empty := mediaUpload(t, alice, []byte{}, "text/plain", "")
	if got, err := bob.DownloadBytes(t.Context(), empty); err != nil || len(got) != 0 {
		t.Fatalf("empty file: %v, %d bytes", err, len(got))
	}
}

func TestMediaDispositionAndType(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	var pngBuf bytes.Buffer
	png.Encode(&pngBuf, image.NewRGBA(image.Rect(0, 0, 4, 4)))
	for _, c := range []struct {
		name, contentType string
		body              []byte
		wantType, wantCD  string
	}{
		{"png", "image/png", pngBuf.Bytes(), "image/png", `inline; filename="a.png"`},
		{"text", "text/plain; charset=UTF-8", []byte("hello"), "text/plain; charset=utf-8", `inline; filename="a.png"`},
		{"html", "text/html", []byte("<html><script>alert(1)</script></html>"), "text/html", `attachment; filename="a.png"`},
		{"html claiming text", "text/plain", []byte("<html><script>alert(1)</script></html>"), "text/plain", `attachment; filename="a.png"`},
		{"svg claiming png", "image/png", []byte("<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>"), "image/png", `attachment; filename="a.png"`},
		{"javascript", "application/javascript", []byte("alert(1)"), "application/javascript", `attachment; filename="a.png"`},
		{"bad type", "not a type", []byte("x"), "application/octet-stream", `attachment; filename="a.png"`},
	} {
		uri := mediaUpload(t, alice, c.body, c.contentType, "a.png")
		r, body := mediaDo(t, ts, alice.AccessToken, http.MethodGet, mediaDownloadPath(uri), nil, nil)
		if r.StatusCode != http.StatusOK || !bytes.Equal(body, c.body) {
			t.Fatalf("%s: status %d", c.name, r.StatusCode)
		}
		if ct, cd := r.Header.Get("Content-Type"), r.Header.Get("Content-Disposition"); ct != c.wantType || cd != c.wantCD {
			t.Errorf("%s: Content-Type %q, Content-Disposition %q; want %q, %q", c.name, ct, cd, c.wantType, c.wantCD)
		}
	}
}

func TestMediaRangeRequest(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	data := mediaRandom(10000, 2)
	uri := mediaUpload(t, alice, data, "video/mp4", "clip.mp4")
	r, body := mediaDo(t, ts, alice.AccessToken, http.MethodGet, mediaDownloadPath(uri), nil, http.Header{"Range": {"bytes=100-199"}})
	if r.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[100:200]) {
		t.Fatalf("range: %d with %d bytes", r.StatusCode, len(body))
	}
	if cr := r.Header.Get("Content-Range"); cr != "bytes 100-199/10000" {
		t.Fatalf("Content-Range %q", cr)
	}
	r, body = mediaDo(t, ts, alice.AccessToken, http.MethodGet, mediaDownloadPath(uri), nil, http.Header{"Range": {"bytes=-50"}})
	if r.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[len(data)-50:]) {
		t.Fatalf("suffix range: %d with %d bytes", r.StatusCode, len(body))
	}
	r, _ = mediaDo(t, ts, alice.AccessToken, http.MethodGet, mediaDownloadPath(uri), nil, http.Header{"Range": {"bytes=20000-"}})
	if r.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("range past the end: %d", r.StatusCode)
	}
	// Conditional requests: the ETag is the content hash.
	r, _ = mediaDo(t, ts, alice.AccessToken, http.MethodGet, mediaDownloadPath(uri), nil, nil)
	etag := r.Header.Get("ETag")
	r, body = mediaDo(t, ts, alice.AccessToken, http.MethodGet, mediaDownloadPath(uri), nil, http.Header{"If-None-Match": {etag}})
	if r.StatusCode != http.StatusNotModified || len(body) != 0 || len(etag) != 66 {
		t.Fatalf("If-None-Match %s: %d", etag, r.StatusCode)
	}
}

func TestMediaErrors(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	uri := mediaUpload(t, alice, []byte("hello"), "text/plain", "")
	tok := alice.AccessToken
	for _, c := range []struct {
		what, path   string
		status       int
		code         string
		token        string
		noAuthHeader bool
	}{
		{"unknown media", mediaClientPrefix + "/download/localhost/AAAAAAAAAAAAAAAAAAAAAAAA", 404, "M_NOT_FOUND", tok, false},
		{"unknown thumbnail", mediaClientPrefix + "/thumbnail/localhost/AAAAAAAAAAAAAAAAAAAAAAAA?width=32&height=32", 404, "M_NOT_FOUND", tok, false},
		{"other server", mediaClientPrefix + "/download/example.org/" + uri.FileID, 404, "M_NOT_FOUND", tok, false},
		{"other server thumbnail", mediaClientPrefix + "/thumbnail/example.org/" + uri.FileID + "?width=32&height=32", 404, "M_NOT_FOUND", tok, false},
		{"bad media id", mediaClientPrefix + "/download/localhost/bad.id", 400, "M_INVALID_PARAM", tok, false},
		{"encoded slash in media id", mediaClientPrefix + "/download/localhost/a%2F..%2Fb", 400, "M_INVALID_PARAM", tok, false},
		{"bad server name", mediaClientPrefix + "/download/bad_server!/" + uri.FileID, 400, "M_INVALID_PARAM", tok, false},
		{"bad timeout", mediaDownloadPath(uri) + "?timeout_ms=soon", 400, "M_INVALID_PARAM", tok, false},
		{"no token", mediaDownloadPath(uri), 401, "M_MISSING_TOKEN", "", true},
		{"bad token", mediaDownloadPath(uri), 401, "M_UNKNOWN_TOKEN", "nope", false},
		{"no token thumbnail", mediaThumbPath(uri, 32, 32, "crop"), 401, "M_MISSING_TOKEN", "", true},
		{"no token config", mediaClientPrefix + "/config", 401, "M_MISSING_TOKEN", "", true},
		{"no token preview", mediaClientPrefix + "/preview_url?url=https://example.org", 401, "M_MISSING_TOKEN", "", true},
	} {
		r, body := mediaDo(t, ts, c.token, http.MethodGet, c.path, nil, nil)
		mediaWantErr(t, c.what, r, body, c.status, c.code)
	}
	for _, c := range []struct {
		what, method, path string
		status             int
		code               string
	}{
		{"upload without token", http.MethodPost, mediaUploadPath, 401, "M_MISSING_TOKEN"},
		{"create without token", http.MethodPost, "/_matrix/media/v1/create", 401, "M_MISSING_TOKEN"},
		{"put without token", http.MethodPut, "/_matrix/media/v3/upload/localhost/" + uri.FileID, 401, "M_MISSING_TOKEN"},
		{"wrong method", http.MethodDelete, mediaDownloadPath(uri), 405, "M_UNRECOGNIZED"},
	} {
		r, body := mediaDo(t, ts, "", c.method, c.path, strings.NewReader("x"), nil)
		mediaWantErr(t, c.what, r, body, c.status, c.code)
	}
	// A file name that is not UTF-8 is refused.
	r, body := mediaDo(t, ts, tok, http.MethodPost, mediaUploadPath+"?filename=%FF", strings.NewReader("x"), nil)
	mediaWantErr(t, "non-UTF-8 filename", r, body, 400, "M_INVALID_PARAM")
	// mautrix sees the same.
	_, err := alice.DownloadBytes(t.Context(), id.ContentURI{Homeserver: "localhost", FileID: "nothere"})
	roomErr(t, "mautrix unknown media", err, 404, "M_NOT_FOUND")
}

func TestMediaConfig(t *testing.T) {
	ts := testserver.New(t, func(c *config.Config) { c.Media.MaxUploadBytes = 12345 })
	alice := ts.RegisterUser("alice")
	cfg, err := alice.GetMediaConfig(t.Context())
	if err != nil || cfg.UploadSize != 12345 {
		t.Fatalf("media config: %+v, %v", cfg, err)
	}
	r, body := mediaDo(t, ts, alice.AccessToken, http.MethodGet, "/_matrix/media/v3/config", nil, nil)
	if r.StatusCode != 200 || string(body) != `{"m.upload.size":12345}` {
		t.Fatalf("deprecated config: %d %s", r.StatusCode, body)
	}
}

// mediaUnsized hides a reader's length, so the request is sent chunked,
// without Content-Length.
type mediaUnsized struct{ r io.Reader }

func (u mediaUnsized) Read(p []byte) (int, error) { return u.r.Read(p) }

func TestMediaTooLarge(t *testing.T) {
	const limit = 64 << 10
	ts := testserver.New(t, func(c *config.Config) { c.Media.MaxUploadBytes = limit })
	alice := ts.RegisterUser("alice")
	tok := alice.AccessToken
	// Exactly the limit is fine, with or without Content-Length.
	mediaUpload(t, alice, mediaRandom(limit, 3), "application/octet-stream", "")
	r, body := mediaDo(t, ts, tok, http.MethodPost, mediaUploadPath, mediaUnsized{bytes.NewReader(mediaRandom(limit, 4))}, nil)
	if r.StatusCode != 200 {
		t.Fatalf("chunked upload at the limit: %d %s", r.StatusCode, body)
	}
	before, _ := mediaFiles(t, ts)

	_, err := alice.UploadBytes(t.Context(), mediaRandom(limit+1, 5), "application/octet-stream")
	roomErr(t, "Content-Length over the limit", err, 413, "M_TOO_LARGE")
	r, body = mediaDo(t, ts, tok, http.MethodPost, mediaUploadPath, mediaUnsized{bytes.NewReader(mediaRandom(3*limit, 6))}, nil)
	mediaWantErr(t, "chunked over the limit", r, body, 413, "M_TOO_LARGE")
	// The same on the async upload.
	cr, err := alice.CreateMXC(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r, body = mediaDo(t, ts, tok, http.MethodPut, "/_matrix/media/v3/upload/localhost/"+cr.ContentURI.FileID,
		mediaUnsized{bytes.NewReader(mediaRandom(2*limit, 7))}, nil)
	mediaWantErr(t, "chunked PUT over the limit", r, body, 413, "M_TOO_LARGE")

	after, temp := mediaFiles(t, ts)
	if len(after) != len(before) || len(temp) != 0 {
		t.Fatalf("refused uploads left files: %d content files (was %d), %d temporary", len(after), len(before), len(temp))
	}
}

func TestMediaTruncatedUploadLeavesNothing(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	addr := strings.TrimPrefix(ts.URL, "http://")
	head := fmt.Sprintf("POST %s?filename=cut.bin HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n", mediaUploadPath, addr, alice.AccessToken)

	// 1. The body ends early: the client closes its side and reads the answer.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte(head))
	conn.Write(mediaRandom(200000, 8))
	conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	conn.Close()
	mediaWantErr(t, "short body", resp, body, 400, "M_UNKNOWN")

	// 2. The client disconnects mid-upload without reading anything: wait
	// until the server has logged the request as finished.
	logged := func() int { return strings.Count(ts.Logs(), "path="+mediaUploadPath+" status=") }
	n := logged()
	conn, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte(head))
	conn.Write(mediaRandom(300000, 9))
	conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for logged() == n {
		if time.Now().After(deadline) {
			t.Fatal("the server did not finish the interrupted upload")
		}
		runtime.Gosched()
	}

	content, temp := mediaFiles(t, ts)
	if len(content) != 0 || len(temp) != 0 {
		t.Fatalf("truncated uploads left %d content and %d temporary files", len(content), len(temp))
	}
	if n, err := ts.DB().CountMediaContent(t.Context()); err != nil || n != 0 {
		t.Fatalf("%d content records (%v)", n, err)
	}
}

func TestMediaDuplicateContentStoredOnce(t *testing.T) {
	ts := testserver.New(t)
	root := ts.RegisterAdmin("root")
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	data := mediaRandom(100000, 10)
	a := mediaUpload(t, alice, data, "application/pdf", "a.pdf")
	b := mediaUpload(t, bob, data, "application/octet-stream", "b.bin")
	if a == b {
		t.Fatal("two uploads got the same media ID")
	}
	content, _ := mediaFiles(t, ts)
	if len(content) != 1 {
		t.Fatalf("%d files for one content", len(content))
	}
	if n, _ := ts.DB().CountMediaContent(t.Context()); n != 1 {
		t.Fatalf("%d content records", n)
	}
	// Each keeps its own metadata.
	r, _ := mediaDo(t, ts, bob.AccessToken, http.MethodGet, mediaDownloadPath(a), nil, nil)
	if r.Header.Get("Content-Type") != "application/pdf" || !strings.Contains(r.Header.Get("Content-Disposition"), "a.pdf") {
		t.Fatalf("a: %q %q", r.Header.Get("Content-Type"), r.Header.Get("Content-Disposition"))
	}
	// Deleting one keeps the file for the other.
	r, body := mediaDo(t, ts, root.AccessToken, http.MethodDelete, "/_synapse/admin/v1/media/localhost/"+a.FileID, nil, nil)
	if r.StatusCode != 200 {
		t.Fatalf("delete: %d %s", r.StatusCode, body)
	}
	_, err := alice.DownloadBytes(t.Context(), a)
	roomErr(t, "deleted media", err, 404, "M_NOT_FOUND")
	if got, err := alice.DownloadBytes(t.Context(), b); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the other upload of the same bytes: %v", err)
	}
	if content, _ := mediaFiles(t, ts); len(content) != 1 {
		t.Fatalf("%d files after deleting one of two uploads", len(content))
	}
	// Deleting the last one removes the file.
	mediaDo(t, ts, root.AccessToken, http.MethodDelete, "/_synapse/admin/v1/media/localhost/"+b.FileID, nil, nil)
	if content, _ := mediaFiles(t, ts); len(content) != 0 {
		t.Fatalf("%d files after deleting every upload", len(content))
	}
	// Uploading the bytes again works (the file is recreated).
	c := mediaUpload(t, alice, data, "application/octet-stream", "")
	if got, err := bob.DownloadBytes(t.Context(), c); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("upload after delete: %v", err)
	}
}

func TestMediaAsyncUpload(t *testing.T) {
	ts := testserver.New(t, func(c *config.Config) { c.Media.MaxPendingUploads = 3 })
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	ctx := t.Context()

	cr, err := alice.CreateMXC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cr.ContentURI.Homeserver != "localhost" || !strings.HasPrefix(cr.ContentURI.String(), "mxc://localhost/") {
		t.Fatalf("content_uri %s", cr.ContentURI)
	}
	if d := time.Until(cr.UnusedExpiresAt.Time); d < 23*time.Hour || d > 25*time.Hour {
		t.Fatalf("unused_expires_at is %v away, want 24h", d)
	}
	// Not uploaded yet: the spec's 504 once the timeout passes.
	r, body := mediaDo(t, ts, bob.AccessToken, http.MethodGet, mediaDownloadPath(cr.ContentURI)+"?timeout_ms=0", nil, nil)
	mediaWantErr(t, "download before upload", r, body, 504, "M_NOT_YET_UPLOADED")
	r, body = mediaDo(t, ts, bob.AccessToken, http.MethodGet, mediaThumbPath(cr.ContentURI, 32, 32, "crop")+"&timeout_ms=0", nil, nil)
	mediaWantErr(t, "thumbnail before upload", r, body, 504, "M_NOT_YET_UPLOADED")

	// A download waiting for the upload gets it.
	data := mediaRandom(50000, 11)
	waited := make(chan []byte, 1)
	go func() {
		got, err := bob.DownloadBytes(context.Background(), cr.ContentURI)
		if err != nil {
			t.Errorf("waiting download: %v", err)
		}
		waited <- got
	}()
	// Only the creator may upload.
	_, err = bob.UploadMedia(ctx, mautrix.ReqUploadMedia{ContentBytes: []byte("mine now"), ContentType: "text/plain", MXC: cr.ContentURI})
	roomErr(t, "someone else's media ID", err, 403, "M_FORBIDDEN")
	if _, err := alice.UploadMedia(ctx, mautrix.ReqUploadMedia{ContentBytes: data, ContentType: "image/png", FileName: "late.png", MXC: cr.ContentURI}); err != nil {
		t.Fatal(err)
	}
	if got := <-waited; !bytes.Equal(got, data) {
		t.Fatal("the waiting download got other bytes")
	}
	// Once only.
	_, err = alice.UploadMedia(ctx, mautrix.ReqUploadMedia{ContentBytes: []byte("again"), ContentType: "text/plain", MXC: cr.ContentURI})
	roomErr(t, "second upload", err, 409, "M_CANNOT_OVERWRITE_MEDIA")
	for _, c := range []struct {
		what string
		uri  id.ContentURI
		code string
		st   int
	}{
		{"unknown ID", id.ContentURI{Homeserver: "localhost", FileID: "NeverCreatedNeverCreated"}, "M_NOT_FOUND", 404},
		{"other server", id.ContentURI{Homeserver: "example.org", FileID: cr.ContentURI.FileID}, "M_NOT_FOUND", 404},
		{"malformed ID", id.ContentURI{Homeserver: "localhost", FileID: "not.valid"}, "M_INVALID_PARAM", 400},
		{"uploaded by POST", mediaUpload(t, alice, []byte("x"), "text/plain", ""), "M_CANNOT_OVERWRITE_MEDIA", 409},
	} {
		_, err := alice.UploadMedia(ctx, mautrix.ReqUploadMedia{ContentBytes: []byte("x"), ContentType: "text/plain", MXC: c.uri})
		roomErr(t, c.what, err, c.st, c.code)
	}

	// mautrix's UploadAsync: create, upload in the background, and a
	// download that waits for it.
	async := mediaRandom(70000, 12)
	resp, err := alice.UploadAsync(ctx, mautrix.ReqUploadMedia{ContentBytes: async, ContentType: "application/octet-stream"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := bob.DownloadBytes(ctx, resp.ContentURI); err != nil || !bytes.Equal(got, async) {
		t.Fatalf("async upload: %v", err)
	}

	// Pending IDs are limited per user (3 here).
	var pending []id.ContentURI
	for range 3 {
		cr, err := alice.CreateMXC(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, cr.ContentURI)
	}
	_, err = alice.CreateMXC(ctx)
	roomErr(t, "too many pending", err, 429, "M_LIMIT_EXCEEDED")
	if _, err := bob.CreateMXC(ctx); err != nil {
		t.Fatalf("another user's limit is separate: %v", err)
	}
	// Filling one frees a slot.
	if _, err := alice.UploadMedia(ctx, mautrix.ReqUploadMedia{ContentBytes: []byte("x"), ContentType: "text/plain", MXC: pending[0]}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateMXC(ctx); err != nil {
		t.Fatalf("after an upload: %v", err)
	}
	// After 24 hours unused IDs are gone, and their slots with them.
	ts.Media().Now = func() time.Time { return time.Now().Add(25 * time.Hour) }
	_, err = alice.UploadMedia(ctx, mautrix.ReqUploadMedia{ContentBytes: []byte("x"), ContentType: "text/plain", MXC: pending[1]})
	roomErr(t, "expired ID", err, 404, "M_NOT_FOUND")
	r, body = mediaDo(t, ts, bob.AccessToken, http.MethodGet, mediaDownloadPath(pending[2]), nil, nil)
	mediaWantErr(t, "download of an expired ID", r, body, 404, "M_NOT_FOUND")
	for range 3 {
		if _, err := alice.CreateMXC(ctx); err != nil {
			t.Fatalf("after expiry: %v", err)
		}
	}
}

func TestMediaQuota(t *testing.T) {
	ts := testserver.New(t, func(c *config.Config) { c.Media.MaxBytesPerUser = 100 << 10 })
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	mediaUpload(t, alice, mediaRandom(60<<10, 13), "application/octet-stream", "")
	_, err := alice.UploadBytes(t.Context(), mediaRandom(60<<10, 14), "application/octet-stream")
	roomErr(t, "over quota", err, 403, "M_FORBIDDEN")
	r, body := mediaDo(t, ts, alice.AccessToken, http.MethodPost, mediaUploadPath, mediaUnsized{bytes.NewReader(mediaRandom(60<<10, 15))}, nil)
	mediaWantErr(t, "chunked over quota", r, body, 403, "M_FORBIDDEN")
	mediaUpload(t, alice, mediaRandom(30<<10, 16), "application/octet-stream", "")
	mediaUpload(t, bob, mediaRandom(60<<10, 17), "application/octet-stream", "")
	if _, temp := mediaFiles(t, ts); len(temp) != 0 {
		t.Fatalf("%d temporary files left", len(temp))
	}
}

func TestMediaUnauthenticatedDownloadFrozen(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	var buf bytes.Buffer
	png.Encode(&buf, mediaGradient(400, 300))
	uri := mediaUpload(t, alice, buf.Bytes(), "image/png", "a.png")
	for _, path := range []string{
		"/_matrix/media/v3/download/localhost/" + uri.FileID,
		"/_matrix/media/v3/download/localhost/" + uri.FileID + "/a.png",
		"/_matrix/media/v3/thumbnail/localhost/" + uri.FileID + "?width=32&height=32&method=crop",
	} {
		r, body := mediaDo(t, ts, "", http.MethodGet, path, nil, nil)
		mediaWantErr(t, path, r, body, 404, "M_NOT_FOUND")
		// A token does not unfreeze them.
		r, body = mediaDo(t, ts, alice.AccessToken, http.MethodGet, path, nil, nil)
		mediaWantErr(t, path+" with a token", r, body, 404, "M_NOT_FOUND")
	}

	// With a freeze date in the future, media uploaded before it are served.
	later := testserver.New(t, func(c *config.Config) { c.Media.UnauthenticatedBefore = "2100-01-01T00:00:00Z" })
	carol := later.RegisterUser("carol")
	uri = mediaUpload(t, carol, buf.Bytes(), "image/png", "a.png")
	r, body := mediaDo(t, later, "", http.MethodGet, "/_matrix/media/v3/download/localhost/"+uri.FileID, nil, nil)
	if r.StatusCode != 200 || !bytes.Equal(body, buf.Bytes()) {
		t.Fatalf("legacy download before the freeze: %d", r.StatusCode)
	}
	r, body = mediaDo(t, later, "", http.MethodGet, "/_matrix/media/v3/thumbnail/localhost/"+uri.FileID+"?width=32&height=32&method=crop", nil, nil)
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("legacy thumbnail before the freeze: %d %s", r.StatusCode, body)
	}
	// ... but not media uploaded after it.
	past := testserver.New(t, func(c *config.Config) { c.Media.UnauthenticatedBefore = "2020-01-01T00:00:00Z" })
	dave := past.RegisterUser("dave")
	uri = mediaUpload(t, dave, buf.Bytes(), "image/png", "a.png")
	r, body = mediaDo(t, past, "", http.MethodGet, "/_matrix/media/v3/download/localhost/"+uri.FileID, nil, nil)
	mediaWantErr(t, "legacy download after the freeze", r, body, 404, "M_NOT_FOUND")
}

// A media ID made by /create and not uploaded yet answers 504
// M_NOT_YET_UPLOADED after timeout_ms on every download endpoint, the
// legacy unauthenticated ones included when they serve media; a download
// waiting for the upload gets the content.
func TestMediaPendingOnEveryEndpoint(t *testing.T) {
	ts := testserver.New(t, func(c *config.Config) { c.Media.UnauthenticatedBefore = "2100-01-01T00:00:00Z" })
	alice := ts.RegisterUser("alice")
	cr, err := alice.CreateMXC(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	legacy := "/_matrix/media/v3/download/localhost/" + cr.ContentURI.FileID
	for _, p := range []struct{ path, token string }{
		{mediaDownloadPath(cr.ContentURI) + "?timeout_ms=0", alice.AccessToken},
		{mediaThumbPath(cr.ContentURI, 32, 32, "crop") + "&timeout_ms=0", alice.AccessToken},
		{legacy + "?timeout_ms=0", ""},
		{legacy + "/name.png?timeout_ms=0", ""},
		{"/_matrix/media/v3/thumbnail/localhost/" + cr.ContentURI.FileID + "?width=32&height=32&timeout_ms=0", ""},
	} {
		r, body := mediaDo(t, ts, p.token, http.MethodGet, p.path, nil, nil)
		mediaWantErr(t, p.path, r, body, 504, "M_NOT_YET_UPLOADED")
	}
	// timeout_ms is waited for.
	start := time.Now()
	r, body := mediaDo(t, ts, "", http.MethodGet, legacy+"?timeout_ms=300", nil, nil)
	mediaWantErr(t, "legacy download with a timeout", r, body, 504, "M_NOT_YET_UPLOADED")
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Fatalf("answered after %v, before timeout_ms", waited)
	}
	// A legacy download waiting for the upload gets it.
	data := mediaRandom(3000, 21)
	got := make(chan []byte, 1)
	go func() {
		r, body := mediaDo(t, ts, "", http.MethodGet, legacy, nil, nil)
		if r.StatusCode != 200 {
			t.Errorf("waiting legacy download: %d %s", r.StatusCode, body)
		}
		got <- body
	}()
	if _, err := alice.UploadMedia(t.Context(), mautrix.ReqUploadMedia{ContentBytes: data, ContentType: "application/octet-stream", MXC: cr.ContentURI}); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatal("the waiting legacy download got other bytes")
	}
}

func TestMediaDeactivatedUsersMediaStays(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	uri := mediaUpload(t, alice, []byte("avatar"), "image/png", "")
	if err := ts.Accounts().Deactivate(t.Context(), alice.UserID, true); err != nil {
		t.Fatal(err)
	}
	if got, err := bob.DownloadBytes(t.Context(), uri); err != nil || string(got) != "avatar" {
		t.Fatalf("media of a deactivated user: %v", err)
	}
}

func mediaGradient(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x ^ y) & 0xff), 255})
		}
	}
	return img
}

// mediaSources are one 640×512 image in each input format.
func mediaSources(t *testing.T) map[string][]byte {
	t.Helper()
	img := mediaGradient(640, 512)
	out := map[string][]byte{}
	var b bytes.Buffer
	jpeg.Encode(&b, img, &jpeg.Options{Quality: 90})
	out["image/jpeg"] = append([]byte{}, b.Bytes()...)
	b.Reset()
	png.Encode(&b, img)
	out["image/png"] = append([]byte{}, b.Bytes()...)
	b.Reset()
	if err := gif.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	out["image/gif"] = append([]byte{}, b.Bytes()...)
	webp, err := os.ReadFile("../media/testdata/photo.webp")
	if err != nil {
		t.Fatal(err)
	}
	out["image/webp"] = webp
	return out
}

func mediaThumb(t *testing.T, ts *testserver.Server, c *mautrix.Client, uri id.ContentURI, w, h int, method, extra string) (*http.Response, image.Image, string) {
	t.Helper()
	r, body := mediaDo(t, ts, c.AccessToken, http.MethodGet, mediaThumbPath(uri, w, h, method)+extra, nil, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("thumbnail %dx%d %s: %d %s", w, h, method, r.StatusCode, body)
	}
	img, format, err := image.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("thumbnail %dx%d %s does not decode: %v", w, h, method, err)
	}
	return r, img, format
}

func TestMediaThumbnails(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	for srcType, data := range mediaSources(t) {
		uri := mediaUpload(t, alice, data, srcType, "")
		thumbType := "image/png"
		if srcType == "image/jpeg" {
			thumbType = "image/jpeg"
		}
		for _, c := range []struct {
			w, h         int
			method       string
			wantW, wantH int
			wantType     string
		}{
			{32, 32, "crop", 32, 32, thumbType},
			{96, 96, "crop", 96, 96, thumbType},
			{50, 40, "crop", 96, 96, thumbType},      // the next preset up
			{200, 200, "crop", 300, 240, thumbType},  // covering scale preset
			{320, 240, "scale", 300, 240, thumbType}, // 640×512 fits in 300×240
			{100, 100, "scale", 300, 240, thumbType}, // smallest preset
			{640, 480, "scale", 600, 480, thumbType}, // 640×512 fits in 600×480
			{800, 600, "scale", 640, 512, srcType},   // the original is smaller
			{2000, 2000, "crop", 640, 512, srcType},  // ditto
			{700, 500, "scale", 640, 512, srcType},   // 800×600 preset would not shrink
			{1000, 1000, "scale", 640, 512, srcType}, // larger than the image
		} {
			what := fmt.Sprintf("%s %dx%d %s", srcType, c.w, c.h, c.method)
			r, img, _ := mediaThumb(t, ts, alice, uri, c.w, c.h, c.method, "")
			if b := img.Bounds(); b.Dx() != c.wantW || b.Dy() != c.wantH {
				t.Errorf("%s: %dx%d, want %dx%d", what, b.Dx(), b.Dy(), c.wantW, c.wantH)
			}
			if ct := r.Header.Get("Content-Type"); ct != c.wantType {
				t.Errorf("%s: Content-Type %s, want %s", what, ct, c.wantType)
			}
			if cd := r.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, `inline; filename="thumbnail.`) {
				t.Errorf("%s: Content-Disposition %q", what, cd)
			}
			if r.Header.Get("Content-Security-Policy") == "" || r.Header.Get("Cross-Origin-Resource-Policy") != "cross-origin" {
				t.Errorf("%s: security headers missing", what)
			}
		}
	}
	// Thumbnails are made once: asking again stores nothing new and
	// answers the same bytes.
	uri := mediaUpload(t, alice, mediaSources(t)["image/png"], "image/png", "")
	r1, _, _ := mediaThumb(t, ts, alice, uri, 96, 96, "crop", "")
	n, _ := ts.DB().CountMediaContent(t.Context())
	r2, _, _ := mediaThumb(t, ts, alice, uri, 96, 96, "crop", "")
	if n2, _ := ts.DB().CountMediaContent(t.Context()); n2 != n || r1.Header.Get("ETag") != r2.Header.Get("ETag") {
		t.Fatalf("second request: %d content records (was %d), ETag %s vs %s", n2, n, r2.Header.Get("ETag"), r1.Header.Get("ETag"))
	}
	// mautrix's DownloadThumbnail.
	resp, err := alice.DownloadThumbnail(t.Context(), uri, 240, 320, mautrix.DownloadThumbnailExtra{Method: "scale"})
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := image.Decode(resp.Body)
	resp.Body.Close()
	if err != nil || img.Bounds().Dx() != 300 {
		t.Fatalf("mautrix thumbnail: %v %v", err, img.Bounds())
	}
}

func TestMediaThumbnailBadInput(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	uri := mediaUpload(t, alice, mediaSources(t)["image/png"], "image/png", "")
	text := mediaUpload(t, alice, []byte("just text"), "text/plain", "")
	base := mediaClientPrefix + "/thumbnail/localhost/" + uri.FileID
	for _, c := range []struct {
		query  string
		status int
		code   string
	}{
		{"", 400, "M_MISSING_PARAM"},
		{"?width=32", 400, "M_MISSING_PARAM"},
		{"?height=32", 400, "M_MISSING_PARAM"},
		{"?width=abc&height=32", 400, "M_INVALID_PARAM"},
		{"?width=32.5&height=32", 400, "M_INVALID_PARAM"},
		{"?width=0&height=32", 400, "M_INVALID_PARAM"},
		{"?width=32&height=-5", 400, "M_INVALID_PARAM"},
		{"?width=99999999999&height=32", 400, "M_INVALID_PARAM"},
		{"?width=32&height=32&method=zoom", 400, "M_INVALID_PARAM"},
		{"?width=32&height=32&animated=maybe", 400, "M_INVALID_PARAM"},
		{"?width=32&height=32&timeout_ms=-1", 400, "M_INVALID_PARAM"},
	} {
		r, body := mediaDo(t, ts, alice.AccessToken, http.MethodGet, base+c.query, nil, nil)
		mediaWantErr(t, "thumbnail"+c.query, r, body, c.status, c.code)
	}
	r, body := mediaDo(t, ts, alice.AccessToken, http.MethodGet, mediaThumbPath(text, 32, 32, "crop"), nil, nil)
	mediaWantErr(t, "thumbnail of text", r, body, 400, "M_UNKNOWN")
	// No method means scale.
	r, body = mediaDo(t, ts, alice.AccessToken, http.MethodGet, base+"?width=320&height=240", nil, nil)
	if img, _, err := image.Decode(bytes.NewReader(body)); r.StatusCode != 200 || err != nil || img.Bounds().Dx() != 300 {
		t.Fatalf("default method: %d %v", r.StatusCode, err)
	}
}

func TestMediaAnimatedThumbnails(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	pal := color.Palette{color.Black, color.White, color.RGBA{255, 0, 0, 255}}
	anim := &gif.GIF{}
	for i := range 3 {
		f := image.NewPaletted(image.Rect(0, 0, 400, 300), pal)
		for j := range f.Pix {
			f.Pix[j] = uint8(i)
		}
		anim.Image = append(anim.Image, f)
		anim.Delay = append(anim.Delay, 10)
	}
	var b bytes.Buffer
	gif.EncodeAll(&b, anim)
	uri := mediaUpload(t, alice, b.Bytes(), "image/gif", "cat.gif")

	// animated=true: the original animation.
	r, body := mediaDo(t, ts, alice.AccessToken, http.MethodGet, mediaThumbPath(uri, 96, 96, "crop")+"&animated=true", nil, nil)
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "image/gif" || !bytes.Equal(body, b.Bytes()) {
		t.Fatalf("animated=true: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	// animated=false or absent: a still image, even when the original is
	// small enough to return.
	for _, q := range []string{"&animated=false", ""} {
		for _, size := range [][2]int{{96, 96}, {1000, 1000}} {
			r, img, format := mediaThumb(t, ts, alice, uri, size[0], size[1], "crop", q)
			if format != "png" || r.Header.Get("Content-Type") != "image/png" {
				t.Fatalf("animated%q %v: %s, %s", q, size, format, r.Header.Get("Content-Type"))
			}
			if size[0] == 1000 && (img.Bounds().Dx() != 400 || img.Bounds().Dy() != 300) {
				t.Fatalf("still frame at full size: %v", img.Bounds())
			}
		}
	}
	// An animated WebP cannot be decoded: animated=true gives the original,
	// otherwise there is no thumbnail.
	webp, err := os.ReadFile("../media/testdata/anim.webp")
	if err != nil {
		t.Fatal(err)
	}
	wuri := mediaUpload(t, alice, webp, "image/webp", "")
	r, body = mediaDo(t, ts, alice.AccessToken, http.MethodGet, mediaThumbPath(wuri, 32, 32, "crop")+"&animated=true", nil, nil)
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "image/webp" || !bytes.Equal(body, webp) {
		t.Fatalf("animated webp, animated=true: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	r, body = mediaDo(t, ts, alice.AccessToken, http.MethodGet, mediaThumbPath(wuri, 32, 32, "crop"), nil, nil)
	mediaWantErr(t, "animated webp still", r, body, 400, "M_UNKNOWN")
}

func TestMediaPNGBombRejected(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bomb := testmedia.PNGBomb(40000, 40000)
	uri := mediaUpload(t, alice, bomb, "image/png", "bomb.png")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, method := range []string{"crop", "scale"} {
		r, body := mediaDo(t, ts, alice.AccessToken, http.MethodGet, mediaThumbPath(uri, 96, 96, method), nil, nil)
		mediaWantErr(t, "thumbnail of a bomb", r, body, 413, "M_TOO_LARGE")
	}
	runtime.ReadMemStats(&after)
	// The whole server shares this process: allow for its other work, far
	// below the 1.6 GB the image would take.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
		t.Fatalf("refusing the bomb allocated %d MB", alloc>>20)
	}
	// The raw file still downloads.
	if got, err := alice.DownloadBytes(t.Context(), uri); err != nil || !bytes.Equal(got, bomb) {
		t.Fatalf("download of the bomb file: %v", err)
	}
}

func TestMediaURLPreviewDisabledByDefault(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	_, err := alice.GetURLPreview(t.Context(), "https://example.org/")
	roomErr(t, "preview when disabled", err, 404, "M_UNRECOGNIZED")
}

// mediaPreviewSite is a loopback web site with a page and its picture.
func mediaPreviewSite(t *testing.T) (*httptest.Server, *atomic.Int32, []byte) {
	var hits atomic.Int32
	var pic bytes.Buffer
	png.Encode(&pic, mediaGradient(48, 32))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/page":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, `<html><head><title>Page title</title>
<meta property="og:title" content="Matrix Blog Post">
<meta property="og:description" content="This is a really cool blog post">
<meta property="og:image" content="/pic.png">
</head><body>hi</body></html>`)
		case "/pic.png":
			w.Header().Set("Content-Type", "image/png")
			w.Write(pic.Bytes())
		case "/redirect":
			http.Redirect(w, r, "/page", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &hits, pic.Bytes()
}

func TestMediaURLPreviewRefusesLoopback(t *testing.T) {
	ts := testserver.New(t, func(c *config.Config) { c.Media.URLPreview.Enabled = true })
	alice := ts.RegisterUser("alice")
	site, hits, _ := mediaPreviewSite(t)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(site.URL, "http://"))
	for _, u := range []string{
		site.URL + "/page",
		"http://localhost:" + port + "/page",
		"http://[::ffff:127.0.0.1]:" + port + "/page",
		"http://0.0.0.0:" + port + "/page",
	} {
		_, err := alice.GetURLPreview(t.Context(), u)
		roomErr(t, "preview of "+u, err, 403, "M_FORBIDDEN")
	}
	if hits.Load() != 0 {
		t.Fatalf("the loopback site was fetched %d times", hits.Load())
	}
	for _, c := range []struct {
		query  string
		status int
		code   string
	}{
		{"", 400, "M_MISSING_PARAM"},
		{"?url=ftp://example.org/", 400, "M_INVALID_PARAM"},
		{"?url=not%20a%20url", 400, "M_INVALID_PARAM"},
		{"?url=https://example.org/&ts=yesterday", 400, "M_INVALID_PARAM"},
	} {
		r, body := mediaDo(t, ts, alice.AccessToken, http.MethodGet, mediaClientPrefix+"/preview_url"+c.query, nil, nil)
		mediaWantErr(t, "preview"+c.query, r, body, c.status, c.code)
	}
}

func TestMediaURLPreviewAllowed(t *testing.T) {
	ts := testserver.New(t, func(c *config.Config) {
		c.Media.URLPreview.Enabled = true
		c.Media.URLPreview.AllowNetworks = []string{"127.0.0.1/32"}
	})
	alice := ts.RegisterUser("alice")
	site, hits, pic := mediaPreviewSite(t)
	prev, err := alice.GetURLPreview(t.Context(), site.URL+"/redirect")
	if err != nil {
		t.Fatal(err)
	}
	if prev.Title != "Matrix Blog Post" || prev.Description != "This is a really cool blog post" {
		t.Fatalf("preview %+v", prev)
	}
	if prev.ImageURL == "" || prev.ImageType != "image/png" || int(prev.ImageSize) != len(pic) || prev.ImageWidth != 48 || prev.ImageHeight != 32 {
		t.Fatalf("preview image: %+v", prev)
	}
	got, err := alice.DownloadBytes(t.Context(), prev.ImageURL.ParseOrIgnore())
	if err != nil || !bytes.Equal(got, pic) {
		t.Fatalf("og:image download: %v", err)
	}
	// Cached: asking again fetches nothing.
	n := hits.Load()
	r, body := mediaDo(t, ts, alice.AccessToken, http.MethodGet, "/_matrix/media/v3/preview_url?url="+site.URL+"/redirect", nil, nil)
	if r.StatusCode != 200 || !strings.Contains(string(body), "Matrix Blog Post") || hits.Load() != n {
		t.Fatalf("cached preview: %d %s, %d more fetches", r.StatusCode, body, hits.Load()-n)
	}
	// An image URL is previewed as an image.
	img, err := alice.GetURLPreview(t.Context(), site.URL+"/pic.png")
	if err != nil || img.ImageURL == "" || img.ImageType != "image/png" {
		t.Fatalf("image preview: %+v %v", img, err)
	}
	// Preview images are not the user's uploads.
	root := ts.RegisterAdmin("root")
	r, body = mediaDo(t, ts, root.AccessToken, http.MethodGet, "/_synapse/admin/v1/users/@alice:localhost/media", nil, nil)
	if r.StatusCode != 200 || !strings.Contains(string(body), `"total":0`) {
		t.Fatalf("alice's media list: %d %s", r.StatusCode, body)
	}
	// A missing page is a fetch failure.
	_, err = alice.GetURLPreview(t.Context(), site.URL+"/missing")
	roomErr(t, "preview of a 404 page", err, 502, "M_UNKNOWN")
}
