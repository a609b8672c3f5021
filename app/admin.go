package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/p2p"
	"github.com/palpo-im/palpo-desktop/server"
	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/federation"
	"github.com/palpo-im/palpo-desktop/server/federation/outbound"
)

// The operations the desktop app's Users tab needs. They go through the
// running server's services, the same rules the admin API and the command
// line use; only the server writes room events (a deactivated user leaves
// their rooms), so with the server stopped they answer ErrNotRunning.

// ErrNotRunning is the answer to an account operation while the server is
// stopped.
var ErrNotRunning = errors.New("the server is not running; start it first")

func (a *App) running() (*server.Server, error) {
	srv := a.Server()
	if srv == nil {
		return nil, ErrNotRunning
	}
	return srv, nil
}

// User is an account as the Users tab lists it.
type User = accounts.UserDetails

// Users lists every account, deactivated ones included, by name.
func (a *App) Users(ctx context.Context) ([]User, error) {
	srv, err := a.running()
	if err != nil {
		return nil, err
	}
	var all []User
	for from := 0; ; {
		page, total, err := srv.Accounts().ListUsers(ctx, accounts.UserQuery{From: from, Limit: accounts.DefaultUserPageSize})
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		from += len(page)
		if len(page) == 0 || from >= total {
			return all, nil
		}
	}
}

// CheckNewUser checks a user name and password the way account creation
// will, so the window can say what is wrong before anything is made. It
// needs no running server or database.
func (a *App) CheckNewUser(name, password string) (id.UserID, error) {
	return checkNewUser(a.Config(), a, name, password)
}

// CreateUser creates an account with a password; admin makes it a server
// admin. Reserved names are allowed: the owner is making it.
func (a *App) CreateUser(ctx context.Context, name, password string, admin bool) (id.UserID, error) {
	return a.createUser(ctx, name, password, admin, "")
}

// createUser is CreateUser with a display name ("" leaves the default).
func (a *App) createUser(ctx context.Context, name, password string, admin bool, displayName string) (id.UserID, error) {
	srv, err := a.running()
	if err != nil {
		return "", err
	}
	userID, err := a.CheckNewUser(name, password)
	if err != nil {
		return "", err
	}
	if _, err := srv.Accounts().GetUser(ctx, userID); err == nil {
		return "", fmt.Errorf("the user name %s is already taken", userID.Localpart())
	}
	_, err = srv.Accounts().CreateAccount(ctx, accounts.NewAccount{
		Localpart: userID.Localpart(), Password: password, Admin: admin, ByAdmin: true, DisplayName: displayName,
	})
	if err != nil {
		return "", err
	}
	a.log.Info("account created in the desktop app", "user", userID, "admin", admin)
	return userID, nil
}

// ResetPassword gives a user a new password; logout signs them out on every
// device.
func (a *App) ResetPassword(ctx context.Context, userID id.UserID, password string, logout bool) error {
	srv, err := a.running()
	if err != nil {
		return err
	}
	u, err := srv.Accounts().GetUserDetails(ctx, userID)
	if err != nil {
		return err
	}
	if u.Deactivated {
		return fmt.Errorf("%s is deactivated; a new password would not let them in", userID)
	}
	if err := srv.Accounts().SetPasswordByAdmin(ctx, nil, userID, password, logout); err != nil {
		return err
	}
	a.log.Info("password reset in the desktop app", "user", userID, "logout_devices", logout)
	return nil
}

// SetAdmin makes a user a server admin or an ordinary user. The last active
// admin stays one, so somebody can always manage the server from a client.
func (a *App) SetAdmin(ctx context.Context, userID id.UserID, admin bool) error {
	srv, err := a.running()
	if err != nil {
		return err
	}
	if !admin {
		if err := a.keepOneAdmin(ctx, srv, userID, "remove the admin rights of"); err != nil {
			return err
		}
	}
	if _, _, err := srv.Accounts().CreateOrModifyUser(ctx, nil, userID, accounts.UserChanges{Admin: &admin}); err != nil {
		return err
	}
	a.log.Info("admin rights changed in the desktop app", "user", userID, "admin", admin)
	return nil
}

// Deactivate closes an account for good: the user is signed out everywhere,
// loses their password and leaves every room; the name stays taken.
func (a *App) Deactivate(ctx context.Context, userID id.UserID) error {
	srv, err := a.running()
	if err != nil {
		return err
	}
	if err := a.keepOneAdmin(ctx, srv, userID, "deactivate"); err != nil {
		return err
	}
	if err := srv.Accounts().RequireUser(ctx, userID); err != nil {
		return err
	}
	if err := srv.Accounts().Deactivate(ctx, userID, false); err != nil {
		return err
	}
	a.log.Info("account deactivated in the desktop app", "user", userID)
	return nil
}

// keepOneAdmin refuses to take the last active admin away.
func (a *App) keepOneAdmin(ctx context.Context, srv *server.Server, userID id.UserID, what string) error {
	u, err := srv.Accounts().GetUserDetails(ctx, userID)
	if err != nil {
		return err
	}
	if !u.Admin || u.Deactivated {
		return nil
	}
	yes, no := true, false
	admins, _, err := srv.Accounts().ListUsers(ctx, accounts.UserQuery{Admins: &yes, Deactivated: &no, Limit: 2})
	if err != nil {
		return err
	}
	if len(admins) < 2 {
		return fmt.Errorf("cannot %s %s: they are the only admin, and a server needs one. Make someone else an admin first", what, userID)
	}
	return nil
}

// Invite is an invite code (a registration token) as the Users tab lists it.
type Invite = accounts.RegistrationTokenInfo

// CreateInvite makes an invite code: uses 0 means unlimited, expires 0
// means never.
func (a *App) CreateInvite(ctx context.Context, uses int, expires time.Duration) (*Invite, error) {
	srv, err := a.running()
	if err != nil {
		return nil, err
	}
	var n accounts.NewRegistrationToken
	if n.Token, err = accounts.NewInviteCode(); err != nil {
		return nil, err
	}
	if uses < 0 {
		return nil, errors.New("the number of uses cannot be negative")
	}
	if uses > 0 {
		n.UsesAllowed = &uses
	}
	if expires < 0 {
		return nil, errors.New("the expiry cannot be in the past")
	}
	if expires > 0 {
		ms := time.Now().Add(expires).UnixMilli()
		n.ExpiryTime = &ms
	}
	tok, err := srv.Accounts().CreateRegistrationToken(ctx, n)
	if err != nil {
		return nil, err
	}
	a.log.Info("invite code created in the desktop app", "uses", uses, "expires", expires.String())
	return tok, nil
}

// Invites lists every registration token, used up and expired ones too.
func (a *App) Invites(ctx context.Context) ([]Invite, error) {
	srv, err := a.running()
	if err != nil {
		return nil, err
	}
	return srv.Accounts().RegistrationTokens(ctx, nil)
}

// RevokeInvite deletes a registration token; nobody can use it any more.
func (a *App) RevokeInvite(ctx context.Context, token string) error {
	srv, err := a.running()
	if err != nil {
		return err
	}
	if err := srv.Accounts().DeleteRegistrationToken(ctx, token); err != nil {
		var re mautrix.RespError
		if errors.As(err, &re) && re.ErrCode == mautrix.MNotFound.ErrCode {
			return errors.New("that invite code no longer exists")
		}
		return err
	}
	a.log.Info("invite code revoked in the desktop app")
	return nil
}

// Stats are the figures the Status tab shows.
type Stats struct {
	Users      int   // active accounts
	Rooms      int   // rooms this server knows
	DBBytes    int64 // the database file with its write-ahead log
	MediaBytes int64 // uploaded files and thumbnails
}

// Stats counts users and rooms and measures the database and media. The
// counts need the running server; the sizes are read from disk.
func (a *App) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	path := a.Config().Database.Path
	if !filepath.IsAbs(path) {
		path = filepath.Join(a.dataDir, path)
	}
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(path + suffix); err == nil {
			st.DBBytes += fi.Size()
		}
	}
	srv, err := a.running()
	if err != nil {
		return st, err
	}
	db := srv.DB()
	if st.Users, err = db.CountUsers(ctx, false); err != nil {
		return st, err
	}
	if st.Rooms, err = db.CountRooms(ctx); err != nil {
		return st, err
	}
	if st.MediaBytes, err = db.MediaBytes(ctx); err != nil {
		return st, err
	}
	return st, nil
}

// FederationStatus is federation as the Status tab shows it: on or off,
// the listener, and the servers this one sends to with what each is owed.
type FederationStatus = federation.Status

// DestinationStatus is one server in FederationStatus.Destinations.
type DestinationStatus = outbound.DestinationStatus

// FederationStatus asks the running server; with the server stopped it
// says what the config will do (no listener, no destinations).
func (a *App) FederationStatus(ctx context.Context) (FederationStatus, error) {
	if srv := a.Server(); srv != nil {
		return srv.FederationStatus(ctx)
	}
	cfg := a.Config()
	st := FederationStatus{Enabled: cfg.Federation.Enabled, ServerName: cfg.ServerName, WellKnownServer: cfg.Federation.WellKnownServer}
	if st.Enabled {
		st.Listen = cfg.Federation.Listen
	}
	if cfg.P2P.Enabled {
		// Not running yet: only that it is on.
		st.P2P = &p2p.Status{Reachability: p2p.ReachabilityUnknown}
	}
	return st, nil
}
