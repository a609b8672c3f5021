package app

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gofrs/flock"
)

// One desktop app per data directory. The first window holds
// <data dir>/desktop.lock for as long as it runs and listens on a loopback
// port of its own for one request, "show your window", authenticated by a
// secret it writes with the port to <data dir>/desktop.json (readable by
// the owner only). A second launch finds the lock taken, sends the request
// and exits.
//
// Why not the server's control endpoint: the desktop app may have its
// server stopped (the Stop button) or failed to start (its port taken),
// and a second launch must still find the window then. The server's lock
// (palpo.lock) is also the wrong one: the window releases it whenever the
// server stops, so that `palpo user` can work on the database.
const (
	instanceLockName = "desktop.lock"
	instanceFileName = "desktop.json"
	showPath         = "/_palpo/desktop/v1/show"
)

// ErrInstanceRunning is ClaimInstance's answer when another desktop app
// has the data directory.
var ErrInstanceRunning = errors.New("the Palpo desktop app is already running with this data directory")

// Instance is this process's claim on being the data directory's desktop
// app.
type Instance struct {
	dir  string
	lock *flock.Flock
	ln   net.Listener
	srv  *http.Server

	mu     sync.Mutex
	onShow func()
}

type instanceFile struct {
	URL    string `json:"url"`
	Secret string `json:"secret"`
}

// ClaimInstance makes this process the data directory's desktop app, or
// answers ErrInstanceRunning.
func ClaimInstance(dataDir string) (*Instance, error) {
	lock := flock.New(filepath.Join(dataDir, instanceLockName))
	ok, err := lock.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", lock.Path(), err)
	}
	if !ok {
		return nil, ErrInstanceRunning
	}
	fail := func(err error) (*Instance, error) {
		_ = lock.Unlock()
		return nil, err
	}
	// A file left by a crashed window names a dead port; it goes first so
	// a second launch never calls it.
	if err := os.Remove(filepath.Join(dataDir, instanceFileName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail(fmt.Errorf("remove stale %s: %w", instanceFileName, err))
	}
	secretBytes := make([]byte, 32)
	if _, err := rand.Read(secretBytes); err != nil {
		return fail(err)
	}
	secret := hex.EncodeToString(secretBytes)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(fmt.Errorf("listen for a second launch: %w", err))
	}
	in := &Instance{dir: dataDir, lock: lock, ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+showPath, func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("Authorization")
		if subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+secret)) != 1 {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		in.mu.Lock()
		fn := in.onShow
		in.mu.Unlock()
		if fn != nil {
			fn()
		}
		w.WriteHeader(http.StatusNoContent)
	})
	in.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		MaxHeaderBytes: 8 << 10}
	go func() { _ = in.srv.Serve(ln) }()
	data, _ := json.Marshal(instanceFile{URL: "http://" + ln.Addr().String(), Secret: secret})
	if err := writeFileAtomic(filepath.Join(dataDir, instanceFileName), data); err != nil {
		_ = in.srv.Close()
		return fail(err)
	}
	return in, nil
}

// OnShow sets what a second launch does: show the window. fn is called on
// an HTTP goroutine.
func (in *Instance) OnShow(fn func()) {
	in.mu.Lock()
	in.onShow = fn
	in.mu.Unlock()
}

// Close stops answering and gives up the claim.
func (in *Instance) Close() error {
	err := in.srv.Close()
	if rerr := os.Remove(filepath.Join(in.dir, instanceFileName)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return errors.Join(err, in.lock.Unlock())
}

// ShowRunningInstance asks the desktop app that holds dataDir to show its
// window. That app may have just taken the lock and not yet written its
// file (or not yet removed a crashed predecessor's), so failures are
// retried for a few seconds.
func ShowRunningInstance(ctx context.Context, dataDir string) error {
	path := filepath.Join(dataDir, instanceFileName)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // a loopback call with a secret goes nowhere else
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := showOnce(ctx, client, path)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func showOnce(ctx context.Context, client *http.Client, path string) error {
	var f instanceFile
	data, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(data, &f)
	}
	if err != nil || f.URL == "" {
		return fmt.Errorf("another Palpo window is open but has not said where it listens (%s)", path)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.URL+showPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+f.Secret)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("the running Palpo window does not answer: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("the running Palpo window answered %s", resp.Status)
	}
	return nil
}

// AlreadyRunningMessage is what a second launch prints before exiting.
const AlreadyRunningMessage = "Palpo is already running; showing its window"

// ClaimOrShow is the desktop app's start: it claims the data directory, or
// asks the app that has it to show its window, says so on out and returns
// a nil Instance (the caller then exits 0).
func ClaimOrShow(ctx context.Context, dataDir string, out io.Writer) (*Instance, error) {
	in, err := ClaimInstance(dataDir)
	if !errors.Is(err, ErrInstanceRunning) {
		return in, err
	}
	if err := ShowRunningInstance(ctx, dataDir); err != nil {
		return nil, err
	}
	fmt.Fprintln(out, AlreadyRunningMessage)
	return nil, nil
}
