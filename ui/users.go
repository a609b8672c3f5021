package ui

import (
	"context"
	"errors"
	"fmt"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/app"
	"github.com/palpo-im/palpo-desktop/server/config"
)

// Registration modes as the Users tab offers them.
var registrationChoices = []struct{ mode, label string }{
	{config.RegistrationToken, "Only people I invite"},
	{config.RegistrationOpen, "Anyone who can reach this server"},
	{config.RegistrationClosed, "Nobody: I create every account here"},
}

// Invite choices: how many people and for how long.
var (
	inviteUses = []struct {
		label string
		uses  int
	}{{"One person", 1}, {"Up to 5 people", 5}, {"Up to 20 people", 20}, {"Any number of people", 0}}
	inviteExpiry = []struct {
		label string
		d     time.Duration
	}{{"1 day", 24 * time.Hour}, {"7 days", 7 * 24 * time.Hour}, {"30 days", 30 * 24 * time.Hour}, {"Never expires", 0}}
)

// usersTab lists accounts and invites and changes them.
type usersTab struct {
	d       *Desktop
	content fyne.CanvasObject

	stopped      *widget.Label
	registration *widget.Select
	regNote      *widget.Label
	settingMode  bool // the Select is being set by code, not by a person

	users       []app.User
	userList    *widget.List
	selUser     int
	newUser     *widget.Button
	resetPw     *widget.Button
	toggleAdmin *widget.Button
	deactivate  *widget.Button

	invites      []app.Invite
	inviteList   *widget.List
	noInvites    *widget.Label
	selInvite    int
	newInvite    *widget.Button
	shareInvite  *widget.Button
	copyInvite   *widget.Button
	revokeInvite *widget.Button

	running bool
}

func newUsersTab(d *Desktop) *usersTab {
	u := &usersTab{d: d, selUser: -1, selInvite: -1}
	u.stopped = wrapped("The server is stopped. Start it on the Status tab to manage accounts.")
	u.stopped.Importance = widget.WarningImportance

	labels := make([]string, len(registrationChoices))
	for i, c := range registrationChoices {
		labels[i] = c.label
	}
	u.registration = widget.NewSelect(labels, u.registrationChanged)
	u.regNote = wrapped("")

	u.userList = widget.NewList(
		func() int { return len(u.users) },
		func() fyne.CanvasObject {
			return container.NewHBox(widget.NewIcon(theme.AccountIcon()), widget.NewLabel("@user:server"), layout.NewSpacer(), widget.NewLabel("flags"))
		},
		func(i widget.ListItemID, o fyne.CanvasObject) {
			if i >= len(u.users) {
				return
			}
			row := o.(*fyne.Container)
			usr := u.users[i]
			row.Objects[1].(*widget.Label).SetText(userLabel(usr))
			row.Objects[3].(*widget.Label).SetText(userFlags(usr))
		},
	)
	u.userList.OnSelected = func(i widget.ListItemID) { u.selUser = i; u.updateButtons() }
	u.userList.OnUnselected = func(widget.ListItemID) { u.selUser = -1; u.updateButtons() }

	u.newUser = widget.NewButtonWithIcon("New account…", theme.ContentAddIcon(), u.showNewUser)
	u.resetPw = widget.NewButton("Reset password…", u.showResetPassword)
	u.toggleAdmin = widget.NewButton("Make admin", u.confirmToggleAdmin)
	u.deactivate = widget.NewButtonWithIcon("Deactivate…", theme.DeleteIcon(), u.confirmDeactivate)
	u.deactivate.Importance = widget.DangerImportance

	u.inviteList = widget.NewList(
		func() int { return len(u.invites) },
		func() fyne.CanvasObject {
			token := widget.NewLabel("CODE-CODE-CODE")
			token.TextStyle = fyne.TextStyle{Monospace: true}
			return container.NewHBox(token, layout.NewSpacer(), widget.NewLabel("uses"))
		},
		func(i widget.ListItemID, o fyne.CanvasObject) {
			if i >= len(u.invites) {
				return
			}
			row := o.(*fyne.Container)
			inv := u.invites[i]
			row.Objects[0].(*widget.Label).SetText(inv.Token)
			row.Objects[2].(*widget.Label).SetText(inviteText(inv, time.Now()))
		},
	)
	u.noInvites = wrapped("No invite codes yet. Press \"New invite code…\" to make one, then share it as a link, a QR code or a message.")
	u.noInvites.Hide()
	u.inviteList.OnSelected = func(i widget.ListItemID) { u.selInvite = i; u.updateButtons() }
	u.inviteList.OnUnselected = func(widget.ListItemID) { u.selInvite = -1; u.updateButtons() }
	u.newInvite = widget.NewButtonWithIcon("New invite code…", theme.ContentAddIcon(), u.showNewInvite)
	u.shareInvite = widget.NewButtonWithIcon("Share…", theme.MailSendIcon(), func() {
		if inv := u.selectedInvite(); inv != nil {
			u.showInvite(inv.Token)
		}
	})
	u.copyInvite = widget.NewButtonWithIcon("Copy code", theme.ContentCopyIcon(), func() {
		if inv := u.selectedInvite(); inv != nil {
			d.copyText(inv.Token)
		}
	})
	u.revokeInvite = widget.NewButton("Revoke…", u.confirmRevoke)

	people := container.NewBorder(
		container.NewVBox(heading("People"), container.NewHBox(u.newUser, u.resetPw, u.toggleAdmin, u.deactivate)),
		nil, nil, nil, u.userList)
	invites := container.NewBorder(
		container.NewVBox(heading("Invite codes"),
			wrapped("An invite code lets someone create an account here. Share it with them as a link or a QR code; "+
				"Element asks for the code when they sign up."),
			container.NewHBox(u.newInvite, u.shareInvite, u.copyInvite, u.revokeInvite)),
		nil, nil, nil, container.NewStack(u.inviteList, u.noInvites))
	top := container.NewVBox(u.stopped,
		container.New(layout.NewFormLayout(), widget.NewLabel("Who may sign up"), u.registration), u.regNote)
	split := container.NewVSplit(people, invites)
	split.Offset = 0.55
	u.content = container.NewPadded(container.NewBorder(top, nil, nil, nil, split))
	u.showMode()
	u.updateButtons()
	return u
}

func userLabel(u app.User) string {
	if u.DisplayName != "" && u.DisplayName != u.UserID.Localpart() {
		return fmt.Sprintf("%s (%s)", u.UserID, u.DisplayName)
	}
	return string(u.UserID)
}

// userFlags is the account's flags as words.
func userFlags(u app.User) string {
	switch {
	case u.Deactivated:
		return "deactivated"
	case u.Admin:
		return "admin"
	}
	return ""
}

// inviteText is an invite's use count and expiry.
func inviteText(t app.Invite, now time.Time) string {
	uses := fmt.Sprintf("used %d times", t.Completed)
	if t.Completed == 1 {
		uses = "used once"
	}
	if t.UsesAllowed != nil {
		uses = fmt.Sprintf("used %d of %d", t.Completed, *t.UsesAllowed)
	}
	switch {
	case !t.Valid(now.UnixMilli()) && t.ExpiryTime != nil && *t.ExpiryTime <= now.UnixMilli():
		return uses + ", expired"
	case !t.Valid(now.UnixMilli()):
		return uses + ", used up"
	case t.ExpiryTime != nil:
		return uses + ", until " + time.UnixMilli(*t.ExpiryTime).Local().Format("2 Jan 15:04")
	}
	return uses + ", never expires"
}

func (u *usersTab) selectedUser() *app.User {
	if u.selUser < 0 || u.selUser >= len(u.users) {
		return nil
	}
	return &u.users[u.selUser]
}

func (u *usersTab) selectedInvite() *app.Invite {
	if u.selInvite < 0 || u.selInvite >= len(u.invites) {
		return nil
	}
	return &u.invites[u.selInvite]
}

func (u *usersTab) setRunning(running bool) {
	if running == u.running {
		return
	}
	u.running = running
	if running {
		u.stopped.Hide()
	} else {
		u.stopped.Show()
		u.users, u.invites = nil, nil
		u.userList.UnselectAll()
		u.inviteList.UnselectAll()
		u.userList.Refresh()
		u.inviteList.Refresh()
	}
	u.updateButtons()
}

func (u *usersTab) updateButtons() {
	sel := u.selectedUser()
	active := sel != nil && !sel.Deactivated
	setEnabled(u.newUser, u.running)
	setEnabled(u.resetPw, u.running && active)
	setEnabled(u.toggleAdmin, u.running && active)
	setEnabled(u.deactivate, u.running && active)
	if sel != nil && sel.Admin {
		u.toggleAdmin.SetText("Remove admin")
	} else {
		u.toggleAdmin.SetText("Make admin")
	}
	inv := u.selectedInvite()
	setEnabled(u.newInvite, u.running)
	setEnabled(u.shareInvite, inv != nil)
	if u.running && len(u.invites) == 0 {
		u.noInvites.Show()
	} else {
		u.noInvites.Hide()
	}
	setEnabled(u.copyInvite, inv != nil)
	setEnabled(u.revokeInvite, u.running && inv != nil)
}

// load fetches accounts and invites, keeping the selection by name.
func (u *usersTab) load() {
	u.showMode()
	if !u.running {
		return
	}
	var users []app.User
	var invites []app.Invite
	u.d.async(func() error {
		ctx := context.Background()
		var err error
		if users, err = u.d.app.Users(ctx); err != nil {
			return err
		}
		invites, err = u.d.app.Invites(ctx)
		return err
	}, func(err error) {
		if errors.Is(err, app.ErrNotRunning) {
			return
		}
		if err != nil {
			u.d.showError("Could not list the accounts", err)
			return
		}
		var selUser id.UserID
		if s := u.selectedUser(); s != nil {
			selUser = s.UserID
		}
		selToken := ""
		if s := u.selectedInvite(); s != nil {
			selToken = s.Token
		}
		u.users, u.invites = users, invites
		u.selUser, u.selInvite = -1, -1
		u.userList.UnselectAll()
		u.inviteList.UnselectAll()
		u.userList.Refresh()
		u.inviteList.Refresh()
		for i := range users {
			if users[i].UserID == selUser {
				u.userList.Select(i)
			}
		}
		for i := range invites {
			if invites[i].Token == selToken {
				u.inviteList.Select(i)
			}
		}
		u.updateButtons()
	})
}

// showMode shows the configured registration mode.
func (u *usersTab) showMode() {
	mode := u.d.app.Config().Registration.Mode
	for _, c := range registrationChoices {
		if c.mode == mode {
			u.settingMode = true
			u.registration.SetSelected(c.label)
			u.settingMode = false
		}
	}
	switch mode {
	case config.RegistrationToken:
		u.regNote.SetText("People sign up in their Matrix app with an invite code from the list below.")
	case config.RegistrationOpen:
		u.regNote.SetText("Anyone who can reach this server can create an account. Fine on a home network you trust; risky on the internet.")
	case config.RegistrationClosed:
		u.regNote.SetText("Nobody can sign up; you create every account here.")
	}
}

func (u *usersTab) registrationChanged(label string) {
	if u.settingMode {
		return
	}
	mode := ""
	for _, c := range registrationChoices {
		if c.label == label {
			mode = c.mode
		}
	}
	if mode == "" || mode == u.d.app.Config().Registration.Mode {
		return
	}
	apply := func() {
		if err := u.d.app.SetRegistrationMode(mode); err != nil {
			u.showMode()
			u.d.showError("Could not change who may sign up", err)
			return
		}
		u.showMode()
		// The server reads the mode when it starts.
		if u.d.app.Server() != nil {
			u.d.RestartServer()
		}
	}
	if mode != config.RegistrationOpen {
		apply()
		return
	}
	c := dialog.NewConfirm("Let anyone sign up?",
		"Anyone who can reach this server will be able to create an account, without an invite.\n"+
			"That is fine on a home network you trust, but not on the internet.", func(ok bool) {
			if ok {
				apply()
			} else {
				u.showMode()
			}
		}, u.d.win)
	c.SetConfirmText("Let anyone sign up")
	c.SetDismissText("Cancel")
	c.Show()
}

// errPending says submit went on in the background.
var errPending = errors.New("pending")

func (u *usersTab) showNewUser() {
	name := widget.NewEntry()
	name.SetPlaceHolder("for example: alice")
	pw := widget.NewPasswordEntry()
	pw2 := widget.NewPasswordEntry()
	admin := widget.NewCheck("Make this account an admin (can manage this server)", nil)
	form := widget.NewForm(
		widget.NewFormItem("User name", name),
		widget.NewFormItem("Password", pw),
		widget.NewFormItem("Repeat password", pw2),
	)
	body := container.NewVBox(form, admin)
	f := u.d.newFormDialog("New account", "Create", body, func(done func(error)) error {
		if pw.Text != pw2.Text {
			return errors.New("the two passwords are not the same")
		}
		if _, err := u.d.app.CheckNewUser(name.Text, pw.Text); err != nil {
			return err
		}
		n, p, a := name.Text, pw.Text, admin.Checked
		u.d.async(func() error {
			_, err := u.d.app.CreateUser(context.Background(), n, p, a)
			return err
		}, func(err error) {
			done(err)
			if err == nil {
				u.load()
			}
		})
		return errPending
	})
	f.dlg.Show()
	u.d.win.Canvas().Focus(name)
}

func (u *usersTab) showResetPassword() {
	sel := u.selectedUser()
	if sel == nil {
		return
	}
	userID := sel.UserID
	pw := widget.NewPasswordEntry()
	pw2 := widget.NewPasswordEntry()
	logout := widget.NewCheck("Also sign them out on every device", nil)
	logout.SetChecked(true)
	body := container.NewVBox(
		wrapped("Choose a new password for "+string(userID)+" and tell it to them."),
		widget.NewForm(widget.NewFormItem("New password", pw), widget.NewFormItem("Repeat password", pw2)),
		logout)
	f := u.d.newFormDialog("Reset password", "Set password", body, func(done func(error)) error {
		if pw.Text != pw2.Text {
			return errors.New("the two passwords are not the same")
		}
		if _, err := u.d.app.CheckNewUser(userID.Localpart(), pw.Text); err != nil {
			return err
		}
		p, l := pw.Text, logout.Checked
		u.d.async(func() error {
			return u.d.app.ResetPassword(context.Background(), userID, p, l)
		}, done)
		return errPending
	})
	f.dlg.Show()
}

func (u *usersTab) confirmToggleAdmin() {
	sel := u.selectedUser()
	if sel == nil {
		return
	}
	userID, admin := sel.UserID, !sel.Admin
	title, msg, ok := "Make admin?", string(userID)+" will be able to manage every account on this server.", "Make admin"
	if !admin {
		title, msg, ok = "Remove admin?", string(userID)+" will become an ordinary user.", "Remove admin"
	}
	c := dialog.NewConfirm(title, msg, func(yes bool) {
		if !yes {
			return
		}
		u.d.async(func() error {
			return u.d.app.SetAdmin(context.Background(), userID, admin)
		}, func(err error) {
			if err != nil {
				u.d.showError("Could not change admin rights", err)
			}
			u.load()
		})
	}, u.d.win)
	c.SetConfirmText(ok)
	c.SetDismissText("Cancel")
	c.Show()
}

func (u *usersTab) confirmDeactivate() {
	sel := u.selectedUser()
	if sel == nil {
		return
	}
	userID := sel.UserID
	c := dialog.NewConfirm("Deactivate "+string(userID)+"?",
		"They will be signed out everywhere, leave every room, and never be able to sign in again.\n"+
			"Their user name stays taken. This cannot be undone here.", func(yes bool) {
			if !yes {
				return
			}
			u.d.async(func() error {
				return u.d.app.Deactivate(context.Background(), userID)
			}, func(err error) {
				if err != nil {
					u.d.showError("Could not deactivate "+string(userID), err)
				}
				u.load()
			})
		}, u.d.win)
	c.SetConfirmText("Deactivate")
	c.SetDismissText("Cancel")
	c.SetConfirmImportance(widget.DangerImportance)
	c.Show()
}

func (u *usersTab) showNewInvite() {
	useLabels := make([]string, len(inviteUses))
	for i, c := range inviteUses {
		useLabels[i] = c.label
	}
	expLabels := make([]string, len(inviteExpiry))
	for i, c := range inviteExpiry {
		expLabels[i] = c.label
	}
	uses := widget.NewSelect(useLabels, nil)
	uses.SetSelectedIndex(0)
	expiry := widget.NewSelect(expLabels, nil)
	expiry.SetSelectedIndex(1)
	body := widget.NewForm(widget.NewFormItem("For", uses), widget.NewFormItem("Valid for", expiry))
	f := u.d.newFormDialog("New invite code", "Create", body, func(done func(error)) error {
		n, exp := inviteUses[uses.SelectedIndex()].uses, inviteExpiry[expiry.SelectedIndex()].d
		var tok *app.Invite
		u.d.async(func() error {
			var err error
			tok, err = u.d.app.CreateInvite(context.Background(), n, exp)
			return err
		}, func(err error) {
			done(err)
			if err == nil {
				u.showInvite(tok.Token)
				u.load()
			}
		})
		return errPending
	})
	f.dlg.Show()
}

func (u *usersTab) confirmRevoke() {
	inv := u.selectedInvite()
	if inv == nil {
		return
	}
	token := inv.Token
	c := dialog.NewConfirm("Revoke this invite code?", "Nobody will be able to sign up with "+token+" any more. Accounts already made with it stay.", func(yes bool) {
		if !yes {
			return
		}
		u.d.async(func() error {
			return u.d.app.RevokeInvite(context.Background(), token)
		}, func(err error) {
			if err != nil {
				u.d.showError("Could not revoke the invite code", err)
			}
			u.load()
		})
	}, u.d.win)
	c.SetConfirmText("Revoke")
	c.SetDismissText("Cancel")
	c.Show()
}
