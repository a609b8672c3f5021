package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	mfed "maunium.net/go/mautrix/federation"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/federation/selfcheck"
	"github.com/palpo-im/palpo-desktop/server/identity"
)

const federationUsage = `Usage:
  palpo federation check [--json] [--public-address-url URL]

check   tells whether other Matrix servers can reach this one, the way
        they look it up: DNS (A/AAAA and SRV records) for server_name,
        /.well-known/matrix/server delegation, the route they will take,
        whether it reaches this computer, the TLS certificate there and
        whether this server's own signing key answers through it. Each
        result comes with the fix. It exits with 1 when a check fails.
        It asks DNS and this server's own public name only; to compare
        with this network's public address, name a service that answers
        with it as plain text (--public-address-url), which then learns
        that you ran a check. --json prints the results as JSON.

Every command also takes --data-dir DIR. Palpo need not be running, but
the federation listener must be for the connection checks to pass.
`

// federationCommand runs `palpo federation …`.
func federationCommand(dataDirFlag string, args []string, env Env) int {
	dataDir, sub, args, code, done := subcommand("federation", federationUsage, dataDirFlag, args, env)
	if done {
		return code
	}
	if sub != "check" {
		fmt.Fprintf(env.Stderr, "palpo federation: unknown command %q\n\n%s", sub, federationUsage)
		return 2
	}
	fset := flag.NewFlagSet("palpo federation check", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	fset.StringVar(&dataDir, "data-dir", dataDir, "data directory")
	asJSON := fset.Bool("json", false, "print JSON")
	publicURL := fset.String("public-address-url", "", "service answering with the public address")
	pos, err := parseInterspersed(fset, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(env.Stdout, federationUsage)
		return 0
	}
	if err == nil {
		err = exactArgs(pos)
	}
	if err == nil && *publicURL != "" && !strings.HasPrefix(*publicURL, "https://") && !strings.HasPrefix(*publicURL, "http://") {
		err = usageError{"--public-address-url must be an http:// or https:// URL"}
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "palpo federation check: %v\n\n%s", err, federationUsage)
		return 2
	}
	c, err := federationCheckConfig(dataDir, env)
	if err != nil {
		fmt.Fprintf(env.Stderr, "palpo federation check: %v\n", err)
		return 1
	}
	if *publicURL != "" {
		c.PublicAddress = selfcheck.PublicAddressFrom(*publicURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results := selfcheck.Run(ctx, c)
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(struct {
			ServerName string             `json:"server_name"`
			Failed     bool               `json:"failed"`
			Results    []selfcheck.Result `json:"results"`
		}{c.ServerName, selfcheck.Failed(results), results})
	} else {
		printCheck(env.Stdout, c.ServerName, results)
	}
	if selfcheck.Failed(results) {
		return 1
	}
	return 0
}

// FederationCheck runs the federation self-check (the Status tab's Check
// button): what other servers find when they look this server up, each
// result with its fix. It works with the server stopped too, from the data
// directory; the connection checks then fail, since nothing listens.
func (a *App) FederationCheck(ctx context.Context) ([]selfcheck.Result, error) {
	if srv := a.Server(); srv != nil {
		return srv.FederationCheck(ctx)
	}
	c, err := checkConfigForDir(a.dataDir)
	if err != nil {
		return nil, err
	}
	return selfcheck.Run(ctx, c), nil
}

// federationCheckConfig reads what the check needs from the data
// directory, changing nothing in it: the config and the signing key.
func federationCheckConfig(dataDirFlag string, env Env) (selfcheck.Config, error) {
	dir, err := resolveDir(dataDirFlag, env)
	if err != nil {
		return selfcheck.Config{}, err
	}
	return checkConfigForDir(dir)
}

func checkConfigForDir(dir string) (selfcheck.Config, error) {
	cfg, ok, err := loadDataDirConfig(dir)
	if err != nil {
		return selfcheck.Config{}, err
	}
	if !ok {
		return selfcheck.Config{}, fmt.Errorf("there is no Palpo data in %s (no %s): start Palpo once first", dir, config.FileName)
	}
	keyPath := filepath.Join(dir, identity.KeyFileName)
	data, err := os.ReadFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return selfcheck.Config{}, fmt.Errorf("there is no signing key in %s yet: start Palpo once first", dir)
	} else if err != nil {
		return selfcheck.Config{}, fmt.Errorf("read signing key: %w", err)
	}
	key, err := mfed.ParseSynapseKey(strings.TrimSpace(string(data)))
	if err != nil {
		return selfcheck.Config{}, fmt.Errorf("signing key %s is damaged: %w", keyPath, err)
	}
	abs := *cfg
	abs.Federation.TrustedCAFiles = make([]string, len(cfg.Federation.TrustedCAFiles))
	for i, f := range cfg.Federation.TrustedCAFiles {
		if !filepath.IsAbs(f) {
			f = filepath.Join(dir, f)
		}
		abs.Federation.TrustedCAFiles[i] = f
	}
	return selfcheck.FromConfig(&abs, key)
}

// printCheck prints one line per result, the fix under it.
func printCheck(w io.Writer, serverName string, results []selfcheck.Result) {
	fmt.Fprintf(w, "Federation check for %s:\n", serverName)
	for _, r := range results {
		fmt.Fprintf(w, "%-4s  %-11s  %s\n", strings.ToUpper(string(r.Status)), r.Check, r.Message)
		if r.Fix != "" {
			fmt.Fprintf(w, "      %-11s  fix: %s\n", "", r.Fix)
		}
	}
	switch {
	case selfcheck.Failed(results):
		fmt.Fprintln(w, "Other servers cannot reach this one until the failures above are fixed.")
	default:
		fmt.Fprintln(w, "Other servers can reach this one.")
	}
}
