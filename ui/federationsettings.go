package ui

import (
	"context"
	"errors"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/p2p/servername"
	"github.com/palpo-im/palpo-desktop/server/federation/selfcheck"
)

// "Connect to other Matrix servers", in the wizard and in Settings: off,
// over the internet with my domain, or peer to peer (named after the
// server's key, or as a gateway for a server with a domain). Choosing
// "over the internet" asks for the domain and an optional email, and
// saving it turns federation on with an automatic certificate, restarts
// the server, waits for the certificate and runs the self-check, each
// step shown as it happens.

// The choices, as the radio buttons say them.
const (
	fedChoiceOff      = "Off"
	fedChoiceInternet = "Over the internet, with my domain"
	fedChoiceP2P      = "Peer to peer"
)

// defaultCertWait bounds the wait for the first certificate after saving;
// the certificate authority answers in seconds when the domain and ports
// are right, and Palpo keeps trying in the background after.
const defaultCertWait = 90 * time.Second

// federationChoice is the choice and its fields.
type federationChoice struct {
	d *Desktop

	mode     *widget.RadioGroup
	help     *widget.Label
	problem  *widget.Label // the server name cannot federate
	domain   *widget.Entry
	email    *widget.Entry
	files    *widget.Label // certificate files in palpo.toml win
	internet *fyne.Container
	content  *fyne.Container

	serverName  string
	nameProblem string
	// newServer is set in the wizard while the name is not fixed yet:
	// "Peer to peer" then names the server after its key.
	newServer bool
	// p2pName is this data directory's P2P name ("" until needed).
	p2pName string
	// problemHint says what to do about a name that cannot federate,
	// which differs in the wizard (go back) and in Settings.
	problemHint string
	suggested   string // the domain offered for the name
}

func newFederationChoice(d *Desktop, problemHint string) *federationChoice {
	c := &federationChoice{d: d, problemHint: problemHint}
	options := []string{fedChoiceOff, fedChoiceInternet, fedChoiceP2P}
	c.mode = widget.NewRadioGroup(options, func(string) { c.update() })
	c.mode.Required = true
	c.help = wrapped("")
	c.problem = wrapped("")
	c.problem.Importance = widget.WarningImportance
	c.problem.Hide()

	c.domain = widget.NewEntry()
	c.domain.SetPlaceHolder("example.org")
	c.domain.Validator = func(s string) error { return app.CheckFederationDomain(strings.TrimSpace(s)) }
	c.email = widget.NewEntry()
	c.email.SetPlaceHolder("you@example.org")
	c.email.Validator = func(s string) error { return app.CheckACMEEmail(strings.TrimSpace(s)) }
	c.files = wrapped("")
	c.files.Hide()
	emailNote := wrapped("Optional. The certificate authority (Let's Encrypt) writes to this address only if a certificate is about to expire without being renewed.")
	emailNote.SizeName = theme.SizeNameCaptionText
	c.internet = container.NewVBox(
		container.New(layout.NewFormLayout(),
			widget.NewLabel("Your domain"), c.domain,
			widget.NewLabel("Email"), c.email),
		emailNote, c.files)
	c.content = container.NewVBox(
		c.mode,
		c.help, c.problem, c.internet)
	c.mode.SetSelected(fedChoiceOff)
	return c
}

// set shows saved settings (or the wizard's defaults).
func (c *federationChoice) set(s app.FederationSettings) {
	c.setServerName(s.ServerName)
	if s.Domain != "" {
		c.domain.SetText(s.Domain)
	}
	c.email.SetText(s.Email)
	if s.CertFiles {
		c.files.SetText("palpo.toml names certificate files (federation.tls_cert_file), so those are used instead of an automatic certificate.")
		c.files.Show()
	} else {
		c.files.Hide()
	}
	switch s.Mode {
	case app.FederationInternet:
		c.mode.SetSelected(fedChoiceInternet)
	case app.FederationPeerToPeer:
		c.mode.SetSelected(fedChoiceP2P)
	default:
		c.mode.SetSelected(fedChoiceOff)
	}
	c.update()
}

// setServerName is the name other servers will look up; the domain field
// follows it until the person types another domain.
func (c *federationChoice) setServerName(name string) {
	c.serverName = name
	c.nameProblem = app.FederationNameProblem(name)
	suggestion := app.SuggestFederationDomain(name)
	if t := strings.TrimSpace(c.domain.Text); t == "" || t == c.suggested {
		c.domain.SetText(suggestion)
	}
	c.suggested = suggestion
	c.update()
}

// update shows the fields and the explanation of the choice.
func (c *federationChoice) update() {
	c.problem.Hide()
	c.internet.Hide()
	switch c.mode.Selected {
	case fedChoiceInternet:
		c.help.SetText("People on other Matrix servers (such as matrix.org) can then talk with people here. " +
			"Palpo gets a free certificate for your domain and renews it by itself. The domain must point at your " +
			"home's internet address, and your router must forward ports 8448 and 80 to this computer.")
		if c.nameProblem != "" {
			c.problem.SetText(c.nameProblem + " " + c.problemHint)
			c.problem.Show()
		} else {
			c.internet.Show()
		}
	case fedChoiceP2P:
		c.updateP2P()
	default:
		c.help.SetText("Only people with an account on this server can talk to each other. Nothing leaves this computer.")
	}
}

// ownP2PName is this data directory's P2P name (the signing key is made
// if there is none yet: it is a local file, and the first start would
// make it anyway). "" and the reason when it cannot be read.
func (c *federationChoice) ownP2PName() (string, error) {
	if c.p2pName != "" {
		return c.p2pName, nil
	}
	name, err := c.d.app.PeerToPeerName()
	if err != nil {
		return "", err
	}
	c.p2pName = name
	return name, nil
}

// p2pGateway tells whether peer to peer keeps this server's domain (and
// so needs federation over the internet too).
func (c *federationChoice) p2pGateway() bool {
	return !c.newServer && !servername.IsP2P(c.serverName) && c.nameProblem == ""
}

// updateP2P explains "Peer to peer" for this server: named after its key
// (a new server, or one already named so), a gateway for a server with a
// domain, or why this server cannot.
func (c *federationChoice) updateP2P() {
	const how = "Palpos on your home network find each other by themselves; with others you exchange addresses, " +
		"and Palpo gets through home routers without a domain or open ports."
	own, err := c.ownP2PName()
	switch {
	case err != nil:
		c.help.SetText("Other Palpos are reached directly, without a domain of your own.")
		c.problem.SetText("This server's signing key could not be read: " + plainError(err))
		c.problem.Show()
	case c.newServer:
		c.help.SetText("Your server is named after its own key, so user IDs end in :" + own + ". " + how +
			" Nothing leaves this computer until setup finishes; then share your address on the last page.")
	case c.p2pGateway():
		c.help.SetText("This server keeps its name, " + c.serverName + ", and connects both over the internet with its domain " +
			"and peer to peer with Palpos that have no domain, as a bridge between them. " +
			"Give the domain for the internet side:")
		c.internet.Show()
	default:
		if p := app.PeerToPeerProblem(c.serverName, own); p != "" {
			c.help.SetText("Other Palpos are reached directly, without a domain of your own.")
			c.problem.SetText(p)
			c.problem.Show()
			return
		}
		c.help.SetText("Other Palpos are reached directly, without a domain: this server is named after its key. " + how +
			" Nothing leaves this computer until it is saved.")
	}
}

// settings is the choice as typed.
func (c *federationChoice) settings() app.FederationSettings {
	s := app.FederationSettings{Mode: app.FederationOff, ServerName: c.serverName,
		Domain: strings.ToLower(strings.TrimSpace(c.domain.Text)), Email: strings.TrimSpace(c.email.Text)}
	switch c.mode.Selected {
	case fedChoiceInternet:
		s.Mode = app.FederationInternet
	case fedChoiceP2P:
		s.Mode = app.FederationPeerToPeer
		if c.newServer {
			s.ServerName = c.p2pName
		}
		s.Gateway = c.p2pGateway()
	}
	return s
}

// check says what stops the choice from being saved, nil when nothing.
func (c *federationChoice) check() error {
	s := c.settings()
	switch s.Mode {
	case app.FederationInternet:
		if c.nameProblem != "" {
			return errors.New(c.nameProblem)
		}
		if s.Domain == "" {
			return app.CheckFederationDomain(s.Domain) // says to type one
		}
		if err := app.CheckFederationDomain(s.Domain); err != nil {
			return errors.New("the domain: " + err.Error())
		}
		if err := app.CheckACMEEmail(s.Email); err != nil {
			return errors.New("the email: " + err.Error())
		}
	case app.FederationPeerToPeer:
		own, err := c.ownP2PName()
		if err != nil {
			return err
		}
		switch {
		case c.newServer:
		case s.Gateway:
			if err := app.CheckFederationDomain(s.Domain); err != nil {
				return errors.New("the domain: " + err.Error())
			}
			if err := app.CheckACMEEmail(s.Email); err != nil {
				return errors.New("the email: " + err.Error())
			}
		default:
			if p := app.PeerToPeerProblem(c.serverName, own); p != "" {
				return errors.New(p)
			}
		}
	}
	return nil
}

// needsDomain tells whether a choice connects over the internet with a
// domain (and so gets a certificate and the self-check): over the
// internet, or peer to peer as a gateway.
func needsDomain(s app.FederationSettings) bool {
	return s.Mode == app.FederationInternet || s.Mode == app.FederationPeerToPeer && s.Gateway
}

// Steps of the live flow.
type stepState int

const (
	stepPending stepState = iota
	stepRunning
	stepDone
	stepFailed
)

// stepList shows steps with an icon each: pending, running, done, failed.
type stepList struct {
	box    *fyne.Container
	names  []string
	states []stepState
	icons  []*widget.Icon
	labels []*widget.Label
}

func newStepList() *stepList { return &stepList{box: container.NewVBox()} }

func (s *stepList) reset(names ...string) {
	s.names = names
	s.states = make([]stepState, len(names))
	s.icons = make([]*widget.Icon, len(names))
	s.labels = make([]*widget.Label, len(names))
	s.box.Objects = nil
	for i, n := range names {
		s.icons[i] = widget.NewIcon(nil)
		s.labels[i] = widget.NewLabel(n)
		s.box.Add(container.NewBorder(nil, nil, s.icons[i], nil, s.labels[i]))
		s.set(i, stepPending)
	}
	s.box.Refresh()
}

func (s *stepList) set(i int, st stepState) {
	if i < 0 || i >= len(s.states) {
		return
	}
	s.states[i] = st
	var res fyne.Resource
	switch st {
	case stepPending:
		res = theme.NewDisabledResource(theme.RadioButtonIcon())
		s.labels[i].Importance = widget.LowImportance
	case stepRunning:
		res = theme.NewPrimaryThemedResource(theme.MediaPlayIcon())
		s.labels[i].Importance = widget.MediumImportance
	case stepDone:
		res = theme.NewSuccessThemedResource(theme.ConfirmIcon())
		s.labels[i].Importance = widget.MediumImportance
	case stepFailed:
		res = theme.NewErrorThemedResource(theme.ErrorIcon())
		s.labels[i].Importance = widget.DangerImportance
	}
	s.icons[i].SetResource(res)
	s.labels[i].Refresh()
}

// federationLive runs a saved choice: save, restart, certificate, check;
// and shows the outcome: the check's findings with their fixes, and the
// certificate with its renewal date.
type federationLive struct {
	d       *Desktop
	steps   *stepList
	bar     *widget.ProgressBarInfinite
	outcome *widget.Label
	results *widget.Label
	cert    *widget.Label
	content *fyne.Container
	running bool
}

func newFederationLive(d *Desktop) *federationLive {
	l := &federationLive{d: d, steps: newStepList()}
	l.bar = widget.NewProgressBarInfinite()
	l.bar.Stop()
	l.bar.Hide()
	l.outcome = wrapped("")
	l.outcome.Hide()
	l.results = wrapped("")
	l.results.Selectable = true
	l.results.Hide()
	l.cert = wrapped("")
	l.cert.Hide()
	l.content = container.NewVBox(l.steps.box, l.bar, l.outcome, l.cert, l.results)
	return l
}

// showCertificate shows the certificate line for st (hidden when there is
// none).
func (l *federationLive) showCertificate(st app.CertificateStatus) {
	text, imp := certificateText(st, time.Now())
	showText(l.cert, text, imp)
}

func (l *federationLive) say(text string, imp widget.Importance) {
	showText(l.outcome, text, imp)
}

// run saves s and, with the server running, restarts it and checks. done
// (may be nil) hears the end.
func (l *federationLive) run(s app.FederationSettings, done func()) {
	if l.running {
		return
	}
	finish := func() {
		l.running = false
		l.bar.Stop()
		l.bar.Hide()
		if done != nil {
			done()
		}
	}
	l.running = true
	l.outcome.Hide()
	l.results.Hide()
	l.cert.Hide()
	internet := needsDomain(s)
	names := []string{"Save the choice in palpo.toml", "Restart the server to use it"}
	if internet {
		cert := "Get a certificate for " + s.Domain
		if l.d.app.FederationSettings().CertFiles {
			cert = "Load the certificate files named in palpo.toml"
		}
		names = append(names, cert, "Check how other servers see this one")
	}
	l.steps.reset(names...)
	l.bar.Show()
	l.bar.Start()

	prev := l.d.app.FederationSettings()
	wasRunning := l.d.app.Server() != nil
	if wasRunning && sameFederation(prev, s) {
		// Saved and in use already: only the certificate and the check.
		l.steps.labels[0].SetText("Saved in palpo.toml")
		l.steps.labels[1].SetText("The server uses it")
		l.steps.set(0, stepDone)
		l.steps.set(1, stepDone)
		if !internet {
			l.sayDone(s)
			finish()
			return
		}
		l.certificateAndCheck(finish)
		return
	}
	var note string
	l.steps.set(0, stepRunning)
	l.d.async(func() error {
		var err error
		note, err = l.d.app.SaveFederationSettings(s)
		return err
	}, func(err error) {
		if err != nil {
			l.steps.set(0, stepFailed)
			l.say("Not saved: "+plainError(err), widget.DangerImportance)
			finish()
			return
		}
		l.steps.set(0, stepDone)
		l.d.settings.loadFederation()
		if note != "" {
			l.say(note, widget.WarningImportance)
		}
		if !wasRunning {
			for i := 1; i < len(names); i++ {
				l.steps.labels[i].SetText(names[i] + " (when the server starts)")
			}
			l.say(strings.TrimSpace(note+" Saved. It applies when the server starts; then press Check on the Status tab."), widget.MediumImportance)
			finish()
			return
		}
		l.steps.set(1, stepRunning)
		l.d.serverTask("Restarting the server…", func() error {
			if err := l.d.app.Stop(); err != nil {
				return err
			}
			return l.d.app.Start()
		}, "Could not restart the server", func() {
			if st := l.d.app.Status(); st.State != app.StateRunning {
				l.steps.set(1, stepFailed)
				l.revert(prev, st.Err, finish)
				return
			}
			l.steps.set(1, stepDone)
			if !internet {
				l.sayDone(s)
				l.d.status.loadStats()
				finish()
				return
			}
			l.certificateAndCheck(finish)
		})
	})
}

// sayDone says what a choice without a domain does once in use.
func (l *federationLive) sayDone(s app.FederationSettings) {
	if s.Mode == app.FederationPeerToPeer {
		l.say("Peer to peer is on. Share your address with the owners of other Palpos, and add theirs, below.", widget.MediumImportance)
		return
	}
	l.say("Connections to other servers are off: nothing leaves this computer.", widget.MediumImportance)
}

// sameFederation tells whether saving b would change nothing in a.
func sameFederation(a, b app.FederationSettings) bool {
	if a.Mode != b.Mode {
		return false
	}
	return !needsDomain(a) || a.Domain == b.Domain && a.Email == b.Email
}

// revert puts the previous choice back after the server failed to start
// with the new one, and starts it again, so the people using it are not
// left without their server.
func (l *federationLive) revert(prev app.FederationSettings, cause error, finish func()) {
	l.d.async(func() error {
		_, err := l.d.app.SaveFederationSettings(prev)
		return err
	}, func(err error) {
		l.d.settings.loadFederation()
		msg := "The server could not start with this choice"
		if cause != nil {
			msg += ": " + plainError(cause)
		} else {
			msg += "."
		}
		if err != nil {
			l.say(msg+" Putting the previous choice back failed too: "+plainError(err), widget.DangerImportance)
			finish()
			return
		}
		l.say(msg+" The previous choice is back, and the server starts with it.", widget.DangerImportance)
		l.d.serverTask("Starting the server…", l.d.app.Start, "Could not start the server", finish)
	})
}

// certificateAndCheck waits for the certificate (or its failure), then
// runs the self-check and shows both.
func (l *federationLive) certificateAndCheck(finish func()) {
	l.steps.set(2, stepRunning)
	wait := l.d.certWait
	if wait <= 0 {
		wait = defaultCertWait
	}
	var st app.CertificateStatus
	l.d.async(func() error {
		st = waitForCertificate(l.d.certStatus, wait, l.d.stopCh)
		return nil
	}, func(error) {
		switch {
		case !st.NotAfter.IsZero():
			l.steps.set(2, stepDone)
		default:
			l.steps.set(2, stepFailed)
		}
		l.showCertificate(st)
		l.steps.set(3, stepRunning)
		var res []selfcheck.Result
		l.d.async(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), federationCheckTimeout)
			defer cancel()
			var err error
			res, err = l.d.checkFederation(ctx)
			return err
		}, func(err error) {
			if err != nil {
				l.steps.set(3, stepFailed)
				l.results.SetText("The check could not run: " + plainError(err))
			} else {
				if selfcheck.Failed(res) {
					l.steps.set(3, stepFailed)
				} else {
					l.steps.set(3, stepDone)
				}
				l.results.SetText(federationCheckText(res))
			}
			l.results.Show()
			l.showCertificate(l.d.certStatus())
			l.d.status.loadStats()
			finish()
		})
	})
}

// waitForCertificate polls the certificate until there is one, an order
// failed, or wait has passed; it returns the last state seen.
func waitForCertificate(status func() app.CertificateStatus, wait time.Duration, stop <-chan struct{}) app.CertificateStatus {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		st := status()
		if !st.Enabled || !st.Auto || !st.NotAfter.IsZero() || st.LastError != "" {
			return st
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return status()
		case <-stop:
			return st
		}
	}
}
