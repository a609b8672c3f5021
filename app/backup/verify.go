package backup

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"filippo.io/age"
	"maunium.net/go/mautrix/federation"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// VerifyOptions says how to open a backup.
type VerifyOptions struct {
	// Passphrase opens an encrypted backup.
	Passphrase string
	Progress   func(Progress)
	// TempDir is where the database is unpacked to be checked (the
	// backup's own folder is a good choice: the system's temporary folder
	// may be small); empty, or one that cannot be written to, means the
	// system's temporary folder.
	TempDir string
}

// Report is what a check of a backup found: it is whole and this Palpo
// can restore it.
type Report struct {
	Path      string
	Size      int64
	Encrypted bool
	Manifest  *Manifest
	// SHA256 is the checksum of the backup file itself.
	SHA256 string
	// Sealed: the backup's seal matched, so every byte of the file is as
	// it was written. A backup made before seals has none: its content is
	// checked as fully, but a change that decompresses to the same content
	// (which loses nothing) cannot be told.
	Sealed bool
}

// Verify reads a whole backup (decrypting it if needed) and checks it:
// every entry against the manifest's size and SHA-256, nothing missing or
// extra, the database by SQLite's integrity check, and that the database,
// config, signing key and media agree with each other and that this
// Palpo can restore them. A backup that passes is marked verified for
// List; one that fails loses its mark.
func Verify(ctx context.Context, path string, opts VerifyOptions) (*Report, error) {
	tmp, err := os.MkdirTemp(opts.TempDir, ".palpo-verify-")
	if err != nil && opts.TempDir != "" {
		// A folder on a read-only medium: the system's then.
		tmp, err = os.MkdirTemp("", ".palpo-verify-")
	}
	if err != nil {
		return nil, fmt.Errorf("temporary folder to check the backup in: %w", err)
	}
	defer os.RemoveAll(tmp)
	u, err := unpack(ctx, path, opts.Passphrase, tmp, false, opts.Progress)
	if err == nil {
		err = u.check(ctx)
	}
	if err != nil {
		if errors.Is(err, ErrDamaged) {
			removeMark(path)
		}
		return nil, err
	}
	rep := &Report{Path: path, Size: u.size, Encrypted: u.encrypted, Manifest: u.manifest, SHA256: u.archiveSHA, Sealed: u.manifest.Sealed}
	writeMark(path, rep)
	return rep, nil
}

// unpacked is a backup read to its end, with its small files and database
// (and media, when kept) in dir.
type unpacked struct {
	dir        string
	manifest   *Manifest
	encrypted  bool
	size       int64
	archiveSHA string
	entries    map[string]File // as read: size and SHA-256 of what is in the archive
	media      map[string]bool // SHA-256s of the media files present
	streamSum  []byte          // SHA-256 of the gzip member, as read
	tail       []byte          // what follows the gzip member: its seal, if any
}

const ageMagic = "age-encryption.org/v1"

var mediaEntryRE = regexp.MustCompile(`^media/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})$`)

// maxManifestBytes bounds the manifest read into memory (about 150 bytes
// per media file: room for a few hundred thousand).
const maxManifestBytes = 128 << 20

// unpack reads the backup at path to its end, writing its database, config
// and key (and media files and certificates when keepMedia) under dest, and checks every
// entry against the manifest. Nothing outside dest is written.
func unpack(ctx context.Context, path, passphrase, dest string, keepMedia bool, progress func(Progress)) (*unpacked, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open backup: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open backup: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a file", ErrNotBackup, path)
	}
	u := &unpacked{dir: dest, size: st.Size(), entries: map[string]File{}, media: map[string]bool{}}
	step := "verify"
	if keepMedia {
		step = "extract"
	}
	prog := &progressCounter{report: progressFunc(progress), step: step, total: st.Size()}
	fileHash := sha256.New()
	raw := bufio.NewReaderSize(io.TeeReader(&ctxReader{ctx: ctx, r: f}, io.MultiWriter(fileHash, prog)), 256<<10)

	head, _ := raw.Peek(len(ageMagic))
	plain := raw
	if bytes.Equal(head, []byte(ageMagic)) {
		u.encrypted = true
		if passphrase == "" {
			return nil, ErrEncrypted
		}
		id, err := age.NewScryptIdentity(passphrase)
		if err != nil {
			return nil, fmt.Errorf("passphrase: %w", err)
		}
		dec, err := age.Decrypt(raw, id)
		var noMatch *age.NoIdentityMatchError
		switch {
		case errors.As(err, &noMatch):
			return nil, ErrWrongPassphrase
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			return nil, damaged("its encryption header cannot be read (%v)", err)
		}
		plain = bufio.NewReaderSize(dec, 256<<10)
	} else if len(head) < 2 || head[0] != 0x1f || head[1] != 0x8b {
		return nil, fmt.Errorf("%w: %s is neither a .tar.gz archive nor an encrypted (age) file", ErrNotBackup, filepath.Base(path))
	}
	// readErr explains a failure to read the stream: whatever the layer
	// (decryption, decompression, tar), the file is not what was written.
	readErr := func(err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return damaged("it cannot be read to its end (%v): it was cut short or corrupted after it was made", err)
	}
	sealed := newSealReader(plain)
	gz, err := gzip.NewReader(sealed)
	if err != nil {
		return nil, readErr(err)
	}
	// One member: what follows it is the seal, checked byte for byte,
	// not more archive.
	gz.Multistream(false)
	tr := tar.NewReader(gz)
	var manifestData []byte // parsed once the stream is read: see below
	sawManifest := false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, readErr(err)
		}
		if sawManifest {
			return nil, damaged("an entry %q follows the manifest", hdr.Name)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, damaged("it holds %q, which is not a plain file", hdr.Name)
		}
		name := hdr.Name
		if _, dup := u.entries[name]; dup {
			return nil, damaged("it holds %q twice", name)
		}
		if name == entryManifest {
			data, err := io.ReadAll(io.LimitReader(tr, maxManifestBytes+1))
			if err != nil {
				return nil, readErr(err)
			}
			if len(data) > maxManifestBytes {
				return nil, damaged("its manifest is too large")
			}
			manifestData, sawManifest = data, true
			continue
		}
		var w io.Writer = io.Discard
		var out *os.File
		switch mm := mediaEntryRE.FindStringSubmatch(name); {
		case name == entryConfig || name == entryKey || name == entryDatabase:
			out, err = os.OpenFile(filepath.Join(dest, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		case mm != nil && mm[1] == mm[3][0:2] && mm[2] == mm[3][2:4]:
			u.media[mm[3]] = true
			if keepMedia {
				p := mediaPath(dest, mm[3])
				if err = os.MkdirAll(filepath.Dir(p), 0o700); err == nil {
					out, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				}
			}
		case strings.HasPrefix(name, certificatesPrefix) && validCertificatePath(strings.TrimPrefix(name, certificatesPrefix)):
			if keepMedia {
				p := filepath.Join(dest, certificatesDir, filepath.FromSlash(strings.TrimPrefix(name, certificatesPrefix)))
				if err = os.MkdirAll(filepath.Dir(p), 0o700); err == nil {
					out, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				}
			}
		default:
			// Never a path of our choosing: "../x" or "/etc/x" end here.
			return nil, damaged("it holds %q, which no Palpo backup has", name)
		}
		if err != nil {
			return nil, fmt.Errorf("unpack %s: %w", name, err)
		}
		if out != nil {
			w = errWriter{out}
		}
		h := sha256.New()
		n, err := io.CopyBuffer(io.MultiWriter(w, h), tr, make([]byte, 256<<10))
		if out != nil {
			if cerr := out.Close(); err == nil && cerr != nil {
				return nil, fmt.Errorf("unpack %s: %w", name, cerr)
			}
		}
		if err != nil {
			var werr *writeError
			if errors.As(err, &werr) {
				return nil, fmt.Errorf("unpack %s: %w", name, err)
			}
			return nil, readErr(err)
		}
		u.entries[name] = File{Path: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
	}
	// Read the layers to their very ends: the gzip trailer's CRC and the
	// last encrypted chunk's tag are checked only there. Until then a
	// changed byte shows only as content that does not parse, which is
	// why the manifest is read after: a damaged file is then reported as
	// such, whichever byte changed.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return nil, readErr(err)
	}
	u.streamSum = sealed.sum()
	if u.tail, err = io.ReadAll(io.LimitReader(plain, int64(sealLen)+1)); err != nil {
		return nil, readErr(err)
	}
	if _, err := io.Copy(io.Discard, plain); err != nil {
		return nil, readErr(err)
	}
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return nil, readErr(err)
	}
	u.archiveSHA = hex.EncodeToString(fileHash.Sum(nil))
	if sawManifest {
		var m Manifest
		if err := json.Unmarshal(manifestData, &m); err != nil {
			return nil, damaged("its manifest is not valid JSON (%v)", err)
		}
		u.manifest = &m
	}
	if err := u.checkEntries(); err != nil {
		return nil, err
	}
	return u, nil
}

// writeError is a failure to write where a backup is unpacked (a full
// disk), as opposed to a damaged backup.
type writeError struct{ err error }

func (e *writeError) Error() string { return "write: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// errWriter marks its writer's errors as writeErrors.
type errWriter struct{ w io.Writer }

func (e errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		err = &writeError{err}
	}
	return n, err
}

// checkEntries compares what was read with the manifest.
func (u *unpacked) checkEntries() error {
	m := u.manifest
	if m == nil {
		return damaged("it has no manifest: it was cut short while being written or copied")
	}
	if m.Format < 1 {
		return damaged("its manifest has no format version")
	}
	if m.Format > FormatVersion {
		return fmt.Errorf("this backup was made by a newer Palpo (%s, backup format %d); this Palpo reads format %d and older: update Palpo to restore it",
			m.PalpoVersion, m.Format, FormatVersion)
	}
	listed := map[string]bool{}
	for _, f := range m.Files {
		if listed[f.Path] {
			return damaged("its manifest lists %s twice", f.Path)
		}
		listed[f.Path] = true
		got, ok := u.entries[f.Path]
		switch {
		case !ok:
			return damaged("%s is listed in its manifest but missing from it", f.Path)
		case got.Size != f.Size:
			return damaged("%s has %d bytes where its manifest says %d: it was changed after the backup was made", f.Path, got.Size, f.Size)
		case got.SHA256 != f.SHA256:
			return damaged("%s does not match its checksum: it was changed after the backup was made", f.Path)
		}
	}
	for name := range u.entries {
		if !listed[name] {
			return damaged("it holds %s, which its manifest does not list", name)
		}
	}
	for _, name := range []string{entryDatabase, entryConfig} {
		if !listed[name] {
			return damaged("it has no %s", name)
		}
	}
	// Last: a changed file is better told by its name than by the seal.
	return u.checkSeal()
}

// checkSeal checks what follows the compressed stream: the seal its
// manifest promises, matching every byte before it, or, in a backup made
// before seals, nothing.
func (u *unpacked) checkSeal() error {
	switch {
	case !u.manifest.Sealed && len(u.tail) > 0:
		return damaged("it has data after its end: it was changed or corrupted after it was made")
	case !u.manifest.Sealed:
		return nil
	case len(u.tail) == 0:
		return damaged("its seal is missing: it was cut short or corrupted after it was made")
	case !bytes.Equal(u.tail, sealBytes(u.streamSum)):
		return damaged("its bytes do not match the checksum sealed into it: it was changed or corrupted after it was made")
	}
	return nil
}

// check looks inside: the database is sound, of a schema this Palpo can
// run, and agrees with the manifest, the config and the media files.
func (u *unpacked) check(ctx context.Context) error {
	m := u.manifest
	dbPath := filepath.Join(u.dir, entryDatabase)
	if err := storage.CheckSnapshotIntegrity(ctx, dbPath); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return damaged("its database fails SQLite's integrity check (%v)", err)
	}
	info, err := storage.InspectSnapshot(ctx, dbPath)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return damaged("its database cannot be read (%v)", err)
	}
	if info.SchemaVersion != m.SchemaVersion {
		return damaged("its database has schema version %d where its manifest says %d", info.SchemaVersion, m.SchemaVersion)
	}
	if err := storage.CheckRestorableSchema(info.SchemaVersion); err != nil {
		return err
	}
	if info.ServerName != "" && info.ServerName != m.ServerName {
		return damaged("its database belongs to %q but its manifest says %q", info.ServerName, m.ServerName)
	}
	if info.StreamPosition != m.StreamPosition {
		return damaged("its database ends at stream position %d where its manifest says %d", info.StreamPosition, m.StreamPosition)
	}
	cfgData, err := os.ReadFile(filepath.Join(u.dir, entryConfig))
	if err != nil {
		return err
	}
	cfg, err := config.Parse(string(cfgData))
	if err != nil {
		return fmt.Errorf("the backup's palpo.toml is not valid for this Palpo (%v); was it made by a newer Palpo?", err)
	}
	if cfg.ServerName != m.ServerName {
		return damaged("its palpo.toml says server_name = %q but its manifest says %q", cfg.ServerName, m.ServerName)
	}
	if _, ok := u.entries[entryKey]; ok {
		keyData, err := os.ReadFile(filepath.Join(u.dir, entryKey))
		if err != nil {
			return err
		}
		if _, err := federation.ParseSynapseKey(strings.TrimSpace(string(keyData))); err != nil {
			return damaged("its signing key cannot be read (%v)", err)
		}
	}
	missing := map[string]bool{}
	for _, sha := range m.MissingMedia {
		missing[sha] = true
	}
	referenced := map[string]bool{}
	for _, md := range info.Media {
		referenced[md.SHA256] = true
		if !u.media[md.SHA256] && !missing[md.SHA256] {
			return damaged("its database refers to media file %s, which is not in it", md.SHA256)
		}
	}
	for sha := range u.media {
		if !referenced[sha] {
			return damaged("it holds media file %s, which its database does not refer to", sha)
		}
	}
	return nil
}

// mark is <backup>.verified.json beside a backup that passed Verify.
type mark struct {
	VerifiedAt time.Time `json:"verified_at"`
	Size       int64     `json:"size"`
	SHA256     string    `json:"sha256"`
	Manifest   *Manifest `json:"manifest"`
}

// writeMark records a passed check; a folder that cannot be written to (a
// read-only medium) just gets no mark.
func writeMark(path string, rep *Report) {
	m := *rep.Manifest
	m.Files = nil // the summary only: the list can be long
	data, err := json.MarshalIndent(mark{VerifiedAt: time.Now().UTC(), Size: rep.Size, SHA256: rep.SHA256, Manifest: &m}, "", "  ")
	if err != nil {
		return
	}
	tmp := path + markSuffix + ".tmp"
	if os.WriteFile(tmp, data, 0o600) != nil {
		os.Remove(tmp)
		return
	}
	if os.Rename(tmp, path+markSuffix) != nil {
		os.Remove(tmp)
	}
}

func removeMark(path string) { os.Remove(path + markSuffix) }

// readMark returns a backup's verified mark if it still describes the file
// (same size); a file replaced since has no mark.
func readMark(path string, size int64) *mark {
	data, err := os.ReadFile(path + markSuffix)
	if err != nil {
		return nil
	}
	var m mark
	if json.Unmarshal(data, &m) != nil || m.Size != size || m.Manifest == nil {
		return nil
	}
	return &m
}
