package storage

import (
	"sync"
	"sync/atomic"
)

// tokenCache keeps recent access-token lookups, so a request does not pay
// a database read to learn who sent it (about a tenth of a message send's
// CPU). Correctness rests on one rule: every write that could change a
// lookup's answer (logout, a deleted device, a locked, suspended or
// deactivated account, a refreshed token's first use, an admin flag)
// invalidates the whole cache before it returns. Writes go through
// WriteTx or exec, which do; only event persistence, a device's
// last-seen time and the OAuth server's own rows (clients, codes, device
// grants, browser sessions; oauth.go) skip it, as they change nothing a
// lookup reads.
//
// A lookup made while an invalidating write was in flight carries the
// generation it started in, which the write has since moved past, so it is
// never served.
type tokenCache struct {
	gen atomic.Uint64
	mu  sync.Mutex
	m   map[string]tokenCacheEntry
}

type tokenCacheEntry struct {
	owner TokenOwner
	gen   uint64
}

// maxCachedTokens bounds the cache: a family server has tens of sessions.
const maxCachedTokens = 4096

// generation is read before a lookup's query; put stores its answer only
// under that generation.
func (c *tokenCache) generation() uint64 { return c.gen.Load() }

func (c *tokenCache) get(hash []byte) (*TokenOwner, bool) {
	g := c.gen.Load()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[string(hash)]
	if !ok || e.gen != g {
		return nil, false
	}
	o := e.owner // a copy: callers may change theirs
	return &o, true
}

func (c *tokenCache) put(hash []byte, o *TokenOwner, gen uint64) {
	if o.FirstUse {
		// Its first use is a write that changes the answer; not worth
		// keeping.
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedTokens {
		c.m = map[string]tokenCacheEntry{}
	}
	c.m[string(hash)] = tokenCacheEntry{owner: *o, gen: gen}
}

// invalidate forgets every lookup made so far.
func (c *tokenCache) invalidate() {
	c.gen.Add(1)
}
