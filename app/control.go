package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gofrs/flock"
)

// One data directory, one server: the process that runs the server holds an
// exclusive lock on <data dir>/palpo.lock. Two processes must never write
// room events to one database, because the per-room lock that keeps each
// room's event graph linear lives in the server's memory. The admin
// commands take the same lock to find out whether a server is running: if
// they get it, nobody else is writing and they work on the database
// themselves; if not, they ask the running server through its admin API,
// with the address and secret it publishes in <data dir>/control.json.
const (
	lockFileName    = "palpo.lock"
	controlFileName = "control.json"
)

// AlreadyRunningError is Start's answer when another process (a server,
// the desktop app, or a palpo command at work) holds the data directory.
type AlreadyRunningError struct{ DataDir string }

func (e *AlreadyRunningError) Error() string {
	return fmt.Sprintf("Palpo is already running with this data directory (%s); stop it first", e.DataDir)
}

// tryLockDataDir takes the data directory's lock without waiting; ok is
// false when another process (or another App in this one) holds it. The
// operating system releases the lock when its holder dies, so a crash
// never leaves the directory locked.
func tryLockDataDir(dir string) (lock *flock.Flock, ok bool, err error) {
	lock = flock.New(filepath.Join(dir, lockFileName))
	ok, err = lock.TryLock()
	if err != nil {
		return nil, false, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	return lock, ok, nil
}

// lockDataDir takes the lock for a server, or explains who has it.
func lockDataDir(dir string) (*flock.Flock, error) {
	lock, ok, err := tryLockDataDir(dir)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &AlreadyRunningError{DataDir: dir}
	}
	return lock, nil
}

// controlFile is control.json: where the running server listens and the
// secret its admin API accepts as a server admin ("local control"). Only
// the data directory's owner can read it.
type controlFile struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

// writeControlFile publishes c atomically: readers see the old file or the
// new one, never half of one.
func writeControlFile(dir string, c controlFile) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	// CreateTemp makes the file with mode 0600, so the secret is never
	// readable by others, not even for a moment.
	f, err := os.CreateTemp(dir, ".control-*.tmp")
	if err != nil {
		return fmt.Errorf("write control file: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, controlFileName))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write control file: %w", err)
	}
	return nil
}

// removeControlFile removes control.json; a missing one is fine.
func removeControlFile(dir string) error {
	err := os.Remove(filepath.Join(dir, controlFileName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove control file: %w", err)
	}
	return nil
}

// readControlFile reads control.json; a missing file is fs.ErrNotExist.
func readControlFile(dir string) (*controlFile, error) {
	path := filepath.Join(dir, controlFileName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c controlFile
	if err := json.Unmarshal(data, &c); err != nil || c.URL == "" || c.Token == "" {
		return nil, fmt.Errorf("control file %s is damaged; restart Palpo to write a new one", path)
	}
	return &c, nil
}

// controlURL is the URL at which a process on this computer reaches the
// server: a bound address, not public_baseurl (which may name a proxy) nor
// the "localhost" shown to people (which may resolve to an address the
// server does not listen on). A loopback listener is preferred; a wildcard
// one is reached on 127.0.0.1 (Go's wildcard listeners, [::] included,
// accept IPv4 too). The listeners are plain HTTP.
func controlURL(addrs []net.Addr) string {
	first := ""
	for _, addr := range addrs {
		tcp, ok := addr.(*net.TCPAddr)
		if !ok {
			continue
		}
		ip := tcp.IP
		if ip.IsUnspecified() {
			ip = net.IPv4(127, 0, 0, 1)
		}
		u := "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(tcp.Port))
		if ip.IsLoopback() {
			return u
		}
		if first == "" {
			first = u
		}
	}
	return first
}
