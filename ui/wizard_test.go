package ui

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/test"

	"github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/server/config"
)

func TestWizardCreatesOwnerAndShowsAddress(t *testing.T) {
	a := newTestApp(t)
	d, fa := newTestDesktop(t, a, Options{})
	d.Begin()
	d.Wait()
	w := d.wizard
	if w == nil || d.win.Content() != w.content {
		t.Fatal("the wizard is not shown on a new data directory")
	}
	if a.Server() != nil {
		t.Fatal("the server started before the wizard finished")
	}
	if item := d.TrayMenu().Items[3]; item.Label != "Start server" || !item.Disabled {
		t.Fatalf("tray Start during the wizard: %q disabled %v", item.Label, item.Disabled)
	}
	content := d.win.Content()
	for _, want := range []string{"Choose your server's name", "can never be changed", "Step 1 of 4"} {
		if !hasLabel(content, want) {
			t.Errorf("step 1 lacks %q: %q", want, labels(content))
		}
	}

	// Step 1: a domain must be typed, and be a valid name.
	w.nameChoice.SetSelected(namePublic)
	if w.nameEntry.Disabled() || w.nameEntry.Text != "" {
		t.Fatalf("public name entry: disabled %v text %q", w.nameEntry.Disabled(), w.nameEntry.Text)
	}
	tap(t, findButton(t, content, "Next"))
	if w.page != pageName || !w.nameErr.Visible() {
		t.Fatal("empty domain accepted")
	}
	test.Type(w.nameEntry, "my server!")
	tap(t, findButton(t, content, "Next"))
	if w.page != pageName || !strings.Contains(w.nameErr.Text, "cannot be a server name") {
		t.Fatalf("bad name: page %d, error %q", w.page, w.nameErr.Text)
	}
	w.nameEntry.SetText("Example.ORG")
	tap(t, findButton(t, content, "Next"))
	if w.page != pageOwner || w.nameErr.Visible() {
		t.Fatalf("good name refused: %q", w.nameErr.Text)
	}

	// Step 2: the passwords must match, be long enough, the name valid.
	test.Type(w.owner, "alice")
	test.Type(w.password, "long enough")
	test.Type(w.password2, "long enougH")
	tap(t, findButton(t, content, "Next"))
	if w.page != pageOwner || !strings.Contains(w.ownerErr.Text, "not the same") {
		t.Fatalf("mismatched passwords: page %d, %q", w.page, w.ownerErr.Text)
	}
	w.password.SetText("short")
	w.password2.SetText("short")
	tap(t, findButton(t, content, "Next"))
	if w.page != pageOwner || !strings.Contains(w.ownerErr.Text, "at least 8") {
		t.Fatalf("short password: page %d, %q", w.page, w.ownerErr.Text)
	}
	w.password.SetText("long enough")
	w.password2.SetText("long enough")
	w.owner.SetText("_alice")
	tap(t, findButton(t, content, "Next"))
	if w.page != pageOwner || !strings.Contains(w.ownerErr.Text, "may not start with") {
		t.Fatalf("bad user name: page %d, %q", w.page, w.ownerErr.Text)
	}
	// Back and forth keeps the answers.
	tap(t, findButton(t, content, "Back"))
	if w.page != pageName || w.serverName() != "example.org" {
		t.Fatalf("back: page %d name %q", w.page, w.serverName())
	}
	tap(t, findButton(t, content, "Next"))
	w.owner.SetText("alice")
	tap(t, findButton(t, content, "Next"))
	if w.page != pageNetwork {
		t.Fatalf("page %d, error %q", w.page, w.ownerErr.Text)
	}

	// Step 3: the home network, when this machine is on one.
	lanAddr := app.LANAddress()
	if lanAddr != "" {
		w.lan.SetChecked(true)
	} else {
		t.Log("no LAN address on this machine: the QR code is not tested")
	}
	tap(t, findButton(t, content, "Next")) // step 4: other servers stay off
	tap(t, findButton(t, content, "Set up Palpo"))
	d.Wait()
	if w.page != pageDone {
		t.Fatalf("setup did not finish: step %q, error %q", w.workStep.Text, w.workErr.summary.Text)
	}

	// The owner exists, is an admin, and can sign in.
	users, err := a.Users(context.Background())
	if err != nil || len(users) != 1 || users[0].UserID != "@alice:example.org" || !users[0].Admin {
		t.Fatalf("users = %+v, %v", users, err)
	}
	mustLogin(t, a, "alice", "long enough")
	if a.Config().ServerName != "example.org" {
		t.Fatalf("server name %q", a.Config().ServerName)
	}

	// The finish page: the exact address, Copy, and a QR code of the LAN one.
	local, lans := a.Addresses()
	wantLAN := 0
	if lanAddr != "" {
		wantLAN = 1
	}
	if len(lans) != wantLAN || wantLAN == 1 && !strings.HasPrefix(lans[0], "http://"+lanAddr+":") {
		t.Fatalf("addresses %s %v", local, lans)
	}
	content = d.win.Content()
	for _, want := range append([]string{"Palpo is ready", local, "@alice:example.org"}, lans...) {
		if !hasLabel(content, want) {
			t.Errorf("finish page lacks %q: %q", want, labels(content))
		}
	}
	tap(t, findButton(t, content, "Copy"))
	if got := fa.Clipboard().Content(); got != local {
		t.Fatalf("clipboard = %q, want %q", got, local)
	}
	qr := 0
	for _, o := range objects(content) {
		if img, ok := o.(*canvas.Image); ok && img.Resource != nil && img.Resource.Name() == "address-qr.png" {
			qr++
		}
	}
	if qr != wantLAN {
		t.Fatalf("%d QR codes on the finish page", qr)
	}

	tap(t, findButton(t, content, "Open Palpo"))
	if d.win.Content() != d.tabs || d.wizard != nil {
		t.Fatal("Open Palpo did not show the tabs")
	}
	if !hasLabel(d.status.content, "Running") {
		t.Fatalf("status after the wizard: %q", labels(d.status.content))
	}
}

// A failure while setting up (here: the port is taken) is shown in plain
// words with details, and "Try again" works once it is fixed.
func TestWizardShowsFailureAndRetries(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	a := newTestApp(t)
	if err := os.WriteFile(filepath.Join(a.DataDir(), config.FileName), []byte(`listen = ["`+busy.Addr().String()+`"]`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err = app.Open(a.DataDir(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := newTestDesktop(t, a, Options{})
	d.Begin()
	d.Wait()
	w := d.wizard
	if w == nil {
		t.Fatal("no wizard")
	}
	tap(t, findButton(t, d.win.Content(), "Next"))
	w.owner.SetText("bob")
	w.password.SetText("long enough")
	w.password2.SetText("long enough")
	tap(t, findButton(t, d.win.Content(), "Next"))
	tap(t, findButton(t, d.win.Content(), "Next"))
	tap(t, findButton(t, d.win.Content(), "Set up Palpo"))
	d.Wait()
	if w.page != pageWork || !w.workErr.content.Visible() {
		t.Fatalf("no error shown: page %d", w.page)
	}
	if !strings.Contains(w.workErr.summary.Text, "Another program is already using port") {
		t.Fatalf("summary %q", w.workErr.summary.Text)
	}
	if w.workErr.box.Visible() {
		t.Fatal("details shown before asked for")
	}
	tap(t, findButton(t, w.workErr.content, "Details"))
	if !w.workErr.box.Visible() || !strings.Contains(w.workErr.details.Text, "address already in use") {
		t.Fatalf("details %q", w.workErr.details.Text)
	}

	busy.Close()
	tap(t, findButton(t, d.win.Content(), "Try again"))
	d.Wait()
	if w.page != pageDone {
		t.Fatalf("retry: page %d, %q", w.page, w.workErr.summary.Text)
	}
}

// A data directory whose server ran once without accounts keeps its name:
// the wizard shows it and asks only for the owner.
func TestWizardWithFixedServerName(t *testing.T) {
	a := newTestApp(t)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	d, _ := newTestDesktop(t, a, Options{})
	d.Begin()
	d.Wait()
	w := d.wizard
	if w == nil || w.nameChoice != nil {
		t.Fatal("the wizard offers to choose a name that is fixed")
	}
	if !hasLabel(d.win.Content(), "already chosen") || !hasLabel(d.win.Content(), "localhost") {
		t.Fatalf("labels %q", labels(d.win.Content()))
	}
	tap(t, findButton(t, d.win.Content(), "Next"))
	w.owner.SetText("carol")
	w.password.SetText("long enough")
	w.password2.SetText("long enough")
	tap(t, findButton(t, d.win.Content(), "Next"))
	tap(t, findButton(t, d.win.Content(), "Next"))
	tap(t, findButton(t, d.win.Content(), "Set up Palpo"))
	d.Wait()
	if w.page != pageDone {
		t.Fatalf("page %d: %q", w.page, w.workErr.summary.Text)
	}
	if !hasLabel(d.win.Content(), "Only this computer can connect") {
		t.Fatalf("finish without LAN: %q", labels(d.win.Content()))
	}
}

// The wizard offers the computer's .local name only when it resolves,
// states the password rule up front, suggests a user name from the
// person's name, and ends by suggesting weekly backups to a folder the
// person picks.
func TestWizardHelpsBeforeMistakes(t *testing.T) {
	a := newTestApp(t)
	d, _ := newTestDesktop(t, a, Options{})
	resolves := localHostName()
	if resolves == "" {
		t.Skip("this machine has no host name")
	}
	d.lookupHost = func(_ context.Context, host string) ([]string, error) {
		if host == resolves {
			return []string{"192.0.2.7"}, nil
		}
		return nil, &net.DNSError{Err: "no such host", IsNotFound: true}
	}
	d.Begin()
	d.Wait()
	w := d.wizard
	w.nameChoice.SetSelected(nameLAN)
	if w.nameEntry.Text != resolves {
		t.Fatalf("a LAN name that resolves is not offered: %q", w.nameEntry.Text)
	}
	// A name that does not resolve is not offered.
	w.lanName = ""
	w.nameChosen(nameLAN)
	if w.nameEntry.Text != "" || !strings.Contains(w.nameHelp.Text, "does not resolve") {
		t.Fatalf("unresolvable name offered: %q, help %q", w.nameEntry.Text, w.nameHelp.Text)
	}
	w.nameChoice.SetSelected(nameLocal)
	content := d.win.Content()
	tap(t, findButton(t, content, "Next"))

	if !hasLabel(content, "at least 8 characters") {
		t.Fatalf("the password rule is not shown before a password is typed: %q", labels(content))
	}
	test.Type(w.ownName, "Alice Smith")
	if w.owner.Text != "alice" {
		t.Fatalf("user name suggested from \"Alice Smith\": %q", w.owner.Text)
	}
	w.ownName.SetText("Zoë Brown")
	if w.owner.Text != "zoe" {
		t.Fatalf("user name suggested from \"Zoë Brown\": %q", w.owner.Text)
	}
	// A user name the person typed is theirs.
	w.owner.SetText("")
	test.Type(w.owner, "zb")
	w.ownName.SetText("Zoë B.")
	if w.owner.Text != "zb" {
		t.Fatalf("typed user name replaced: %q", w.owner.Text)
	}
	test.Type(w.password, "long enough")
	test.Type(w.password2, "long enough")
	tap(t, findButton(t, content, "Next"))
	tap(t, findButton(t, content, "Next")) // step 4: other servers stay off
	tap(t, findButton(t, content, "Set up Palpo"))
	d.Wait()
	if w.page != pageDone {
		t.Fatalf("setup did not finish: %q", w.workStep.Text)
	}
	users, err := a.Users(context.Background())
	if err != nil || len(users) != 1 || users[0].UserID != "@zb:localhost" || users[0].DisplayName != "Zoë B." {
		t.Fatalf("users %+v %v", users, err)
	}

	content = d.win.Content()
	// Home-network access, left off, is one click away on the last page.
	if lan := app.LANAddress(); lan != "" {
		tap(t, findButton(t, content, enableLANText))
		d.Wait()
		_, lans := a.Addresses()
		if len(lans) != 1 || !hasLabel(content, lans[0]) || images(content) != 1 {
			t.Fatalf("after turning on home-network access: %v %q", lans, labels(content))
		}
	}
	if !w.autoBackup.Checked || !w.autoBackup.Visible() || !strings.Contains(w.autoBackup.Text, "once a week") {
		t.Fatalf("weekly backups not suggested: %q", labels(content))
	}
	findButton(t, content, "Choose folder…") // fails the test when missing
	dir := filepath.Join(t.TempDir(), "usb stick")
	w.setBackupDir(dir) // what the folder dialog does
	if !hasLabel(content, dir) {
		t.Fatalf("chosen folder not shown: %q", labels(content))
	}
	tap(t, findButton(t, content, "Open Palpo"))
	if d.wizard != nil {
		t.Fatal("the tabs are not shown")
	}
	if b := a.BackupSettings(); b.Schedule != config.BackupWeekly || b.Dir != dir {
		t.Fatalf("backup settings after the wizard: %+v", b)
	}
	if st, ok := a.BackupSchedule(); !ok || st.Next.IsZero() {
		t.Fatalf("no backup scheduled: %+v %v", st, ok)
	}
}
