package federation

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.mau.fi/util/jsontime"
	mfed "maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/signutil"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/p2p/servername"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

const (
	// ownKeyValidity is the valid_until_ts we publish: other servers cache
	// our key this long (Synapse publishes about a day to a week).
	ownKeyValidity = 7 * 24 * time.Hour
	// maxRemoteValidity caps another server's valid_until_ts: the spec
	// says to use the lesser of it and 7 days into the future.
	maxRemoteValidity = 7 * 24 * time.Hour
	// minRefetchInterval: a server whose fresh keys lack a key ID is not
	// asked again sooner (a forged key ID must not make us hammer it).
	minRefetchInterval = 5 * time.Minute
	// Fetch-failure backoff: 30 s after the first failure, doubling, at
	// most an hour.
	backoffBase = 30 * time.Second
	backoffMax  = time.Hour
)

// Errors of key lookups.
var (
	ErrKeyNotFound = errors.New("server key not found")
	ErrKeyExpired  = errors.New("server key not valid at that time")
	ErrKeyBackoff  = errors.New("server keys fetched too recently without success")
)

// KeyRing holds this server's keys and caches other servers' keys in the
// database, fetching them directly from each server (and from the
// configured notaries only when it does not answer).
type KeyRing struct {
	s           *Service
	ownRecorded atomic.Bool
	fetchLocks  sync.Map // server name -> *sync.Mutex
}

func newKeyRing(s *Service) *KeyRing { return &KeyRing{s: s} }

func ms(t time.Time) int64 { return t.UnixMilli() }

// recordOwnKey notes the key in use (once per run).
func (k *KeyRing) recordOwnKey(ctx context.Context) error {
	if k.ownRecorded.Load() {
		return nil
	}
	key := k.s.key
	if err := k.s.db.RecordOwnSigningKey(ctx, string(key.ID), string(key.Pub), ms(time.Now())); err != nil {
		return err
	}
	k.ownRecorded.Store(true)
	return nil
}

// OwnKeyResponse is our /_matrix/key/v2/server answer: the key in use,
// valid for ownKeyValidity, previous keys in old_verify_keys, signed.
func (k *KeyRing) OwnKeyResponse(ctx context.Context) (*mfed.ServerKeyResponse, error) {
	if err := k.recordOwnKey(ctx); err != nil {
		return nil, err
	}
	own, err := k.s.db.OwnSigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	key := k.s.key
	resp := &mfed.ServerKeyResponse{
		ServerName:   k.s.cfg.ServerName,
		VerifyKeys:   map[id.KeyID]mfed.ServerVerifyKey{key.ID: {Key: key.Pub}},
		ValidUntilTS: jsontime.UM(time.Now().Add(ownKeyValidity)),
	}
	for _, o := range own {
		if o.ExpiredTS == 0 || id.KeyID(o.KeyID) == key.ID {
			continue
		}
		if resp.OldVerifyKeys == nil {
			resp.OldVerifyKeys = map[id.KeyID]mfed.OldVerifyKey{}
		}
		resp.OldVerifyKeys[id.KeyID(o.KeyID)] = mfed.OldVerifyKey{Key: id.SigningKey(o.PublicKey), ExpiredTS: jsontime.UMInt(o.ExpiredTS)}
	}
	sig, err := key.SignJSON(resp)
	if err != nil {
		return nil, fmt.Errorf("sign key response: %w", err)
	}
	resp.Signatures = map[string]map[id.KeyID]string{k.s.cfg.ServerName: {key.ID: sig}}
	return resp, nil
}

// VerifyKey returns a server's public key keyID and the last moment it may
// sign anything (valid_until_ts, or expired_ts for an old key), checking
// that it is valid at the time at (an event's origin_server_ts, or now for
// a request). Our own keys are answered locally; others come from the
// database cache, fetched when missing or not valid long enough.
func (k *KeyRing) VerifyKey(ctx context.Context, serverName string, keyID id.KeyID, at time.Time) (id.SigningKey, time.Time, error) {
	return k.verifyKey(ctx, serverName, keyID, at, true)
}

func (k *KeyRing) verifyKey(ctx context.Context, serverName string, keyID id.KeyID, at time.Time, notaries bool) (id.SigningKey, time.Time, error) {
	if serverName == k.s.cfg.ServerName {
		return k.ownKey(ctx, keyID, at)
	}
	if servername.IsP2P(serverName) {
		return p2pKey(serverName, keyID, at)
	}
	cached, err := k.s.db.ServerKey(ctx, serverName, string(keyID))
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return "", time.Time{}, err
	}
	found := err == nil
	if found && ms(at) <= cached.ValidUntilTS {
		return id.SigningKey(cached.PublicKey), time.UnixMilli(cached.ValidUntilTS), nil
	}
	if found && cached.Old {
		// An old key never becomes valid again; asking its server is no use.
		return "", time.Time{}, fmt.Errorf("%w: key %s of %s expired at %d", ErrKeyExpired, keyID, serverName, cached.ValidUntilTS)
	}
	if err := k.fetch(ctx, serverName, keyID, at, notaries); err != nil {
		return "", time.Time{}, err
	}
	cached, err = k.s.db.ServerKey(ctx, serverName, string(keyID))
	if errors.Is(err, storage.ErrNotFound) {
		return "", time.Time{}, fmt.Errorf("%w: %s has no key %s", ErrKeyNotFound, serverName, keyID)
	}
	if err != nil {
		return "", time.Time{}, err
	}
	if ms(at) > cached.ValidUntilTS {
		return "", time.Time{}, fmt.Errorf("%w: key %s of %s is valid until %d", ErrKeyExpired, keyID, serverName, cached.ValidUntilTS)
	}
	return id.SigningKey(cached.PublicKey), time.UnixMilli(cached.ValidUntilTS), nil
}

func (k *KeyRing) ownKey(ctx context.Context, keyID id.KeyID, at time.Time) (id.SigningKey, time.Time, error) {
	if keyID == k.s.key.ID {
		return k.s.key.Pub, time.Now().Add(ownKeyValidity), nil
	}
	if err := k.recordOwnKey(ctx); err != nil {
		return "", time.Time{}, err
	}
	own, err := k.s.db.OwnSigningKeys(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	for _, o := range own {
		if id.KeyID(o.KeyID) != keyID || o.ExpiredTS == 0 {
			continue
		}
		if ms(at) > o.ExpiredTS {
			return "", time.Time{}, fmt.Errorf("%w: our key %s expired at %d", ErrKeyExpired, keyID, o.ExpiredTS)
		}
		return id.SigningKey(o.PublicKey), time.UnixMilli(o.ExpiredTS), nil
	}
	return "", time.Time{}, fmt.Errorf("%w: we have no key %s", ErrKeyNotFound, keyID)
}

// p2pKey is the key a peer-to-peer server name stands for: its name is
// its ed25519 public key, so nothing is fetched or cached, and signatures
// are still checked with it. Such a server cannot rotate its key (the name
// would change), so the key is good for any key ID of the ed25519
// algorithm and at any time.
func p2pKey(serverName string, keyID id.KeyID, at time.Time) (id.SigningKey, time.Time, error) {
	pub, err := servername.Parse(serverName)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%w: %w", ErrKeyNotFound, err)
	}
	if alg, _ := keyID.Parse(); alg != id.KeyAlgorithmEd25519 {
		return "", time.Time{}, fmt.Errorf("%w: %s has only an ed25519 key, not %s", ErrKeyNotFound, serverName, keyID)
	}
	until := time.Now()
	if at.After(until) {
		until = at
	}
	return id.SigningKey(base64.RawStdEncoding.EncodeToString(pub)), until.Add(maxRemoteValidity), nil
}

func (k *KeyRing) lock(serverName string) *sync.Mutex {
	m, _ := k.fetchLocks.LoadOrStore(serverName, &sync.Mutex{})
	return m.(*sync.Mutex)
}

func backoff(failures int) time.Duration {
	d := backoffBase
	for i := 1; i < failures && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
}

// fetch asks serverName for its keys (then the notaries, if allowed and
// configured) unless another caller just did, a recent response already
// answered, or the server is in backoff after failures.
func (k *KeyRing) fetch(ctx context.Context, serverName string, keyID id.KeyID, at time.Time, notaries bool) error {
	if !k.s.Enabled() {
		return ErrDisabled
	}
	mu := k.lock(serverName)
	if notaries {
		mu.Lock()
	} else if !mu.TryLock() {
		// A notary's own keys, looked up while another server's fetch
		// holds its lock: waiting could deadlock two servers that are
		// each other's notaries.
		return fmt.Errorf("keys of %s are being fetched already", serverName)
	}
	defer mu.Unlock()
	now := time.Now()
	// Someone may have fetched while we waited for the lock.
	if cached, err := k.s.db.ServerKey(ctx, serverName, string(keyID)); err == nil && ms(at) <= cached.ValidUntilTS {
		return nil
	}
	if _, validUntil, fetched, err := k.s.db.ServerKeyResponse(ctx, serverName); err == nil &&
		ms(now)-fetched < minRefetchInterval.Milliseconds() && validUntil >= ms(now) {
		return nil // fresh keys; the caller reports what is missing
	}
	failures, last, err := k.s.db.KeyFetchFailures(ctx, serverName)
	if err != nil {
		return err
	}
	if failures > 0 {
		if retry := time.UnixMilli(last).Add(backoff(failures)); now.Before(retry) {
			return fmt.Errorf("%w: %s (%d failures; next try after %s)", ErrKeyBackoff, serverName, failures, retry.UTC().Format(time.RFC3339))
		}
	}
	errDirect := k.fetchDirect(ctx, serverName)
	if errDirect == nil {
		return nil
	}
	errs := []error{errDirect}
	if notaries {
		for _, notary := range k.s.fed.KeyNotaries {
			if notary == serverName || notary == k.s.cfg.ServerName {
				continue
			}
			err := k.fetchFromNotary(ctx, notary, serverName)
			if err == nil {
				return nil
			}
			errs = append(errs, fmt.Errorf("notary %s: %w", notary, err))
		}
	}
	if ctx.Err() == nil {
		if err := k.s.db.RecordKeyFetchFailure(context.WithoutCancel(ctx), serverName, ms(time.Now())); err != nil {
			k.s.log.Warn("could not record key fetch failure", "origin", serverName, "error", err)
		}
	}
	k.s.log.Info("could not fetch server keys", "origin", serverName, "error", errors.Join(errs...))
	return fmt.Errorf("fetch keys of %s: %w", serverName, errors.Join(errs...))
}

func (k *KeyRing) fetchDirect(ctx context.Context, serverName string) error {
	resp, err := k.s.client.ServerKeys(ctx, serverName)
	if err != nil {
		return err
	}
	if resp == nil {
		return errors.New("empty key response")
	}
	return k.store(ctx, serverName, resp)
}

// fetchFromNotary asks a notary for serverName's keys: each answer must be
// signed by serverName's own keys and by the notary (whose keys we fetch
// from the notary itself).
func (k *KeyRing) fetchFromNotary(ctx context.Context, notary, serverName string) error {
	resp, err := k.s.client.QueryKeys(ctx, notary, &mfed.ReqQueryKeys{
		ServerKeys: map[string]map[id.KeyID]mfed.QueryKeysCriteria{serverName: {}},
	})
	if err != nil {
		return err
	}
	stored := false
	for _, r := range resp.ServerKeys {
		if r == nil || r.ServerName != serverName {
			continue
		}
		if err := k.checkNotarySignature(ctx, notary, r); err != nil {
			return err
		}
		if err := k.store(ctx, serverName, r); err != nil {
			return err
		}
		stored = true
	}
	if !stored {
		return errors.New("the notary returned no keys")
	}
	return nil
}

func (k *KeyRing) checkNotarySignature(ctx context.Context, notary string, r *mfed.ServerKeyResponse) error {
	for keyID := range r.Signatures[notary] {
		pub, _, err := k.verifyKey(ctx, notary, keyID, time.Now(), false)
		if err != nil {
			continue
		}
		if signutil.VerifyJSON(notary, keyID, pub, r.Raw) == nil {
			return nil
		}
	}
	return errors.New("the answer has no valid signature of the notary")
}

// store checks a key response (right server, signed by every one of its
// verify keys) and caches it.
func (k *KeyRing) store(ctx context.Context, serverName string, resp *mfed.ServerKeyResponse) error {
	if resp.ServerName != serverName {
		return fmt.Errorf("key response is for %q, not %q", resp.ServerName, serverName)
	}
	if len(resp.VerifyKeys) == 0 {
		return errors.New("key response has no verify_keys")
	}
	if err := resp.VerifySelfSignature(); err != nil {
		return fmt.Errorf("key response of %s: %w", serverName, err)
	}
	now := time.Now()
	validUntil := min(resp.ValidUntilTS.UnixMilli(), ms(now.Add(maxRemoteValidity)))
	if resp.ValidUntilTS.IsZero() || validUntil < 0 {
		validUntil = ms(now)
	}
	keys := make([]storage.RemoteServerKey, 0, len(resp.VerifyKeys)+len(resp.OldVerifyKeys))
	for keyID, v := range resp.VerifyKeys {
		keys = append(keys, storage.RemoteServerKey{KeyID: string(keyID), PublicKey: string(v.Key), ValidUntilTS: validUntil})
	}
	for keyID, v := range resp.OldVerifyKeys {
		if _, current := resp.VerifyKeys[keyID]; current {
			continue
		}
		keys = append(keys, storage.RemoteServerKey{KeyID: string(keyID), PublicKey: string(v.Key), ValidUntilTS: v.ExpiredTS.UnixMilli(), Old: true})
	}
	return k.s.db.StoreServerKeys(ctx, serverName, resp.Raw, validUntil, keys, ms(now))
}
