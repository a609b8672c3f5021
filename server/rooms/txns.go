package rooms

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/palpo-im/palpo-desktop/server/storage"
	"maunium.net/go/mautrix/id"
)

// txnWindow is how long a client transaction ID answers a retry with its
// first event; a retry after it sends a new event. A day, as Synapse keeps
// them: clients retry for minutes, and every message would otherwise keep
// its row in the database forever.
const txnWindow = 24 * time.Hour

// txnPruneEvery is how often transactions past the window are forgotten
// (by the committer's idle work).
const txnPruneEvery = 5 * time.Minute

// txnPruneChunks bounds one prune's write transactions (of a thousand
// transactions each): the idle work runs on the committer, so a long
// history (the first prune after an upgrade) is forgotten over several
// quiet moments instead of holding up the messages sent meanwhile.
const txnPruneChunks = 4

// recentTxns knows, by a hash of their keys, every client transaction
// recorded within the window, so that a send, which is nearly always new,
// is told so without a read of the database: the read was the slowest
// step before a message's commit after an idle moment (0.16 ms). A hit is
// confirmed in the database (a retry, or, once in 2^64, a collision).
type recentTxns struct {
	mu       sync.Mutex
	seed     maphash.Seed
	at       map[uint64]int64 // when each was recorded, ms
	prunedAt int64
	// loaded is set once the window was read; loading serialises the
	// read (a failed one is tried again at the next send).
	loaded  atomic.Bool
	loading sync.Mutex
}

// hash is the key's hash; r.mu is held.
func (r *recentTxns) hash(k txnKey) uint64 {
	if r.at == nil {
		r.seed = maphash.MakeSeed()
		r.at = map[uint64]int64{}
	}
	var h maphash.Hash
	h.SetSeed(r.seed)
	for _, s := range []string{string(k.user), string(k.device), string(k.room), k.endpoint, k.txn} {
		h.WriteString(s)
		h.WriteByte(0)
	}
	return h.Sum64()
}

func (r *recentTxns) add(k txnKey, ts int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.at[r.hash(k)] = ts
}

// mayHave reports whether the transaction may be recorded: false means it
// certainly is not. The first call reads the window's transactions.
func (r *recentTxns) mayHave(ctx context.Context, s *Service, k txnKey) (bool, error) {
	if err := r.load(ctx, s); err != nil {
		return false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.at[r.hash(k)]
	return ok, nil
}

// load reads the transactions recorded within the window, once. Commits
// meanwhile add theirs as usual; both only insert, so none is missed.
func (r *recentTxns) load(ctx context.Context, s *Service) error {
	if r.loaded.Load() {
		return nil
	}
	r.loading.Lock()
	defer r.loading.Unlock()
	if r.loaded.Load() {
		return nil
	}
	since := s.Now().Add(-txnWindow).UnixMilli()
	err := s.db.TxnsSince(ctx, since, func(t storage.Txn) {
		r.add(txnKey{t.UserID, t.DeviceID, t.RoomID, t.Endpoint, t.TxnID}, t.CreatedTS)
	})
	if err != nil {
		return err
	}
	r.loaded.Store(true)
	return nil
}

// storedTxn returns the event a committed transaction sent, or "".
func (s *Service) storedTxn(ctx context.Context, k txnKey) (id.EventID, error) {
	if maybe, err := s.recentTxns.mayHave(ctx, s, k); err == nil && !maybe {
		return "", nil
	}
	// A hit, or the window could not be read: the database knows.
	return s.db.TxnEvent(ctx, k.user, k.device, k.room, k.endpoint, k.txn)
}

// pruneTxns forgets the transactions past the window, at most every
// txnPruneEvery: first in the database, then here, so a transaction this
// still knows is never one the database lost (storedTxn confirms hits
// there).
func (s *Service) pruneTxns(ctx context.Context) {
	r := &s.recentTxns
	now := s.Now()
	r.mu.Lock()
	due := now.UnixMilli()-r.prunedAt >= txnPruneEvery.Milliseconds()
	r.mu.Unlock()
	if !due {
		return
	}
	cutoff := now.Add(-txnWindow).UnixMilli()
	done, err := s.db.PruneTxns(ctx, cutoff, txnPruneChunks)
	if err != nil {
		s.log.Warn("forget old transaction IDs", "error", err)
		return
	}
	if !done {
		return // the rest at the next quiet moment
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prunedAt = now.UnixMilli()
	for h, ts := range r.at {
		if ts < cutoff {
			delete(r.at, h)
		}
	}
}
