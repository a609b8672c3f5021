package httpapi

import (
	"net"
	"net/http"
	"sync"
)

// CloseUnusedOnShutdown makes srv.Shutdown close at once the connections
// that have not begun a request yet. net/http waits for such a connection
// until it is five seconds old, in case a first request is on its way; yet
// they are common and never carry one: a browser's speculative preconnect,
// or the spare connection an HTTP client dials when two requests race and
// then parks unused. Each made quitting Palpo take up to five seconds more.
// A request whose first bytes were still in flight is cut off, as after
// net/http's five seconds; the peer retries it against the next start.
// Call before srv serves; it chains any ConnState hook already set.
func CloseUnusedOnShutdown(srv *http.Server) {
	u := &unusedConns{conns: map[net.Conn]struct{}{}}
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		u.track(c, st)
		if prev != nil {
			prev(c, st)
		}
	}
	// net/http runs these after closing the listeners, so no connection
	// arrives behind the sweep (but for one accepted in the same instant,
	// which then just gets net/http's usual wait).
	srv.RegisterOnShutdown(u.closeAll)
}

// unusedConns holds a server's connections in http.StateNew.
type unusedConns struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (u *unusedConns) track(c net.Conn, st http.ConnState) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if st == http.StateNew {
		u.conns[c] = struct{}{}
	} else {
		delete(u.conns, c)
	}
}

func (u *unusedConns) closeAll() {
	u.mu.Lock()
	conns := u.conns
	u.conns = map[net.Conn]struct{}{}
	u.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}
