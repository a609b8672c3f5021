package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/text/unicode/norm"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// The desktop app's first-run wizard. It runs when the data directory has
// no accounts yet: on a new computer (no database at all), and also when a
// server was started once without any account being made (by `palpo
// serve`, say), because then nobody could sign in either. It does not
// depend on palpo.toml being new: Open writes the default file before the
// window exists, and a person who wrote their own file still needs an
// owner account. Once any account exists the wizard never shows again.

// SetupState tells the desktop app whether to show the wizard.
type SetupState struct {
	Needed bool
	// ServerNameFixed is set when a database already exists: it is stamped
	// with ServerName, which can then never change, so the wizard shows it
	// without letting it be edited.
	ServerNameFixed bool
	ServerName      string
}

func (a *App) databasePath() string {
	path := a.Config().Database.Path
	if !filepath.IsAbs(path) {
		path = filepath.Join(a.dataDir, path)
	}
	return path
}

// SetupState looks at the data directory, before the server starts. It
// opens the database (applying migrations, as a start would) only when
// one exists and nobody else has the directory; if another process runs a
// server on it, there is nothing to set up here.
func (a *App) SetupState(ctx context.Context) (SetupState, error) {
	st := SetupState{ServerName: a.Config().ServerName}
	if a.Server() != nil {
		return st, nil
	}
	path := a.databasePath()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		st.Needed = true
		return st, nil
	} else if err != nil {
		return st, fmt.Errorf("database %s: %w", path, err)
	}
	lock, ok, err := tryLockDataDir(a.dataDir)
	if err != nil || !ok {
		return st, err
	}
	defer lock.Unlock()
	db, err := storage.Open(ctx, path, 1)
	if err != nil {
		return st, err
	}
	defer db.Close()
	n, err := db.CountUsers(ctx, true)
	if err != nil {
		return st, err
	}
	if n > 0 {
		return st, nil
	}
	st.Needed = true
	name, stamped, err := db.Meta(ctx, storage.MetaServerName)
	if err != nil {
		return st, err
	}
	if stamped {
		st.ServerNameFixed, st.ServerName = true, name
	}
	return st, nil
}

// SetupRequest is what the wizard asked.
type SetupRequest struct {
	ServerName string
	Owner      string // user name of the owner's account, made an admin
	Password   string
	// DisplayName is the owner's name as others see it ("" for the
	// user name).
	DisplayName string
	// LANAddress, when not empty, is added to the listen addresses so
	// other devices on the home network can connect.
	LANAddress string
	// PeerToPeer names the server after its signing key (PeerToPeerName,
	// in place of ServerName) and turns peer to peer on, before the first
	// start stamps the name into the database.
	PeerToPeer bool
}

// CheckServerName checks a server name the wizard offers.
func CheckServerName(name string) error {
	if err := config.ValidateServerName(name); err != nil {
		return fmt.Errorf("%q cannot be a server name: it %v", name, err)
	}
	return nil
}

// CheckOwner checks the owner's user name and password as they will be
// checked under serverName.
func (a *App) CheckOwner(serverName, name, password string) (id.UserID, error) {
	cfg := *a.Config()
	cfg.ServerName = serverName
	return checkNewUser(&cfg, a, name, password)
}

// ApplySetup writes the wizard's answers to palpo.toml, starts the server
// (which creates the database, stamped with the server name) and creates
// the owner's admin account. progress hears each step. It can be run again
// after a failure (say, the port was taken): the config edits are the same.
func (a *App) ApplySetup(ctx context.Context, req SetupRequest, progress func(step string)) (id.UserID, error) {
	if progress == nil {
		progress = func(string) {}
	}
	if req.PeerToPeer {
		name, err := a.PeerToPeerName()
		if err != nil {
			return "", err
		}
		req.ServerName = name
	}
	if err := CheckServerName(req.ServerName); err != nil {
		return "", err
	}
	if _, err := a.CheckOwner(req.ServerName, req.Owner, req.Password); err != nil {
		return "", err
	}
	st, err := a.SetupState(ctx)
	if err != nil {
		return "", err
	}
	if st.ServerNameFixed && req.ServerName != st.ServerName {
		return "", fmt.Errorf("this server is already named %s, and a server name can never change", st.ServerName)
	}
	progress("Saving your choices…")
	cur := a.Settings()
	var edits []tomlEdit
	if req.ServerName != a.Config().ServerName {
		if a.Server() != nil {
			return "", errors.New("stop the server before changing its name")
		}
		name := req.ServerName
		edits = append(edits, tomlEdit{"server_name", tomlString(name), func(c *config.Config) bool { return c.ServerName == name }})
	}
	if req.LANAddress != "" && !(cur.LAN && cur.LANAddress == req.LANAddress) {
		if cur.CustomListen {
			return "", ErrCustomListen
		}
		listen := listenFor(cur.Port, req.LANAddress)
		edits = append(edits, tomlEdit{"listen", tomlStrings(listen), func(c *config.Config) bool { return slices.Equal(c.Listen, listen) }})
	}
	if req.PeerToPeer && !a.Config().P2P.Enabled {
		edits = append(edits, p2pOn)
	}
	if len(edits) > 0 && a.Server() != nil {
		// The listen addresses only take effect at start.
		progress("Stopping the server…")
		if err := a.Stop(); err != nil {
			return "", err
		}
	}
	if err := a.editConfig(edits...); err != nil {
		return "", err
	}
	if a.Server() == nil {
		progress("Starting the server (the first start prepares the database)…")
		if err := a.Start(); err != nil {
			return "", err
		}
	}
	progress("Creating your account…")
	userID, err := a.createUser(ctx, req.Owner, req.Password, true, strings.TrimSpace(req.DisplayName))
	if err != nil {
		return "", err
	}
	return userID, nil
}

// checkNewUser is CheckNewUser under cfg.
func checkNewUser(cfg *config.Config, a *App, name, password string) (id.UserID, error) {
	// These checks touch no database, so a service without one will do.
	svc := accounts.New(nil, cfg, a.log)
	userID, err := svc.ResolveUser(name)
	if err != nil {
		return "", fmt.Errorf("%q is not a user name on this server", name)
	}
	if err := svc.ValidateLocalpart(userID.Localpart()); err != nil {
		return "", err
	}
	if err := svc.CheckPasswordStrength(password); err != nil {
		return "", err
	}
	return userID, nil
}

// SuggestUserName turns a person's name into a user name the server
// accepts: "Alice Smith" becomes "alice", "Zoë" "zoe". "" when nothing
// usable is left.
func SuggestUserName(displayName string) string {
	first, _, _ := strings.Cut(strings.TrimSpace(displayName), " ")
	var b strings.Builder
	for _, r := range norm.NFD.String(strings.ToLower(first)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '.' || r == '-':
			if b.Len() > 0 {
				b.WriteRune(r)
			}
		}
	}
	return strings.TrimRight(b.String(), ".-")
}
