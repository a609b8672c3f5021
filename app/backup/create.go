package backup

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/identity"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// ScryptWorkFactor is the scrypt cost (log2 N) for encrypting backups:
// age's default, about a second and 256 MiB to try one passphrase. Tests
// lower it.
var ScryptWorkFactor = 18

// Source is the Palpo installation to back up.
type Source struct {
	DataDir string
	Config  *config.Config
	// DB is the database of a server running in this process, or nil: the
	// database file is then copied through a connection of this process,
	// which is as consistent (see storage.SnapshotFile) whether a server
	// runs in another process or none does.
	DB *storage.DB
	// Version is Palpo's version, recorded in the manifest.
	Version string
}

// CreateOptions says where a backup goes and how.
type CreateOptions struct {
	// Dir is the folder the backup is written to; it is created if needed.
	Dir string
	// Passphrase, when not empty, encrypts the backup.
	Passphrase string
	// Verify reads the new backup back and checks it (and marks it
	// verified); a backup that fails is deleted.
	Verify   bool
	Progress func(Progress)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Result is a backup made.
type Result struct {
	Path     string
	Size     int64
	Manifest *Manifest
	// Report is the check of the written file, when asked for.
	Report *Report
}

// DatabasePath is where a data directory's database is, as the server
// finds it.
func DatabasePath(dataDir string, cfg *config.Config) string {
	if filepath.IsAbs(cfg.Database.Path) {
		return cfg.Database.Path
	}
	return filepath.Join(dataDir, cfg.Database.Path)
}

// mediaPath is a content file's place under <data dir>/media (the layout
// of server/media's store).
func mediaPath(dataDir, sha string) string {
	return filepath.Join(dataDir, "media", sha[0:2], sha[2:4], sha)
}

var shaRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Create makes a backup of src in opts.Dir and returns it. It never leaves
// a partial file under a backup's name: the archive is written to a hidden
// temporary file, synced, and renamed once complete.
func Create(ctx context.Context, src Source, opts CreateOptions) (*Result, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	if opts.Dir == "" {
		return nil, errors.New("no folder to write the backup to")
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create backup folder: %w", err)
	}
	removeStaleTemporaries(opts.Dir, now())
	tmpDir, err := os.MkdirTemp(opts.Dir, ".palpo-backup-tmp-")
	if err != nil {
		return nil, fmt.Errorf("backup folder %s: %w", opts.Dir, err)
	}
	defer os.RemoveAll(tmpDir)

	// 1. The database snapshot: from here on, everything in the backup is
	// what this snapshot says.
	report := progressFunc(opts.Progress)
	report(Progress{Step: "snapshot"})
	created := now().UTC().Truncate(time.Second)
	dbCopy := filepath.Join(tmpDir, entryDatabase)
	if src.DB != nil {
		err = src.DB.BackupTo(ctx, dbCopy)
	} else {
		err = storage.SnapshotFile(ctx, DatabasePath(src.DataDir, src.Config), dbCopy)
	}
	if err != nil {
		return nil, fmt.Errorf("copy the database: %w", err)
	}
	info, err := storage.InspectSnapshot(ctx, dbCopy)
	if err != nil {
		return nil, err
	}
	if info.ServerName != "" && info.ServerName != src.Config.ServerName {
		return nil, fmt.Errorf("the database was created for %q but palpo.toml says server_name = %q; fix the config before backing up",
			info.ServerName, src.Config.ServerName)
	}
	m := &Manifest{
		Format: formatPlain, PalpoVersion: src.Version, ServerName: src.Config.ServerName, Created: created,
		SchemaVersion: info.SchemaVersion, StreamPosition: info.StreamPosition,
		Users: info.Users, Rooms: info.Rooms, Events: info.Events, Sealed: true,
	}

	// 2. The small files, read whole: the config and the signing key.
	cfgData, err := os.ReadFile(filepath.Join(src.DataDir, config.FileName))
	if err != nil {
		return nil, fmt.Errorf("read the config: %w", err)
	}
	keyData, err := os.ReadFile(filepath.Join(src.DataDir, identity.KeyFileName))
	if errors.Is(err, fs.ErrNotExist) {
		keyData = nil
		m.Warnings = append(m.Warnings, "the data directory has no signing key ("+identity.KeyFileName+"); a restored server will make a new one")
	} else if err != nil {
		return nil, fmt.Errorf("read the signing key: %w", err)
	}

	dbStat, err := os.Stat(dbCopy)
	if err != nil {
		return nil, err
	}
	certFiles, err := certificateFiles(src.DataDir)
	if err != nil {
		return nil, err
	}
	total := dbStat.Size() + int64(len(cfgData)) + int64(len(keyData))
	for _, md := range info.Media {
		total += md.Size
	}
	for _, cf := range certFiles {
		total += cf.size
	}
	prog := &progressCounter{report: report, step: "archive", total: total}

	// 3. The archive.
	name, partial, f, err := createArchiveFile(opts.Dir, m.ServerName, created, opts.Passphrase != "")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(partial)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	var out io.Writer = bw
	var enc io.WriteCloser
	if opts.Passphrase != "" {
		r, err := age.NewScryptRecipient(opts.Passphrase)
		if err != nil {
			return nil, fmt.Errorf("passphrase: %w", err)
		}
		r.SetWorkFactor(ScryptWorkFactor)
		if enc, err = age.Encrypt(bw, r); err != nil {
			return nil, fmt.Errorf("encrypt backup: %w", err)
		}
		out = enc
	}
	// The fastest level: media (most of the bytes) is compressed already,
	// and the database compresses well even so.
	sealer := newSealingWriter(out)
	gz, err := gzip.NewWriterLevel(sealer, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(gz)
	aw := &archiveWriter{ctx: ctx, tw: tw, modTime: created, prog: prog}

	if err := aw.addBytes(entryConfig, cfgData, m); err != nil {
		return nil, err
	}
	if keyData != nil {
		if err := aw.addBytes(entryKey, keyData, m); err != nil {
			return nil, err
		}
	}
	if err := aw.addFile(entryDatabase, dbCopy, m); err != nil {
		return nil, err
	}
	if err := os.Remove(dbCopy); err != nil {
		return nil, err
	}
	for _, md := range info.Media {
		if !shaRE.MatchString(md.SHA256) {
			m.Warnings = append(m.Warnings, fmt.Sprintf("the database names a media file %q that is not a SHA-256; it was skipped", md.SHA256))
			continue
		}
		entry := mediaPrefix + md.SHA256[0:2] + "/" + md.SHA256[2:4] + "/" + md.SHA256
		err := aw.addFile(entry, mediaPath(src.DataDir, md.SHA256), m)
		if errors.Is(err, fs.ErrNotExist) {
			m.MissingMedia = append(m.MissingMedia, md.SHA256)
			m.Warnings = append(m.Warnings, fmt.Sprintf("media file %s is missing from the data directory; it is not in the backup", md.SHA256))
			continue
		}
		if err != nil {
			return nil, err
		}
		if got := m.Files[len(m.Files)-1].SHA256; got != md.SHA256 {
			m.Warnings = append(m.Warnings, fmt.Sprintf("media file %s is damaged on disk: its content does not match its name; it was backed up as it is", md.SHA256))
		}
	}
	// The certificates automatic TLS keeps: a restored server serves them
	// at once instead of ordering new ones (CAs limit how many a domain
	// gets a week), with the same ACME account.
	for _, cf := range certFiles {
		err := aw.addFile(certificatesPrefix+cf.rel, filepath.Join(src.DataDir, certificatesDir, filepath.FromSlash(cf.rel)), m)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile (a replaced certificate)
		}
		if err != nil {
			return nil, err
		}
		m.Format = formatCertificates
	}
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := aw.addBytes(entryManifest, manifest, nil); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write backup: %w", err)
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("write backup: %w", err)
	}
	if err := sealer.seal(); err != nil {
		return nil, fmt.Errorf("write backup: %w", err)
	}
	if enc != nil {
		if err := enc.Close(); err != nil {
			return nil, fmt.Errorf("write backup: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("write backup: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("write backup: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write backup: %w", err)
	}
	final := filepath.Join(opts.Dir, name)
	if err := os.Rename(partial, final); err != nil {
		return nil, fmt.Errorf("write backup: %w", err)
	}
	ok = true
	syncDir(opts.Dir)
	res := &Result{Path: final, Size: st.Size(), Manifest: m}
	if opts.Verify {
		rep, err := Verify(ctx, final, VerifyOptions{Passphrase: opts.Passphrase, Progress: opts.Progress, TempDir: opts.Dir})
		if err != nil {
			os.Remove(final)
			return nil, fmt.Errorf("the backup was written but reading it back failed, so it was deleted (is the disk failing?): %w", err)
		}
		res.Report = rep
	}
	return res, nil
}

type certFile struct {
	rel  string // slash-separated, inside the certificates folder
	size int64
}

// certificateFiles lists the files of the data directory's certificates
// folder worth keeping: not certmagic's lock files, which only say that a
// process is ordering right now, nor anything but plain files.
func certificateFiles(dataDir string) ([]certFile, error) {
	root := filepath.Join(dataDir, certificatesDir)
	var out []certFile
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "locks" {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !validCertificatePath(rel) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, certFile{rel: rel, size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the certificates folder: %w", err)
	}
	return out, nil
}

// validCertificatePath checks a certificates/ entry's path below the
// prefix: relative, slash-separated, without "." or ".." parts, so that
// unpacking it never writes outside the certificates folder.
func validCertificatePath(rel string) bool {
	if rel == "" || strings.ContainsAny(rel, "\\\x00") || !fs.ValidPath(rel) {
		return false
	}
	return filepath.IsLocal(filepath.FromSlash(rel))
}

// removeStaleTemporaries removes what backups cut short by a crash left in
// dir: their temporary folders and partial files. Only those a day old go,
// so a backup another process is making meanwhile keeps its own.
func removeStaleTemporaries(dir string, now time.Time) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, de := range des {
		name := de.Name()
		if !strings.HasPrefix(name, ".palpo-backup-tmp-") && !(strings.HasPrefix(name, "."+namePrefix) && strings.Contains(name, ".partial-")) {
			continue
		}
		if info, err := de.Info(); err == nil && now.Sub(info.ModTime()) > 24*time.Hour {
			os.RemoveAll(filepath.Join(dir, name))
		}
	}
}

// createArchiveFile picks the backup's name (adding -1, -2… if a backup of
// the same second exists) and creates its hidden temporary file.
func createArchiveFile(dir, serverName string, created time.Time, encrypted bool) (name, partial string, f *os.File, err error) {
	for n := 0; ; n++ {
		name = FileName(serverName, created, encrypted, n)
		if _, err := os.Stat(filepath.Join(dir, name)); errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	f, err = os.CreateTemp(dir, "."+name+".partial-")
	if err != nil {
		return "", "", nil, fmt.Errorf("create backup file in %s: %w", dir, err)
	}
	return name, f.Name(), f, nil
}

// archiveWriter adds entries to the tar stream, recording each in the
// manifest with the SHA-256 of the bytes actually written.
type archiveWriter struct {
	ctx     context.Context
	tw      *tar.Writer
	modTime time.Time
	prog    *progressCounter
}

func (a *archiveWriter) header(name string, size int64) error {
	err := a.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o600, ModTime: a.modTime, Format: tar.FormatPAX,
	})
	if err != nil {
		return fmt.Errorf("write backup: %w", err)
	}
	return nil
}

func (a *archiveWriter) addBytes(name string, data []byte, m *Manifest) error {
	if err := a.header(name, int64(len(data))); err != nil {
		return err
	}
	if _, err := a.tw.Write(data); err != nil {
		return fmt.Errorf("write backup: %w", err)
	}
	a.prog.add(int64(len(data)))
	if m != nil {
		sum := sha256.Sum256(data)
		m.Files = append(m.Files, File{Path: name, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
	}
	return nil
}

// addFile streams a file into the archive. A missing file is
// fs.ErrNotExist, for the caller to decide.
func (a *archiveWriter) addFile(name, path string, m *Manifest) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := a.header(name, st.Size()); err != nil {
		return err
	}
	h := sha256.New()
	src := &ctxReader{ctx: a.ctx, r: f}
	n, err := io.CopyBuffer(io.MultiWriter(a.tw, h, a.prog), io.LimitReader(src, st.Size()), make([]byte, 256<<10))
	if err != nil {
		if ctxErr := a.ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return fmt.Errorf("back up %s: %w", path, err)
	}
	if n != st.Size() {
		return fmt.Errorf("back up %s: the file shrank while it was being read", path)
	}
	m.Files = append(m.Files, File{Path: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
	return nil
}

// ctxReader stops a long copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// progressCounter reports bytes as they pass, at most every 4 MiB.
type progressCounter struct {
	report      func(Progress)
	step        string
	done, total int64
	last        int64
}

func (p *progressCounter) Write(b []byte) (int, error) {
	p.add(int64(len(b)))
	return len(b), nil
}

func (p *progressCounter) add(n int64) {
	p.done += n
	if p.done-p.last >= 4<<20 || (p.total > 0 && p.done >= p.total) {
		p.last = p.done
		p.report(Progress{Step: p.step, Done: p.done, Total: p.total})
	}
}

func progressFunc(f func(Progress)) func(Progress) {
	if f == nil {
		return func(Progress) {}
	}
	return f
}

// syncDir makes a rename in dir durable; failure only weakens that, so it
// is not reported (some file systems cannot sync a directory).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
