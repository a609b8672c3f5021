package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Entry is one backup in a folder.
type Entry struct {
	Path string
	Name string
	// ServerName is the server name as written in the file name (with any
	// character a file name cannot hold replaced by '_').
	ServerName string
	Created    time.Time
	Size       int64
	Encrypted  bool
	// Verified is when Verify last passed this file, zero if it never did
	// (or the file changed since).
	Verified time.Time
	// Manifest is the summary recorded when it was verified (its Files
	// left out), nil if it never was.
	Manifest *Manifest
	seq      int
}

// List returns the backups in dir, newest first. Other files, and backups
// still being written (hidden temporary files), are left out; a folder
// that does not exist holds none.
func List(dir string) ([]Entry, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	var out []Entry
	for _, de := range des {
		server, created, seq, encrypted, ok := parseName(de.Name())
		if !ok || !de.Type().IsRegular() {
			continue
		}
		info, err := de.Info()
		if err != nil {
			continue // removed meanwhile
		}
		e := Entry{Path: filepath.Join(dir, de.Name()), Name: de.Name(), ServerName: server, Created: created,
			Size: info.Size(), Encrypted: encrypted, seq: seq}
		if m := readMark(e.Path, e.Size); m != nil {
			e.Verified, e.Manifest = m.VerifiedAt, m.Manifest
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		if out[i].seq != out[j].seq {
			return out[i].seq > out[j].seq
		}
		return out[i].Name > out[j].Name
	})
	return out, nil
}

// Rotate deletes all but the newest keep backups of serverName in dir
// (with their verified marks) and returns the paths deleted. Other
// servers' backups and other files are never touched.
func Rotate(dir, serverName string, keep int) ([]string, error) {
	if keep < 1 {
		return nil, fmt.Errorf("keep %d: at least one backup must be kept", keep)
	}
	all, err := List(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	kept := 0
	var errs []error
	for _, e := range all {
		if e.ServerName != fileNameServer(serverName) {
			continue
		}
		if kept < keep {
			kept++
			continue
		}
		if err := os.Remove(e.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("delete old backup: %w", err))
			continue
		}
		removeMark(e.Path)
		removed = append(removed, e.Path)
	}
	return removed, errors.Join(errs...)
}

// Latest is the newest backup of serverName in dir, or nil.
func Latest(dir, serverName string) (*Entry, error) {
	all, err := List(dir)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].ServerName == fileNameServer(serverName) {
			return &all[i], nil
		}
	}
	return nil, nil
}
