package app

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/goolm/pk"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/app/backup"
	"github.com/palpo-im/palpo-desktop/app/internal/treetest"
	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

func init() {
	// A cheap scrypt for the encrypted backups the tests make.
	backup.ScryptWorkFactor = 10
}

// bkUser creates an account through the running server's accounts
// service and returns a client logged in as it.
func bkUser(t *testing.T, a *App, localpart string) *mautrix.Client {
	t.Helper()
	res, err := a.Server().Accounts().CreateAccount(t.Context(), accounts.NewAccount{
		Localpart: localpart, Password: goodPassword, ByAdmin: true, Login: &accounts.SessionParams{DisplayName: "test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := bkClient(t, a, res.UserID, res.AccessToken)
	c.DeviceID = res.DeviceID
	return c
}

func bkClient(t *testing.T, a *App, userID id.UserID, token string) *mautrix.Client {
	t.Helper()
	c, err := mautrix.NewClient(a.Status().ClientURL, userID, token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// bkLogin logs in with a password through /login, as a person would.
func bkLogin(t *testing.T, a *App, localpart string) *mautrix.Client {
	t.Helper()
	c := bkClient(t, a, "", "")
	if _, err := c.Login(t.Context(), &mautrix.ReqLogin{
		Type: mautrix.AuthTypePassword, Password: goodPassword, StoreCredentials: true,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
	}); err != nil {
		t.Fatalf("login %s: %v", localpart, err)
	}
	return c
}

// bkUploadKeys uploads signed device keys and n signed one-time keys for
// c's device, as an end-to-end encrypting client does, and returns the
// device's ed25519 key.
func bkUploadKeys(t *testing.T, c *mautrix.Client, n int) string {
	t.Helper()
	signer, err := pk.NewSigning()
	if err != nil {
		t.Fatal(err)
	}
	sign := func(obj any) signatures.Signatures {
		sig, err := signer.SignJSON(obj)
		if err != nil {
			t.Fatal(err)
		}
		return signatures.NewSingleSignature(c.UserID, id.KeyAlgorithmEd25519, string(c.DeviceID), sig)
	}
	random := func() string {
		b := make([]byte, 32)
		rand.Read(b)
		return base64.RawStdEncoding.EncodeToString(b)
	}
	dk := &mautrix.DeviceKeys{
		UserID: c.UserID, DeviceID: c.DeviceID, Algorithms: []id.Algorithm{id.AlgorithmOlmV1, id.AlgorithmMegolmV1},
		Keys: mautrix.KeyMap{
			id.NewDeviceKeyID(id.KeyAlgorithmEd25519, c.DeviceID):    string(signer.PublicKey()),
			id.NewDeviceKeyID(id.KeyAlgorithmCurve25519, c.DeviceID): random(),
		},
	}
	dk.Signatures = sign(dk)
	otks := map[id.KeyID]mautrix.OneTimeKey{}
	for i := range n {
		k := mautrix.OneTimeKey{Key: id.Curve25519(random()), IsSigned: true}
		k.Signatures = sign(&k)
		otks[id.NewKeyID(id.KeyAlgorithmSignedCurve25519, fmt.Sprintf("AAAA%04d", i))] = k
	}
	resp, err := c.UploadKeys(t.Context(), &mautrix.ReqUploadKeys{DeviceKeys: dk, OneTimeKeys: otks})
	if err != nil || resp.OneTimeKeyCounts.SignedCurve25519 != n {
		t.Fatalf("upload keys: %+v %v", resp, err)
	}
	return string(signer.PublicKey())
}

// backupPathFrom reads the backup's path from `backup create`'s last line,
// "<path> (<size>)".
func backupPathFrom(t *testing.T, out string) string {
	t.Helper()
	line := lastLine(out)
	i := strings.LastIndex(line, " (")
	if i < 0 {
		t.Fatalf("backup create printed %q", out)
	}
	return line[:i]
}

// The round trip: users, a room with messages, media and keys; a
// backup taken while a client keeps sending; the data directory wiped;
// the backup restored; and then everything is there: each message the
// server acknowledged before the backup began, exactly the messages up to
// the backup's stream position (its snapshot), the logins, the media
// byte for byte, the signing key and the encryption keys.
func TestBackupRoundTripWhileSending(t *testing.T) {
	dir := testDataDir(t)
	a := startApp(t, dir)
	ctx := t.Context()
	alice, bob := bkUser(t, a, "alice"), bkUser(t, a, "bob")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "family", Invite: []id.UserID{bob.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	media := make([]byte, 300_000)
	rand.Read(media)
	up, err := alice.UploadBytes(ctx, media, "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	edKey := bkUploadKeys(t, alice, 3)
	keyFile, err := os.ReadFile(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}

	// A client sends messages, one after another, for the whole backup.
	var mu sync.Mutex
	var acked []id.EventID
	var sendErr error
	reached := map[int]chan struct{}{} // closed when that many are acknowledged
	waitFor := func(n int) <-chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		ch := make(chan struct{})
		if len(acked) >= n {
			close(ch)
		} else {
			reached[n] = ch
		}
		return ch
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := bob.SendText(context.Background(), room.RoomID, fmt.Sprintf("message %d", i))
			mu.Lock()
			if err != nil {
				sendErr = err
				for _, ch := range reached {
					close(ch)
				}
				reached = nil
				mu.Unlock()
				return
			}
			acked = append(acked, resp.EventID)
			if ch, ok := reached[len(acked)]; ok {
				close(ch)
				delete(reached, len(acked))
			}
			mu.Unlock()
		}
	}()
	waitAcked := func(n int) {
		t.Helper()
		select {
		case <-waitFor(n):
		case <-time.After(time.Minute):
			t.Fatalf("fewer than %d messages acknowledged in a minute", n)
		}
		mu.Lock()
		defer mu.Unlock()
		if sendErr != nil {
			t.Fatalf("sending: %v", sendErr)
		}
	}
	waitAcked(10)
	mu.Lock()
	ackedBefore := len(acked) // acknowledged before the backup began
	mu.Unlock()
	out := t.TempDir()
	path := backupPathFrom(t, mustCLI(t, "", "backup", "create", "--data-dir", dir, "--out", out))
	mu.Lock()
	ackedDuring := len(acked) - ackedBefore
	mu.Unlock()
	waitAcked(ackedBefore + ackedDuring + 5) // and it goes on after
	close(stop)
	<-done
	if sendErr != nil {
		t.Fatal(sendErr)
	}
	t.Logf("messages acknowledged: %d before the backup, %d while it ran, %d in all", ackedBefore, ackedDuring, len(acked))

	rep, err := backup.Verify(ctx, path, backup.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snapshot := rep.Manifest.StreamPosition
	// Split the acknowledged messages by the backup's snapshot point, as
	// the server that acknowledged them ordered them.
	var in, after []id.EventID
	for i, ev := range acked {
		e, err := a.Server().DB().GetEvent(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		if i < ackedBefore && e.StreamPos > snapshot {
			t.Fatalf("message %d was acknowledged before the backup began, but is after its snapshot (%d > %d)", i, e.StreamPos, snapshot)
		}
		if e.StreamPos <= snapshot {
			in = append(in, ev)
		} else {
			after = append(after, ev)
		}
	}
	if len(after) < 5 {
		t.Fatalf("only %d messages after the snapshot", len(after))
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}

	// Wipe everything, then restore.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	restored := mustCLI(t, "", "backup", "restore", path, "--data-dir", dir)
	if !strings.Contains(restored, "Restored the backup of localhost") || strings.Contains(restored, "The data it replaced") {
		t.Fatalf("restore said %q", restored)
	}
	a2 := startApp(t, dir)
	alice2, bob2 := bkLogin(t, a2, "alice"), bkLogin(t, a2, "bob")
	for _, ev := range in {
		if _, err := bob2.GetEvent(ctx, room.RoomID, ev); err != nil {
			t.Fatalf("message %s (in the snapshot) after restore: %v", ev, err)
		}
	}
	for _, ev := range after {
		_, err := bob2.GetEvent(ctx, room.RoomID, ev)
		if !errors.Is(err, mautrix.MNotFound) {
			t.Fatalf("message %s (after the snapshot) after restore: %v; want M_NOT_FOUND", ev, err)
		}
	}
	// The restored room goes on: a new message after the last one restored.
	if _, err := alice2.SendText(ctx, room.RoomID, "back again"); err != nil {
		t.Fatal(err)
	}
	got, err := bob2.DownloadBytes(ctx, up.ContentURI)
	if err != nil || !bytes.Equal(got, media) {
		t.Fatalf("media after restore: %d bytes, %v", len(got), err)
	}
	keyFile2, err := os.ReadFile(filepath.Join(dir, "signing.key"))
	if err != nil || !bytes.Equal(keyFile, keyFile2) {
		t.Fatalf("signing key after restore differs (%v)", err)
	}
	keys, err := bob2.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.UserID: {}}})
	if err != nil {
		t.Fatal(err)
	}
	dev := keys.DeviceKeys[alice.UserID][alice.DeviceID]
	if dev.Keys[id.NewDeviceKeyID(id.KeyAlgorithmEd25519, alice.DeviceID)] != edKey {
		t.Fatalf("alice's device keys after restore: %+v", keys.DeviceKeys)
	}
	aliceOld := bkClient(t, a2, alice.UserID, alice.AccessToken) // her session survived too
	aliceOld.DeviceID = alice.DeviceID
	counts, err := aliceOld.UploadKeys(ctx, &mautrix.ReqUploadKeys{})
	if err != nil || counts.OneTimeKeyCounts.SignedCurve25519 != 3 {
		t.Fatalf("one-time keys after restore: %+v %v", counts, err)
	}
}

// bkFlip copies a backup (.tar.gz) with one byte changed inside the
// entry entry (matched by prefix), recompressed so that only the
// manifest's checksum can tell.
func bkFlip(t *testing.T, src, entry string) string {
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
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	gw := gzip.NewWriter(out)
	tw := tar.NewWriter(gw)
	tr := tar.NewReader(gz)
	flipped := false
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
		if !flipped && strings.HasPrefix(hdr.Name, entry) {
			data[len(data)/3] ^= 0x40
			flipped = true
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if !flipped {
		t.Fatalf("no entry %s in %s", entry, src)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gw.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// A damaged backup is refused with a clear message and changes nothing;
// a restore is refused while the server runs.
func TestBackupCommandsRefuseDamageAndARunningServer(t *testing.T) {
	dir := testDataDir(t)
	a := startApp(t, dir)
	alice := bkUser(t, a, "alice")
	if _, err := alice.UploadBytes(t.Context(), bytes.Repeat([]byte("photo "), 5000), "image/x-test"); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	path := backupPathFrom(t, mustCLI(t, "", "backup", "create", "--data-dir", dir, "--out", out))

	// Refused while the server runs, before reading the backup.
	failsCLI(t, "", 1, "Palpo is running with the data directory "+dir, "backup", "restore", path, "--data-dir", dir)
	failsCLI(t, "", 1, "Nothing was changed", "backup", "restore", path, "--data-dir", dir)
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	before := treetest.Sums(t, dir)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Whatever lies at the middle byte, the change is refused: as a
	// stream that no longer reads (most bytes), or by the seal (a byte
	// whose change decompresses to the same content).
	rawFlip := filepath.Join(t.TempDir(), filepath.Base(path))
	// Sixteen bytes, not one bit: a flipped padding bit of the deflate
	// stream changes nothing that is read, and whether the middle lands on
	// one depends on how the database compressed.
	for i := range 16 {
		raw[len(raw)/2+i] ^= 0xff
	}
	if err := os.WriteFile(rawFlip, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ what, file, says string }{
		{"a media file changed", bkFlip(t, path, "media/"), "the backup is damaged: media/"},
		{"the database changed", bkFlip(t, path, "palpo.db"), "the backup is damaged: palpo.db does not match its checksum: it was changed after the backup was made"},
		{"a byte of the file changed", rawFlip, "corrupted after it was made"},
	} {
		failsCLI(t, "", 1, tc.says, "backup", "verify", tc.file, "--data-dir", dir)
		failsCLI(t, "", 1, tc.says, "backup", "restore", tc.file, "--data-dir", dir)
		failsCLI(t, "", 1, "; nothing was changed", "backup", "restore", tc.file, "--data-dir", dir)
		treetest.Same(t, "after refusing "+tc.what, before, treetest.Sums(t, dir))
	}
	failsCLI(t, "", 1, "no such file", "backup", "restore", filepath.Join(out, "missing.tar.gz"), "--data-dir", dir)

	// The good one still verifies and restores (over the old data, which
	// is kept).
	if got := mustCLI(t, "", "backup", "verify", path, "--data-dir", dir); !strings.Contains(got, "OK: "+path) ||
		!strings.Contains(got, "1 users") || !strings.Contains(got, "1 media files") || !strings.Contains(got, "matches the checksum sealed into it") {
		t.Fatalf("verify said %q", got)
	}
	got := mustCLI(t, "", "backup", "restore", path, "--data-dir", dir)
	if !strings.Contains(got, "The data it replaced is in "+filepath.Join(dir, "before-restore-")) {
		t.Fatalf("restore said %q", got)
	}
	list := mustCLI(t, "", "backup", "list", "--dir", out)
	if !strings.Contains(list, filepath.Base(path)) || strings.Contains(list, "never") || !strings.Contains(list, "VERIFIED") {
		t.Fatalf("list said %q", list)
	}
}

func TestEncryptedBackupCommands(t *testing.T) {
	dir := testDataDir(t)
	a := startApp(t, dir)
	bkUser(t, a, "alice")
	secrets := t.TempDir()
	good, wrong := filepath.Join(secrets, "good"), filepath.Join(secrets, "wrong")
	os.WriteFile(good, []byte("correct horse battery\n"), 0o600)
	os.WriteFile(wrong, []byte("wrong horse battery\n"), 0o600)
	out := t.TempDir()
	created := mustCLI(t, "", "backup", "create", "--data-dir", dir, "--out", out, "--passphrase-file", good)
	path := backupPathFrom(t, created)
	if !strings.HasSuffix(path, ".tar.gz.age") || !strings.Contains(created, "Encrypted with the passphrase") {
		t.Fatalf("encrypted backup: %q", created)
	}
	failsCLI(t, "", 1, "this backup is encrypted: its passphrase is needed; give it with --passphrase-file FILE",
		"backup", "verify", path, "--data-dir", dir)
	failsCLI(t, "", 1, "the passphrase is wrong for this backup", "backup", "verify", path, "--passphrase-file", wrong)
	if code, got, errOut := cli(t, "correct horse battery\n", nil, "backup", "verify", path, "--passphrase-file", "-"); code != 0 || !strings.Contains(got, "OK") {
		t.Fatalf("verify with the passphrase on stdin: %d %q %q", code, got, errOut)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	before := treetest.Sums(t, dir)
	failsCLI(t, "", 1, "the passphrase is wrong for this backup; nothing was changed", "backup", "restore", path, "--data-dir", dir, "--passphrase-file", wrong)
	treetest.Same(t, "after a wrong passphrase", before, treetest.Sums(t, dir))
	mustCLI(t, "", "backup", "restore", path, "--data-dir", dir, "--passphrase-file", good)
	a2 := startApp(t, dir)
	bkLogin(t, a2, "alice")

	// With [backup] passphrase_file, backups are encrypted without the
	// flag, and opened with it.
	if err := a2.Stop(); err != nil {
		t.Fatal(err)
	}
	cfg := `listen = ["127.0.0.1:0"]` + "\n[backup]\npassphrase_file = \"" + filepath.ToSlash(good) + "\"\n"
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	path2 := backupPathFrom(t, mustCLI(t, "", "backup", "create", "--data-dir", dir, "--out", out))
	if !strings.HasSuffix(path2, ".age") {
		t.Fatalf("backup with passphrase_file: %s", path2)
	}
	mustCLI(t, "", "backup", "verify", path2, "--data-dir", dir)
	list := mustCLI(t, "", "backup", "list", "--dir", out)
	if strings.Count(list, "yes") != 2 {
		t.Fatalf("list: %q", list)
	}
}

func TestBackupCommandLine(t *testing.T) {
	failsCLI(t, "", 2, "missing command", "backup")
	failsCLI(t, "", 2, `unknown command "frob"`, "backup", "frob")
	failsCLI(t, "", 2, "missing FILE", "backup", "verify")
	failsCLI(t, "", 2, `unexpected argument "extra"`, "backup", "create", "extra")
	failsCLI(t, "", 2, "flag provided but not defined: -bogus", "backup", "list", "--bogus")
	if out := mustCLI(t, "", "backup", "help"); !strings.Contains(out, "palpo backup restore FILE") {
		t.Fatalf("backup help: %q", out)
	}
	if out := mustCLI(t, "", "help"); !strings.Contains(out, "palpo backup COMMAND") {
		t.Fatalf("help: %q", out)
	}
	empty := t.TempDir()
	failsCLI(t, "", 1, "there is no Palpo data in "+empty, "backup", "create", "--data-dir", empty)
	if des, _ := os.ReadDir(empty); len(des) != 0 {
		t.Fatalf("a refused backup created %v", des)
	}
	if out := mustCLI(t, "", "backup", "list", "--data-dir", empty); !strings.Contains(out, "No backups in "+filepath.Join(empty, "backups")) {
		t.Fatalf("list of nothing: %q", out)
	}
	notBackup := filepath.Join(empty, "x.tar.gz")
	os.WriteFile(notBackup, []byte("hello"), 0o600)
	failsCLI(t, "", 1, "not a Palpo backup", "backup", "verify", notBackup)
	// A stopped server's data is backed up (through the file) too, and a
	// new data directory's default backup folder is used.
	dir := testDataDir(t)
	a := startApp(t, dir)
	bkUser(t, a, "alice")
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	path := backupPathFrom(t, mustCLI(t, "", "backup", "create", "--data-dir", dir))
	if filepath.Dir(path) != filepath.Join(dir, "backups") {
		t.Fatalf("default backup folder: %s", path)
	}
	if out := mustCLI(t, "", "backup", "list", "--data-dir", dir); !strings.Contains(out, filepath.Base(path)) {
		t.Fatalf("list: %q", out)
	}
}

// The app runs the configured schedule while the server runs, and undoes
// an interrupted restore's leftovers before starting.
func TestAppBackupScheduleAndRestore(t *testing.T) {
	dir := testDataDir(t)
	cfg := `listen = ["127.0.0.1:0"]` + "\n[backup]\nschedule = \"weekly\"\nkeep = 3\n"
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(dir, ".restore-20250101T000000Z-1")
	if err := os.MkdirAll(filepath.Join(leftover, "media"), 0o700); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	a := startApp(t, dir)
	if _, err := os.Stat(leftover); err == nil {
		t.Fatal("the leftovers of an interrupted restore are still there")
	}
	st, ok := a.BackupSchedule()
	if !ok || st.Schedule != config.BackupWeekly || st.Next.Before(start) || st.Next.After(time.Now().Add(3*time.Minute)) {
		t.Fatalf("schedule: %+v %v", st, ok)
	}
	bkUser(t, a, "alice")
	// "Back up now" while the server runs in this app: through its database.
	res, err := a.CreateBackup(t.Context(), backup.CreateOptions{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(res.Path) != a.BackupDir() || res.Manifest.Users != 1 {
		t.Fatalf("backup: %s %+v", res.Path, res.Manifest)
	}
	if _, err := a.RestoreBackup(t.Context(), res.Path, backup.RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "stop the server") {
		t.Fatalf("restore while running: %v", err)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.BackupSchedule(); ok {
		t.Fatal("the schedule outlived the server")
	}
	rr, err := a.RestoreBackup(t.Context(), res.Path, backup.RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rr.Previous == "" || rr.Manifest.SchemaVersion != storage.LatestSchemaVersion() {
		t.Fatalf("restore: %+v", rr)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	bkLogin(t, a, "alice")
}

// TestBackupHelperServer is not a test: it is the server process of
// TestBackupBesideAnotherProcess (`palpo serve` in a process of its own).
func TestBackupHelperServer(t *testing.T) {
	dir := os.Getenv("PALPO_BACKUP_HELPER_DIR")
	if dir == "" {
		t.Skip("the server process of TestBackupBesideAnotherProcess")
	}
	env := DefaultEnv()
	env.Stderr = io.Discard
	env.Ready = func(a *App) { fmt.Printf("READY %s\n", a.Status().ClientURL) }
	os.Exit(Main([]string{"serve", "--data-dir", dir}, noGUI, env))
}

// `palpo backup create` copies the database of a server running in another
// process, as the command does on a real machine: SQLite's WAL lets its
// read transaction see a consistent snapshot beside the other process's
// writer.
func TestBackupBesideAnotherProcess(t *testing.T) {
	dir := testDataDir(t)
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte(goodPassword+"\n"), 0o600)
	mustCLI(t, "", "user", "add", "alice", "--password-file", pw, "--data-dir", dir)

	cmd := exec.Command(os.Args[0], "-test.run=^TestBackupHelperServer$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PALPO_BACKUP_HELPER_DIR="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	t.Cleanup(func() {
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if url, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- url
			}
		}
		close(ready)
	}()
	var url string
	select {
	case url = <-ready:
	case <-time.After(2 * time.Minute):
		t.Fatal("the server process did not start")
	}
	if url == "" {
		t.Fatal("the server process ended before it was ready")
	}
	ctx := t.Context()
	alice, err := mautrix.NewClient(url, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Password: goodPassword, StoreCredentials: true,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}}); err != nil {
		t.Fatal(err)
	}
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "two processes"})
	if err != nil {
		t.Fatal(err)
	}
	send := func(n int) []id.EventID {
		var out []id.EventID
		for i := range n {
			resp, err := alice.SendText(ctx, room.RoomID, fmt.Sprintf("message %d", i))
			if err != nil {
				t.Error(err)
				return out
			}
			out = append(out, resp.EventID)
		}
		return out
	}
	before := send(10)
	// More messages are sent while the backup runs.
	during := make(chan []id.EventID)
	go func() { during <- send(30) }()
	path := backupPathFrom(t, mustCLI(t, "", "backup", "create", "--data-dir", dir, "--out", t.TempDir()))
	sentDuring := <-during
	rep, err := backup.Verify(ctx, path, backup.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}

	cmd.Process.Signal(os.Interrupt)
	err = cmd.Wait()
	exited = true
	if err != nil {
		t.Fatalf("the server process: %v", err)
	}
	res := mustCLI(t, "", "backup", "restore", path, "--data-dir", dir)
	prevDir := strings.TrimSuffix(strings.SplitN(strings.SplitN(res, "The data it replaced is in ", 2)[1], ";", 2)[0], "\n")
	prev, err := storage.Open(ctx, filepath.Join(prevDir, "palpo.db"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer prev.Close()
	a := startApp(t, dir)
	c := bkLogin(t, a, "alice")
	for i, ev := range append(before, sentDuring...) {
		e, err := prev.GetEvent(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.GetEvent(ctx, room.RoomID, ev)
		switch {
		case i < len(before) && e.StreamPos > rep.Manifest.StreamPosition:
			t.Fatalf("message %d was acknowledged before the backup but is after its snapshot", i)
		case e.StreamPos <= rep.Manifest.StreamPosition && err != nil:
			t.Fatalf("message %d (in the snapshot) after restore: %v", i, err)
		case e.StreamPos > rep.Manifest.StreamPosition && !errors.Is(err, mautrix.MNotFound):
			t.Fatalf("message %d (after the snapshot) after restore: %v", i, err)
		}
	}
}
