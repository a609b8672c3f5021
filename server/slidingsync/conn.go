package slidingsync

import (
	"cmp"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/syncer"
)

// Connections: a client's sync loop (per user, device and conn_id) and
// what the server has sent on it, so each response holds only what changed.
//
// Every response gets a new version of the connection's state, and its pos
// names that version. A request continues from the version its pos names,
// so a client that retries (or cancels and resends) with the same pos gets
// a correct answer; versions older than the one a request names are
// dropped, since the client has moved past them. The state lives in
// memory: after a restart every pos is unknown, the client is told
// M_UNKNOWN_POS and starts a new connection, which resends what it needs.

// ErrUnknownPos answers a pos this server does not (or no longer) knows.
var ErrUnknownPos = mautrix.RespError{ErrCode: "M_UNKNOWN_POS", Err: "Unknown or expired position: start a new sync connection without pos", StatusCode: http.StatusBadRequest}

const (
	// maxConnsPerDevice bounds a device's connections (the MSC asks servers
	// to limit what a client can make them keep); the least recently used
	// goes first.
	maxConnsPerDevice = 10
	// connIdleExpiry forgets a connection nobody used for this long.
	connIdleExpiry = 7 * 24 * time.Hour
)

type connKey struct {
	user   id.UserID
	device id.DeviceID
	connID string
}

type connections struct {
	mu        sync.Mutex
	conns     map[connKey]*conn
	lastSweep time.Time
}

// versionCounter numbers connection states across all connections, so a
// pos from a replaced connection is never found in its successor.
var versionCounter atomic.Int64

type conn struct {
	mu       sync.Mutex // one request at a time per connection
	versions map[int64]*connState
	used     atomic.Int64 // unix nanoseconds of the last request
}

// connState is what a connection has been sent, as of one response.
type connState struct {
	token syncer.Token            // the stream positions the response was built up to
	rooms map[id.RoomID]*sentRoom // rooms sent, and how
	lists map[string]int          // each list's count as last sent
}

// sentRoom is what the client last heard of a room. It is immutable: a
// response that sends the room again makes a new one.
type sentRoom struct {
	membership  string
	memberEvent id.EventID
	stripped    bool  // sent as an invite or knock: stripped state only
	pos         int64 // events stream position the room was sent up to
	config      *roomConfig
	members     map[string]bool // member state keys sent (lazy loading)
	name        *string
	avatar      *string
	heroes      string // the heroes' signature
	isDM        bool
	joined      int
	invited     int
	counts      mautrix.UnreadNotificationCounts
}

func newConnState() *connState {
	return &connState{rooms: map[id.RoomID]*sentRoom{}, lists: map[string]int{}}
}

// clone copies the state for the next response; sentRoom values are shared.
func (s *connState) clone() *connState {
	return &connState{token: s.token, rooms: maps.Clone(s.rooms), lists: maps.Clone(s.lists)}
}

// formatPos is the pos of a connection state: its version and the stream
// token it was built up to (readable by /messages as a from token).
func formatPos(version int64, t syncer.Token) string {
	return strconv.FormatInt(version, 10) + "/" + t.String()
}

func parsePos(pos string) (int64, bool) {
	v, _, ok := strings.Cut(pos, "/")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil && n > 0
}

// acquire returns the connection for key, locked, and the state pos names
// (a new connection's empty state when pos is nil). Unlock with release.
func (cs *connections) acquire(key connKey, pos *string, now time.Time) (*conn, *connState, error) {
	cs.mu.Lock()
	cs.sweep(now)
	c := cs.conns[key]
	if pos == nil {
		// A new connection replaces any old one with the same conn_id.
		c = &conn{versions: map[int64]*connState{}}
		c.used.Store(now.UnixNano())
		cs.conns[key] = c
		cs.limitDevice(key)
	}
	cs.mu.Unlock()
	if c == nil {
		return nil, nil, ErrUnknownPos
	}
	c.mu.Lock()
	if pos == nil {
		return c, newConnState(), nil
	}
	version, ok := parsePos(*pos)
	st := c.versions[version]
	if !ok || st == nil {
		c.mu.Unlock()
		return nil, nil, ErrUnknownPos
	}
	for v := range c.versions {
		if v < version {
			delete(c.versions, v)
		}
	}
	c.used.Store(now.UnixNano())
	return c, st.clone(), nil
}

// commit stores a response's state and returns its pos.
func (c *conn) commit(st *connState) string {
	v := versionCounter.Add(1)
	c.versions[v] = st
	return formatPos(v, st.token)
}

func (c *conn) release() { c.mu.Unlock() }

// sweep forgets idle connections, at most once a minute. Holds cs.mu.
func (cs *connections) sweep(now time.Time) {
	if now.Sub(cs.lastSweep) < time.Minute {
		return
	}
	cs.lastSweep = now
	for k, c := range cs.conns {
		if now.UnixNano()-c.used.Load() > int64(connIdleExpiry) {
			delete(cs.conns, k)
		}
	}
}

// limitDevice drops the least recently used connections of key's device
// beyond maxConnsPerDevice, never key's own. Holds cs.mu.
func (cs *connections) limitDevice(key connKey) {
	var others []connKey
	for k := range cs.conns {
		if k.user == key.user && k.device == key.device && k != key {
			others = append(others, k)
		}
	}
	excess := len(others) + 1 - maxConnsPerDevice
	if excess <= 0 {
		return
	}
	slices.SortFunc(others, func(a, b connKey) int {
		return cmp.Compare(cs.conns[a].used.Load(), cs.conns[b].used.Load())
	})
	for _, k := range others[:excess] {
		delete(cs.conns, k)
	}
}

// count is the number of connections held (for tests).
func (cs *connections) count() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.conns)
}
