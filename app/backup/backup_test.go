package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/app/internal/treetest"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/identity"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

func TestFileNames(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, tc := range []struct {
		server    string
		encrypted bool
		n         int
		want      string
	}{
		{"localhost", false, 0, "palpo-backup-localhost-20250304T050607Z.tar.gz"},
		{"example.org:8448", true, 0, "palpo-backup-example.org_8448-20250304T050607Z.tar.gz.age"},
		{"[::1]", false, 2, "palpo-backup-___1_-20250304T050607Z-2.tar.gz"},
		{"my-host.example", false, 0, "palpo-backup-my-host.example-20250304T050607Z.tar.gz"},
	} {
		got := FileName(tc.server, at.In(time.FixedZone("x", 3600)), tc.encrypted, tc.n)
		if got != tc.want {
			t.Errorf("FileName(%q) = %q; want %q", tc.server, got, tc.want)
		}
		server, created, n, enc, ok := parseName(got)
		if !ok || server != fileNameServer(tc.server) || !created.Equal(at) || n != tc.n || enc != tc.encrypted {
			t.Errorf("parseName(%q) = %q %v %d %v %v", got, server, created, n, enc, ok)
		}
	}
	for _, other := range []string{"palpo-backup-x.tar.gz", "notes.txt", ".palpo-backup-localhost-20250304T050607Z.tar.gz.partial-1",
		"palpo-backup-localhost-20250304T050607Z.tar.gz.verified.json", "palpo-backup-localhost-2025-03-04.tar.gz"} {
		if _, _, _, _, ok := parseName(other); ok {
			t.Errorf("parseName(%q) took it for a backup", other)
		}
	}
}

// A backup made while the server runs restores into an empty data
// directory, and the server started on it has everything.
func TestCreateVerifyRestore(t *testing.T) {
	in := newInstall(t)
	var steps []string
	res := in.backup(t, CreateOptions{Verify: true, Progress: func(p Progress) {
		if len(steps) == 0 || steps[len(steps)-1] != p.Step {
			steps = append(steps, p.Step)
		}
	}})
	if !strings.HasPrefix(filepath.Base(res.Path), "palpo-backup-localhost-") || !strings.HasSuffix(res.Path, ".tar.gz") {
		t.Fatalf("backup name %s", res.Path)
	}
	m := res.Manifest
	// No certificates: format 1, which older Palpos restore too.
	if m.Format != 1 || m.ServerName != "localhost" || m.PalpoVersion != "test" || m.Users != 1 || m.Rooms != 1 ||
		m.SchemaVersion != storage.LatestSchemaVersion() || m.MediaFiles() != 1 || len(m.Warnings) != 0 || m.StreamPosition == 0 {
		t.Fatalf("manifest: %+v", m)
	}
	if res.Report == nil || res.Report.Manifest.StreamPosition != m.StreamPosition || res.Report.Encrypted {
		t.Fatalf("report: %+v", res.Report)
	}
	if strings.Join(steps, ",") != "snapshot,archive,verify" {
		t.Fatalf("progress steps %v", steps)
	}
	// Every message sent before the backup is at or before its stream
	// position.
	for _, ev := range in.messages {
		e, err := in.srv.DB().GetEvent(t.Context(), ev)
		if err != nil || e.StreamPos > m.StreamPosition {
			t.Fatalf("event %s at %v (%v), manifest position %d", ev, e, err, m.StreamPosition)
		}
	}
	// No temporary files are left beside the backup.
	if des, _ := os.ReadDir(filepath.Dir(res.Path)); len(des) != 2 {
		t.Fatalf("backup folder holds %v; want the backup and its mark", des)
	}

	target := filepath.Join(t.TempDir(), "restored")
	rr, err := Restore(t.Context(), res.Path, target, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rr.Previous != "" || rr.Manifest.StreamPosition != m.StreamPosition {
		t.Fatalf("restore into an empty directory: %+v", rr)
	}
	for _, name := range []string{config.FileName, identity.KeyFileName} {
		a, _ := os.ReadFile(filepath.Join(in.dir, name))
		b, err := os.ReadFile(filepath.Join(target, name))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s restored differently (%v)", name, err)
		}
	}
	des, _ := os.ReadDir(target)
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	if strings.Join(names, " ") != "media palpo.db palpo.toml signing.key" {
		t.Fatalf("restored data directory holds %v", names)
	}

	in.stop(t)
	restored := &install{dir: target}
	restored.start(t)
	c := restored.client(t, "", "")
	if _, err := c.Login(t.Context(), &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Password: testPassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, StoreCredentials: true}); err != nil {
		t.Fatalf("login on the restored server: %v", err)
	}
	for _, ev := range in.messages {
		if _, err := c.GetEvent(t.Context(), in.room, ev); err != nil {
			t.Fatalf("message %s after restore: %v", ev, err)
		}
	}
	got, err := c.DownloadBytes(t.Context(), in.mxc)
	if err != nil || !bytes.Equal(got, in.media) {
		t.Fatalf("media after restore: %d bytes, %v", len(got), err)
	}
	if string(restored.srv.SigningKey().ID) != mustKeyID(t, in.dir) {
		t.Fatal("the restored server has another signing key")
	}
}

func mustKeyID(t *testing.T, dir string) string {
	t.Helper()
	k, err := identity.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	return string(k.ID)
}

func TestEncryptedBackup(t *testing.T) {
	in := newInstall(t)
	res := in.backup(t, CreateOptions{Passphrase: "correct horse", Verify: true})
	if !strings.HasSuffix(res.Path, ".tar.gz.age") || !res.Report.Encrypted {
		t.Fatalf("encrypted backup %s, report %+v", res.Path, res.Report)
	}
	raw, _ := os.ReadFile(res.Path)
	if !bytes.HasPrefix(raw, []byte("age-encryption.org/v1\n")) || bytes.Contains(raw, []byte("palpo.toml")) {
		t.Fatal("the backup file is not an age file, or shows its contents")
	}
	_, err := Verify(t.Context(), res.Path, VerifyOptions{})
	wantErr(t, "verify without a passphrase", err, ErrEncrypted, "its passphrase is needed")
	_, err = Verify(t.Context(), res.Path, VerifyOptions{Passphrase: "wrong horse"})
	wantErr(t, "verify with a wrong passphrase", err, ErrWrongPassphrase, "the passphrase is wrong")
	if _, err := Verify(t.Context(), res.Path, VerifyOptions{Passphrase: "correct horse"}); err != nil {
		t.Fatal(err)
	}

	in.stop(t)
	before := treetest.Sums(t, in.dir)
	_, err = Restore(t.Context(), res.Path, in.dir, RestoreOptions{Passphrase: "wrong horse"})
	wantErr(t, "restore with a wrong passphrase", err, ErrWrongPassphrase, "wrong")
	treetest.Same(t, "after a refused restore", before, treetest.Sums(t, in.dir))

	// The damaged encrypted file: age authenticates every chunk.
	bad := flipByte(t, res.Path, int64(len(raw)/2))
	_, err = Verify(t.Context(), bad, VerifyOptions{Passphrase: "correct horse"})
	wantErr(t, "verify a damaged encrypted backup", err, ErrDamaged, "cut short or corrupted")

	rr, err := Restore(t.Context(), res.Path, in.dir, RestoreOptions{Passphrase: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	if rr.Previous == "" {
		t.Fatal("restoring over data kept no previous data")
	}
	// The previous data is whole in before-restore-…, and the restored
	// data equals it (the backup was of this very data).
	prev := treetest.Sums(t, rr.Previous)
	for _, name := range []string{config.FileName, identity.KeyFileName, "palpo.db"} {
		if prev[name] == "" || prev[name] != before[name] {
			t.Errorf("previous %s: %q, was %q", name, prev[name], before[name])
		}
	}
	in.start(t)
	alice := in.client(t, in.alice.UserID, in.alice.AccessToken)
	if got, err := alice.DownloadBytes(t.Context(), in.mxc); err != nil || !bytes.Equal(got, in.media) {
		t.Fatalf("media after an encrypted round trip: %v", err)
	}
}

// Every kind of damage is found by Verify and stops Restore before it
// changes anything.
func TestDamagedBackupsAreRefused(t *testing.T) {
	in := newInstall(t)
	good := in.backup(t, CreateOptions{}).Path
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	mediaEntry := ""
	for _, f := range in.backup(t, CreateOptions{}).Manifest.Files {
		if strings.HasPrefix(f.Path, mediaPrefix) {
			mediaEntry = f.Path
		}
	}
	flipIn := func(entry string, fix bool) string {
		return rewrite(t, good, func(name string, data []byte) []byte {
			if name == entry {
				data = bytes.Clone(data)
				data[len(data)/2] ^= 0x01
			}
			return data
		}, fix)
	}
	notBackup := filepath.Join(t.TempDir(), "notes.tar.gz")
	if err := os.WriteFile(notBackup, []byte("just some notes, not a backup\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(t.TempDir(), filepath.Base(good))
	if err := os.WriteFile(truncated, raw[:len(raw)*2/3], 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		path   string
		target error
		says   string
	}{
		{"a flipped byte in the compressed file", flipByte(t, good, int64(len(raw)/2)), ErrDamaged, "corrupted after it was made"},
		{"a flipped byte in a media file", flipIn(mediaEntry, false), ErrDamaged, mediaEntry + " does not match its checksum"},
		{"a flipped byte in the database", flipIn(entryDatabase, false), ErrDamaged, "palpo.db does not match its checksum"},
		{"a flipped byte in the signing key", flipIn(entryKey, false), ErrDamaged, "signing.key does not match its checksum"},
		{"a database damaged with a matching manifest", rewrite(t, good, func(name string, data []byte) []byte {
			if name == entryDatabase {
				data = bytes.Clone(data)
				for i := len(data) / 2; i < len(data)/2+8192 && i < len(data); i++ {
					data[i] = 0xA5
				}
			}
			return data
		}, true), ErrDamaged, "integrity check"},
		{"a media file left out", rewrite(t, good, func(name string, data []byte) []byte {
			if strings.HasPrefix(name, mediaPrefix) {
				return nil
			}
			return data
		}, false), ErrDamaged, "missing from it"},
		{"a media file left out of archive and manifest", rewriteManifest(t, good, func(m *Manifest) {
			var files []File
			for _, f := range m.Files {
				if !strings.HasPrefix(f.Path, mediaPrefix) {
					files = append(files, f)
				}
			}
			m.Files = files
		}, func(name string) bool { return !strings.HasPrefix(name, mediaPrefix) }), ErrDamaged, "its database refers to media file"},
		{"no manifest", rewriteManifest(t, good, nil, func(name string) bool { return name != entryManifest }), ErrDamaged, "no manifest"},
		{"a manifest from a newer Palpo", rewriteManifest(t, good, func(m *Manifest) { m.Format = FormatVersion + 1 }, nil), nil, "made by a newer Palpo"},
		{"an entry outside the data directory", addEntry(t, good, "../evil", []byte("x")), ErrDamaged, `"../evil", which no Palpo backup has`},
		{"an absolute entry", addEntry(t, good, "/etc/evil", []byte("x")), ErrDamaged, "which no Palpo backup has"},
		{"a certificate entry outside its folder", addEntry(t, good, "certificates/../evil", []byte("x")), ErrDamaged, "which no Palpo backup has"},
		{"a certificate entry with a backslash", addEntry(t, good, `certificates/a\..\..\evil`, []byte("x")), ErrDamaged, "which no Palpo backup has"},
		{"an unlisted certificate", addEntry(t, good, "certificates/acme/x.key", []byte("x")), ErrDamaged, "which its manifest does not list"},
		{"an unlisted extra file", addEntry(t, good, "media/00/11/0011"+strings.Repeat("0", 60), []byte("x")), ErrDamaged, "which its manifest does not list"},
		{"cut short", truncated, ErrDamaged, "cut short"},
		{"not a backup", notBackup, ErrNotBackup, "neither a .tar.gz archive nor an encrypted (age) file"},
	}
	in.stop(t)
	before := treetest.Sums(t, in.dir)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(t.Context(), tc.path, VerifyOptions{})
			wantErr(t, "verify", err, tc.target, tc.says)
			_, err = Restore(t.Context(), tc.path, in.dir, RestoreOptions{})
			wantErr(t, "restore", err, tc.target, tc.says)
			treetest.Same(t, "after the refused restore", before, treetest.Sums(t, in.dir))
		})
	}
	if _, err := Verify(t.Context(), good, VerifyOptions{}); err != nil {
		t.Fatalf("the good backup: %v", err)
	}
}

func TestRestoreRefusesNewerSchema(t *testing.T) {
	in := newInstall(t)
	if err := in.srv.DB().BumpSchemaVersionForTest(t.Context()); err != nil {
		t.Fatal(err)
	}
	res := in.backup(t, CreateOptions{})
	if res.Manifest.SchemaVersion != storage.LatestSchemaVersion()+1 {
		t.Fatalf("manifest schema %d", res.Manifest.SchemaVersion)
	}
	_, err := Verify(t.Context(), res.Path, VerifyOptions{})
	wantErr(t, "verify", err, storage.ErrNewerSchema, "made by a newer Palpo")
	in.stop(t)
	before := treetest.Sums(t, in.dir)
	_, err = Restore(t.Context(), res.Path, in.dir, RestoreOptions{})
	wantErr(t, "restore", err, storage.ErrNewerSchema, "made by a newer Palpo")
	treetest.Same(t, "after the refused restore", before, treetest.Sums(t, in.dir))
}

// A backup of an old Palpo's database (here: only the first migration) is
// taken as it is, restored as it is, and upgraded when the server starts.
func TestRestoreOlderSchemaMigratesOnStart(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(testConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := storage.OpenAtSchemaVersionForTest(t.Context(), filepath.Join(dir, "palpo.db"), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetMeta(t.Context(), storage.MetaServerName, "localhost"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.LoadOrCreate(dir); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(dir, config.FileName))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Create(t.Context(), Source{DataDir: dir, Config: cfg, Version: "old"}, CreateOptions{Dir: t.TempDir(), Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.SchemaVersion != 1 || res.Manifest.Users != 0 || res.Manifest.MediaFiles() != 0 {
		t.Fatalf("manifest of an old database: %+v", res.Manifest)
	}
	target := t.TempDir()
	if _, err := Restore(t.Context(), res.Path, target, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	in := &install{dir: target}
	in.start(t)
	if v, err := in.srv.DB().SchemaVersion(t.Context()); err != nil || v != storage.LatestSchemaVersion() {
		t.Fatalf("schema after start: %d, %v", v, err)
	}
}

// A move that fails midway is undone: the data directory is as before,
// with nothing left of the restore.
func TestRestoreFailingMidwayKeepsOldData(t *testing.T) {
	in := newInstall(t)
	res := in.backup(t, CreateOptions{})
	in.stop(t)
	before := treetest.Sums(t, in.dir)
	for _, failAt := range []int{1, 4, 6} {
		calls := 0
		rename = func(from, to string) error {
			calls++
			if calls == failAt {
				return fmt.Errorf("disk trouble (move %d)", calls)
			}
			return os.Rename(from, to)
		}
		_, err := Restore(t.Context(), res.Path, in.dir, RestoreOptions{})
		rename = os.Rename
		wantErr(t, fmt.Sprintf("restore failing at move %d", failAt), err, nil, "the previous data is back in place")
		treetest.Same(t, fmt.Sprintf("after a restore failing at move %d", failAt), before, treetest.Sums(t, in.dir))
	}
}

// A restore interrupted between moves (the process died) is undone by
// RecoverInterruptedRestore, even after something recreated a moved-out
// file meanwhile, as opening the data directory does with palpo.toml.
func TestInterruptedRestoreIsUndone(t *testing.T) {
	in := newInstall(t)
	res := in.backup(t, CreateOptions{})
	in.stop(t)
	before := treetest.Sums(t, in.dir)
	for _, dieAt := range []int{2, 5, 7} {
		calls := 0
		rename = func(from, to string) error {
			calls++
			if calls == dieAt {
				panic("power cut")
			}
			return os.Rename(from, to)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("the restore did not reach the interruption")
				}
			}()
			_, _ = Restore(context.Background(), res.Path, in.dir, RestoreOptions{})
		}()
		rename = os.Rename
		if _, err := os.Stat(filepath.Join(in.dir, journalName)); err != nil {
			t.Fatalf("interrupted at move %d: no journal: %v", dieAt, err)
		}
		// What opening the data directory does when it finds no config.
		cfgPath := filepath.Join(in.dir, config.FileName)
		recreated := false
		if _, err := os.Stat(cfgPath); err != nil {
			recreated = true
			if err := os.WriteFile(cfgPath, []byte(config.Example), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		undone, err := RecoverInterruptedRestore(in.dir)
		if err != nil || !undone {
			t.Fatalf("recover after move %d: %v, %v", dieAt, undone, err)
		}
		after := treetest.Sums(t, in.dir)
		// A recreated config is set aside in before-restore-…, never
		// deleted; everything else is exactly as before.
		for k := range after {
			if strings.HasPrefix(k, previousPrefix) {
				if !recreated || !(after[k] == "dir" || strings.HasSuffix(k, config.FileName+".made-after-interruption")) {
					t.Errorf("after recovery from move %d: unexpected %s", dieAt, k)
				}
				delete(after, k)
			}
		}
		treetest.Same(t, fmt.Sprintf("after recovery from move %d", dieAt), before, after)
		des, _ := os.ReadDir(in.dir)
		for _, de := range des {
			if strings.HasPrefix(de.Name(), previousPrefix) {
				os.RemoveAll(filepath.Join(in.dir, de.Name()))
			}
		}
		if undone, err := RecoverInterruptedRestore(in.dir); err != nil || undone {
			t.Fatalf("a second recovery: %v %v", undone, err)
		}
	}
}

func TestListRotateAndMarks(t *testing.T) {
	in := newInstall(t)
	dir := t.TempDir()
	base := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	var paths []string
	for i := range 4 {
		at := base.Add(time.Duration(i) * time.Hour)
		res := in.backup(t, CreateOptions{Dir: dir, Verify: i != 3, Now: func() time.Time { return at }})
		paths = append(paths, res.Path)
	}
	// Two within one second get distinct names.
	same := in.backup(t, CreateOptions{Dir: dir, Now: func() time.Time { return base.Add(3 * time.Hour) }})
	if !strings.HasSuffix(same.Path, "-20250101T150000Z-1.tar.gz") {
		t.Fatalf("second backup of the same second: %s", same.Path)
	}
	// Other files and other servers' backups.
	for name, data := range map[string]string{
		"notes.txt": "x", "palpo-backup-other.example-20250101T130000Z.tar.gz": "y", ".palpo-backup-localhost-20250102T000000Z.tar.gz.partial-1": "z",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	list, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range list {
		v := "-"
		if !e.Verified.IsZero() && e.Manifest != nil && e.Manifest.ServerName == "localhost" {
			v = "v"
		}
		got = append(got, e.Created.Format("15")+e.ServerName+v)
	}
	want := "15localhost- 15localhost- 14localhostv 13other.example- 13localhostv 12localhostv"
	if strings.Join(got, " ") != want {
		t.Fatalf("list: %v; want %s", got, want)
	}
	if list[0].Path != same.Path || list[1].Path != paths[3] {
		t.Fatalf("order within one second: %s, %s", list[0].Name, list[1].Name)
	}
	// A mark no longer describes a file that changed.
	f, _ := os.OpenFile(paths[2], os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte("x"))
	f.Close()
	list, _ = List(dir)
	for _, e := range list {
		if e.Path == paths[2] && !e.Verified.IsZero() {
			t.Fatal("a changed backup kept its verified mark")
		}
	}
	// Verify failing removes the mark; passing writes it.
	if _, err := Verify(t.Context(), paths[2], VerifyOptions{}); err == nil {
		t.Fatal("a backup with a byte appended verified")
	}
	if _, err := os.Stat(paths[2] + markSuffix); err == nil {
		t.Fatal("a failed verify left the mark")
	}
	if _, err := Verify(t.Context(), paths[3], VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	if e, _ := Latest(dir, "localhost"); e == nil || e.Path != same.Path {
		t.Fatalf("latest: %+v", e)
	}

	removed, err := Rotate(dir, "localhost", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 3 {
		t.Fatalf("rotate removed %v", removed)
	}
	for _, p := range paths[:3] {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s survived rotation", p)
		}
		if _, err := os.Stat(p + markSuffix); err == nil {
			t.Fatalf("the mark of %s survived rotation", p)
		}
	}
	des, _ := os.ReadDir(dir)
	var left []string
	for _, de := range des {
		left = append(left, de.Name())
	}
	wantLeft := []string{".palpo-backup-localhost-20250102T000000Z.tar.gz.partial-1", "notes.txt",
		"palpo-backup-localhost-20250101T150000Z-1.tar.gz", "palpo-backup-localhost-20250101T150000Z.tar.gz",
		"palpo-backup-localhost-20250101T150000Z.tar.gz" + markSuffix, "palpo-backup-other.example-20250101T130000Z.tar.gz"}
	if strings.Join(left, " ") != strings.Join(wantLeft, " ") {
		t.Fatalf("after rotation: %v\nwant %v", left, wantLeft)
	}
	if _, err := Rotate(dir, "localhost", 0); err == nil {
		t.Fatal("rotate kept nothing")
	}
	if l, err := List(filepath.Join(dir, "missing")); err != nil || len(l) != 0 {
		t.Fatalf("list of a missing folder: %v %v", l, err)
	}
}

func TestCreateRemovesStaleTemporaries(t *testing.T) {
	in := newInstall(t)
	dir := t.TempDir()
	old := time.Now().Add(-48 * time.Hour)
	for _, name := range []string{".palpo-backup-tmp-1", ".palpo-backup-localhost-20250101T000000Z.tar.gz.partial-1",
		".palpo-backup-tmp-fresh", ".other-hidden"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(name, "fresh") {
			os.Chtimes(p, old, old)
		}
	}
	res := in.backup(t, CreateOptions{Dir: dir})
	des, _ := os.ReadDir(dir)
	var left []string
	for _, de := range des {
		left = append(left, de.Name())
	}
	if strings.Join(left, " ") != ".other-hidden .palpo-backup-tmp-fresh "+filepath.Base(res.Path) {
		t.Fatalf("left in the backup folder: %v", left)
	}
}

func TestCreateRecordsMissingMedia(t *testing.T) {
	in := newInstall(t)
	sha := ""
	for _, f := range in.backup(t, CreateOptions{}).Manifest.Files {
		if strings.HasPrefix(f.Path, mediaPrefix) {
			sha = f.SHA256
		}
	}
	if err := os.Remove(mediaPath(in.dir, sha)); err != nil {
		t.Fatal(err)
	}
	res := in.backup(t, CreateOptions{Verify: true})
	if len(res.Manifest.MissingMedia) != 1 || res.Manifest.MissingMedia[0] != sha || res.Manifest.MediaFiles() != 0 ||
		len(res.Manifest.Warnings) != 1 || !strings.Contains(res.Manifest.Warnings[0], "missing from the data directory") {
		t.Fatalf("manifest: %+v", res.Manifest)
	}
}

func TestCreateRefusals(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	_, err := Create(t.Context(), Source{DataDir: dir, Config: cfg}, CreateOptions{Dir: t.TempDir()})
	wantErr(t, "backup of an empty data directory", err, nil, "there is nothing to back up yet")

	in := newInstall(t)
	other := *in.cfg
	other.ServerName = "elsewhere.example"
	_, err = Create(t.Context(), Source{DataDir: in.dir, Config: &other, DB: in.srv.DB()}, CreateOptions{Dir: t.TempDir()})
	wantErr(t, "backup with another server name", err, nil, `the database was created for "localhost"`)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	out := t.TempDir()
	_, err = Create(ctx, in.source(), CreateOptions{Dir: out})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled backup: %v", err)
	}
	if des, _ := os.ReadDir(out); len(des) != 0 {
		t.Fatalf("a cancelled backup left %v", des)
	}
}
