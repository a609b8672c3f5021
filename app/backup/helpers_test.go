package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server"
	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/config"
)

func init() {
	// A cheap scrypt: the tests encrypt and decrypt many times.
	ScryptWorkFactor = 10
}

const testPassword = "a long enough password"

// testConfig is a data directory's palpo.toml for tests: a random port.
const testConfig = `listen = ["127.0.0.1:0"]

[rate_limits]
login_per_address = { per_second = 1000, burst = 1000 }
login_failures_per_account = { per_second = 1000, burst = 1000 }
`

// install is a data directory with a real server's data in it: a user,
// a room with messages, and an uploaded file.
type install struct {
	dir      string
	cfg      *config.Config
	srv      *server.Server // nil once stopped
	alice    *mautrix.Client
	room     id.RoomID
	messages []id.EventID
	media    []byte
	mxc      id.ContentURI
}

func newInstall(t *testing.T) *install {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(testConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	in := &install{dir: dir}
	in.start(t)
	ctx := t.Context()
	res, err := in.srv.Accounts().CreateAccount(ctx, accounts.NewAccount{
		Localpart: "alice", Password: testPassword, ByAdmin: true, Login: &accounts.SessionParams{DisplayName: "test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	in.alice = in.client(t, res.UserID, res.AccessToken)
	room, err := in.alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "backups"})
	if err != nil {
		t.Fatal(err)
	}
	in.room = room.RoomID
	for i := range 3 {
		resp, err := in.alice.SendText(ctx, in.room, "message "+string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		in.messages = append(in.messages, resp.EventID)
	}
	in.media = bytes.Repeat([]byte("palpo media bytes "), 1000)
	up, err := in.alice.UploadBytes(ctx, in.media, "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	in.mxc = up.ContentURI
	return in
}

func (in *install) start(t *testing.T) {
	t.Helper()
	cfg, err := config.Load(filepath.Join(in.dir, config.FileName))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(context.Background(), cfg, in.dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	in.cfg, in.srv = cfg, srv
	t.Cleanup(func() { in.stop(t) })
}

func (in *install) stop(t *testing.T) {
	t.Helper()
	if in.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.srv.Shutdown(ctx); err != nil {
		t.Errorf("stop server: %v", err)
	}
	in.srv = nil
}

func (in *install) url() string { return "http://" + in.srv.Addrs()[0].String() }

func (in *install) client(t *testing.T, user id.UserID, token string) *mautrix.Client {
	t.Helper()
	c, err := mautrix.NewClient(in.url(), user, token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// source is what Create backs up: through the live database while the
// server runs, else through the file.
func (in *install) source() Source {
	src := Source{DataDir: in.dir, Config: in.cfg, Version: "test"}
	if in.srv != nil {
		src.DB = in.srv.DB()
	}
	return src
}

func (in *install) backup(t *testing.T, opts CreateOptions) *Result {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	res, err := Create(t.Context(), in.source(), opts)
	if err != nil {
		t.Fatalf("create backup: %v", err)
	}
	return res
}

// rewrite copies a plain backup, passing each entry through edit (which
// returns the new content, or nil to drop the entry); with fixManifest
// the manifest is updated to the edited entries, so only deeper checks
// can tell.
func rewrite(t *testing.T, src string, edit func(name string, data []byte) []byte, fixManifest bool) string {
	t.Helper()
	return rewriteAll(t, src, edit, nil, fixManifest, "", nil)
}

// rewriteAll is rewrite with the manifest edited by editManifest (after
// any fixing), and an extra entry named extraName before the manifest.
func rewriteAll(t *testing.T, src string, edit func(name string, data []byte) []byte, editManifest func(*Manifest),
	fixManifest bool, extraName string, extra []byte) string {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	type entry struct {
		hdr  *tar.Header
		data []byte
	}
	var entries []entry
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == entryManifest && extraName != "" {
			entries = append(entries, entry{&tar.Header{Typeflag: tar.TypeReg, Name: extraName, Mode: 0o600}, extra})
		}
		if data = edit(hdr.Name, data); data != nil {
			entries = append(entries, entry{hdr, data})
		}
	}
	sums := map[string]File{}
	for _, e := range entries {
		sum := sha256.Sum256(e.data)
		sums[e.hdr.Name] = File{Path: e.hdr.Name, Size: int64(len(e.data)), SHA256: hex.EncodeToString(sum[:])}
	}
	for i, e := range entries {
		if e.hdr.Name != entryManifest || (!fixManifest && editManifest == nil) {
			continue
		}
		var m Manifest
		if err := json.Unmarshal(e.data, &m); err != nil {
			t.Fatal(err)
		}
		if fixManifest {
			for j := range m.Files {
				if s, ok := sums[m.Files[j].Path]; ok {
					m.Files[j] = s
				}
			}
		}
		if editManifest != nil {
			editManifest(&m)
		}
		entries[i].data, _ = json.Marshal(&m)
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// Sealed as Create seals, so that only the deeper checks can tell.
	sw := newSealingWriter(out)
	gw := gzip.NewWriter(sw)
	tw := tar.NewWriter(gw)
	for _, e := range entries {
		e.hdr.Size = int64(len(e.data))
		if err := tw.WriteHeader(e.hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sw.seal(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// addEntry copies a plain backup with one more entry, named name, just
// before the manifest.
func addEntry(t *testing.T, src, name string, data []byte) string {
	t.Helper()
	return rewriteAll(t, src, keepAll, nil, false, name, data)
}

func keepAll(_ string, data []byte) []byte { return data }

// rewriteManifest copies a plain backup keeping the entries keep accepts
// (nil: all), with the manifest edited by edit (nil: unchanged).
func rewriteManifest(t *testing.T, src string, edit func(*Manifest), keep func(string) bool) string {
	t.Helper()
	return rewriteAll(t, src, func(name string, data []byte) []byte {
		if keep != nil && !keep(name) {
			return nil
		}
		return data
	}, edit, false, "", nil)
}

// flipByte copies a file with one byte inverted at offset.
func flipByte(t *testing.T, src string, offset int64) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	data[offset] ^= 0xFF
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

func wantErr(t *testing.T, what string, err error, target error, text string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error; want %q", what, text)
	}
	if target != nil && !errors.Is(err, target) {
		t.Fatalf("%s: %v; want an error wrapping %v", what, err, target)
	}
	if !strings.Contains(err.Error(), text) {
		t.Fatalf("%s: %q; want it to say %q", what, err, text)
	}
}
