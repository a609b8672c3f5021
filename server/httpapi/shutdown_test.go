package httpapi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestCloseUnusedOnShutdown: a connection that never sent a request does
// not hold up Shutdown (net/http alone waits five seconds for it), while a
// request in progress still gets its answer.
func TestCloseUnusedOnShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "done")
	})}
	newConn := make(chan struct{}, 2)
	srv.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			newConn <- struct{}{}
		}
	}
	CloseUnusedOnShutdown(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	// A request that is still running when Shutdown starts.
	answer := make(chan error, 1)
	go func() {
		res, err := http.Get("http://" + ln.Addr().String() + "/")
		if err == nil {
			var body []byte
			body, err = io.ReadAll(res.Body)
			res.Body.Close()
			if err == nil && string(body) != "done" {
				err = errors.New("answer " + string(body))
			}
		}
		answer <- err
	}()
	<-started
	<-newConn
	// A connection that never sends anything.
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	<-newConn

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	begin := time.Now()
	go func() { shut <- srv.Shutdown(ctx) }()
	// Shutdown must wait for the running request, and only for it.
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request still running", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-answer; err != nil {
		t.Fatalf("request in progress at Shutdown: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v after %v; the unused connection held it up", err, time.Since(begin))
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	// The unused connection was closed by the server.
	idle.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("unused connection after Shutdown: read gave %v, want EOF", err)
	}
}
