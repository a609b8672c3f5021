package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/server/config"
)

func TestStatusTabStartStopRestart(t *testing.T) {
	d, fa := runningDesktop(t, Options{})
	a := d.app
	s := d.status
	d.Refresh()
	s.loadStats()
	d.Wait()
	local, _ := a.Addresses()
	for _, want := range []string{"Running", "localhost", local, "Off: this server talks only to its own users", "Never"} {
		if !hasLabel(s.content, want) {
			t.Errorf("status lacks %q: %q", want, labels(s.content))
		}
	}
	if s.users.Text != "1" || s.rooms.Text != "0" || !strings.HasSuffix(s.dbSize.Text, "B") || s.mediaSize.Text != "0 bytes" {
		t.Errorf("figures: users %q rooms %q db %q media %q", s.users.Text, s.rooms.Text, s.dbSize.Text, s.mediaSize.Text)
	}
	if s.uptime.Text == "–" {
		t.Error("no uptime while running")
	}
	if !s.start.Disabled() || s.stop.Disabled() || s.restart.Disabled() {
		t.Fatal("buttons: Start should be off, Stop and Restart on")
	}
	tap(t, s.copyLocal)
	if fa.Clipboard().Content() != local {
		t.Fatalf("clipboard %q", fa.Clipboard().Content())
	}

	tap(t, s.stop)
	if !s.progress.Visible() || !hasLabel(s.content, "Stopping the server…") {
		t.Errorf("no progress while stopping: %q", labels(s.content))
	}
	d.Wait()
	if a.Server() != nil || !hasLabel(s.content, "Stopped") || s.progress.Visible() {
		t.Fatalf("after Stop: %q", labels(s.content))
	}
	if s.start.Disabled() || !s.stop.Disabled() {
		t.Fatal("buttons after Stop")
	}
	if !d.users.stopped.Visible() || !d.users.newUser.Disabled() {
		t.Fatal("the Users tab does not say the server is stopped")
	}

	tap(t, s.start)
	d.Wait()
	if a.Server() == nil || !hasLabel(s.content, "Running") {
		t.Fatalf("after Start: %q", labels(s.content))
	}
	first := a.Status().Started
	tap(t, s.restart)
	d.Wait()
	if st := a.Status(); st.State != app.StateRunning || !st.Started.After(first) {
		t.Fatalf("after Restart: %+v", st)
	}
	mustLogin(t, a, "owner", ownerPassword)
}

// A server that cannot start shows why in plain words, with the technical
// detail one click away.
func TestStatusTabShowsStartError(t *testing.T) {
	d, _ := runningDesktop(t, Options{})
	a := d.app
	d.StopServer()
	d.Wait()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	st := a.Settings()
	st.Port = port
	if err := a.SaveSettings(st); err != nil {
		t.Fatal(err)
	}
	tap(t, d.status.start)
	d.Wait()
	s := d.status
	if a.Status().State != app.StateError || !s.errView.content.Visible() {
		t.Fatalf("state %s, error shown %v", a.Status().State, s.errView.content.Visible())
	}
	want := fmt.Sprintf("Another program is already using port %d.", port)
	if !strings.Contains(s.errView.summary.Text, want) || !hasLabel(s.content, "there is a problem") {
		t.Fatalf("summary %q, labels %q", s.errView.summary.Text, labels(s.content))
	}
	if s.errView.box.Visible() {
		t.Fatal("details visible before the click")
	}
	tap(t, s.errView.toggle)
	if !s.errView.box.Visible() || !strings.Contains(s.errView.details.Text, "listen on 127.0.0.1:") {
		t.Fatalf("details %q", s.errView.details.Text)
	}
}

func TestPlainError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&app.AlreadyRunningError{DataDir: "/d"}, "already running with this data folder"},
		{fmt.Errorf("users: %w", app.ErrNotRunning), "The server is stopped."},
		{fmt.Errorf("listen on 1.2.3.4:80: %w", &net.OpError{Op: "listen", Net: "tcp", Addr: &net.TCPAddr{Port: 80}, Err: syscall.EADDRINUSE}), "using port 80."},
		{&net.OpError{Op: "listen", Net: "tcp", Err: syscall.EADDRNOTAVAIL}, "no longer has the home-network address"},
		{mautrix.MInvalidUsername.WithMessage("User name may not start with '_'"), "User name may not start with '_'."},
		{errors.New(strings.Repeat("x", 300)), "Something unexpected went wrong."},
		{errors.New("the two passwords are not the same"), "The two passwords are not the same."},
	} {
		if got := plainError(tc.err); !strings.Contains(got, tc.want) {
			t.Errorf("plainError(%v) = %q, want %q in it", tc.err, got, tc.want)
		}
	}
}

func TestUsersTab(t *testing.T) {
	d, fa := runningDesktop(t, Options{})
	a := d.app
	u := d.users
	d.tabs.Select(d.tabs.Items[1])
	d.Wait()
	if len(u.users) != 1 || u.users[0].UserID != "@owner:localhost" || userFlags(u.users[0]) != "admin" {
		t.Fatalf("users %+v", u.users)
	}
	if !u.resetPw.Disabled() || !u.deactivate.Disabled() {
		t.Fatal("per-user buttons enabled with nobody selected")
	}

	// New account: the form checks before anything is made.
	tap(t, u.newUser)
	dlg := dialogOnTop(t, d)
	es := entries(dlg)
	if len(es) != 3 {
		t.Fatalf("%d entries in the new account dialog", len(es))
	}
	test.Type(es[0], "bob")
	test.Type(es[1], "bob password")
	test.Type(es[2], "bob passwort")
	tap(t, findButton(t, dlg, "Create"))
	if !hasLabel(dlg, "not the same") {
		t.Fatalf("mismatch not shown: %q", labels(dlg))
	}
	es[2].SetText("bob password")
	tap(t, findButton(t, dlg, "Create"))
	d.Wait()
	noDialog(t, d)
	if len(u.users) != 2 {
		t.Fatalf("users after create: %+v", u.users)
	}
	mustLogin(t, a, "bob", "bob password")

	// The name is taken now: said in the dialog, which stays open.
	tap(t, u.newUser)
	dlg = dialogOnTop(t, d)
	es = entries(dlg)
	es[0].SetText("bob")
	es[1].SetText("bob password")
	es[2].SetText("bob password")
	tap(t, findButton(t, dlg, "Create"))
	d.Wait()
	if !hasLabel(dialogOnTop(t, d), "already taken") {
		t.Fatalf("taken name: %q", labels(dlg))
	}
	tap(t, findButton(t, dlg, "Cancel"))
	noDialog(t, d)

	selectUser(t, u, "@bob:localhost")

	// Reset password.
	tap(t, u.resetPw)
	dlg = dialogOnTop(t, d)
	es = entries(dlg)
	es[0].SetText("new bob password")
	es[1].SetText("new bob password")
	tap(t, findButton(t, dlg, "Set password"))
	d.Wait()
	noDialog(t, d)
	mustLogin(t, a, "bob", "new bob password")
	if status, code := loginStatus(t, a, "bob", "bob password"); status != http.StatusForbidden || code != "M_FORBIDDEN" {
		t.Fatalf("old password: %d %s", status, code)
	}

	// Make admin, with a confirmation.
	if u.toggleAdmin.Text != "Make admin" {
		t.Fatalf("toggle says %q", u.toggleAdmin.Text)
	}
	tap(t, u.toggleAdmin)
	tap(t, findButton(t, dialogOnTop(t, d), "Make admin"))
	d.Wait()
	if usr := findUser(t, u, "@bob:localhost"); !usr.Admin {
		t.Fatal("bob is not an admin")
	}
	if u.toggleAdmin.Text != "Remove admin" {
		t.Fatalf("toggle says %q after making admin", u.toggleAdmin.Text)
	}

	// Deactivate: cancelling changes nothing; confirming does.
	tap(t, u.deactivate)
	dlg = dialogOnTop(t, d)
	if !hasLabel(dlg, "never be able to sign in again") {
		t.Fatalf("confirmation: %q", labels(dlg))
	}
	tap(t, findButton(t, dlg, "Cancel"))
	d.Wait()
	if findUser(t, u, "@bob:localhost").Deactivated {
		t.Fatal("cancelled deactivation happened")
	}
	tap(t, u.deactivate)
	tap(t, findButton(t, dialogOnTop(t, d), "Deactivate"))
	d.Wait()
	if usr := findUser(t, u, "@bob:localhost"); !usr.Deactivated || userFlags(*usr) != "deactivated" {
		t.Fatalf("bob after deactivation: %+v", usr)
	}
	if status, _ := loginStatus(t, a, "bob", "new bob password"); status == http.StatusOK {
		t.Fatal("deactivated bob signed in")
	}
	if !u.resetPw.Disabled() || !u.deactivate.Disabled() {
		t.Fatal("actions enabled on a deactivated account")
	}

	// The last admin cannot remove their own rights: said in plain words.
	selectUser(t, u, "@owner:localhost")
	tap(t, u.toggleAdmin)
	tap(t, findButton(t, dialogOnTop(t, d), "Remove admin"))
	d.Wait()
	if !hasLabel(dialogOnTop(t, d), "they are the only admin") {
		t.Fatalf("last admin: %q", labels(dialogOnTop(t, d)))
	}
	if !findUser(t, u, "@owner:localhost").Admin {
		t.Fatal("the last admin lost their rights")
	}
	tap(t, findButton(t, dialogOnTop(t, d), "Close"))

	// Invites: the empty list says what to do; create, copy, use, revoke.
	if !hasLabel(u.content, "No invite codes yet") {
		t.Fatalf("the empty invite list does not say what to do: %q", labels(u.content))
	}
	tap(t, u.newInvite)
	tap(t, findButton(t, dialogOnTop(t, d), "Create"))
	d.Wait()
	if len(u.invites) != 1 {
		t.Fatalf("invites %+v", u.invites)
	}
	inv := u.invites[0]
	if inv.UsesAllowed == nil || *inv.UsesAllowed != 1 || inv.ExpiryTime == nil ||
		time.Until(time.UnixMilli(*inv.ExpiryTime)) < 6*24*time.Hour {
		t.Fatalf("default invite %+v", inv)
	}
	shown := dialogOnTop(t, d)
	if !hasLabel(shown, inv.Token) {
		t.Fatalf("the new invite's code is not shown: %q", labels(shown))
	}
	tap(t, findButton(t, shown, "Copy code"))
	if fa.Clipboard().Content() != inv.Token {
		t.Fatalf("clipboard %q", fa.Clipboard().Content())
	}
	tap(t, findButton(t, shown, "Close"))
	if !tokenValid(t, a, inv.Token) {
		t.Fatal("the server does not know the invite")
	}
	u.inviteList.Select(0)
	fa.Clipboard().SetContent("")
	tap(t, u.copyInvite)
	if fa.Clipboard().Content() != inv.Token {
		t.Fatal("Copy on the list did not copy the invite")
	}
	tap(t, u.revokeInvite)
	tap(t, findButton(t, dialogOnTop(t, d), "Revoke"))
	d.Wait()
	if len(u.invites) != 0 || tokenValid(t, a, inv.Token) {
		t.Fatalf("invite not revoked: %+v", u.invites)
	}
}

func TestRegistrationModeSwitch(t *testing.T) {
	d, _ := runningDesktop(t, Options{})
	a := d.app
	u := d.users
	d.tabs.Select(d.tabs.Items[1])
	d.Wait()
	if u.registration.Selected != "Only people I invite" {
		t.Fatalf("shown mode %q", u.registration.Selected)
	}
	before := a.Status().Started
	u.registration.SetSelected("Nobody: I create every account here")
	d.Wait()
	if a.Config().Registration.Mode != config.RegistrationClosed || !strings.Contains(configText(t, a), "mode = \"closed\"") {
		t.Fatal("closed mode not saved")
	}
	if st := a.Status(); st.State != app.StateRunning || !st.Started.After(before) {
		t.Fatal("the server was not restarted to apply the mode")
	}
	status, out := callJSON(t, http.MethodPost, clientURL(t, a)+"/_matrix/client/v3/register", "", map[string]any{})
	if status != http.StatusForbidden {
		t.Fatalf("register with registration closed: %d %v", status, out)
	}

	// Opening registration asks first; saying no changes nothing.
	u.registration.SetSelected("Anyone who can reach this server")
	tap(t, findButton(t, dialogOnTop(t, d), "Cancel"))
	if a.Config().Registration.Mode != config.RegistrationClosed || u.registration.Selected != "Nobody: I create every account here" {
		t.Fatalf("mode %q shown %q after saying no", a.Config().Registration.Mode, u.registration.Selected)
	}
	u.registration.SetSelected("Anyone who can reach this server")
	tap(t, findButton(t, dialogOnTop(t, d), "Let anyone sign up"))
	d.Wait()
	if a.Config().Registration.Mode != config.RegistrationOpen {
		t.Fatal("open mode not saved")
	}
	status, out = callJSON(t, http.MethodPost, clientURL(t, a)+"/_matrix/client/v3/register", "", map[string]any{})
	if status != http.StatusUnauthorized || out["flows"] == nil {
		t.Fatalf("register with registration open: %d %v", status, out)
	}
}

func TestSettingsTab(t *testing.T) {
	home := t.TempDir()
	auto := &app.Autostart{Exe: "/usr/bin/palpo", Home: home}
	d, _ := runningDesktop(t, Options{Autostart: auto})
	auto.DataDir = d.app.DataDir()
	a := d.app
	s := d.settings
	s.load()
	// What Save covers is said next to it.
	if !hasLabel(s.content, "Save applies the port, home-network access and largest upload") {
		t.Fatalf("Save's reach is not explained: %q", labels(s.content))
	}
	if s.port.Text != "0" || s.maxUpload.Text != "100" || s.lan.Checked || s.autostart.Checked {
		t.Fatalf("shown: port %q upload %q lan %v autostart %v", s.port.Text, s.maxUpload.Text, s.lan.Checked, s.autostart.Checked)
	}
	if s.dataDir.Text != a.DataDir() {
		t.Fatalf("data dir %q", s.dataDir.Text)
	}
	if u := folderURL(a.DataDir()); u.Scheme != "file" || u.Path != filepath.ToSlash(a.DataDir()) {
		t.Fatalf("folder URL %v", u)
	}
	if u := folderURL(`C:\Users\me\Palpo`); filepath.Separator == '\\' && u.String() != "file:///C:/Users/me/Palpo" {
		t.Fatalf("windows folder URL %v", u)
	}

	// Nothing changed: nothing saved.
	before := configText(t, a)
	tap(t, s.save)
	if !strings.Contains(s.result.Text, "Nothing to save") || configText(t, a) != before {
		t.Fatalf("result %q", s.result.Text)
	}

	// A bad port is refused in plain words.
	s.port.SetText("99999")
	tap(t, s.save)
	if !hasLabel(dialogOnTop(t, d), "from 1 to 65535") {
		t.Fatalf("bad port: %q", labels(dialogOnTop(t, d)))
	}
	tap(t, findButton(t, dialogOnTop(t, d), "Close"))

	// A new port and upload limit: saved with the comments kept, the
	// server restarted on the new port.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := free.Addr().(*net.TCPAddr).Port
	free.Close()
	s.port.SetText(fmt.Sprint(port))
	s.maxUpload.SetText("50")
	tap(t, s.save)
	d.Wait()
	text := configText(t, a)
	if !strings.Contains(text, fmt.Sprintf(`listen = ["127.0.0.1:%d"]`, port)) || !strings.Contains(text, "max_upload_bytes = 52428800") {
		t.Fatalf("palpo.toml:\n%s", text)
	}
	if !strings.Contains(s.result.Text, "restarting") {
		t.Fatalf("result %q", s.result.Text)
	}
	if got := clientURL(t, a); got != fmt.Sprintf("http://127.0.0.1:%d", port) {
		t.Fatalf("server at %s, want port %d", got, port)
	}
	tok := mustLogin(t, a, "owner", ownerPassword)
	status, out := callJSON(t, http.MethodGet, clientURL(t, a)+"/_matrix/client/v1/media/config", tok, nil)
	if status != http.StatusOK || out["m.upload.size"] != float64(52428800) {
		t.Fatalf("media config: %d %v", status, out)
	}

	// Start on login.
	s.autostart.SetChecked(true)
	entry := filepath.Join(home, ".config", "autostart", "palpo.desktop")
	data, err := os.ReadFile(entry)
	if err != nil || !strings.Contains(string(data), "--data-dir "+a.DataDir()) {
		t.Fatalf("autostart entry: %q %v", data, err)
	}
	s.autostart.SetChecked(false)
	if _, err := os.Stat(entry); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("autostart entry not removed")
	}
}

func TestLogsTab(t *testing.T) {
	d, fa := runningDesktop(t, Options{})
	l := d.logs
	log := d.app.Logger()
	log.Info("hello from the test", "n", 1)
	log.Warn("careful now")
	log.Error("it broke", "error", "boom")
	l.refresh()
	if !l.has("hello from the test") || !l.has("careful now") || !l.has("it broke") {
		t.Fatalf("shown: %q", l.text())
	}
	if !strings.Contains(l.count.Text, "lines") {
		t.Fatalf("count %q", l.count.Text)
	}
	l.level.SetSelected("Errors only")
	if l.has("hello from the test") || l.has("careful now") || !l.has("it broke") {
		t.Fatalf("errors only: %q", l.text())
	}
	tap(t, findButton(t, l.content, "Copy all"))
	clip := fa.Clipboard().Content()
	if !strings.Contains(clip, "ERROR it broke error=boom") || strings.Contains(clip, "hello") {
		t.Fatalf("clipboard %q", clip)
	}
	l.level.SetSelected("Warnings and errors")
	if !l.has("careful now") || l.has("hello from the test") {
		t.Fatalf("warnings: %q", l.text())
	}
	// New lines appear on the next refresh.
	log.Warn("later warning")
	l.refresh()
	if !l.has("later warning") {
		t.Fatal("new line not shown")
	}
}

// Request lines are hidden unless asked for; a failed request's warning
// is not; a long line can be read whole.
func TestLogsTabRequestsAndLongLines(t *testing.T) {
	d, fa := runningDesktop(t, Options{})
	l := d.logs
	if status, _ := callJSON(t, http.MethodGet, clientURL(t, d.app)+"/_matrix/client/versions", "", nil); status != http.StatusOK {
		t.Fatalf("versions: %d", status)
	}
	d.app.Logger().Warn("request", "path", "/failed")
	long := strings.Repeat("a long value ", 40)
	d.app.Logger().Info("long line", "detail", long)
	l.refresh()
	requests := func() (n int) {
		for _, e := range l.shown {
			if e.Message == "request" && e.Level == slog.LevelInfo {
				n++
			}
		}
		return n
	}
	if l.requests.Checked || requests() != 0 {
		t.Fatalf("request lines shown by default: %q", l.text())
	}
	if !strings.Contains(l.text(), "path=/failed") || !l.has("long line") {
		t.Fatalf("a failed request's warning or a plain line is hidden: %q", l.text())
	}
	l.requests.SetChecked(true)
	if requests() == 0 || !strings.Contains(l.text(), "/_matrix/client/versions") {
		t.Fatalf("Show requests shows none: %q", l.text())
	}
	l.requests.SetChecked(false)
	if requests() != 0 {
		t.Fatal("request lines still shown after unticking Show requests")
	}
	// Selecting the long line shows it whole, wrapped, with Copy line.
	i := slices.IndexFunc(l.shown, func(e app.LogEntry) bool { return e.Message == "long line" })
	l.list.Select(i)
	if !l.detailBox.Visible() || !strings.Contains(l.detail.Text, long) || l.detail.Wrapping != fyne.TextWrapWord {
		t.Fatalf("detail %v %q", l.detailBox.Visible(), l.detail.Text)
	}
	tap(t, findButton(t, l.content, "Copy line"))
	if !strings.Contains(fa.Clipboard().Content(), long) {
		t.Fatalf("clipboard %q", fa.Clipboard().Content())
	}
}

func (l *logsTab) has(msg string) bool {
	return slices.ContainsFunc(l.shown, func(e app.LogEntry) bool { return e.Message == msg })
}

func TestTrayMenu(t *testing.T) {
	quit := 0
	d, fa := runningDesktop(t, Options{Quit: func() { quit++ }})
	a := d.app
	d.Refresh()
	menu := d.TrayMenu()
	var names []string
	for _, it := range menu.Items {
		names = append(names, it.Label)
	}
	want := []string{"Palpo: Running", "", "Open Palpo", "Stop server", "Copy homeserver address", "Back up now", "", "Quit Palpo"}
	if !slices.Equal(names, want) {
		t.Fatalf("menu %q, want %q", names, want)
	}
	item := func(label string) *fyne.MenuItem {
		for _, it := range menu.Items {
			if it.Label == label {
				return it
			}
		}
		t.Fatalf("no %q item in %q", label, names)
		return nil
	}

	item("Copy homeserver address").Action()
	if local, _ := a.Addresses(); fa.Clipboard().Content() != local {
		t.Fatalf("clipboard %q", fa.Clipboard().Content())
	}
	item("Open Palpo").Action()

	item("Stop server").Action()
	d.Wait()
	if a.Server() != nil {
		t.Fatal("server still running")
	}
	if menu.Items[0].Label != "Palpo: Stopped" || menu.Items[3].Label != "Start server" || !menu.Items[4].Disabled {
		t.Fatalf("menu after stop: %q %q copy disabled %v", menu.Items[0].Label, menu.Items[3].Label, menu.Items[4].Disabled)
	}
	item("Start server").Action()
	d.Wait()
	if a.Server() == nil || menu.Items[0].Label != "Palpo: Running" {
		t.Fatalf("after start: %q", menu.Items[0].Label)
	}

	item("Back up now").Action()
	d.Wait()
	list, err := a.Backups()
	if err != nil || len(list) != 1 || list[0].Verified.IsZero() {
		t.Fatalf("backups after the tray's Back up now: %+v %v", list, err)
	}
	if d.tabs.Selected() != d.tabs.Items[2] {
		t.Fatal("Back up now did not show the Backups tab")
	}

	item("Quit Palpo").Action()
	if quit != 1 {
		t.Fatal("Quit did not quit")
	}
	if !menu.Items[len(menu.Items)-1].IsQuit {
		t.Fatal("Quit is not marked IsQuit (Fyne would add a second one)")
	}

	// The tray icon shows the state by colour.
	if trayIcon(app.StateRunning, false) == trayIcon(app.StateStopped, false) ||
		trayIcon(app.StateError, false).Name() != "palpo-tray.png" {
		t.Fatal("tray icons do not differ by state")
	}
	if d.SetupTray() {
		t.Fatal("SetupTray installed a tray on the test app, which is not a desktop.App")
	}
}

func selectUser(t *testing.T, u *usersTab, userID string) {
	t.Helper()
	for i, usr := range u.users {
		if string(usr.UserID) == userID {
			u.userList.Select(i)
			return
		}
	}
	t.Fatalf("no %s in the list", userID)
}

func findUser(t *testing.T, u *usersTab, userID string) *app.User {
	t.Helper()
	for i := range u.users {
		if string(u.users[i].UserID) == userID {
			return &u.users[i]
		}
	}
	t.Fatalf("no %s in the list", userID)
	return nil
}

// tokenValid asks the server whether an invite can be used.
func tokenValid(t *testing.T, a *app.App, token string) bool {
	t.Helper()
	status, out := callJSON(t, http.MethodGet, clientURL(t, a)+"/_matrix/client/v1/register/m.login.registration_token/validity?token="+url.QueryEscape(token), "", nil)
	if status != http.StatusOK {
		t.Fatalf("validity: %d %v", status, out)
	}
	return out["valid"] == true
}

// The Older Matrix apps switch sets both of its options, restarts the
// server with them, and turns them back off.
func TestSettingsOlderApps(t *testing.T) {
	d, _ := runningDesktop(t, Options{})
	s := d.settings
	s.load()
	if s.olderApps.Checked || d.app.OlderApps() {
		t.Fatal("the Older Matrix apps switch is on by default")
	}
	if !hasLabel(s.content, "Nheko on Debian 12") {
		t.Fatalf("the switch is not explained: %q", labels(s.content))
	}
	test.Tap(s.olderApps)
	d.Wait()
	cfg := d.app.Config()
	if cfg.DefaultRoomVersion != "10" || cfg.Media.UnauthenticatedBefore == "" || !d.app.OlderApps() {
		t.Fatalf("after switching on: default_room_version %q, unauthenticated_before %q", cfg.DefaultRoomVersion, cfg.Media.UnauthenticatedBefore)
	}
	if st := d.app.Status(); st.State != app.StateRunning {
		t.Fatalf("server after the switch: %s %v", st.State, st.Err)
	}
	// The restarted server makes version 10 rooms for apps that ask for none.
	tok := mustLogin(t, d.app, "owner", ownerPassword)
	status, out := callJSON(t, http.MethodGet, clientURL(t, d.app)+"/_matrix/client/v3/capabilities", tok, nil)
	caps, _ := out["capabilities"].(map[string]any)
	versions, _ := caps["m.room_versions"].(map[string]any)
	if status != http.StatusOK || versions["default"] != "10" {
		t.Fatalf("capabilities after the switch: %d %v", status, out)
	}
	// A picture uploaded now downloads without signing in, as old apps do.
	req, _ := http.NewRequest(http.MethodPost, clientURL(t, d.app)+"/_matrix/media/v3/upload", strings.NewReader("picture"))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "image/png")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var up struct {
		ContentURI string `json:"content_uri"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	mediaID := up.ContentURI[strings.LastIndex(up.ContentURI, "/")+1:]
	resp, err = http.Get(clientURL(t, d.app) + "/_matrix/media/v3/download/localhost/" + mediaID)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if up.ContentURI == "" || resp.StatusCode != http.StatusOK {
		t.Fatalf("unauthenticated download of %q: %d", up.ContentURI, resp.StatusCode)
	}
	s.load()
	if !s.olderApps.Checked {
		t.Fatal("the switch does not show as on")
	}
	test.Tap(s.olderApps)
	d.Wait()
	cfg = d.app.Config()
	if cfg.DefaultRoomVersion != "12" || cfg.Media.UnauthenticatedBefore != "" || d.app.OlderApps() {
		t.Fatalf("after switching off: %q %q", cfg.DefaultRoomVersion, cfg.Media.UnauthenticatedBefore)
	}
}
