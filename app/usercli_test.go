package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
)

const goodPassword = "a long enough password"

// cli runs the palpo command line with stdin and returns the exit code,
// stdout and stderr.
func cli(t *testing.T, stdin string, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	env, out, errOut := testEnv(vars)
	env.Stdin = strings.NewReader(stdin)
	code := Main(args, noGUI, env)
	return code, out.String(), errOut.String()
}

// mustCLI runs a command that must succeed.
func mustCLI(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, out, errOut := cli(t, stdin, nil, args...)
	if code != 0 {
		t.Fatalf("palpo %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// failsCLI runs a command that must fail with code and say want on stderr.
func failsCLI(t *testing.T, stdin string, code int, want string, args ...string) {
	t.Helper()
	got, out, errOut := cli(t, stdin, nil, args...)
	if got != code || !strings.Contains(errOut, want) {
		t.Fatalf("palpo %s: exit %d, stderr %q (stdout %q); want exit %d mentioning %q", strings.Join(args, " "), got, errOut, out, code, want)
	}
}

func testDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeTestConfig(t, dir)
	return dir
}

// withTool opens the data directory the way the commands do, to check
// what they stored.
func withTool(t *testing.T, dir string, fn func(ctx context.Context, s *accounts.Service)) {
	t.Helper()
	env, _, _ := testEnv(nil)
	tool, err := openAdminTool(dir, env)
	if err != nil {
		t.Fatal(err)
	}
	defer tool.Close()
	fn(context.Background(), tool.accounts)
}

func TestUserCommands(t *testing.T) {
	dir := testDataDir(t)
	out := mustCLI(t, goodPassword+"\n", "user", "add", "alice", "--data-dir", dir)
	if !strings.Contains(out, "Created user @alice:localhost") {
		t.Fatalf("add: %q", out)
	}
	// --data-dir before the command, flags after the name, a password file
	// with a trailing newline, a full user ID.
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("root password here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = mustCLI(t, "", "user", "--data-dir", dir, "add", "@root:localhost", "--admin", "--password-file", pwFile, "--display-name", "The Owner")
	if !strings.Contains(out, "Created admin @root:localhost") {
		t.Fatalf("add admin: %q", out)
	}
	// The global --data-dir and PALPO_DATA_DIR work too.
	out = mustCLI(t, "", "--data-dir", dir, "user", "list")
	code, out2, _ := cli(t, "", map[string]string{EnvDataDir: dir}, "user", "list")
	if code != 0 || out2 != out {
		t.Fatalf("list with %s: %d %q, want %q", EnvDataDir, code, out2, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "USER") ||
		!strings.Contains(lines[1], "@alice:localhost") || !strings.Contains(lines[1], "no") ||
		!strings.Contains(lines[2], "@root:localhost") || !strings.Contains(lines[2], "yes") || !strings.Contains(lines[2], "The Owner") {
		t.Fatalf("list:\n%s", out)
	}
	withTool(t, dir, func(ctx context.Context, s *accounts.Service) {
		if err := s.CheckPassword(ctx, "@alice:localhost", goodPassword); err != nil {
			t.Fatalf("alice's password: %v", err)
		}
		if err := s.CheckPassword(ctx, "@root:localhost", "root password here"); err != nil {
			t.Fatalf("root's password from the file: %v", err)
		}
		d, err := s.GetUserDetails(ctx, "@root:localhost")
		if err != nil || !d.Admin || d.DisplayName != "The Owner" {
			t.Fatalf("root: %+v %v", d, err)
		}
	})

	mustCLI(t, "the new password\n", "user", "passwd", "alice", "--data-dir", dir)
	withTool(t, dir, func(ctx context.Context, s *accounts.Service) {
		if err := s.CheckPassword(ctx, "@alice:localhost", "the new password"); err != nil {
			t.Fatalf("changed password: %v", err)
		}
		if err := s.CheckPassword(ctx, "@alice:localhost", goodPassword); err == nil {
			t.Fatal("old password still works")
		}
	})

	out = mustCLI(t, "", "user", "deactivate", "alice", "--data-dir", dir)
	if !strings.Contains(out, "Deactivated @alice:localhost") {
		t.Fatalf("deactivate: %q", out)
	}
	out = mustCLI(t, "", "user", "list", "--data-dir", dir)
	if !strings.Contains(out, "deactivated") {
		t.Fatalf("list after deactivate:\n%s", out)
	}
	withTool(t, dir, func(ctx context.Context, s *accounts.Service) {
		if err := s.CheckPassword(ctx, "@alice:localhost", "the new password"); err == nil {
			t.Fatal("deactivated alice can still log in")
		}
	})
	// The user name stays taken, and a new password does not reopen it.
	failsCLI(t, goodPassword+"\n", 1, "already exists", "user", "add", "alice", "--data-dir", dir)
	failsCLI(t, goodPassword+"\n", 1, "is deactivated", "user", "passwd", "alice", "--data-dir", dir)
	failsCLI(t, "short\n", 1, "at least 8 characters", "user", "reactivate", "alice", "--data-dir", dir)
	out = mustCLI(t, "back again password\n", "user", "reactivate", "alice", "--data-dir", dir)
	if !strings.Contains(out, "Reactivated @alice:localhost") {
		t.Fatalf("reactivate: %q", out)
	}
	withTool(t, dir, func(ctx context.Context, s *accounts.Service) {
		if err := s.CheckPassword(ctx, "@alice:localhost", "back again password"); err != nil {
			t.Fatalf("reactivated alice cannot log in: %v", err)
		}
	})
	failsCLI(t, goodPassword+"\n", 1, "is not deactivated", "user", "reactivate", "alice", "--data-dir", dir)
}

func TestUserCommandsRefuseBadInput(t *testing.T) {
	dir := testDataDir(t)
	mustCLI(t, goodPassword+"\n", "user", "add", "alice", "--data-dir", dir)
	for _, tc := range []struct {
		stdin string
		code  int
		want  string
		args  []string
	}{
		{goodPassword, 1, "may only contain", []string{"user", "add", "bad name"}},
		{goodPassword, 1, "may not start with '_'", []string{"user", "add", "_bridge"}},
		{goodPassword, 1, "not a user of this server", []string{"user", "add", "@bob:example.org"}},
		{"short\n", 1, "at least 8 characters", []string{"user", "add", "bob"}},
		{"", 1, "no password", []string{"user", "add", "bob"}},
		{"\n", 1, "no password", []string{"user", "add", "bob"}},
		{"", 1, "read password file", []string{"user", "add", "bob", "--password-file", filepath.Join(dir, "missing")}},
		{goodPassword, 1, "already exists", []string{"user", "add", "alice"}},
		{goodPassword, 1, "no user @ghost:localhost", []string{"user", "passwd", "ghost"}},
		{"short\n", 1, "at least 8 characters", []string{"user", "passwd", "alice"}},
		{"", 1, "no user @ghost:localhost", []string{"user", "deactivate", "ghost"}},
		{goodPassword, 1, "no user @ghost:localhost", []string{"user", "reactivate", "ghost"}},
		{"", 2, "missing NAME", []string{"user", "add"}},
		{"", 2, "unexpected argument", []string{"user", "add", "bob", "carol"}},
		{"", 2, "unexpected argument", []string{"user", "list", "everyone"}},
		{"", 2, "flag provided but not defined", []string{"user", "add", "bob", "--superuser"}},
		{"", 2, "unknown command", []string{"user", "remove", "bob"}},
		{"", 2, "missing command", []string{"user"}},
		{"", 2, "missing CODE", []string{"invite", "revoke"}},
		{"", 1, "there is no invite code \"nope\"", []string{"invite", "revoke", "nope"}},
		{"", 2, "unknown command", []string{"invite", "delete", "x"}},
		{"", 1, "--uses \"-1\"", []string{"token", "create", "--uses", "-1"}},
		{"", 1, "--uses \"many\"", []string{"token", "create", "--uses", "many"}},
		{"", 1, "--expires \"soon\"", []string{"token", "create", "--expires", "soon"}},
		{"", 1, "--expires \"-5h\"", []string{"token", "create", "--expires", "-5h"}},
		{"", 1, "--expires \"0d\"", []string{"token", "create", "--expires", "0d"}},
		{"", 1, "must consist only of", []string{"token", "create", "--token", "has space"}},
	} {
		args := append(tc.args, "--data-dir", dir)
		failsCLI(t, tc.stdin, tc.code, tc.want, args...)
	}
	for _, group := range []string{"user", "invite", "token"} {
		if out := mustCLI(t, "", group, "help"); !strings.Contains(out, "palpo "+group) {
			t.Errorf("palpo %s help: %q", group, out)
		}
	}
	// Nothing was created by the refused commands.
	withTool(t, dir, func(ctx context.Context, s *accounts.Service) {
		users, total, err := s.ListUsers(ctx, accounts.UserQuery{Limit: 10})
		if err != nil || total != 1 || users[0].UserID != "@alice:localhost" {
			t.Fatalf("users after refused commands: %v %d %v", users, total, err)
		}
		tokens, err := s.RegistrationTokens(ctx, nil)
		if err != nil || len(tokens) != 0 {
			t.Fatalf("tokens after refused commands: %v %v", tokens, err)
		}
	})
}

// lastLine is what a script takes from `palpo token create`.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestTokenCommands(t *testing.T) {
	dir := testDataDir(t)
	before := time.Now()
	limited := lastLine(mustCLI(t, "", "invite", "create", "--uses", "3", "--expires", "7d", "--data-dir", dir))
	// "palpo token" is the old name, and --token the old --code.
	unlimited := lastLine(mustCLI(t, "", "token", "create", "--data-dir", dir))
	named := lastLine(mustCLI(t, "", "--data-dir", dir, "invite", "create", "--code", "family", "--expires", "72h"))
	old := lastLine(mustCLI(t, "", "token", "create", "--token", "old-style", "--data-dir", dir))
	readable := regexp.MustCompile(`^[34679ACDEFGHJKMNPQRTUVWXY]{4}-[34679ACDEFGHJKMNPQRTUVWXY]{4}-[34679ACDEFGHJKMNPQRTUVWXY]{4}$`)
	if !readable.MatchString(limited) || !readable.MatchString(unlimited) || named != "family" || old != "old-style" || limited == unlimited {
		t.Fatalf("invite codes %q %q %q %q", limited, unlimited, named, old)
	}
	withTool(t, dir, func(ctx context.Context, s *accounts.Service) {
		tok, err := s.GetRegistrationToken(ctx, limited)
		if err != nil || tok.UsesAllowed == nil || *tok.UsesAllowed != 3 || tok.ExpiryTime == nil {
			t.Fatalf("limited: %+v %v", tok, err)
		}
		if exp := time.UnixMilli(*tok.ExpiryTime); exp.Before(before.Add(7*24*time.Hour)) || exp.After(time.Now().Add(7*24*time.Hour)) {
			t.Fatalf("7d expiry is %v", exp)
		}
		tok, err = s.GetRegistrationToken(ctx, unlimited)
		if err != nil || tok.UsesAllowed != nil || tok.ExpiryTime != nil {
			t.Fatalf("unlimited: %+v %v", tok, err)
		}
		tok, err = s.GetRegistrationToken(ctx, "family")
		if err != nil || tok.ExpiryTime == nil || time.UnixMilli(*tok.ExpiryTime).Before(before.Add(72*time.Hour)) {
			t.Fatalf("named: %+v %v", tok, err)
		}
	})
	failsCLI(t, "", 1, "already exists", "invite", "create", "--code", "family", "--data-dir", dir)
	out := mustCLI(t, "", "invite", "list", "--data-dir", dir)
	for _, tok := range []string{"CODE", limited, unlimited, "family", "0 of 3 uses", "unlimited uses", "never expires"} {
		if !strings.Contains(out, tok) {
			t.Errorf("invite list lacks %q:\n%s", tok, out)
		}
	}
	if out := mustCLI(t, "", "invite", "revoke", "family", "--data-dir", dir); !strings.Contains(out, "Revoked the invite code family") {
		t.Errorf("revoke said %q", out)
	}
	if out := mustCLI(t, "", "token", "list", "--data-dir", dir); strings.Contains(out, "family") || !strings.Contains(out, limited) {
		t.Errorf("list after revoking family:\n%s", out)
	}
	// A generated code is revoked however it is typed, as registration
	// takes it: small letters, no dashes.
	loose := strings.ToLower(strings.ReplaceAll(limited, "-", ""))
	mustCLI(t, "", "invite", "revoke", loose, "--data-dir", dir)
	if out := mustCLI(t, "", "invite", "list", "--data-dir", dir); strings.Contains(out, limited) {
		t.Errorf("%s still listed after revoking it as %s:\n%s", limited, loose, out)
	}
}

// The commands work beside a running server on the same data directory,
// and the server sees their changes at once.
func TestCommandsWhileServerRuns(t *testing.T) {
	dir := testDataDir(t)
	a, err := Open(dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop() })
	base := a.Status().ClientURL
	ctx := context.Background()

	mustCLI(t, goodPassword+"\n", "user", "add", "carol", "--data-dir", dir)
	if err := a.Server().Accounts().CheckPassword(ctx, "@carol:localhost", goodPassword); err != nil {
		t.Fatalf("the running server does not know carol: %v", err)
	}
	// Carol logs in over HTTP.
	var login struct {
		AccessToken string    `json:"access_token"`
		UserID      id.UserID `json:"user_id"`
	}
	status := postJSON(t, base+"/_matrix/client/v3/login", "", map[string]any{
		"type": "m.login.password", "identifier": map[string]string{"type": "m.id.user", "user": "carol"}, "password": goodPassword,
	}, &login)
	if status != http.StatusOK || login.UserID != "@carol:localhost" || login.AccessToken == "" {
		t.Fatalf("login: %d %+v", status, login)
	}
	if status := getJSON(t, base+"/_matrix/client/v3/account/whoami", login.AccessToken, nil); status != http.StatusOK {
		t.Fatalf("whoami: %d", status)
	}

	// An invite made at the command line is valid on the server, and a
	// revoked one is not.
	tok := lastLine(mustCLI(t, "", "invite", "create", "--uses", "1", "--data-dir", dir))
	var validity struct {
		Valid bool `json:"valid"`
	}
	if status := getJSON(t, base+"/_matrix/client/v1/register/m.login.registration_token/validity?token="+tok, "", &validity); status != http.StatusOK || !validity.Valid {
		t.Fatalf("token validity: %d %+v", status, validity)
	}
	mustCLI(t, "", "invite", "revoke", tok, "--data-dir", dir)
	if status := getJSON(t, base+"/_matrix/client/v1/register/m.login.registration_token/validity?token="+tok, "", &validity); status != http.StatusOK || validity.Valid {
		t.Fatalf("revoked code's validity: %d %+v", status, validity)
	}
	failsCLI(t, "", 1, "there is no invite code", "invite", "revoke", tok, "--data-dir", dir)

	// Deactivating at the command line ends carol's session on the server.
	mustCLI(t, "", "user", "deactivate", "carol", "--data-dir", dir)
	if status := getJSON(t, base+"/_matrix/client/v3/account/whoami", login.AccessToken, nil); status != http.StatusUnauthorized {
		t.Fatalf("whoami after deactivation: %d, want 401", status)
	}
	// The server still runs and writes.
	mustCLI(t, goodPassword+"\n", "user", "add", "dave", "--data-dir", dir)
	if _, err := a.Server().Accounts().CreateAccount(ctx, accounts.NewAccount{Localpart: "erin", Password: goodPassword}); err != nil {
		t.Fatalf("the server cannot write after the commands: %v", err)
	}
	out := mustCLI(t, "", "user", "list", "--data-dir", dir)
	if !strings.Contains(out, "@erin:localhost") || !strings.Contains(out, "@dave:localhost") {
		t.Fatalf("list misses the server's user:\n%s", out)
	}
}

func postJSON(t *testing.T, url, token string, body, out any) int {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return sendJSON(t, req, token, out)
}

func getJSON(t *testing.T, url, token string, out any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sendJSON(t, req, token, out)
}

func sendJSON(t *testing.T, req *http.Request, token string, out any) int {
	t.Helper()
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}
