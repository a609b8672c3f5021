package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/identity"
)

// Restoring replaces the parts of a data directory a backup holds (the
// config, signing key, database, media and certificates) and nothing else: the lock
// file, other folders (backups kept in the data directory, for one) stay.
// It happens in three steps:
//
//  1. The whole backup is unpacked into a hidden folder inside the data
//     directory (.restore-<time>) and checked exactly as Verify does. Any
//     problem ends the restore here, with the data directory untouched.
//  2. A journal (.restore-journal.json) lists the moves planned.
//  3. Each current item is moved into before-restore-<time>/ inside the
//     data directory, then each unpacked item into its place. Every move is
//     a rename within one file system, so it is atomic, and the previous
//     data is at every moment whole, in its place or in before-restore.
//     If a move fails, the moves made are undone; if the process dies
//     midway, RecoverInterruptedRestore undoes them from the journal the
//     next time Palpo starts or restores. The journal's removal is the
//     moment the restore counts as done.
//
// The previous data is kept inside the data directory rather than beside
// it: that is always the same file system (a rename, not a copy), it needs
// no write access to the data directory's parent, and a person looking for
// it finds it where their data is. Delete it once the restored server
// works.

const (
	journalName    = ".restore-journal.json"
	stagingPrefix  = ".restore-"
	previousPrefix = "before-restore-"
)

// rename is os.Rename; tests make it fail to check the undo.
var rename = os.Rename

// RestoreOptions says how to open the backup.
type RestoreOptions struct {
	Passphrase string
	Progress   func(Progress)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// RestoreResult is a restore done.
type RestoreResult struct {
	Manifest *Manifest
	// Previous is the folder holding the data the backup replaced, or ""
	// when the data directory held none.
	Previous string
}

type move struct {
	From string `json:"from"` // relative to the data directory
	To   string `json:"to"`
}

type journal struct {
	Staging  string `json:"staging"`
	Previous string `json:"previous"`
	Moves    []move `json:"moves"`
}

// Restore replaces dataDir's data with the backup at path, after checking
// the whole backup. The caller must hold the data directory's lock: no
// server may run on it. A database of an older schema is upgraded by the
// usual migrations when the server next starts; a newer one is refused.
func Restore(ctx context.Context, path, dataDir string, opts RestoreOptions) (*RestoreResult, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if _, err := RecoverInterruptedRestore(dataDir); err != nil {
		return nil, err
	}
	stamp := now().UTC().Format(nameTime)
	staging, err := os.MkdirTemp(dataDir, stagingPrefix+stamp+"-")
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	// Once the journal is written, the unpacked backup belongs to it:
	// undoing the moves tells a move made from one not made by whether its
	// source is still there, so it must stay until the journal is done.
	journaled := false
	defer func() {
		if !journaled {
			os.RemoveAll(staging)
		}
	}()

	// 1. Unpack and check everything before touching anything.
	u, err := unpack(ctx, path, opts.Passphrase, staging, true, opts.Progress)
	if err == nil {
		err = u.check(ctx)
	}
	if err != nil {
		return nil, err
	}
	newCfg, err := config.Load(filepath.Join(staging, entryConfig))
	if err != nil {
		return nil, fmt.Errorf("the backup's palpo.toml: %w", err)
	}
	newDB, err := relativeDatabase(dataDir, newCfg)
	if err != nil {
		return nil, err
	}
	if newDB != entryDatabase {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(staging, newDB)), 0o700); err != nil {
			return nil, err
		}
		if err := os.Rename(filepath.Join(staging, entryDatabase), filepath.Join(staging, newDB)); err != nil {
			return nil, err
		}
	}
	progressFunc(opts.Progress)(Progress{Step: "swap"})

	// 2. The plan: the current items out, the backup's in.
	oldDB := entryDatabase
	if cur, err := config.Load(filepath.Join(dataDir, config.FileName)); err == nil {
		if rel, err := relativeDatabase(dataDir, cur); err == nil {
			oldDB = rel
		}
	}
	items := []string{config.FileName, identity.KeyFileName, "media"}
	// Certificates are replaced only by a backup that has some: those of
	// an older backup (or one made before the domain was set) are not tied
	// to its database, and throwing the current ones away would only make
	// the server order new ones, which CAs limit.
	if exists(filepath.Join(staging, certificatesDir)) {
		items = append(items, certificatesDir)
	}
	for _, db := range uniq(oldDB, newDB) {
		// A database's journal files go with it: the backup's database
		// beside the old one's WAL would be read as one, and corrupt.
		items = append(items, db, db+"-wal", db+"-shm", db+"-journal")
	}
	prevRel := previousPrefix + stamp
	for n := 1; exists(filepath.Join(dataDir, prevRel)); n++ {
		prevRel = fmt.Sprintf("%s%s-%d", previousPrefix, stamp, n)
	}
	stagingRel := filepath.Base(staging)
	j := journal{Staging: stagingRel, Previous: prevRel}
	for _, it := range items {
		if exists(filepath.Join(dataDir, it)) {
			j.Moves = append(j.Moves, move{From: it, To: filepath.Join(prevRel, it)})
		}
	}
	newItems := []string{config.FileName, newDB, "media", certificatesDir}
	if _, ok := u.entries[entryKey]; ok {
		newItems = append(newItems, identity.KeyFileName)
	}
	for _, it := range newItems {
		if exists(filepath.Join(staging, it)) {
			j.Moves = append(j.Moves, move{From: filepath.Join(stagingRel, it), To: it})
		}
	}
	if err := os.Mkdir(filepath.Join(dataDir, prevRel), 0o700); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := writeJournal(dataDir, &j); err != nil {
		os.Remove(filepath.Join(dataDir, prevRel))
		return nil, err
	}
	journaled = true

	// 3. The moves, undone on failure.
	for i, mv := range j.Moves {
		err := os.MkdirAll(filepath.Dir(filepath.Join(dataDir, mv.To)), 0o700)
		if err == nil {
			err = rename(filepath.Join(dataDir, mv.From), filepath.Join(dataDir, mv.To))
		}
		if err != nil {
			if uerr := undo(dataDir, j.Moves[:i]); uerr != nil {
				return nil, fmt.Errorf("restore failed while moving files (%v), and putting the previous data back failed too (%v): "+
					"nothing is lost, but the data directory is mixed. The previous data is in %s; start Palpo again to finish putting it back",
					err, uerr, filepath.Join(dataDir, prevRel))
			}
			finishJournal(dataDir, &j)
			return nil, fmt.Errorf("restore failed while moving files, and the previous data is back in place: %w", err)
		}
	}
	syncDir(dataDir)
	if err := os.Remove(filepath.Join(dataDir, journalName)); err != nil {
		return nil, fmt.Errorf("restore: finish: %w", err)
	}
	syncDir(dataDir)
	os.RemoveAll(staging)
	res := &RestoreResult{Manifest: u.manifest}
	if removeEmptyDirs(filepath.Join(dataDir, prevRel)) != nil || exists(filepath.Join(dataDir, prevRel)) {
		res.Previous = filepath.Join(dataDir, prevRel)
	}
	return res, nil
}

// relativeDatabase is the database's path inside the data directory as a
// config names it. A database elsewhere cannot be swapped with the rest
// atomically, so it is refused.
func relativeDatabase(dataDir string, cfg *config.Config) (string, error) {
	p := cfg.Database.Path
	if filepath.IsAbs(p) {
		rel, err := filepath.Rel(dataDir, p)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return "", fmt.Errorf("the backup's palpo.toml keeps the database outside the data directory (database.path = %q); "+
				"restore works only with a database inside it", p)
		}
		p = rel
	}
	p = filepath.Clean(p)
	if p == "." || strings.HasPrefix(p, ".."+string(filepath.Separator)) || p == ".." {
		return "", fmt.Errorf("database.path %q is not a file inside the data directory", cfg.Database.Path)
	}
	return p, nil
}

func uniq(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func writeJournal(dataDir string, j *journal) error {
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(dataDir, journalName)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("restore: write journal: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
		return fmt.Errorf("restore: write journal: %w", err)
	}
	syncDir(dataDir)
	return nil
}

// undo reverses moves that were made, newest first. A move whose target is
// gone or whose source is back was not made (or is undone already), so
// undo may run on a journal whose moves were made only in part.
//
// After an interruption, something may have recreated an item that was
// moved out before the moves were undone: opening the data directory
// writes a default palpo.toml when there is none, and a server or an
// admin command makes a new database and signing key. The previous data
// wins; what was made meanwhile is set aside beside it, never deleted.
func undo(dataDir string, moves []move) error {
	var errs []error
	for i := len(moves) - 1; i >= 0; i-- {
		from, to := filepath.Join(dataDir, moves[i].From), filepath.Join(dataDir, moves[i].To)
		if !exists(to) {
			continue
		}
		if exists(from) {
			if !strings.HasPrefix(moves[i].To, previousPrefix) {
				continue // the backup's item, never moved in
			}
			aside := to + ".made-after-interruption"
			for n := 1; exists(aside); n++ {
				aside = fmt.Sprintf("%s.made-after-interruption-%d", to, n)
			}
			if err := os.Rename(from, aside); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if err := os.MkdirAll(filepath.Dir(from), 0o700); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Rename(to, from); err != nil {
			errs = append(errs, err)
		}
	}
	syncDir(dataDir)
	return errors.Join(errs...)
}

// finishJournal tidies up after an undone restore: the journal, the
// unpacked backup and the emptied before-restore folder go.
func finishJournal(dataDir string, j *journal) {
	os.Remove(filepath.Join(dataDir, journalName))
	if j.Staging != "" && strings.HasPrefix(j.Staging, stagingPrefix) && !strings.ContainsAny(j.Staging, `/\`) {
		os.RemoveAll(filepath.Join(dataDir, j.Staging))
	}
	if j.Previous != "" && strings.HasPrefix(j.Previous, previousPrefix) && !strings.ContainsAny(j.Previous, `/\`) {
		_ = removeEmptyDirs(filepath.Join(dataDir, j.Previous))
	}
	syncDir(dataDir)
}

// RecoverInterruptedRestore puts back the previous data of a restore that
// was interrupted (the process died or the computer lost power) while it
// moved files, and removes what an interrupted restore unpacked. It
// reports whether a restore was undone. The caller holds the data
// directory's lock; app.Start calls it before the server opens anything.
func RecoverInterruptedRestore(dataDir string) (bool, error) {
	undone := false
	data, err := os.ReadFile(filepath.Join(dataDir, journalName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return false, fmt.Errorf("read the journal of an interrupted restore: %w", err)
	default:
		var j journal
		if err := json.Unmarshal(data, &j); err != nil {
			return false, fmt.Errorf("the journal of an interrupted restore (%s) is damaged (%v): "+
				"check the data directory by hand (the previous data is in a before-restore folder), then delete the journal",
				filepath.Join(dataDir, journalName), err)
		}
		for _, mv := range j.Moves {
			if !localPath(mv.From) || !localPath(mv.To) {
				return false, fmt.Errorf("the journal of an interrupted restore (%s) names a path outside the data directory; check it by hand",
					filepath.Join(dataDir, journalName))
			}
		}
		if err := undo(dataDir, j.Moves); err != nil {
			return false, fmt.Errorf("putting back the data of an interrupted restore: %w (the previous data is in %s)",
				err, filepath.Join(dataDir, j.Previous))
		}
		finishJournal(dataDir, &j)
		undone = true
	}
	// Folders a restore was unpacking into when it was interrupted.
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		return undone, nil
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), stagingPrefix) {
			os.RemoveAll(filepath.Join(dataDir, e.Name()))
		}
	}
	return undone, nil
}

func localPath(p string) bool {
	return p != "" && filepath.IsLocal(p)
}

// removeEmptyDirs removes dir and its subfolders if they hold no files.
func removeEmptyDirs(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			_ = removeEmptyDirs(filepath.Join(dir, e.Name()))
		}
	}
	return os.Remove(dir)
}
