package ui

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/widget"

	"github.com/palpo-im/palpo-desktop/app"
)

// The federation certificate in words: on the Status tab, under the
// "Connect to other Matrix servers" choice, and (for trouble) in the tray
// menu and a notification.

// dateText is a day: "12 March", with the year when it is not this one.
func dateText(t, now time.Time) string {
	t = t.Local()
	if t.Year() == now.Local().Year() {
		return t.Format("2 January")
	}
	return t.Format("2 January 2006")
}

// daysText is how long until t: "today", "in 1 day", "in 5 days".
func daysText(t, now time.Time) string {
	days := int(math.Ceil(t.Sub(now).Hours() / 24))
	switch {
	case days <= 0:
		return "today"
	case days == 1:
		return "in 1 day"
	}
	return fmt.Sprintf("in %d days", days)
}

// certificateText is the certificate's state in a sentence or two, and
// how much it matters (widget.LowImportance: nothing to show).
func certificateText(st app.CertificateStatus, now time.Time) (string, widget.Importance) {
	if !st.Enabled {
		return "", widget.LowImportance
	}
	name := st.Domain
	if name == "" {
		name = "this server"
	}
	until := dateText(st.NotAfter, now)
	failure := ""
	if st.LastError != "" {
		when := ""
		if !st.LastErrorAt.IsZero() {
			w := timeText(st.LastErrorAt)
			when = " " + strings.ToLower(w[:1]) + w[1:]
		}
		failure = "The last attempt" + when + " failed: " + certErrorText(st.LastError) + "."
	}
	switch {
	case st.NotAfter.IsZero() && st.Auto && failure != "":
		return "No certificate for " + name + " yet. " + failure +
			" Palpo keeps trying by itself; other servers cannot connect until it has one.", widget.DangerImportance
	case st.NotAfter.IsZero() && st.Auto && st.Running:
		return "Getting a certificate for " + name + " from the certificate authority…", widget.MediumImportance
	case st.NotAfter.IsZero() && st.Auto:
		return "A certificate for " + name + " is requested when the server starts.", widget.MediumImportance
	case st.NotAfter.IsZero():
		return "The certificate file " + st.File + " could not be read: other servers cannot connect.", widget.DangerImportance
	case st.Expired(now):
		s := "The certificate for " + name + " expired on " + until + ": other servers cannot connect until it is renewed."
		if !st.Auto {
			s += " Put a new certificate in " + filepath.Base(st.File) + " and restart the server."
		} else if failure != "" {
			s += " " + failure + " Palpo keeps trying by itself."
		}
		return s, widget.DangerImportance
	case !st.Auto && st.ExpiringSoon(now):
		return "The certificate for " + name + " (" + filepath.Base(st.File) + ") expires on " + until + ", " + daysText(st.NotAfter, now) +
			". Palpo does not renew certificate files: put a new one there and restart the server.", widget.WarningImportance
	case !st.Auto:
		return "Certificate for " + name + " valid until " + until + ", from " + filepath.Base(st.File) +
			" (renewed outside Palpo).", widget.MediumImportance
	case st.ExpiringSoon(now):
		s := "The certificate for " + name + " expires on " + until + ", " + daysText(st.NotAfter, now) + ", and has not been renewed yet."
		if failure != "" {
			s += " " + failure
		}
		return s + " Other servers keep connecting with the current certificate until then; Palpo keeps trying to renew it.", widget.WarningImportance
	case failure != "":
		return "Certificate for " + name + " valid until " + until + ". Renewing it failed, so Palpo tries again by itself: " +
			strings.TrimPrefix(failure, "The last attempt") + " Other servers keep connecting with the current certificate.", widget.WarningImportance
	}
	s := "Certificate for " + name + " valid until " + until + ", renews automatically"
	if st.RenewAt.After(now) {
		s += " from " + dateText(st.RenewAt, now)
	}
	return s + ".", widget.MediumImportance
}

// certErrorText says why a certificate order failed in a few words: the
// certificate authority's answers are long and technical.
func certErrorText(msg string) string {
	lower := strings.ToLower(msg)
	unreachable := strings.Contains(lower, "connection refused") || strings.Contains(lower, "timeout") ||
		strings.Contains(lower, "no such host") || strings.Contains(lower, "network is unreachable")
	switch {
	case unreachable && strings.Contains(lower, "/directory"):
		return "the certificate authority could not be reached (is this computer online?)"
	case strings.Contains(lower, "ratelimited") || strings.Contains(lower, "too many"):
		return "the certificate authority asked to wait, after too many requests for this domain"
	case strings.Contains(lower, "nxdomain") || strings.Contains(lower, "no such host") || strings.Contains(lower, "dns problem") ||
		strings.Contains(lower, "no valid a records"):
		return "the domain's DNS does not point at this computer's internet address"
	case strings.Contains(lower, "connection refused"):
		return "nothing answered when connecting (a closed port, or the router does not forward it to this computer)"
	case strings.Contains(lower, "timeout") || strings.Contains(lower, "deadline exceeded"):
		return "no answer in time (the router may not forward ports 80 and 8448 to this computer)"
	case strings.Contains(lower, "unauthorized") || strings.Contains(lower, "incorrect validation"):
		return "the certificate authority reached another computer, or got the wrong answer (check the domain points here)"
	case strings.Contains(lower, "certificate") && strings.Contains(lower, "x509"):
		return "the connection to the certificate authority was not trusted"
	}
	return sendErrorText(msg)
}

// certificateAlert is a certificate problem worth interrupting for (a
// failed order or renewal, or an expiry within CertificateWarning): a key
// that changes when the problem does, a title and the text. key is ""
// when all is well.
func certificateAlert(st app.CertificateStatus, now time.Time) (key, title, text string) {
	if !st.Enabled {
		return "", "", ""
	}
	soon := st.ExpiringSoon(now)
	if !soon && st.LastError == "" {
		return "", "", ""
	}
	text, _ = certificateText(st, now)
	switch {
	case st.Expired(now):
		title = "Palpo: the certificate has expired"
	case soon:
		title = "Palpo: the certificate expires " + daysText(st.NotAfter, now)
	default:
		title = "Palpo: renewing the certificate failed"
	}
	day := st.NotAfter.Format(time.DateOnly)
	if soon {
		// Once more each day it gets closer, not on every retry.
		day += "/" + daysText(st.NotAfter, now)
	}
	return title + "|" + day + "|" + st.LastErrorAt.Format(time.DateOnly), title, text
}

// watchCertificate notices certificate trouble on every refresh: the tray
// menu shows it while it lasts, and each new problem is announced once
// with a notification and a line in the log.
func (d *Desktop) watchCertificate() {
	now := time.Now()
	key, title, text := certificateAlert(d.certStatus(), now)
	d.tray.setCertificate(strings.TrimPrefix(title, "Palpo: "))
	if key == "" || key == d.certAlert {
		d.certAlert = key
		return
	}
	d.certAlert = key
	d.app.Logger().Warn("federation certificate needs attention", "problem", title, "detail", text)
	d.fa.SendNotification(fyne.NewNotification(title, text))
}
