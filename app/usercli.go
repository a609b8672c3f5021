package app

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/gofrs/flock"

	"github.com/palpo-im/palpo-desktop/server"
	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/admin"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// The `palpo user` and `palpo invite` commands manage accounts and invite
// codes (`palpo token` is the old name of `palpo invite`)
// from the command line, whether the server is stopped or running. Each
// first tries to take the data directory's lock (control.go):
//
//   - With the lock, no server runs: the command builds the whole server
//     (server.New, never started) and works on the database itself, with
//     every service hook wired, so a deactivated user leaves their rooms.
//     It keeps the lock until it is done, so no server starts meanwhile.
//   - Without it, a server runs: every change goes through its admin API,
//     authenticated with the secret in control.json, because only the
//     server may write room events (the per-room lock that keeps a room's
//     event graph linear is in its memory) and, for simplicity, all changes
//     take that one path. Reads (list, and the checks before a change) use
//     the database directly, which SQLite in WAL mode allows beside a
//     writer.

// The admin API reports app's version; server must not import app, so app
// hands it over once at start-up (see admin.Version).
func init() { admin.Version = Version }

const userUsage = `Usage:
  palpo user add NAME [--admin] [--password-file FILE] [--display-name NAME]
  palpo user list
  palpo user passwd NAME [--password-file FILE] [--logout-devices]
  palpo user deactivate NAME [--erase]
  palpo user reactivate NAME [--password-file FILE]

NAME is a user name (alice) or a full user ID (@alice:example.org).
deactivate signs the user out everywhere, removes their password and makes
them leave every room they are in; the name stays taken.
Without --password-file the password is read from standard input: typed
twice without echo at a terminal, otherwise the first line.
Every command also takes --data-dir DIR. They work whether Palpo is
running or not: while it runs, they ask it to make the change.
`

const inviteUsage = `Usage:
  palpo invite create [--uses N] [--expires DURATION] [--code TEXT]
  palpo invite list
  palpo invite revoke CODE

An invite code lets whoever has it create an account (Matrix apps call it
a registration token). Codes look like K7QM-3XPD-9HFT: easy to read out,
and accepted however they are typed (small letters, spaces, no dashes).
--uses limits how many accounts it can create (default: unlimited);
--expires is how long it stays valid, such as 72h or 7d (default: forever);
--code chooses the code's text (letters, digits and . _ ~ - only).
"create" prints the code alone on its last line, for scripts. "revoke"
stops a code from working; accounts made with it stay.
"palpo token" is another name for "palpo invite".
Every command also takes --data-dir DIR.
`

// usageError is a command line the command does not understand (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// subcommand reads `palpo GROUP [--data-dir DIR] SUB ARGS…`: the data
// directory, the sub-command and the arguments after it. done is true when
// the answer is already given: the usage (code 0, asked for) or what was
// not understood (code 2).
func subcommand(group, usage, dataDirFlag string, args []string, env Env) (dataDir, sub string, rest []string, code int, done bool) {
	dataDir, args, err := leadingDataDir(dataDirFlag, args)
	if err == nil && len(args) == 0 {
		err = usageError{"missing command"}
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "palpo %s: %v\n\n%s", group, err, usage)
		return "", "", nil, 2, true
	}
	if sub = args[0]; sub == "help" || sub == "-h" || sub == "--help" {
		fmt.Fprint(env.Stdout, usage)
		return "", "", nil, 0, true
	}
	return dataDir, sub, args, 0, false
}

// runAdminCommand runs one `palpo user|token SUB` command and maps its
// outcome to an exit code: 0 done, 1 failed, 2 not understood.
func runAdminCommand(group, usage, dataDirFlag string, args []string, env Env,
	commands map[string]func(fs *flag.FlagSet) func(ctx context.Context, t *adminTool, args []string) error) int {
	dataDir, sub, args, code, done := subcommand(group, usage, dataDirFlag, args, env)
	if done {
		return code
	}
	build, ok := commands[sub]
	if !ok {
		fmt.Fprintf(env.Stderr, "palpo %s: unknown command %q\n\n%s", group, sub, usage)
		return 2
	}
	name := "palpo " + group + " " + sub
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&dataDir, "data-dir", dataDir, "data directory")
	run := build(fs)
	pos, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(env.Stdout, usage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "%s: %v\n\n%s", name, err, usage)
		return 2
	}
	t, err := openAdminTool(dataDir, env)
	if err != nil {
		fmt.Fprintf(env.Stderr, "%s: %v\n", name, err)
		return 1
	}
	err = run(context.Background(), t, pos)
	if cerr := t.Close(); cerr != nil {
		// The command's writes are committed; only the tidy-up failed.
		fmt.Fprintf(env.Stderr, "%s: warning: closing the database: %v\n", name, cerr)
	}
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(env.Stderr, "%s: %v\n\n%s", name, err, usage)
		return 2
	case err != nil:
		fmt.Fprintf(env.Stderr, "%s: %s\n", name, cliMessage(err))
		return 1
	}
	return 0
}

// cliMessage is an error as a person reads it: a Matrix error's message
// without its code.
func cliMessage(err error) string {
	var re mautrix.RespError
	if errors.As(err, &re) && re.Err != "" {
		return re.Err
	}
	return err.Error()
}

// leadingDataDir takes a --data-dir given between the group and the
// command (`palpo user --data-dir D add …`).
func leadingDataDir(dataDir string, args []string) (string, []string, error) {
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		arg := strings.TrimLeft(args[0], "-")
		switch {
		case arg == "data-dir" && len(args) > 1:
			dataDir, args = args[1], args[2:]
		case strings.HasPrefix(arg, "data-dir="):
			dataDir, args = strings.TrimPrefix(arg, "data-dir="), args[1:]
		default:
			return "", nil, usageError{fmt.Sprintf("unexpected %q before the command", args[0])}
		}
	}
	return dataDir, args, nil
}

// parseInterspersed parses flags anywhere among the arguments (`user add
// alice --admin`), which the flag package alone stops at the first
// non-flag; it returns the other arguments in order.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func exactArgs(args []string, names ...string) error {
	if len(args) < len(names) {
		return usageError{"missing " + strings.Join(names[len(args):], " ")}
	}
	if len(args) > len(names) {
		return usageError{fmt.Sprintf("unexpected argument %q", args[len(names)])}
	}
	return nil
}

// adminTool is the accounts service opened on a data directory's database,
// with the same config (password policy, reserved names, server name) the
// server uses, and the way to change things: directly (srv, holding lock)
// when no server runs, or through the running server (remote).
type adminTool struct {
	env      Env
	cfg      *config.Config
	dataDir  string
	db       *storage.DB
	accounts *accounts.Service

	// The server is stopped: this process holds the lock and has built
	// the server without starting it.
	lock *flock.Flock
	srv  *server.Server

	// The server runs: changes go through its admin API (see control).
	remote *controlClient
}

func openAdminTool(dataDirFlag string, env Env) (*adminTool, error) {
	a, err := openApp(dataDirFlag, env)
	if err != nil {
		return nil, err
	}
	cfg := a.Config()
	// Only warnings and errors: the command prints its own result.
	log := NewLogger(env.Stderr, config.Log{Level: "warn", Format: cfg.Log.Format})
	lock, locked, err := tryLockDataDir(a.DataDir())
	if err != nil {
		return nil, err
	}
	if locked {
		// server.New binds nothing and starts no background work; it runs
		// the server's own start-up checks (server name, migrations).
		srv, err := server.New(context.Background(), cfg, a.DataDir(), log)
		if err != nil {
			_ = lock.Unlock()
			return nil, err
		}
		return &adminTool{env: env, cfg: cfg, dataDir: a.DataDir(), db: srv.DB(), accounts: srv.Accounts(), lock: lock, srv: srv}, nil
	}
	dbPath := cfg.Database.Path
	if !filepath.IsAbs(dbPath) {
		dbPath = filepath.Join(a.DataDir(), dbPath)
	}
	ctx := context.Background()
	db, err := storage.Open(ctx, dbPath, 1)
	if err != nil {
		return nil, err
	}
	if err := server.CheckServerName(ctx, db, cfg.ServerName); err != nil {
		db.Close()
		return nil, err
	}
	// This service only reads: the running server makes every change.
	return &adminTool{env: env, cfg: cfg, dataDir: a.DataDir(), db: db, accounts: accounts.New(db, cfg, log)}, nil
}

// running tells whether a server runs on the data directory, so changes
// must go through it.
func (t *adminTool) running() bool { return t.lock == nil }

// control returns the running server's admin API client, reading
// control.json on first use (so read-only commands work without it).
func (t *adminTool) control() (*controlClient, error) {
	if t.remote == nil {
		c, err := dialControl(t.dataDir)
		if err != nil {
			return nil, err
		}
		t.remote = c
	}
	return t.remote, nil
}

// Close closes the database and, when this process held it, releases the
// data directory after the database is closed.
func (t *adminTool) Close() error {
	if !t.running() {
		err := t.srv.Shutdown(context.Background())
		if uerr := t.lock.Unlock(); uerr != nil {
			err = errors.Join(err, fmt.Errorf("unlock data directory: %w", uerr))
		}
		return err
	}
	return t.db.Close()
}

// The changes the commands make, each either on the database (server
// stopped) or through the running server's admin API.

func (t *adminTool) createUser(ctx context.Context, userID id.UserID, password string, admin bool, displayName string) error {
	if t.running() {
		c, err := t.control()
		if err != nil {
			return err
		}
		return c.createUser(ctx, userID, password, admin, displayName)
	}
	_, err := t.accounts.CreateAccount(ctx, accounts.NewAccount{
		Localpart: userID.Localpart(), Password: password, Admin: admin, ByAdmin: true, DisplayName: displayName,
	})
	return err
}

func (t *adminTool) setPassword(ctx context.Context, userID id.UserID, password string, logoutDevices bool) error {
	if t.running() {
		c, err := t.control()
		if err != nil {
			return err
		}
		return c.resetPassword(ctx, userID, password, logoutDevices)
	}
	return t.accounts.SetPasswordByAdmin(ctx, nil, userID, password, logoutDevices)
}

// deactivate closes the account and makes the user leave every room: the
// running server does it, or, when stopped, the server built here (its
// accounts service has the rooms service as its RoomLeaver).
func (t *adminTool) deactivate(ctx context.Context, userID id.UserID, erase bool) error {
	if t.running() {
		c, err := t.control()
		if err != nil {
			return err
		}
		return c.deactivate(ctx, userID, erase)
	}
	return t.accounts.Deactivate(ctx, userID, erase)
}

func (t *adminTool) reactivate(ctx context.Context, userID id.UserID, password string) error {
	if t.running() {
		c, err := t.control()
		if err != nil {
			return err
		}
		return c.reactivate(ctx, userID, password)
	}
	off := false
	_, _, err := t.accounts.CreateOrModifyUser(ctx, nil, userID, accounts.UserChanges{Deactivated: &off, Password: &password})
	return err
}

func (t *adminTool) deleteRegistrationToken(ctx context.Context, token string) error {
	if t.running() {
		c, err := t.control()
		if err != nil {
			return err
		}
		return c.deleteRegistrationToken(ctx, token)
	}
	return t.accounts.DeleteRegistrationToken(ctx, token)
}

func (t *adminTool) createRegistrationToken(ctx context.Context, n accounts.NewRegistrationToken) (*accounts.RegistrationTokenInfo, error) {
	if t.running() {
		c, err := t.control()
		if err != nil {
			return nil, err
		}
		return c.createRegistrationToken(ctx, n)
	}
	return t.accounts.CreateRegistrationToken(ctx, n)
}

// user resolves NAME (a localpart or a full user ID of this server).
func (t *adminTool) user(name string) (id.UserID, error) {
	userID, err := t.accounts.ResolveUser(name)
	if err != nil {
		return "", fmt.Errorf("%q is not a user of this server (%s)", name, t.cfg.ServerName)
	}
	return userID, nil
}

// existingUser resolves NAME and requires the account to exist.
func (t *adminTool) existingUser(ctx context.Context, name string) (id.UserID, error) {
	userID, err := t.user(name)
	if err != nil {
		return "", err
	}
	if _, err := t.accounts.GetUser(ctx, userID); err != nil {
		var re mautrix.RespError
		if errors.As(err, &re) && re.ErrCode == mautrix.MNotFound.ErrCode {
			return "", fmt.Errorf("no user %s", userID)
		}
		return "", err
	}
	return userID, nil
}

// newPassword reads a new password from file, or from standard input:
// twice without echo at a terminal, else the first line (for scripts:
// `echo "$PW" | palpo user add bob`).
func (t *adminTool) newPassword(file string) (string, error) {
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read password file: %w", err)
		}
		pw := strings.TrimRight(string(data), "\r\n")
		if pw == "" {
			return "", fmt.Errorf("password file %s is empty", file)
		}
		return pw, nil
	}
	in := t.env.Stdin
	if in == nil {
		return "", errors.New("no password: use --password-file or give it on standard input")
	}
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return promptPassword(int(f.Fd()), t.env.Stderr)
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("no password given on standard input")
	}
	return pw, nil
}

func promptPassword(fd int, out io.Writer) (string, error) {
	read := func(prompt string) (string, error) {
		fmt.Fprint(out, prompt)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(out)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return string(b), nil
	}
	pw, err := read("New password: ")
	if err != nil {
		return "", err
	}
	again, err := read("Repeat password: ")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("the passwords do not match")
	}
	if pw == "" {
		return "", errors.New("the password is empty")
	}
	return pw, nil
}

// userCommand runs `palpo user …`.
func userCommand(dataDirFlag string, args []string, env Env) int {
	return runAdminCommand("user", userUsage, dataDirFlag, args, env, map[string]func(*flag.FlagSet) func(context.Context, *adminTool, []string) error{
		"add":        userAdd,
		"list":       userList,
		"passwd":     userPasswd,
		"deactivate": userDeactivate,
		"reactivate": userReactivate,
	})
}

// inviteCommand runs `palpo invite …`, also known by its old name
// `palpo token …` (group is the name used).
func inviteCommand(group, dataDirFlag string, args []string, env Env) int {
	return runAdminCommand(group, inviteUsage, dataDirFlag, args, env, map[string]func(*flag.FlagSet) func(context.Context, *adminTool, []string) error{
		"create": inviteCreate,
		"list":   inviteList,
		"revoke": inviteRevoke,
	})
}

func userAdd(fs *flag.FlagSet) func(context.Context, *adminTool, []string) error {
	isAdmin := fs.Bool("admin", false, "make the user a server admin")
	pwFile := fs.String("password-file", "", "read the password from this file")
	displayName := fs.String("display-name", "", "the user's display name")
	return func(ctx context.Context, t *adminTool, args []string) error {
		if err := exactArgs(args, "NAME"); err != nil {
			return err
		}
		userID, err := t.user(args[0])
		if err != nil {
			return err
		}
		// Check the name before asking for a password, so nobody types
		// one twice only to hear the name was wrong.
		if err := t.accounts.ValidateLocalpart(userID.Localpart()); err != nil {
			return err
		}
		if _, err := t.accounts.GetUser(ctx, userID); err == nil {
			return fmt.Errorf("user %s already exists", userID)
		}
		pw, err := t.newPassword(*pwFile)
		if err != nil {
			return err
		}
		if err := t.createUser(ctx, userID, pw, *isAdmin, *displayName); err != nil {
			return err
		}
		kind := "user"
		if *isAdmin {
			kind = "admin"
		}
		fmt.Fprintf(t.env.Stdout, "Created %s %s\n", kind, userID)
		return nil
	}
}

func userList(fs *flag.FlagSet) func(context.Context, *adminTool, []string) error {
	return func(ctx context.Context, t *adminTool, args []string) error {
		if err := exactArgs(args); err != nil {
			return err
		}
		w := tabwriter.NewWriter(t.env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "USER\tADMIN\tSTATUS\tDISPLAY NAME\tCREATED")
		for from := 0; ; {
			users, total, err := t.accounts.ListUsers(ctx, accounts.UserQuery{From: from, Limit: accounts.DefaultUserPageSize})
			if err != nil {
				return err
			}
			for _, u := range users {
				admin, status := "no", "active"
				if u.Admin {
					admin = "yes"
				}
				if u.Deactivated {
					status = "deactivated"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", u.UserID, admin, status, u.DisplayName,
					time.UnixMilli(u.CreatedTS).Local().Format("2006-01-02 15:04"))
			}
			from += len(users)
			if len(users) == 0 || from >= total {
				break
			}
		}
		return w.Flush()
	}
}

func userPasswd(fs *flag.FlagSet) func(context.Context, *adminTool, []string) error {
	pwFile := fs.String("password-file", "", "read the password from this file")
	logout := fs.Bool("logout-devices", false, "sign the user out on every device")
	return func(ctx context.Context, t *adminTool, args []string) error {
		if err := exactArgs(args, "NAME"); err != nil {
			return err
		}
		userID, err := t.existingUser(ctx, args[0])
		if err != nil {
			return err
		}
		// A password alone would not let a deactivated user in again;
		// say so rather than pretend it did.
		if u, err := t.accounts.GetUser(ctx, userID); err == nil && u.Deactivated {
			return fmt.Errorf("%s is deactivated; use \"palpo user reactivate\" to give it a new password and reopen it", userID)
		}
		pw, err := t.newPassword(*pwFile)
		if err != nil {
			return err
		}
		if err := t.setPassword(ctx, userID, pw, *logout); err != nil {
			return err
		}
		fmt.Fprintf(t.env.Stdout, "Changed the password of %s\n", userID)
		return nil
	}
}

func userDeactivate(fs *flag.FlagSet) func(context.Context, *adminTool, []string) error {
	erase := fs.Bool("erase", false, "also remove the display name and avatar")
	return func(ctx context.Context, t *adminTool, args []string) error {
		if err := exactArgs(args, "NAME"); err != nil {
			return err
		}
		userID, err := t.existingUser(ctx, args[0])
		if err != nil {
			return err
		}
		if err := t.deactivate(ctx, userID, *erase); err != nil {
			return err
		}
		fmt.Fprintf(t.env.Stdout, "Deactivated %s\n", userID)
		return nil
	}
}

// userReactivate reopens a deactivated account with a new password (it
// lost its old one). It does not rejoin the rooms it left.
func userReactivate(fs *flag.FlagSet) func(context.Context, *adminTool, []string) error {
	pwFile := fs.String("password-file", "", "read the password from this file")
	return func(ctx context.Context, t *adminTool, args []string) error {
		if err := exactArgs(args, "NAME"); err != nil {
			return err
		}
		userID, err := t.existingUser(ctx, args[0])
		if err != nil {
			return err
		}
		if u, err := t.accounts.GetUser(ctx, userID); err == nil && !u.Deactivated {
			return fmt.Errorf("%s is not deactivated", userID)
		}
		pw, err := t.newPassword(*pwFile)
		if err != nil {
			return err
		}
		if err := t.reactivate(ctx, userID, pw); err != nil {
			return err
		}
		fmt.Fprintf(t.env.Stdout, "Reactivated %s\n", userID)
		return nil
	}
}

// parseExpiry reads a lifetime: a Go duration (90m, 72h) or whole days (7d).
func parseExpiry(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		d = time.Duration(n) * 24 * time.Hour
		if n > 100*365 {
			err = errors.New("too long")
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--expires %q: give a positive duration such as 72h or 7d", s)
	}
	return d, nil
}

func inviteCreate(fs *flag.FlagSet) func(context.Context, *adminTool, []string) error {
	uses := fs.String("uses", "", "how many accounts the code can create (default: unlimited)")
	expires := fs.String("expires", "", "how long the code stays valid, such as 72h or 7d (default: forever)")
	text := fs.String("code", "", "the code's text (default: a random code such as K7QM-3XPD-9HFT)")
	fs.StringVar(text, "token", "", "the old name of --code")
	return func(ctx context.Context, t *adminTool, args []string) error {
		if err := exactArgs(args); err != nil {
			return err
		}
		var n accounts.NewRegistrationToken
		n.Token = *text
		if n.Token == "" {
			var err error
			if n.Token, err = accounts.NewInviteCode(); err != nil {
				return err
			}
		}
		if *uses != "" {
			u, err := strconv.Atoi(*uses)
			if err != nil || u < 0 {
				return fmt.Errorf("--uses %q: give a number of uses, 0 or more", *uses)
			}
			n.UsesAllowed = &u
		}
		if *expires != "" {
			d, err := parseExpiry(*expires)
			if err != nil {
				return err
			}
			ms := time.Now().Add(d).UnixMilli()
			n.ExpiryTime = &ms
		}
		tok, err := t.createRegistrationToken(ctx, n)
		if err != nil {
			return err
		}
		fmt.Fprintf(t.env.Stdout, "Created an invite code (%s, %s). Whoever has it can create an account:\n%s\n",
			usesText(tok), expiryText(tok), tok.Token)
		return nil
	}
}

func usesText(t *accounts.RegistrationTokenInfo) string {
	if t.UsesAllowed == nil {
		return fmt.Sprintf("%d used, unlimited uses", t.Completed)
	}
	return fmt.Sprintf("%d of %d uses", t.Completed, *t.UsesAllowed)
}

func expiryText(t *accounts.RegistrationTokenInfo) string {
	if t.ExpiryTime == nil {
		return "never expires"
	}
	return "expires " + time.UnixMilli(*t.ExpiryTime).Local().Format("2006-01-02 15:04")
}

func inviteList(fs *flag.FlagSet) func(context.Context, *adminTool, []string) error {
	return func(ctx context.Context, t *adminTool, args []string) error {
		if err := exactArgs(args); err != nil {
			return err
		}
		list, err := t.accounts.RegistrationTokens(ctx, nil)
		if err != nil {
			return err
		}
		now := time.Now().UnixMilli()
		w := tabwriter.NewWriter(t.env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "CODE\tSTATUS\tUSES\tEXPIRY")
		for i := range list {
			tok := &list[i]
			status := "valid"
			if !tok.Valid(now) {
				status = "used up or expired"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", tok.Token, status, usesText(tok), expiryText(tok))
		}
		return w.Flush()
	}
}

func inviteRevoke(fs *flag.FlagSet) func(context.Context, *adminTool, []string) error {
	return func(ctx context.Context, t *adminTool, args []string) error {
		if err := exactArgs(args, "CODE"); err != nil {
			return err
		}
		code := args[0]
		if err := t.deleteRegistrationToken(ctx, code); err != nil {
			var re mautrix.RespError
			if errors.As(err, &re) && re.ErrCode == mautrix.MNotFound.ErrCode {
				return fmt.Errorf("there is no invite code %q (\"palpo invite list\" shows them)", code)
			}
			return err
		}
		fmt.Fprintf(t.env.Stdout, "Revoked the invite code %s: nobody can sign up with it any more.\n", code)
		return nil
	}
}
