package e2ee

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// The keys of other servers' users, and what other servers must hear of
// this server's users' keys. The federation side (federation/devicelists)
// implements Federation; this file holds the rules both sides share.

// DefaultRemoteTimeout is how long /keys/query and /keys/claim wait for
// other servers when the request gives no timeout (the spec's default).
const DefaultRemoteTimeout = 10 * time.Second

// RemoteKeys are keys of remote users, as their servers answered.
type RemoteKeys struct {
	DeviceKeys      map[id.UserID]map[id.DeviceID]json.RawMessage
	MasterKeys      map[id.UserID]json.RawMessage
	SelfSigningKeys map[id.UserID]json.RawMessage
}

// Federation is what the e2ee service needs from federation.
type Federation interface {
	// DeviceListChanged hears that a local user's devices, their keys or
	// their names may have changed: other servers sharing a room with the
	// user must hear of each difference.
	DeviceListChanged(ctx context.Context, user id.UserID)
	// SigningKeysChanged hears that a local user's master or self-signing
	// key changed.
	SigningKeysChanged(ctx context.Context, user id.UserID)
	// FetchKeys asks the servers of remote users for their keys (the
	// devices of each user in query, all when none are listed), one
	// request per server, concurrently, until ctx ends. Users in track
	// share a room with a local user: their whole device list is fetched
	// into the cache instead of being returned. Servers that could not
	// answer are in failures.
	FetchKeys(ctx context.Context, query map[id.UserID][]id.DeviceID, track map[id.UserID]bool) (*RemoteKeys, map[string]any)
	// ClaimKeys claims one-time keys of remote users' devices from their
	// servers, one request per server, concurrently, until ctx ends.
	ClaimKeys(ctx context.Context, query map[id.UserID]map[id.DeviceID]string) (map[id.UserID]map[id.DeviceID]map[string]json.RawMessage, map[string]any)
}

// SetFederation connects the service to federation; until it is called
// (federation off) other servers' users get a failure entry.
func (s *Service) SetFederation(f Federation) { s.fed = f }

// RemoteTimeout turns a request's timeout (milliseconds, optional) into
// how long to wait for other servers.
func RemoteTimeout(ms *int64) time.Duration {
	if ms == nil || *ms <= 0 {
		return DefaultRemoteTimeout
	}
	// A client cannot hold the request open for long: a minute at most.
	return min(time.Duration(*ms)*time.Millisecond, time.Minute)
}

// deviceListChanged tells federation about a local user's device change.
func (s *Service) deviceListChanged(ctx context.Context, user id.UserID) {
	if s.fed != nil && s.isLocal(user) {
		s.fed.DeviceListChanged(ctx, user)
	}
}

// DeviceRenamed is called by the accounts service after a device of user
// got a new display name, which /keys/query shows: local clients and
// other servers hear of it like of any device change.
func (s *Service) DeviceRenamed(ctx context.Context, user id.UserID) {
	if err := s.db.AddDeviceListChanges(ctx, []storage.DeviceListChange{{UserID: user}}); err != nil {
		s.log.Warn("device renamed: record device list change", "user", user, "error", err)
		return
	}
	s.wakeAudience(ctx, user)
	s.deviceListChanged(ctx, user)
}

// SharesRoomWithLocal tells whether a remote user is joined to a room
// with a user of this server: their server then sends this one their
// device list updates, and their cached list stays current.
func (s *Service) SharesRoomWithLocal(ctx context.Context, user id.UserID) (bool, error) {
	users, err := s.db.UsersSharingRooms(ctx, user)
	if err != nil {
		return false, err
	}
	for _, u := range users {
		if s.isLocal(u) {
			return true, nil
		}
	}
	return false, nil
}

// WakeTrackers wakes the syncs of the local users sharing a room with a
// remote user whose device list changed (federation calls it after it
// updated the cache).
func (s *Service) WakeTrackers(ctx context.Context, user id.UserID) {
	s.wakeAudience(ctx, user)
}

// queryRemote adds the keys of remote users to a /keys/query answer: from
// the cache for users whose list this server keeps current, from their
// servers for the others.
func (s *Service) queryRemote(ctx context.Context, viewer id.UserID, query map[id.UserID][]id.DeviceID, remote []id.UserID, timeout time.Duration, resp *QueryResponse) error {
	if s.fed == nil {
		for _, u := range remote {
			resp.Failures[u.Homeserver()] = unreachable
		}
		return nil
	}
	current, err := s.db.CurrentRemoteDeviceLists(ctx, remote)
	if err != nil {
		return err
	}
	var cached []id.UserID
	fetch := map[id.UserID][]id.DeviceID{}
	track := map[id.UserID]bool{}
	for _, u := range remote {
		shares, err := s.SharesRoomWithLocal(ctx, u)
		if err != nil {
			return err
		}
		switch {
		case shares && current[u]:
			cached = append(cached, u)
		case shares:
			track[u] = true
			fetch[u] = query[u]
		default:
			if current[u] {
				// No update reaches this server any more: the cache
				// would go out of date unnoticed.
				if err := s.db.ForgetRemoteDeviceList(ctx, u); err != nil {
					return err
				}
			}
			fetch[u] = query[u]
		}
	}
	if len(fetch) > 0 {
		fctx, cancel := context.WithTimeout(ctx, timeout)
		got, failures := s.fed.FetchKeys(fctx, fetch, track)
		cancel()
		for server, f := range failures {
			resp.Failures[server] = f
		}
		for u := range track {
			if _, failed := failures[u.Homeserver()]; !failed {
				cached = append(cached, u)
			}
		}
		if got != nil {
			for u, devices := range got.DeviceKeys {
				resp.DeviceKeys[u] = devices
			}
			for u, k := range got.MasterKeys {
				resp.MasterKeys[u] = k
			}
			for u, k := range got.SelfSigningKeys {
				resp.SelfSigningKeys[u] = k
			}
		}
	}
	if err := s.cachedKeys(ctx, query, cached, resp); err != nil {
		return err
	}
	return s.mergeViewerSignatures(ctx, viewer, remote, resp)
}

// cachedKeys answers for remote users from the device-list cache.
func (s *Service) cachedKeys(ctx context.Context, query map[id.UserID][]id.DeviceID, users []id.UserID, resp *QueryResponse) error {
	if len(users) == 0 {
		return nil
	}
	for _, u := range users {
		resp.DeviceKeys[u] = map[id.DeviceID]json.RawMessage{}
	}
	devices, err := s.db.RemoteDeviceKeysOf(ctx, users)
	if err != nil {
		return err
	}
	for _, d := range devices {
		if want := query[d.UserID]; len(want) > 0 && !slices.Contains(want, d.DeviceID) {
			continue
		}
		unsigned := map[string]any{}
		if d.DisplayName != "" {
			unsigned["device_display_name"] = d.DisplayName
		}
		out, err := merged(d.JSON, nil, unsigned)
		if err != nil {
			return fmt.Errorf("cached device keys of %s %s: %w", d.UserID, d.DeviceID, err)
		}
		resp.DeviceKeys[d.UserID][d.DeviceID] = out
	}
	keys, err := s.db.CrossSigningKeysOf(ctx, users)
	if err != nil {
		return err
	}
	for _, k := range keys {
		switch k.Type {
		case storage.KeyTypeMaster:
			resp.MasterKeys[k.UserID] = k.JSON
		case storage.KeyTypeSelfSigning:
			resp.SelfSigningKeys[k.UserID] = k.JSON
		}
	}
	return nil
}

// mergeViewerSignatures adds to remote users' master keys the signatures
// viewer made of them with their user-signing key: they are stored here
// only, and shown to viewer only.
func (s *Service) mergeViewerSignatures(ctx context.Context, viewer id.UserID, users []id.UserID, resp *QueryResponse) error {
	if viewer == "" {
		return nil
	}
	sigs, err := s.db.SignaturesOf(ctx, users, viewer)
	if err != nil {
		return err
	}
	byUser := map[id.UserID][]storage.KeySignature{}
	for _, sig := range sigs {
		if sig.SignerUserID == viewer {
			byUser[sig.TargetUserID] = append(byUser[sig.TargetUserID], sig)
		}
	}
	for u, list := range byUser {
		raw, ok := resp.MasterKeys[u]
		if !ok {
			continue
		}
		pub := publicKeyOf(raw)
		var mine []storage.KeySignature
		for _, sig := range list {
			if sig.TargetKey == pub {
				mine = append(mine, sig)
			}
		}
		if len(mine) == 0 {
			continue
		}
		out, err := merged(raw, mine, nil)
		if err != nil {
			return fmt.Errorf("master key of %s: %w", u, err)
		}
		resp.MasterKeys[u] = out
	}
	return nil
}

// publicKeyOf returns the ed25519 public key of a cross-signing key, ""
// when it has not exactly one.
func publicKeyOf(raw json.RawMessage) string {
	var f crossSigningFields
	if json.Unmarshal(raw, &f) != nil || len(f.Keys) != 1 {
		return ""
	}
	for _, v := range f.Keys {
		return v
	}
	return ""
}

// claimRemote adds one-time keys of remote users' devices to a
// /keys/claim answer.
func (s *Service) claimRemote(ctx context.Context, query map[id.UserID]map[id.DeviceID]string, remote []id.UserID, timeout time.Duration, resp *ClaimResponse) error {
	if s.fed == nil {
		for _, u := range remote {
			resp.Failures[u.Homeserver()] = unreachable
		}
		return nil
	}
	q := map[id.UserID]map[id.DeviceID]string{}
	for _, u := range remote {
		for _, alg := range query[u] {
			if alg == "" || strings.Contains(alg, ":") {
				return mautrix.MInvalidParam.WithMessage(fmt.Sprintf("one_time_keys: %q is not a key algorithm", alg))
			}
		}
		if len(query[u]) > 0 {
			q[u] = query[u]
		}
	}
	if len(q) == 0 {
		return nil
	}
	fctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	got, failures := s.fed.ClaimKeys(fctx, q)
	for server, f := range failures {
		resp.Failures[server] = f
	}
	for u, devices := range got {
		resp.OneTimeKeys[u] = devices
	}
	return nil
}

// CheckRemoteDeviceKeys checks device keys another server gave for its
// user's device (its user ID and device ID, the properties a DeviceKeys
// object needs) and returns them as cached: canonical JSON without
// unsigned.
func CheckRemoteDeviceKeys(raw json.RawMessage, user id.UserID, device id.DeviceID) (json.RawMessage, error) {
	out, _, err := checkDeviceKeys(raw, user, device)
	return out, err
}

// CheckRemoteCrossSigningKey checks a master or self-signing key another
// server gave for its user and returns it as stored.
func CheckRemoteCrossSigningKey(raw json.RawMessage, usage string, user id.UserID) (storage.CrossSigningKey, error) {
	// Signatures are kept: the self-signing key's by the master key is
	// what makes clients trust it.
	k, err := parseCrossSigningKey(usage+"_key", usage, raw, user)
	if err != nil {
		return storage.CrossSigningKey{}, err
	}
	return k.CrossSigningKey, nil
}
