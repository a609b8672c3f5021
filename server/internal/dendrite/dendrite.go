// Package dendrite runs Dendrite, another Matrix homeserver, as a federation
// peer in tests. The binary is bin/dendrite-test (make dendrite-tool: Dendrite's
// own cmd/dendrite, built from the e2e/dendrite module), named by the
// PALPO_DENDRITE environment variable; tests that start it are skipped when
// the variable is unset, so a plain `go test` needs no Dendrite.
//
// Each peer runs as a child process on free loopback ports with a temporary
// data directory (SQLite), a fresh signing key and a config written here,
// made private to the test: no key notary, no metrics, no phone-home, no
// rate limits, open registration.
package dendrite

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// EnvBinary names the environment variable holding the absolute path of the
// Dendrite binary.
const EnvBinary = "PALPO_DENDRITE"

// Options say how to start a Dendrite peer.
type Options struct {
	// ServerName is the peer's Matrix server name. Empty means
	// "127.0.0.1:<federation port>": an IP literal with a port, which other
	// servers connect to directly (no .well-known, SRV or DNS), and which
	// Dendrite accepts as its server_name. A name given here must end in
	// the port the federation listener is to use.
	ServerName string
	// CertFile and KeyFile are the PEM certificate (valid for 127.0.0.1)
	// and key of the federation HTTPS listener. Both are required.
	CertFile, KeyFile string
	// TrustedCAFile is a PEM file of the CA(s) the peer trusts for its
	// outbound federation requests, instead of the system roots. Empty
	// turns certificate verification off (disable_tls_validation).
	TrustedCAFile string
}

// Dendrite is a running Dendrite peer.
type Dendrite struct {
	// ServerName is the peer's Matrix server name.
	ServerName string
	// ClientURL is the base URL of its client-server API (plain HTTP).
	ClientURL string
	// FederationURL is the base URL of its federation API (HTTPS).
	FederationURL string
	// DataDir holds its databases, signing key, config and media.
	DataDir string

	t    testing.TB
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan struct{} // closed when the process has exited
}

// DefaultPassword is the password RegisterUser gives accounts.
const DefaultPassword = "correct horse battery staple"

// startAttempts bounds the retries when a free port found by listening on
// :0 is taken by someone else before Dendrite binds it.
const startAttempts = 3

// Start starts a Dendrite peer and stops it when the test ends; its log is
// printed if the test fails. It skips the test when PALPO_DENDRITE is unset.
func Start(t testing.TB, opts Options) *Dendrite {
	t.Helper()
	bin := os.Getenv(EnvBinary)
	if bin == "" {
		t.Skipf("%s is not set: run `make test-interop`, or `make dendrite-tool` and set %s to the absolute path of bin/dendrite-test", EnvBinary, EnvBinary)
	}
	if !filepath.IsAbs(bin) {
		t.Fatalf("%s=%q must be an absolute path (go test runs in each package's directory)", EnvBinary, bin)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s: %v (build it with `make dendrite-tool`)", EnvBinary, err)
	}
	if opts.CertFile == "" || opts.KeyFile == "" {
		t.Fatal("dendrite.Start: CertFile and KeyFile are required (the federation listener is HTTPS)")
	}
	var lastErr error
	for range startAttempts {
		d, err := start(t, bin, opts)
		if err == nil {
			return d
		}
		lastErr = err
		if opts.ServerName != "" {
			break // the port is fixed by the name: another try would fail alike
		}
	}
	t.Fatalf("start Dendrite: %v", lastErr)
	return nil
}

func start(t testing.TB, bin string, opts Options) (*Dendrite, error) {
	t.Helper()
	dir := t.TempDir()
	clientPort, err := freePort()
	if err != nil {
		return nil, err
	}
	serverName := opts.ServerName
	var fedPort int
	if serverName == "" {
		if fedPort, err = freePort(); err != nil {
			return nil, err
		}
		serverName = net.JoinHostPort("127.0.0.1", strconv.Itoa(fedPort))
	} else {
		_, p, err := net.SplitHostPort(serverName)
		if err != nil {
			return nil, fmt.Errorf("server name %q has no port for the federation listener: %w", serverName, err)
		}
		if fedPort, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("server name %q: port: %w", serverName, err)
		}
	}

	keyPath := filepath.Join(dir, "matrix_key.pem")
	if err := writeSigningKey(keyPath); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "dendrite.yaml")
	if err := os.WriteFile(cfgPath, []byte(config(serverName, dir, keyPath, opts.TrustedCAFile == "")), 0o600); err != nil {
		return nil, err
	}

	clientAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort))
	fedAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(fedPort))
	d := &Dendrite{
		ServerName:    serverName,
		ClientURL:     "http://" + clientAddr,
		FederationURL: "https://" + fedAddr,
		DataDir:       dir,
		t:             t,
		logs:          &lockedBuffer{},
		done:          make(chan struct{}),
	}
	d.cmd = exec.Command(bin,
		"-config", cfgPath,
		"-http-bind-address", clientAddr,
		"-https-bind-address", fedAddr,
		"-tls-cert", opts.CertFile,
		"-tls-key", opts.KeyFile,
		// Dendrite has no YAML setting for registration without a captcha
		// or token; this flag is it.
		"-really-enable-open-registration",
	)
	d.cmd.Dir = dir
	d.cmd.Env = childEnv(dir, opts.TrustedCAFile)
	d.cmd.Stdout = d.logs
	d.cmd.Stderr = d.logs
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	go func() {
		_ = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("Dendrite %s log:\n%s", d.ServerName, d.logs.String())
		}
	})
	if err := d.waitReady(60 * time.Second); err != nil {
		d.stop()
		return nil, fmt.Errorf("%w\nDendrite log:\n%s", err, d.logs.String())
	}
	return d, nil
}

// childEnv is this process's environment with Go's root-certificate
// variables replaced. Dendrite's federation client verifies peers against
// the system roots (its TLS config sets no RootCAs), which Go reads from
// SSL_CERT_FILE and SSL_CERT_DIR when they are set: pointing them at the
// test CA alone makes the peer trust exactly that CA.
func childEnv(dir, trustedCA string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SSL_CERT_FILE=") || strings.HasPrefix(kv, "SSL_CERT_DIR=") {
			continue
		}
		env = append(env, kv)
	}
	if trustedCA != "" {
		emptyDir := filepath.Join(dir, "no-cert-dir")
		_ = os.Mkdir(emptyDir, 0o700)
		env = append(env, "SSL_CERT_FILE="+trustedCA, "SSL_CERT_DIR="+emptyDir)
	}
	return env
}

// waitReady polls the client API and the federation listener until both
// answer, or the process exits, or the timeout passes.
func (d *Dendrite) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	fedAddr := strings.TrimPrefix(d.FederationURL, "https://")
	for {
		select {
		case <-d.done:
			return fmt.Errorf("Dendrite exited while starting: %v", d.cmd.ProcessState)
		default:
		}
		if resp, err := client.Get(d.ClientURL + "/_matrix/client/versions"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				// A handshake, not just a connect, so the listener is up
				// with its certificate loaded; nothing is verified here.
				dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: &tls.Config{InsecureSkipVerify: true}}
				if c, err := dialer.Dial("tcp", fedAddr); err == nil {
					c.Close()
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("Dendrite not ready after %v", timeout)
		}
		select {
		case <-d.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop ends the process it started (by its PID): SIGTERM, then SIGKILL if
// it has not exited within 10 seconds.
func (d *Dendrite) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// Log returns what Dendrite has logged so far.
func (d *Dendrite) Log() string { return d.logs.String() }

// UserID is the Matrix ID of localpart on this peer.
func (d *Dendrite) UserID(localpart string) id.UserID {
	return id.NewUserID(localpart, d.ServerName)
}

// Client returns a mautrix client for the peer with no user logged in.
func (d *Dendrite) Client() *mautrix.Client {
	d.t.Helper()
	c, err := mautrix.NewClient(d.ClientURL, "", "")
	if err != nil {
		d.t.Fatal(err)
	}
	return c
}

// RegisterUser creates an account through Dendrite's /register (the dummy
// stage: registration is open) with DefaultPassword and returns a client
// logged in as it.
func (d *Dendrite) RegisterUser(localpart string) *mautrix.Client {
	d.t.Helper()
	c := d.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.RegisterDummy(ctx, &mautrix.ReqRegister[any]{
		Username: localpart,
		Password: DefaultPassword,
	})
	if err != nil {
		d.t.Fatalf("register %s on Dendrite: %v", localpart, err)
	}
	c.UserID, c.AccessToken = resp.UserID, resp.AccessToken
	c.DeviceID = resp.DeviceID
	return c
}

// config is the peer's dendrite.yaml. Keys Dendrite does not know are
// ignored by its loader, so every key here is one of its config structs'.
func config(serverName, dir, keyPath string, skipVerify bool) string {
	db := func(name string) string {
		return fmt.Sprintf("  database:\n    connection_string: file:%s\n", filepath.Join(dir, "dendrite_"+name+".db"))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `version: 2
global:
  server_name: %q
  private_key: %q
  key_validity_period: 168h0m0s
  disable_federation: false
  # Only used for third-party identifiers: a test peer asks no one.
  trusted_third_party_id_servers: []
  presence:
    enable_inbound: true
    enable_outbound: true
  jetstream:
    storage_path: %q
    in_memory: true
    topic_prefix: Dendrite
  metrics:
    enabled: false
  sentry:
    enabled: false
  dns_cache:
    enabled: false
  server_notices:
    enabled: false
  report_stats:
    enabled: false
app_service_api:
  config_files: []
client_api:
  registration_disabled: false
  guests_disabled: true
  enable_registration_captcha: false
  rate_limiting:
    enabled: false
federation_api:
`, serverName, keyPath, dir)
	b.WriteString(db("federationapi"))
	fmt.Fprintf(&b, `  # Dendrite's default, kept on purpose: a destination that failed is
  # retried after 2 s, 4 s, 8 s, ... and, after this many failures in a row,
  # blacklisted until it sends Dendrite something. A low value would
  # blacklist a Palpo that failed a few times within one test.
  send_max_retries: 16
  disable_tls_validation: %t
  disable_http_keepalives: false
  # No notary (the default asks matrix.org): keys come from each origin.
  key_perspectives: []
  prefer_direct_fetch: true
key_server:
`, skipVerify)
	b.WriteString(db("keyserver"))
	b.WriteString("media_api:\n")
	b.WriteString(db("mediaapi"))
	fmt.Fprintf(&b, "  base_path: %q\n  max_file_size_bytes: 10485760\n  dynamic_thumbnails: false\n", filepath.Join(dir, "media"))
	b.WriteString("room_server:\n")
	b.WriteString(db("roomserver"))
	b.WriteString("sync_api:\n")
	b.WriteString(db("syncapi"))
	fmt.Fprintf(&b, "  search:\n    enabled: false\n    index_path: %q\n", filepath.Join(dir, "searchindex"))
	b.WriteString("user_api:\n  bcrypt_cost: 4\n  account_database:\n")
	fmt.Fprintf(&b, "    connection_string: file:%s\n", filepath.Join(dir, "dendrite_userapi.db"))
	b.WriteString("relay_api:\n")
	b.WriteString(db("relayapi"))
	b.WriteString("mscs:\n  mscs: []\n")
	b.WriteString(db("mscs"))
	b.WriteString("tracing:\n  enabled: false\nlogging:\n- type: std\n  level: info\n")
	return b.String()
}

// writeSigningKey writes a new ed25519 signing key in the form Dendrite
// reads: a "MATRIX PRIVATE KEY" PEM block whose body is the 32-byte seed and
// whose Key-ID header names the key (letters and digits only).
func writeSigningKey(path string) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	seed := priv.Seed()
	keyID := strings.NewReplacer("-", "", "_", "").Replace(base64.RawURLEncoding.EncodeToString(seed))
	block := &pem.Block{
		Type:    "MATRIX PRIVATE KEY",
		Headers: map[string]string{"Key-ID": "ed25519:" + keyID[:6]},
		Bytes:   seed,
	}
	return os.WriteFile(path, pem.EncodeToMemory(block), 0o600)
}

// freePort returns a loopback TCP port that was free a moment ago. Another
// process may take it before Dendrite binds it; Start then tries again.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lockedBuffer collects the child's output from two pipes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
