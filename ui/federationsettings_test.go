package ui

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/federation/selfcheck"
)

// fedTestConfig is palpo.toml for a server that can federate but must not
// reach the internet: both listeners on loopback, and the certificate
// authority an address where nothing listens, so every certificate order
// fails at once (a real failure, through the real certificate manager).
const fedTestConfig = `# Palpo's settings (a comment that must survive)
listen = ["127.0.0.1:0"]

[federation]
# where other servers connect
listen = "127.0.0.1:0"

[federation.acme]
ca = "https://127.0.0.1:1/directory"
challenges = ["tls-alpn-01"]
`

// cannedCheck is a self-check's findings, without DNS.
var cannedCheck = []selfcheck.Result{
	{Check: selfcheck.CheckDNS, Status: selfcheck.OK, Message: "palpo.example.org points at 203.0.113.5."},
	{Check: selfcheck.CheckConnect, Status: selfcheck.Fail, Message: "Nothing answers on port 8448 at 203.0.113.5.",
		Fix: "Forward port 8448 on your router to this computer."},
}

// newFedTestApp opens a data directory with fedTestConfig (name first).
func newFedTestApp(t *testing.T, serverName string) *app.App {
	t.Helper()
	return newFedTestAppWith(t, serverName, fedTestConfig)
}

func newFedTestAppWith(t *testing.T, serverName, text string) *app.App {
	t.Helper()
	dir := t.TempDir()
	if serverName != "" {
		text = `server_name = "` + serverName + `"` + "\n" + text
	}
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// fakeNetwork keeps the self-check off the network and bounds the wait
// for a certificate.
func fakeNetwork(d *Desktop, checks *int) {
	d.checkFederation = func(context.Context) ([]selfcheck.Result, error) {
		*checks++
		return cannedCheck, nil
	}
	d.certWait = 30 * time.Second
}

// The wizard's step 4 offers off, over the internet (the domain follows
// the server name) and peer to peer (shown, but not yet); over the
// internet writes [federation] into palpo.toml once the account exists
// and shows the restart, the certificate (its order fails here, said in
// plain words) and the self-check's findings with their fixes.
func TestWizardConnectsToOtherServers(t *testing.T) {
	a := newFedTestApp(t, "")
	d, _ := newTestDesktop(t, a, Options{})
	checks := 0
	fakeNetwork(d, &checks)
	d.Begin()
	d.Wait()
	w := d.wizard
	content := d.win.Content()
	w.nameChoice.SetSelected(namePublic)
	w.nameEntry.SetText("palpo.example.org")
	tap(t, findButton(t, content, "Next"))
	test.Type(w.owner, "alice")
	test.Type(w.password, "long enough")
	test.Type(w.password2, "long enough")
	tap(t, findButton(t, content, "Next"))
	tap(t, findButton(t, content, "Next"))
	if w.page != pageFederation || !hasLabel(content, "Step 4 of 4") || !hasLabel(content, "Connect to other Matrix servers") {
		t.Fatalf("step 4: page %d, labels %q", w.page, labels(content))
	}
	c := w.fedChoice
	if c.mode.Selected != fedChoiceOff || !hasLabel(content, "Nothing leaves this computer") || c.internet.Visible() {
		t.Fatalf("off by default: %q", labels(content))
	}
	if !slices.Contains(c.mode.Options, fedChoiceP2P) {
		t.Fatal("peer to peer is not one of the choices")
	}
	c.mode.SetSelected(fedChoiceInternet)
	if !c.internet.Visible() || c.domain.Text != "palpo.example.org" {
		t.Fatalf("internet: fields shown %v, domain %q", c.internet.Visible(), c.domain.Text)
	}

	// A bad domain or email keeps the wizard on this step, saying why.
	c.domain.SetText("palpo.local")
	tap(t, findButton(t, content, "Set up Palpo"))
	if w.page != pageFederation || !c.problem.Visible() || !strings.Contains(c.problem.Text, "cannot reach a local name") {
		t.Fatalf("local domain: page %d, %q", w.page, c.problem.Text)
	}
	c.domain.SetText("palpo.example.org")
	test.Type(c.email, "nobody")
	tap(t, findButton(t, content, "Set up Palpo"))
	if w.page != pageFederation || !strings.Contains(c.problem.Text, "not an email address") {
		t.Fatalf("bad email: page %d, %q", w.page, c.problem.Text)
	}
	c.email.SetText("alice@example.org")

	// Going back to a local name turns "over the internet" into advice.
	tap(t, findButton(t, content, "Back"))
	tap(t, findButton(t, content, "Back"))
	tap(t, findButton(t, content, "Back"))
	w.nameChoice.SetSelected(nameLocal)
	for range 3 {
		tap(t, findButton(t, content, "Next"))
	}
	if c.internet.Visible() || !c.problem.Visible() || !strings.Contains(c.problem.Text, "go back to step 1") || c.check() == nil {
		t.Fatalf("localhost: %q", c.problem.Text)
	}
	for range 3 {
		tap(t, findButton(t, content, "Back"))
	}
	w.nameChoice.SetSelected(namePublic)
	w.nameEntry.SetText("palpo.example.org")
	for range 3 {
		tap(t, findButton(t, content, "Next"))
	}
	if !c.internet.Visible() || c.domain.Text != "palpo.example.org" {
		t.Fatalf("back to the domain: %q", c.domain.Text)
	}

	tap(t, findButton(t, content, "Set up Palpo"))
	d.Wait()
	if w.page != pageDone {
		t.Fatalf("setup did not finish: %q %q", w.workStep.Text, w.workErr.summary.Text)
	}
	text := configText(t, a)
	for _, want := range []string{"a comment that must survive", "# where other servers connect", "enabled = true",
		`domain = "palpo.example.org"`, `email = "alice@example.org"`} {
		if !strings.Contains(text, want) {
			t.Errorf("palpo.toml lacks %q:\n%s", want, text)
		}
	}
	if st := a.Status(); st.State != app.StateRunning || a.Server().Federation().Addr() == nil {
		t.Fatalf("not running with federation: %s %v", st.State, st.Err)
	}
	l := w.fedLive
	if !w.fedBox.Visible() || l.running || checks != 1 {
		t.Fatalf("live check: shown %v running %v checks %d", w.fedBox.Visible(), l.running, checks)
	}
	want := []stepState{stepDone, stepDone, stepFailed, stepFailed}
	for i, st := range want {
		if l.steps.states[i] != st {
			t.Errorf("step %q: %d, want %d", l.steps.names[i], l.steps.states[i], st)
		}
	}
	done := d.win.Content()
	for _, want := range []string{"Get a certificate for palpo.example.org", "Check how other servers see this one",
		"No certificate for palpo.example.org yet", "the certificate authority could not be reached", "Palpo keeps trying",
		"Problem: Nothing answers on port 8448 at 203.0.113.5. Fix: Forward port 8448"} {
		if !hasLabel(done, want) {
			t.Errorf("the last page lacks %q: %q", want, labels(done))
		}
	}
	tap(t, findButton(t, done, "Open Palpo"))
	d.Wait()

	// The Status tab and the tray say the same.
	d.status.loadStats()
	d.Wait()
	if !d.status.cert.Visible() || !strings.HasPrefix(d.status.cert.Text, "No certificate for palpo.example.org yet") ||
		d.status.cert.Importance != widget.DangerImportance {
		t.Fatalf("status tab certificate: %q", d.status.cert.Text)
	}
	d.Refresh()
	if item := d.TrayMenu().Items[1]; item.Label != "Renewing the certificate failed" {
		t.Fatalf("tray: %q", item.Label)
	}
}

// In Settings the choice is saved with its own button: over the internet
// restarts the running server with federation on and runs the checks;
// off turns it off again, and the certificate row leaves the Status tab.
func TestSettingsConnectToOtherServers(t *testing.T) {
	a := newFedTestApp(t, "palpo.example.org")
	if _, err := a.ApplySetup(context.Background(), app.SetupRequest{ServerName: "palpo.example.org", Owner: "owner", Password: ownerPassword}, nil); err != nil {
		t.Fatal(err)
	}
	d, _ := newTestDesktop(t, a, Options{})
	checks := 0
	fakeNetwork(d, &checks)
	d.Begin()
	d.Wait()
	s := d.settings
	c := s.fedChoice
	if c.mode.Selected != fedChoiceOff || d.status.cert.Visible() {
		t.Fatalf("off at first: %q", c.mode.Selected)
	}
	tap(t, s.fedSave)
	if !s.fedErr.Visible() || !strings.Contains(s.fedErr.Text, "already off") {
		t.Fatalf("nothing to save: %q", s.fedErr.Text)
	}

	c.mode.SetSelected(fedChoiceInternet)
	c.domain.SetText("")
	tap(t, s.fedSave)
	if !strings.Contains(s.fedErr.Text, "Type the domain") || strings.Contains(configText(t, a), "enabled = true") {
		t.Fatalf("empty domain: %q", s.fedErr.Text)
	}
	c.domain.SetText("palpo.example.org")
	tap(t, s.fedSave)
	d.Wait()
	if s.fedErr.Visible() || !strings.Contains(configText(t, a), "enabled = true") || checks != 1 {
		t.Fatalf("saved: error %q, checks %d\n%s", s.fedErr.Text, checks, configText(t, a))
	}
	if a.Server() == nil || a.Server().Federation().Addr() == nil {
		t.Fatal("the server was not restarted with federation on")
	}
	if !hasLabel(s.content, "Restart the server to use it") || !hasLabel(s.content, "Problem: Nothing answers on port 8448") ||
		!hasLabel(s.content, "No certificate for palpo.example.org yet") || s.fedSave.Disabled() {
		t.Fatalf("settings after saving: %q", labels(s.content))
	}

	// Saving again changes nothing: no restart, only the checks.
	started := a.Status().Started
	tap(t, s.fedSave)
	d.Wait()
	if checks != 2 || !a.Status().Started.Equal(started) || !hasLabel(s.content, "The server uses it") {
		t.Fatalf("again: checks %d, restarted %v", checks, !a.Status().Started.Equal(started))
	}
	d.status.loadStats()
	d.Wait()
	if !d.status.cert.Visible() || !d.status.certLabel.Visible() {
		t.Fatal("no certificate row on the Status tab")
	}

	c.mode.SetSelected(fedChoiceOff)
	tap(t, s.fedSave)
	d.Wait()
	if text := configText(t, a); !strings.Contains(text, "enabled = false") || !strings.Contains(text, "# where other servers connect") {
		t.Fatalf("off:\n%s", text)
	}
	if a.Server() == nil || a.Server().Federation().Addr() != nil || !hasLabel(s.content, "nothing leaves this computer") {
		t.Fatalf("off: still listening, or not said: %q", labels(s.content))
	}
	d.status.loadStats()
	d.Wait()
	if d.status.cert.Visible() || d.status.certLabel.Visible() {
		t.Fatal("certificate row shown with federation off")
	}
}

// A server that cannot start with the new choice gets the old one back
// and runs again.
func TestSettingsFederationRevertsWhenTheServerCannotStart(t *testing.T) {
	// The certificate authority's root is a file that does not exist:
	// the federation listener, and so the server, cannot start.
	a := newFedTestAppWith(t, "palpo.example.org", strings.Replace(fedTestConfig,
		`ca = "https://127.0.0.1:1/directory"`, `ca_root_file = "missing.pem"`, 1))
	if _, err := a.ApplySetup(context.Background(), app.SetupRequest{ServerName: "palpo.example.org", Owner: "owner", Password: ownerPassword}, nil); err != nil {
		t.Fatal(err)
	}
	d, _ := newTestDesktop(t, a, Options{})
	checks := 0
	fakeNetwork(d, &checks)
	d.Begin()
	d.Wait()
	s := d.settings
	s.fedChoice.mode.SetSelected(fedChoiceInternet)
	s.fedChoice.domain.SetText("palpo.example.org")
	tap(t, s.fedSave)
	d.Wait()
	if a.Status().State != app.StateRunning || a.Server().Federation().Addr() != nil {
		t.Fatalf("not back as before: %s", a.Status().State)
	}
	if !strings.Contains(configText(t, a), "enabled = false") || s.fedChoice.mode.Selected != fedChoiceOff || checks != 0 {
		t.Fatalf("choice not reverted:\n%s", configText(t, a))
	}
	if l := s.fedLive; !l.outcome.Visible() || !strings.Contains(l.outcome.Text, "could not start with this choice") ||
		!strings.Contains(l.outcome.Text, "previous choice is back") || l.steps.states[1] != stepFailed {
		t.Fatalf("outcome: %q", l.outcome.Text)
	}
}

// The certificate in words, for each state.
func TestCertificateText(t *testing.T) {
	now := time.Date(2027, 2, 1, 12, 0, 0, 0, time.Local)
	valid := app.CertificateStatus{Enabled: true, Auto: true, Domain: "example.org", Running: true,
		NotBefore: time.Date(2027, 1, 1, 0, 0, 0, 0, time.Local), NotAfter: time.Date(2027, 3, 12, 0, 0, 0, 0, time.Local)}
	valid.RenewAt = valid.NotAfter.Add(-20 * 24 * time.Hour)
	failed := valid
	failed.LastError, failed.LastErrorAt = `[example.org] Obtain: fetching http://example.org/.well-known/acme-challenge/x: Timeout during connect`, time.Date(2027, 1, 30, 9, 5, 0, 0, time.Local)
	soon := failed
	soon.NotAfter = now.Add(5*24*time.Hour - time.Hour)
	expired := failed
	expired.NotAfter = now.Add(-time.Hour)
	none := app.CertificateStatus{Enabled: true, Auto: true, Domain: "example.org", Running: true}
	noneFailed := none
	noneFailed.LastError = "DNS problem: NXDOMAIN looking up A for example.org"
	file := app.CertificateStatus{Enabled: true, Domain: "files.example.org", File: "/data/fullchain.pem", NotAfter: valid.NotAfter}
	fileSoon := file
	fileSoon.NotAfter = now.Add(3 * 24 * time.Hour)
	for _, c := range []struct {
		name string
		st   app.CertificateStatus
		imp  widget.Importance
		want []string
	}{
		{"off", app.CertificateStatus{}, widget.LowImportance, []string{""}},
		{"valid", valid, widget.MediumImportance, []string{"Certificate for example.org valid until 12 March, renews automatically from 20 February."}},
		{"renewal failed", failed, widget.WarningImportance, []string{"valid until 12 March", "Renewing it failed", "30 Jan 2027 at 09:05",
			"no answer in time", "keep connecting with the current certificate"}},
		{"expires soon", soon, widget.WarningImportance, []string{"expires on 6 February, in 5 days, and has not been renewed yet",
			"The last attempt", "until then"}},
		{"expired", expired, widget.DangerImportance, []string{"expired on 1 February", "cannot connect until it is renewed"}},
		{"ordering", none, widget.MediumImportance, []string{"Getting a certificate for example.org"}},
		{"order failed", noneFailed, widget.DangerImportance, []string{"No certificate for example.org yet",
			"the domain's DNS does not point at this computer's internet address", "keeps trying"}},
		{"file", file, widget.MediumImportance, []string{"Certificate for files.example.org valid until 12 March, from fullchain.pem (renewed outside Palpo)."}},
		{"file soon", fileSoon, widget.WarningImportance, []string{"expires on 4 February, in 3 days", "does not renew certificate files"}},
	} {
		got, imp := certificateText(c.st, now)
		for _, w := range c.want {
			if !strings.Contains(got, w) || imp != c.imp {
				t.Errorf("%s: %q (importance %v), want %q (%v)", c.name, got, imp, w, c.imp)
			}
		}
	}
	nextYear := valid
	nextYear.NotAfter = time.Date(2028, 1, 5, 0, 0, 0, 0, time.Local)
	nextYear.RenewAt = time.Time{}
	if got, _ := certificateText(nextYear, now); got != "Certificate for example.org valid until 5 January 2028, renews automatically." {
		t.Errorf("next year: %q", got)
	}
}

// A failed renewal and a near expiry reach the tray menu and a
// notification, once per problem, and go when the problem does.
func TestCertificateTroubleNotifies(t *testing.T) {
	a := newFedTestApp(t, "palpo.example.org")
	if _, err := a.SaveFederationSettings(app.FederationSettings{Mode: app.FederationInternet, Domain: "palpo.example.org"}); err != nil {
		t.Fatal(err)
	}
	d, _ := newTestDesktop(t, a, Options{})
	now := time.Now()
	st := app.CertificateStatus{Enabled: true, Auto: true, Domain: "palpo.example.org", Running: true,
		NotBefore: now.Add(-60 * 24 * time.Hour), NotAfter: now.Add(30 * 24 * time.Hour)}
	d.certStatus = func() app.CertificateStatus { return st }

	test.AssertNotificationSent(t, nil, d.Refresh)
	if len(d.TrayMenu().Items) != len(d.tray.items) {
		t.Fatal("a certificate line in the tray with nothing wrong")
	}

	st.LastError, st.LastErrorAt = "acme: error: 400 :: urn:ietf:params:acme:error:rateLimited", now
	_, title, text := certificateAlert(st, now)
	test.AssertNotificationSent(t, &fyne.Notification{Title: title, Content: text}, d.Refresh)
	if title != "Palpo: renewing the certificate failed" || !strings.Contains(text, "asked to wait") {
		t.Fatalf("renewal failure: %q %q", title, text)
	}
	if item := d.TrayMenu().Items[1]; item.Label != "Renewing the certificate failed" || item.Action == nil {
		t.Fatalf("tray: %q", item.Label)
	}
	test.AssertNotificationSent(t, nil, d.Refresh) // once per problem

	st.NotAfter = now.Add(6 * 24 * time.Hour)
	_, title, text = certificateAlert(st, now)
	test.AssertNotificationSent(t, &fyne.Notification{Title: title, Content: text}, d.Refresh)
	if !strings.HasPrefix(title, "Palpo: the certificate expires in 6 days") || d.TrayMenu().Items[1].Label != "The certificate expires in 6 days" {
		t.Fatalf("near expiry: %q, tray %q", title, d.TrayMenu().Items[1].Label)
	}

	st.LastError, st.NotAfter = "", now.Add(90*24*time.Hour) // renewed
	test.AssertNotificationSent(t, nil, d.Refresh)
	if len(d.TrayMenu().Items) != len(d.tray.items) {
		t.Fatal("the tray line stayed after the renewal")
	}
}

// With the server stopped the choice is only saved, and says when it
// applies; nothing is started or checked.
func TestSettingsFederationWhileStopped(t *testing.T) {
	a := newFedTestApp(t, "palpo.example.org")
	if _, err := a.ApplySetup(context.Background(), app.SetupRequest{ServerName: "palpo.example.org", Owner: "owner", Password: ownerPassword}, nil); err != nil {
		t.Fatal(err)
	}
	d, _ := newTestDesktop(t, a, Options{})
	checks := 0
	fakeNetwork(d, &checks)
	d.Begin()
	d.Wait()
	tap(t, d.status.stop)
	d.Wait()
	s := d.settings
	s.fedChoice.mode.SetSelected(fedChoiceInternet)
	tap(t, s.fedSave)
	d.Wait()
	l := s.fedLive
	if a.Server() != nil || checks != 0 || !strings.Contains(configText(t, a), "enabled = true") {
		t.Fatalf("stopped: running %v, checks %d", a.Server() != nil, checks)
	}
	if !strings.Contains(l.outcome.Text, "applies when the server starts") || l.steps.states[0] != stepDone || l.steps.states[1] != stepPending ||
		!hasLabel(s.content, "Restart the server to use it (when the server starts)") {
		t.Fatalf("stopped: %q", l.outcome.Text)
	}
	if c := s.fedChoice; c.mode.Selected != fedChoiceInternet || c.domain.Text != "palpo.example.org" {
		t.Fatalf("choice after saving: %q %q", c.mode.Selected, c.domain.Text)
	}
}
