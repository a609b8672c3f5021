package ui

import (
	"context"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/palpo-im/palpo-desktop/server/federation/selfcheck"
)

// federationCheckTimeout bounds the Check button's wait; each network
// step inside has its own shorter limit.
const federationCheckTimeout = 2 * time.Minute

// federationCheck is the Status tab's Check button beside "Other servers"
// and the results under it: whether other Matrix servers can reach this
// one, each finding in a sentence with its fix.
type federationCheck struct {
	d       *Desktop
	button  *widget.Button
	results *widget.Label
	content fyne.CanvasObject
}

func newFederationCheck(d *Desktop, state *widget.Label) *federationCheck {
	c := &federationCheck{d: d}
	c.button = widget.NewButtonWithIcon("Check", theme.SearchIcon(), c.run)
	c.results = widget.NewLabel("")
	c.results.Wrapping = fyne.TextWrapWord
	c.results.Selectable = true
	c.results.Hide()
	c.content = container.NewVBox(container.NewBorder(nil, nil, nil, container.NewVBox(c.button), state), c.results)
	return c
}

func (c *federationCheck) run() {
	c.button.Disable()
	c.button.SetText("Checking…")
	c.results.SetText("Looking this server up the way other servers do…")
	c.results.Show()
	var res []selfcheck.Result
	c.d.async(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), federationCheckTimeout)
		defer cancel()
		var err error
		res, err = c.d.checkFederation(ctx)
		return err
	}, func(err error) {
		c.button.Enable()
		c.button.SetText("Check")
		if err != nil {
			c.results.SetText("The check could not run: " + err.Error())
			return
		}
		c.results.SetText(federationCheckText(res))
	})
}

// federationCheckText is the results in words: the verdict first, then
// one line per finding, the problems with how to fix them.
func federationCheckText(res []selfcheck.Result) string {
	var b strings.Builder
	if selfcheck.Failed(res) {
		b.WriteString("Other servers cannot reach this one yet:")
	} else {
		b.WriteString("Other servers can reach this one.")
	}
	for _, r := range res {
		switch r.Status {
		case selfcheck.OK:
			b.WriteString("\n• " + r.Message)
		case selfcheck.Warn:
			b.WriteString("\n• Note: " + r.Message + " " + r.Fix)
		default:
			b.WriteString("\n• Problem: " + r.Message + " Fix: " + r.Fix)
		}
	}
	return b.String()
}
