package media

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"maunium.net/go/mautrix"
)

// store keeps content files under dir, named by their SHA-256 in two
// levels of directories (dir/ab/cd/abcd…) so no directory grows huge, and
// streams new content through temporary files in dir/tmp (on the same file
// system, so a finished file is renamed into place atomically).
type store struct {
	dir string
	// mu orders the two operations that race on one name: placing a file
	// and recording it, against forgetting a file and removing it. Without
	// it, a deletion could remove a file an upload of the same bytes has
	// just recorded again.
	mu sync.Mutex
}

// sniffLen is how much of a file content sniffing looks at
// (http.DetectContentType's window).
const sniffLen = 512

// copyBufferSize is the buffer of one upload: big enough for few system
// calls, small enough that many parallel uploads cost little memory.
const copyBufferSize = 128 << 10

func (st *store) path(sha string) string {
	return filepath.Join(st.dir, sha[0:2], sha[2:4], sha)
}

func (st *store) tempDir() string { return filepath.Join(st.dir, "tmp") }

// tempFile is content streamed to disk and not yet placed.
type tempFile struct {
	path   string
	sha256 string
	size   int64
	head   []byte // the first sniffLen bytes
}

// discard removes the file (once placed, its path no longer exists).
func (t *tempFile) discard() { _ = os.Remove(t.path) }

// headWriter keeps the first sniffLen bytes written.
type headWriter struct{ buf []byte }

func (h *headWriter) Write(p []byte) (int, error) {
	if n := sniffLen - len(h.buf); n > 0 {
		h.buf = append(h.buf, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

// readErrReader remembers a read error, to tell the client's failures
// (a body cut short, too large) from the server's (a full disk).
type readErrReader struct {
	r   io.Reader
	err error
}

func (r *readErrReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// tooLarge is the M_TOO_LARGE answer for content over limit bytes.
func tooLarge(limit int64) error {
	return mautrix.MTooLarge.WithMessage("Cannot upload files larger than %d bytes", limit)
}

// writeTemp streams r to a new temporary file while hashing it, never
// holding more than one buffer of it in memory. Content over limit bytes is
// M_TOO_LARGE, a body that ends early is an interrupted upload; either way
// nothing is left on disk. The file is synced before writeTemp returns.
func (st *store) writeTemp(r io.Reader, limit int64) (_ *tempFile, err error) {
	if err := os.MkdirAll(st.tempDir(), 0o700); err != nil {
		return nil, fmt.Errorf("media temp dir: %w", err)
	}
	f, err := os.CreateTemp(st.tempDir(), "upload-*")
	if err != nil {
		return nil, fmt.Errorf("media temp file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	head := &headWriter{buf: make([]byte, 0, sniffLen)}
	src := &readErrReader{r: io.LimitReader(r, limit+1)}
	n, err := io.CopyBuffer(io.MultiWriter(f, h, head), src, make([]byte, copyBufferSize))
	if src.err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(src.err, &tooBig) {
			// The router's limit for the route; it answers M_TOO_LARGE.
			return nil, tooLarge(tooBig.Limit)
		}
		return nil, errInterrupted
	}
	if err != nil {
		return nil, fmt.Errorf("write media temp file: %w", err)
	}
	if n > limit {
		return nil, tooLarge(limit)
	}
	// Durable before anyone is told the upload succeeded.
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("sync media temp file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("close media temp file: %w", err)
	}
	return &tempFile{path: f.Name(), sha256: hex.EncodeToString(h.Sum(nil)), size: n, head: head.buf}, nil
}

// place moves a finished temporary file to its content name. If a file of
// that content is already there, the temporary one is dropped and created
// is false. The caller holds st.mu.
func (st *store) place(t *tempFile) (created bool, err error) {
	final := st.path(t.sha256)
	if _, err := os.Stat(final); err == nil {
		t.discard()
		return false, nil
	}
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.discard()
		return false, fmt.Errorf("media dir: %w", err)
	}
	if err := os.Rename(t.path, final); err != nil {
		t.discard()
		return false, fmt.Errorf("place media file: %w", err)
	}
	// The new name must survive a power cut as the data does.
	if err := syncDir(dir); err != nil {
		return true, err
	}
	return true, nil
}

// remove deletes a content file; one already gone is fine. The caller
// holds st.mu.
func (st *store) remove(sha string) error {
	if err := os.Remove(st.path(sha)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove media file %s: %w", sha, err)
	}
	return nil
}

// open opens a content file for reading.
func (st *store) open(sha string) (*os.File, error) {
	f, err := os.Open(st.path(sha))
	if err != nil {
		return nil, fmt.Errorf("open media file %s: %w", sha, err)
	}
	return f, nil
}

// cleanTemp removes leftover temporary files.
func (st *store) cleanTemp() error {
	entries, err := os.ReadDir(st.tempDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("media temp dir: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(st.tempDir(), e.Name())); err != nil {
			return fmt.Errorf("remove media temp file: %w", err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync media dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync media dir: %w", err)
	}
	return nil
}
