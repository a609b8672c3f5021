package app

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/palpo-im/palpo-desktop/app/backup"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

const backupUsage = `Usage:
  palpo backup create [--out DIR] [--passphrase-file FILE]
  palpo backup list [--dir DIR]
  palpo backup verify FILE [--passphrase-file FILE]
  palpo backup restore FILE [--passphrase-file FILE]

create   writes one file, palpo-backup-<server>-<time>.tar.gz, holding the
         database, media files, signing key and config, and checks it.
         Palpo may keep running meanwhile. --out is the folder (default:
         [backup] dir in palpo.toml, or the "backups" folder in the data
         directory). With a passphrase (--passphrase-file, or [backup]
         passphrase_file) the backup is encrypted (.tar.gz.age): keep the
         passphrase safe, without it the backup cannot be restored.
list     shows the backups in the folder, newest first.
verify   reads a backup through and checks every file's checksum and the
         database's integrity.
restore  checks the whole backup, then replaces the data directory's
         database, media, signing key and config with it. Palpo must be
         stopped. The previous data is kept in a before-restore-<time>
         folder inside the data directory.

A passphrase file holds the passphrase on its first line; "-" reads it
from standard input (typed without echo at a terminal). Every command also
takes --data-dir DIR.
`

// backupCommand runs `palpo backup …`.
func backupCommand(dataDirFlag string, args []string, env Env) int {
	dataDir, sub, args, code, done := subcommand("backup", backupUsage, dataDirFlag, args, env)
	if done {
		return code
	}
	name := "palpo backup " + sub
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&dataDir, "data-dir", dataDir, "data directory")
	var run func(ctx context.Context, pos []string) error
	switch sub {
	case "create":
		out := fs.String("out", "", "folder")
		pass := fs.String("passphrase-file", "", "passphrase file")
		run = func(ctx context.Context, pos []string) error {
			if err := exactArgs(pos); err != nil {
				return err
			}
			return backupCreate(ctx, env, dataDir, *out, *pass)
		}
	case "list":
		dir := fs.String("dir", "", "folder")
		run = func(ctx context.Context, pos []string) error {
			if err := exactArgs(pos); err != nil {
				return err
			}
			return backupList(env, dataDir, *dir)
		}
	case "verify", "restore":
		pass := fs.String("passphrase-file", "", "passphrase file")
		run = func(ctx context.Context, pos []string) error {
			if err := exactArgs(pos, "FILE"); err != nil {
				return err
			}
			if sub == "verify" {
				return backupVerify(ctx, env, dataDir, pos[0], *pass)
			}
			return backupRestore(ctx, env, dataDir, pos[0], *pass)
		}
	default:
		fmt.Fprintf(env.Stderr, "palpo backup: unknown command %q\n\n%s", sub, backupUsage)
		return 2
	}
	pos, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(env.Stdout, backupUsage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "%s: %v\n\n%s", name, err, backupUsage)
		return 2
	}
	err = run(context.Background(), pos)
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(env.Stderr, "%s: %v\n\n%s", name, err, backupUsage)
		return 2
	case err != nil:
		fmt.Fprintf(env.Stderr, "%s: %s\n", name, backupMessage(sub, err))
		return 1
	}
	return 0
}

// backupMessage is an error as a person reads it, with the flag that
// helps where there is one.
func backupMessage(sub string, err error) string {
	msg := err.Error()
	if errors.Is(err, backup.ErrEncrypted) {
		msg += "; give it with --passphrase-file FILE (or --passphrase-file - to type it)"
	}
	if sub == "restore" && (errors.Is(err, backup.ErrEncrypted) || errors.Is(err, backup.ErrWrongPassphrase) ||
		errors.Is(err, backup.ErrDamaged) || errors.Is(err, backup.ErrNotBackup) || errors.Is(err, storage.ErrNewerSchema)) {
		msg += "; nothing was changed"
	}
	return msg
}

// resolveDir is the data directory the commands work on, without creating
// anything: the flag, else PALPO_DATA_DIR, else the default.
func resolveDir(dataDirFlag string, env Env) (string, error) {
	if dataDirFlag == "" && env.Getenv(EnvDataDir) != "" {
		dataDirFlag = env.Getenv(EnvDataDir)
	}
	return ResolveDataDir(dataDirFlag)
}

// loadDataDirConfig loads a data directory's palpo.toml; ok is false when
// there is none (the directory is new or empty).
func loadDataDirConfig(dir string) (cfg *config.Config, ok bool, err error) {
	path := filepath.Join(dir, config.FileName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return config.Default(), false, nil
	}
	cfg, err = config.Load(path)
	if err != nil {
		return nil, false, err
	}
	return cfg, true, nil
}

func backupCreate(ctx context.Context, env Env, dataDirFlag, out, passFile string) error {
	dir, err := resolveDir(dataDirFlag, env)
	if err != nil {
		return err
	}
	if _, ok, err := loadDataDirConfig(dir); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("there is no Palpo data in %s (no %s): nothing to back up", dir, config.FileName)
	}
	a, err := Open(dir, env.Stderr)
	if err != nil {
		return err
	}
	var pass string
	if passFile != "" {
		pass, err = readBackupPassphrase(passFile, env, true)
	} else {
		pass, err = ConfiguredPassphrase(dir, a.Config())
	}
	if err != nil {
		return err
	}
	res, err := a.CreateBackup(ctx, backup.CreateOptions{Dir: out, Passphrase: pass, Verify: true})
	if err != nil {
		return err
	}
	m := res.Manifest
	fmt.Fprintf(env.Stdout, "Backed up %s: %d users, %d rooms, %d events (up to stream position %d), %d media files.\n",
		m.ServerName, m.Users, m.Rooms, m.Events, m.StreamPosition, m.MediaFiles())
	fmt.Fprintf(env.Stdout, "Checked: every file matches its checksum and the database passes its integrity check.\n")
	if pass != "" {
		fmt.Fprintf(env.Stdout, "Encrypted with the passphrase: without it this backup cannot be restored.\n")
	}
	for _, w := range m.Warnings {
		fmt.Fprintf(env.Stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(env.Stdout, "%s (%s)\n", res.Path, humanBytes(res.Size))
	return nil
}

func backupList(env Env, dataDirFlag, folder string) error {
	if folder == "" {
		dir, err := resolveDir(dataDirFlag, env)
		if err != nil {
			return err
		}
		cfg, _, err := loadDataDirConfig(dir)
		if err != nil {
			return err
		}
		folder = BackupDirFor(dir, cfg)
	}
	entries, err := backup.List(folder)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		fmt.Fprintf(env.Stdout, "No backups in %s.\n", folder)
		return nil
	}
	fmt.Fprintf(env.Stdout, "Backups in %s, newest first:\n", folder)
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CREATED (UTC)\tSIZE\tENCRYPTED\tVERIFIED\tFILE")
	for _, e := range entries {
		enc, ver := "no", "never"
		if e.Encrypted {
			enc = "yes"
		}
		if !e.Verified.IsZero() {
			ver = e.Verified.UTC().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Created.UTC().Format("2006-01-02 15:04:05"), humanBytes(e.Size), enc, ver, e.Name)
	}
	return tw.Flush()
}

// backupPassphraseFor finds the passphrase to open a backup: the flag's
// file, else [backup] passphrase_file if the data directory has one, else
// none (and Verify answers ErrEncrypted if one is needed).
func backupPassphraseFor(env Env, dataDirFlag, passFile string) (string, error) {
	if passFile != "" {
		return readBackupPassphrase(passFile, env, false)
	}
	dir, err := resolveDir(dataDirFlag, env)
	if err != nil {
		return "", nil
	}
	cfg, ok, err := loadDataDirConfig(dir)
	if err != nil || !ok {
		return "", nil
	}
	return ConfiguredPassphrase(dir, cfg)
}

// withPassphrase runs fn with the passphrase found, and once more with one
// typed at the terminal when the backup turns out to be encrypted and no
// passphrase was given.
func withPassphrase(env Env, dataDirFlag, passFile string, fn func(pass string) error) error {
	pass, err := backupPassphraseFor(env, dataDirFlag, passFile)
	if err != nil {
		return err
	}
	err = fn(pass)
	if errors.Is(err, backup.ErrEncrypted) {
		if fd, ok := terminal(env.Stdin); ok {
			fmt.Fprintln(env.Stderr, "This backup is encrypted.")
			if pass, err = promptPassphrase(fd, env.Stderr, false); err != nil {
				return err
			}
			return fn(pass)
		}
	}
	return err
}

func backupVerify(ctx context.Context, env Env, dataDirFlag, file, passFile string) error {
	return withPassphrase(env, dataDirFlag, passFile, func(pass string) error {
		rep, err := backup.Verify(ctx, file, backup.VerifyOptions{Passphrase: pass, TempDir: filepath.Dir(file)})
		if err != nil {
			return err
		}
		m := rep.Manifest
		fmt.Fprintf(env.Stdout, "OK: %s\n", file)
		fmt.Fprintf(env.Stdout, "Backup of %s made %s by Palpo %s (database schema %d).\n",
			m.ServerName, m.Created.UTC().Format("2006-01-02 15:04:05 UTC"), m.PalpoVersion, m.SchemaVersion)
		fmt.Fprintf(env.Stdout, "%d users, %d rooms, %d events (up to stream position %d), %d media files, %s in all.\n",
			m.Users, m.Rooms, m.Events, m.StreamPosition, m.MediaFiles(), humanBytes(m.Bytes()))
		if rep.Sealed {
			fmt.Fprintf(env.Stdout, "The file matches the checksum sealed into it when it was made.\n")
		}
		fmt.Fprintf(env.Stdout, "Every file matches its checksum and the database passes its integrity check.\n")
		for _, w := range m.Warnings {
			fmt.Fprintf(env.Stdout, "Noted when it was made: %s\n", w)
		}
		return nil
	})
}

func backupRestore(ctx context.Context, env Env, dataDirFlag, file, passFile string) error {
	dir, err := resolveDir(dataDirFlag, env)
	if err != nil {
		return err
	}
	if _, err := os.Stat(file); err != nil {
		return fmt.Errorf("backup %s: %w", file, err)
	}
	return withPassphrase(env, dataDirFlag, passFile, func(pass string) error {
		res, err := restoreLocked(ctx, file, dir, backup.RestoreOptions{Passphrase: pass})
		if err != nil {
			return err
		}
		m := res.Manifest
		fmt.Fprintf(env.Stdout, "Restored the backup of %s made %s into %s.\n",
			m.ServerName, m.Created.UTC().Format("2006-01-02 15:04:05 UTC"), dir)
		if res.Previous != "" {
			fmt.Fprintf(env.Stdout, "The data it replaced is in %s; delete that folder once the restored server works.\n", res.Previous)
		}
		if m.SchemaVersion < storage.LatestSchemaVersion() {
			fmt.Fprintf(env.Stdout, "It was made by an older Palpo: its database is upgraded when Palpo starts.\n")
		}
		fmt.Fprintf(env.Stdout, "Start Palpo to use it.\n")
		return nil
	})
}

// readBackupPassphrase reads a passphrase from a file's first line, or
// with "-" from standard input: typed without echo (twice to confirm a new
// one) at a terminal, else its first line.
func readBackupPassphrase(file string, env Env, confirm bool) (string, error) {
	if file != "-" {
		return readPassphraseFile(file)
	}
	if fd, ok := terminal(env.Stdin); ok {
		return promptPassphrase(fd, env.Stderr, confirm)
	}
	if env.Stdin == nil {
		return "", errors.New("no passphrase on standard input")
	}
	line, err := bufio.NewReader(env.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read passphrase: %w", err)
	}
	pass := strings.TrimRight(line, "\r\n")
	if pass == "" {
		return "", errors.New("the passphrase on standard input is empty")
	}
	return pass, nil
}

func terminal(in io.Reader) (int, bool) {
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0, false
	}
	return int(f.Fd()), true
}

func promptPassphrase(fd int, out io.Writer, confirm bool) (string, error) {
	read := func(prompt string) (string, error) {
		fmt.Fprint(out, prompt)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(out)
		if err != nil {
			return "", fmt.Errorf("read passphrase: %w", err)
		}
		return string(b), nil
	}
	pass, err := read("Passphrase: ")
	if err != nil {
		return "", err
	}
	if pass == "" {
		return "", errors.New("the passphrase is empty")
	}
	if confirm {
		again, err := read("Repeat passphrase: ")
		if err != nil {
			return "", err
		}
		if again != pass {
			return "", errors.New("the passphrases do not match")
		}
	}
	return pass, nil
}

// humanBytes is a size as people read it (1.5 MB).
func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
