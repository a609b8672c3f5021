// Package backup makes, checks and restores Palpo backups, and keeps a
// folder of them on a schedule. It has no GUI; the desktop app and the
// `palpo backup` commands both use it.
//
// A backup is one file, palpo-backup-<server>-<UTC time>.tar.gz, or
// .tar.gz.age when encrypted with a passphrase (age, scrypt recipient: the
// whole compressed stream is encrypted). Inside is a tar archive:
//
//	palpo.toml      the config
//	signing.key     the server's signing key
//	palpo.db        the SQLite database, a consistent snapshot (VACUUM INTO)
//	media/ab/cd/…   every media file the snapshot refers to, by SHA-256
//	certificates/…  automatic TLS's storage (format 2): the ACME account
//	                key, certificates and their keys
//	manifest.json   last: what the backup holds, with each file's SHA-256
//
// and the compressed stream ends with a seal, the SHA-256 of all of its
// bytes before it (see seal.go), so that a change to any byte of the file
// is found, not only one that changes what it decompresses to.
//
// The manifest comes last because it records the checksums of what was
// written before it, so a backup is written in one pass; a backup cut short
// (a full disk, a USB stick pulled) has no manifest and is refused.
//
// Consistency: the database is copied by VACUUM INTO, which reads it in one
// read transaction, so the copy holds every transaction committed before
// the snapshot began (every message the server had acknowledged) and none
// after, while the server goes on writing. The media files are chosen from
// the snapshot's own media table, not from the folder, so the archive holds
// exactly the files its database refers to, whatever is uploaded or deleted
// meanwhile (media files never change once written: they are named by
// their content).
package backup

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// FormatVersion is the newest archive layout this Palpo writes; it reads
// this and older versions. A backup is written in the oldest format that
// holds what it carries: format 1 without certificates, so older Palpos
// still restore those, and format 2 (certificates/ entries added) with
// them, which older Palpos refuse with "update Palpo" rather than as
// damaged.
const FormatVersion = 2

// Backup formats: formatPlain holds the database, media, signing key and
// config; formatCertificates adds certificates/ entries (older Palpos
// refuse it rather than restore half of it).
const (
	formatPlain        = 1
	formatCertificates = 2
)

// Names inside the archive.
const (
	entryConfig   = "palpo.toml"
	entryKey      = "signing.key"
	entryDatabase = "palpo.db"
	entryManifest = "manifest.json"
	mediaPrefix   = "media/"
	// certificatesDir is where automatic TLS keeps its storage in the data
	// directory (server.CertificatesDirName; a test keeps them equal), and
	// its entries' prefix in the archive.
	certificatesDir    = "certificates"
	certificatesPrefix = certificatesDir + "/"
)

// Manifest is manifest.json: what a backup holds.
type Manifest struct {
	Format        int       `json:"format"`
	PalpoVersion  string    `json:"palpo_version"`
	ServerName    string    `json:"server_name"`
	Created       time.Time `json:"created"`
	SchemaVersion int       `json:"schema_version"`
	// StreamPosition is the newest event in the database snapshot: every
	// event the server had acknowledged before the snapshot was taken is
	// in the backup, and every event in it is at this position or before.
	StreamPosition int64 `json:"stream_position"`
	Users          int   `json:"users"`
	Rooms          int   `json:"rooms"`
	Events         int64 `json:"events"`
	// Files lists every other entry of the archive, in archive order.
	Files []File `json:"files"`
	// MissingMedia are files the database refers to that were not on disk
	// when the backup was made (so they are not in it).
	MissingMedia []string `json:"missing_media,omitempty"`
	// Warnings are problems found while backing up that did not stop it.
	Warnings []string `json:"warnings,omitempty"`
	// Sealed says the compressed stream ends with a seal, which must then
	// match. Backups made before seals have none and are checked without
	// one. A field rather than a new format version: older Palpos read a
	// sealed backup correctly (the seal decompresses to nothing), so they
	// need not refuse it.
	Sealed bool `json:"sealed,omitempty"`
}

// File is one archive entry with its checksum.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// MediaFiles counts the media files in the backup.
func (m *Manifest) MediaFiles() int {
	n := 0
	for _, f := range m.Files {
		if strings.HasPrefix(f.Path, mediaPrefix) {
			n++
		}
	}
	return n
}

// Bytes is the size of everything in the backup before compression.
func (m *Manifest) Bytes() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// Progress reports long work: Step says what is being done ("snapshot",
// "archive", "verify", "extract", "swap"), Done of Total bytes (Total 0:
// unknown).
type Progress struct {
	Step        string
	Done, Total int64
}

// Errors a person can act on. Each comes wrapped in a message that says
// what was found.
var (
	// ErrEncrypted: the backup is encrypted and no passphrase was given.
	ErrEncrypted = errors.New("this backup is encrypted: its passphrase is needed")
	// ErrWrongPassphrase: the passphrase does not open the backup.
	ErrWrongPassphrase = errors.New("the passphrase is wrong for this backup")
	// ErrDamaged: the backup was changed, cut short or corrupted.
	ErrDamaged = errors.New("the backup is damaged")
	// ErrNotBackup: the file is not a Palpo backup at all.
	ErrNotBackup = errors.New("not a Palpo backup")
)

// damaged wraps ErrDamaged with what was found.
func damaged(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrDamaged, fmt.Sprintf(format, args...))
}

// Backup file names: palpo-backup-<server>-<20060102T150405Z>[-N].tar.gz[.age].
const (
	namePrefix   = "palpo-backup-"
	nameTime     = "20060102T150405Z"
	extPlain     = ".tar.gz"
	extEncrypted = ".tar.gz.age"
	markSuffix   = ".verified.json"
)

var nameRE = regexp.MustCompile(`^palpo-backup-(.+)-(\d{8}T\d{6}Z)(?:-(\d+))?\.tar\.gz(\.age)?$`)

// fileNameServer is the server name as it appears in file names: a name
// with a port or an IPv6 literal has characters some file systems refuse.
func fileNameServer(serverName string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, serverName)
}

// FileName is a backup's file name; n > 0 tells apart backups made within
// one second.
func FileName(serverName string, created time.Time, encrypted bool, n int) string {
	name := namePrefix + fileNameServer(serverName) + "-" + created.UTC().Format(nameTime)
	if n > 0 {
		name += fmt.Sprintf("-%d", n)
	}
	if encrypted {
		return name + extEncrypted
	}
	return name + extPlain
}

// parseName reads a backup file name; ok is false for other files.
func parseName(name string) (server string, created time.Time, seq int, encrypted bool, ok bool) {
	m := nameRE.FindStringSubmatch(name)
	if m == nil {
		return "", time.Time{}, 0, false, false
	}
	t, err := time.Parse(nameTime, m[2])
	if err != nil {
		return "", time.Time{}, 0, false, false
	}
	if m[3] != "" {
		fmt.Sscanf(m[3], "%d", &seq)
	}
	return m[1], t, seq, m[4] != "", true
}
