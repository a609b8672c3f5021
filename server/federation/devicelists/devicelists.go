// Package devicelists carries end-to-end encryption keys over federation
// (spec: server-server "Device Management" and "End-to-End Encryption"):
// it announces local users' device changes to the servers sharing a room
// with them (m.device_list_update, m.signing_key_update), applies the
// announcements of other servers to a cache of their users' devices, asks
// other servers for keys the cache cannot answer, and serves this
// server's users' keys to other servers.
package devicelists

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	mfed "maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/e2ee"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// EDU types of this package.
const (
	EDUDeviceListUpdate = "m.device_list_update"
	EDUSigningKeyUpdate = "m.signing_key_update"
)

// Timing of the work done outside requests.
const (
	// announceTimeout bounds announcing one user's change, which runs in
	// the request that made it.
	announceTimeout = 10 * time.Second
	// resyncTimeout bounds fetching a remote user's whole device list
	// after an update was missed.
	resyncTimeout = 30 * time.Second
)

// ErrNotAllowed is an EDU refused: about a user of another server than
// the one that sent it, or of a user who shares no room with a local user.
var ErrNotAllowed = errors.New("EDU not allowed")

// Client is the signed federation client (mautrix's federation.Client).
type Client interface {
	MakeRequest(ctx context.Context, serverName string, authenticate bool, method string, path mautrix.PrefixableURLPath, reqJSON, respJSON any) error
}

// Queuer queues EDUs for other servers, persisted (the outbound sender).
type Queuer interface {
	QueueEDU(ctx context.Context, destinations []string, eduType string, content any) error
	// Queued sends what was queued for destinations in another
	// transaction that has committed.
	Queued(destinations ...string)
}

// Service is the device-list side of federation.
type Service struct {
	db         *storage.DB
	serverName string
	keys       *e2ee.Service
	client     Client
	sender     Queuer
	allowed    func(server string) bool
	log        *slog.Logger

	// Now is the clock; tests may replace it.
	Now func() time.Time

	// announce serializes announcements, so that each server receives a
	// user's updates in stream order.
	announce sync.Mutex

	mu        sync.Mutex
	resyncing map[id.UserID]bool
	wg        sync.WaitGroup
}

// New builds the service. allowed applies allow_servers/deny_servers.
func New(db *storage.DB, serverName string, keys *e2ee.Service, client Client, sender Queuer, allowed func(string) bool, log *slog.Logger) *Service {
	return &Service{
		db: db, serverName: serverName, keys: keys, client: client, sender: sender, allowed: allowed,
		log: log.With("component", "federation-devices"), Now: time.Now, resyncing: map[id.UserID]bool{},
	}
}

// Wait waits for background resyncs to end (server shutdown, tests).
func (s *Service) Wait() { s.wg.Wait() }

func (s *Service) isLocal(user id.UserID) bool { return user.Homeserver() == s.serverName }

// destinations are the other servers sharing a room with a user.
func (s *Service) destinations(ctx context.Context, user id.UserID) ([]string, error) {
	users, err := s.db.UsersSharingRooms(ctx, user)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	var out []string
	for _, u := range users {
		if srv := u.Homeserver(); srv != "" && srv != s.serverName && !set[srv] {
			set[srv] = true
			out = append(out, srv)
		}
	}
	return out, nil
}

// sharesRoomWithLocal tells whether a remote user is joined to a room
// with a user of this server.
func (s *Service) sharesRoomWithLocal(ctx context.Context, user id.UserID) (bool, error) {
	return s.keys.SharesRoomWithLocal(ctx, user)
}

// localKeys returns a local user's keys as other servers see them.
func (s *Service) localKeys(ctx context.Context, user id.UserID) (*e2ee.QueryResponse, error) {
	return s.keys.QueryKeys(ctx, "", map[id.UserID][]id.DeviceID{user: {}})
}

// splitDevice separates a device's keys (as /keys/query gives them) into
// the keys without unsigned and the display name.
func splitDevice(raw json.RawMessage) (json.RawMessage, string) {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return raw, ""
	}
	var unsigned struct {
		Name string `json:"device_display_name"`
	}
	if u, ok := m["unsigned"]; ok {
		_ = json.Unmarshal(u, &unsigned)
		delete(m, "unsigned")
		if b, err := json.Marshal(m); err == nil {
			raw = b
		}
	}
	return raw, unsigned.Name
}

// DeviceListChanged announces the differences between a local user's
// devices and what other servers were last told, one m.device_list_update
// per device, to the servers sharing a room with the user.
func (s *Service) DeviceListChanged(ctx context.Context, user id.UserID) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), announceTimeout)
	defer cancel()
	if err := s.announceDevices(ctx, user); err != nil {
		s.log.Warn("announce device list change", "user", user, "error", err)
	}
}

func (s *Service) announceDevices(ctx context.Context, user id.UserID) error {
	s.announce.Lock()
	defer s.announce.Unlock()
	resp, err := s.localKeys(ctx, user)
	if err != nil {
		return err
	}
	type device struct {
		keys json.RawMessage
		name string
	}
	devices := map[id.DeviceID]device{}
	current := map[id.DeviceID]string{}
	for d, raw := range resp.DeviceKeys[user] {
		keys, name := splitDevice(raw)
		devices[d] = device{keys, name}
		sum := sha256.Sum256(append(append([]byte(name), 0), keys...))
		current[d] = hex.EncodeToString(sum[:])
	}
	// The EDUs are queued in the transaction that records the
	// announcements, so none is recorded and then lost. (The servers are
	// looked up only when something changed, the rare case.)
	var dests []string
	announced, err := s.db.AnnounceDevices(ctx, user, current, func(announced []storage.DeviceAnnouncement) ([]storage.QueuedEDU, error) {
		var err error
		if dests, err = s.destinations(ctx, user); err != nil {
			return nil, err
		}
		var rows []storage.QueuedEDU
		for _, a := range announced {
			content := map[string]any{"user_id": user, "device_id": a.DeviceID, "stream_id": a.StreamID, "deleted": a.Deleted}
			if a.PrevID > 0 {
				content["prev_id"] = []int64{a.PrevID}
			} else {
				content["prev_id"] = []int64{}
			}
			if d, ok := devices[a.DeviceID]; ok && !a.Deleted {
				content["keys"] = d.keys
				if d.name != "" {
					content["device_display_name"] = d.name
				}
			}
			raw, err := json.Marshal(content)
			if err != nil {
				return nil, fmt.Errorf("encode %s: %w", EDUDeviceListUpdate, err)
			}
			for _, dest := range dests {
				rows = append(rows, storage.QueuedEDU{Destination: dest, Type: EDUDeviceListUpdate, Content: raw})
			}
		}
		return rows, nil
	})
	if err != nil || len(announced) == 0 {
		return err
	}
	s.sender.Queued(dests...)
	return nil
}

// SigningKeysChanged sends a local user's master and self-signing keys,
// as they are now, to the servers sharing a room with them.
func (s *Service) SigningKeysChanged(ctx context.Context, user id.UserID) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), announceTimeout)
	defer cancel()
	if err := s.announceSigningKeys(ctx, user); err != nil {
		s.log.Warn("announce cross-signing keys", "user", user, "error", err)
	}
}

func (s *Service) announceSigningKeys(ctx context.Context, user id.UserID) error {
	resp, err := s.localKeys(ctx, user)
	if err != nil {
		return err
	}
	content := map[string]any{"user_id": user}
	if k, ok := resp.MasterKeys[user]; ok {
		content["master_key"] = k
	}
	if k, ok := resp.SelfSigningKeys[user]; ok {
		content["self_signing_key"] = k
	}
	if len(content) == 1 {
		return nil
	}
	dests, err := s.destinations(ctx, user)
	if err != nil || len(dests) == 0 {
		return err
	}
	return s.sender.QueueEDU(ctx, dests, EDUSigningKeyUpdate, content)
}

// deviceListUpdate is the content of m.device_list_update.
type deviceListUpdate struct {
	UserID      id.UserID       `json:"user_id"`
	DeviceID    id.DeviceID     `json:"device_id"`
	DisplayName string          `json:"device_display_name"`
	StreamID    int64           `json:"stream_id"`
	PrevID      []int64         `json:"prev_id"`
	Deleted     bool            `json:"deleted"`
	Keys        json.RawMessage `json:"keys"`
}

// checkSender refuses an EDU about a user of another server than origin,
// or about a user no local user shares a room with.
func (s *Service) checkSender(ctx context.Context, eduType, origin string, user id.UserID) error {
	if user.Homeserver() != origin || origin == s.serverName {
		return fmt.Errorf("%s from %s for %s: %w", eduType, origin, user, ErrNotAllowed)
	}
	shares, err := s.sharesRoomWithLocal(ctx, user)
	if err != nil {
		return err
	}
	if !shares {
		return fmt.Errorf("%s from %s: %s shares no room with a user here: %w", eduType, origin, user, ErrNotAllowed)
	}
	return nil
}

// ApplyDeviceListUpdate applies an m.device_list_update from origin to the
// cache of its user's devices; after a missed update the whole list is
// fetched again, in the background.
func (s *Service) ApplyDeviceListUpdate(ctx context.Context, origin string, raw json.RawMessage) error {
	var c deviceListUpdate
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("%s from %s: %w", EDUDeviceListUpdate, origin, err)
	}
	if err := s.checkSender(ctx, EDUDeviceListUpdate, origin, c.UserID); err != nil {
		return err
	}
	if c.DeviceID == "" {
		return fmt.Errorf("%s from %s for %s: no device_id", EDUDeviceListUpdate, origin, c.UserID)
	}
	u := &storage.RemoteDeviceUpdate{
		Device:   storage.RemoteDevice{UserID: c.UserID, DeviceID: c.DeviceID, DisplayName: c.DisplayName},
		Deleted:  c.Deleted,
		StreamID: c.StreamID,
		PrevIDs:  c.PrevID,
	}
	if !c.Deleted {
		if len(c.Keys) == 0 || string(c.Keys) == "null" {
			// An update without keys (a new device that has none yet, or
			// a rename by a server that leaves them out) cannot replace
			// the cached entry: take the whole list again.
			u.PrevIDs = append(u.PrevIDs, c.StreamID)
		} else {
			keys, err := e2ee.CheckRemoteDeviceKeys(c.Keys, c.UserID, c.DeviceID)
			if err != nil {
				return fmt.Errorf("%s from %s for %s: keys: %w", EDUDeviceListUpdate, origin, c.UserID, err)
			}
			u.Device.JSON = keys
		}
	}
	res, err := s.db.ApplyRemoteDeviceUpdate(ctx, u)
	if err != nil {
		return err
	}
	switch res {
	case storage.DeviceUpdateDuplicate:
		return nil
	case storage.DeviceUpdateGap:
		s.log.Info("device list update missed, fetching the list again", "user", c.UserID, "stream_id", c.StreamID)
		s.resyncLater(c.UserID)
	}
	s.keys.WakeTrackers(ctx, c.UserID)
	return nil
}

// ApplySigningKeyUpdate applies an m.signing_key_update from origin.
func (s *Service) ApplySigningKeyUpdate(ctx context.Context, origin string, raw json.RawMessage) error {
	var c struct {
		UserID         id.UserID       `json:"user_id"`
		MasterKey      json.RawMessage `json:"master_key"`
		SelfSigningKey json.RawMessage `json:"self_signing_key"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("%s from %s: %w", EDUSigningKeyUpdate, origin, err)
	}
	if err := s.checkSender(ctx, EDUSigningKeyUpdate, origin, c.UserID); err != nil {
		return err
	}
	var keys []storage.CrossSigningKey
	for _, k := range []struct {
		usage string
		raw   json.RawMessage
	}{{storage.KeyTypeMaster, c.MasterKey}, {storage.KeyTypeSelfSigning, c.SelfSigningKey}} {
		if len(k.raw) == 0 || string(k.raw) == "null" {
			continue
		}
		key, err := e2ee.CheckRemoteCrossSigningKey(k.raw, k.usage, c.UserID)
		if err != nil {
			return fmt.Errorf("%s from %s for %s: %w", EDUSigningKeyUpdate, origin, c.UserID, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil
	}
	if err := s.db.SetRemoteCrossSigningKeys(ctx, c.UserID, keys, s.Now().UnixMilli()); err != nil {
		return err
	}
	s.keys.WakeTrackers(ctx, c.UserID)
	return nil
}

// resyncLater fetches a remote user's device list in the background,
// once at a time per user.
func (s *Service) resyncLater(user id.UserID) {
	s.mu.Lock()
	if s.resyncing[user] {
		s.mu.Unlock()
		return
	}
	s.resyncing[user] = true
	s.mu.Unlock()
	s.wg.Go(func() {
		defer func() {
			s.mu.Lock()
			delete(s.resyncing, user)
			s.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), resyncTimeout)
		defer cancel()
		if err := s.resync(ctx, user); err != nil {
			// The list stays stale: the next /keys/query asks again.
			s.log.Warn("fetch device list", "user", user, "error", err)
			return
		}
		s.keys.WakeTrackers(ctx, user)
	})
}

// userDevices is the answer of GET /user/devices/{userId}.
type userDevices struct {
	UserID         id.UserID       `json:"user_id"`
	StreamID       int64           `json:"stream_id"`
	Devices        []userDevice    `json:"devices"`
	MasterKey      json.RawMessage `json:"master_key,omitempty"`
	SelfSigningKey json.RawMessage `json:"self_signing_key,omitempty"`
}

type userDevice struct {
	DeviceID    id.DeviceID     `json:"device_id"`
	Keys        json.RawMessage `json:"keys"`
	DisplayName string          `json:"device_display_name,omitempty"`
}

// resync fetches a remote user's whole device list from their server
// into the cache.
func (s *Service) resync(ctx context.Context, user id.UserID) error {
	server := user.Homeserver()
	if !s.allowed(server) {
		return fmt.Errorf("%s is not allowed by this server's allow_servers/deny_servers", server)
	}
	var resp userDevices
	if err := s.client.MakeRequest(ctx, server, true, "GET", mfed.URLPath{"v1", "user", "devices", string(user)}, nil, &resp); err != nil {
		return fmt.Errorf("%s: %w", server, err)
	}
	if resp.UserID != user {
		return fmt.Errorf("%s answered for %q instead of %s", server, resp.UserID, user)
	}
	list := &storage.RemoteDeviceList{UserID: user, StreamID: resp.StreamID}
	for _, d := range resp.Devices {
		keys, err := e2ee.CheckRemoteDeviceKeys(d.Keys, user, d.DeviceID)
		if err != nil {
			s.log.Warn("device list: bad device keys left out", "user", user, "device", d.DeviceID, "error", err)
			continue
		}
		list.Devices = append(list.Devices, storage.RemoteDevice{UserID: user, DeviceID: d.DeviceID, DisplayName: d.DisplayName, JSON: keys})
	}
	for _, k := range []struct {
		usage string
		raw   json.RawMessage
	}{{storage.KeyTypeMaster, resp.MasterKey}, {storage.KeyTypeSelfSigning, resp.SelfSigningKey}} {
		if len(k.raw) == 0 || string(k.raw) == "null" {
			continue
		}
		key, err := e2ee.CheckRemoteCrossSigningKey(k.raw, k.usage, user)
		if err != nil {
			s.log.Warn("device list: bad cross-signing key left out", "user", user, "usage", k.usage, "error", err)
			continue
		}
		list.CrossSigning = append(list.CrossSigning, key)
	}
	return s.db.ReplaceRemoteDeviceList(ctx, list, s.Now().UnixMilli())
}

// failure is the failures entry of a server that could not answer.
func failure(err error) map[string]any {
	var re mautrix.RespError
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.RespError != nil {
		re = *he.RespError
		status := 502
		if he.Response != nil {
			status = he.Response.StatusCode
		}
		return map[string]any{"status": status, "errcode": re.ErrCode, "message": re.Err}
	}
	status := 503
	if errors.Is(err, context.DeadlineExceeded) {
		status = 504
	}
	return map[string]any{"status": status, "message": err.Error()}
}

// FetchKeys implements e2ee.Federation.
func (s *Service) FetchKeys(ctx context.Context, query map[id.UserID][]id.DeviceID, track map[id.UserID]bool) (*e2ee.RemoteKeys, map[string]any) {
	out := &e2ee.RemoteKeys{
		DeviceKeys:      map[id.UserID]map[id.DeviceID]json.RawMessage{},
		MasterKeys:      map[id.UserID]json.RawMessage{},
		SelfSigningKeys: map[id.UserID]json.RawMessage{},
	}
	failures := map[string]any{}
	byServer := map[string][]id.UserID{}
	for u := range query {
		byServer[u.Homeserver()] = append(byServer[u.Homeserver()], u)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for server, users := range byServer {
		wg.Go(func() {
			got, err := s.fetchServer(ctx, server, users, query, track)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.log.Info("keys query: server did not answer", "server", server, "error", err)
				failures[server] = failure(err)
				return
			}
			for u, d := range got.DeviceKeys {
				out.DeviceKeys[u] = d
			}
			for u, k := range got.MasterKeys {
				out.MasterKeys[u] = k
			}
			for u, k := range got.SelfSigningKeys {
				out.SelfSigningKeys[u] = k
			}
		})
	}
	wg.Wait()
	return out, failures
}

// userKeysQuery is the answer of POST /user/keys/query.
type userKeysQuery struct {
	DeviceKeys      map[id.UserID]map[id.DeviceID]json.RawMessage `json:"device_keys"`
	MasterKeys      map[id.UserID]json.RawMessage                 `json:"master_keys,omitempty"`
	SelfSigningKeys map[id.UserID]json.RawMessage                 `json:"self_signing_keys,omitempty"`
}

// fetchServer asks one server for its users' keys: the whole device list
// of tracked users (cached, not returned), the others' keys in one query.
func (s *Service) fetchServer(ctx context.Context, server string, users []id.UserID, query map[id.UserID][]id.DeviceID, track map[id.UserID]bool) (*e2ee.RemoteKeys, error) {
	if server == "" || !s.allowed(server) {
		return nil, fmt.Errorf("%s is not allowed by this server's allow_servers/deny_servers", server)
	}
	out := &e2ee.RemoteKeys{
		DeviceKeys:      map[id.UserID]map[id.DeviceID]json.RawMessage{},
		MasterKeys:      map[id.UserID]json.RawMessage{},
		SelfSigningKeys: map[id.UserID]json.RawMessage{},
	}
	ask := map[id.UserID][]id.DeviceID{}
	for _, u := range users {
		if track[u] {
			if err := s.resync(ctx, u); err != nil {
				return nil, err
			}
			continue
		}
		ask[u] = query[u]
		if ask[u] == nil {
			ask[u] = []id.DeviceID{}
		}
	}
	if len(ask) == 0 {
		return out, nil
	}
	var resp userKeysQuery
	if err := s.client.MakeRequest(ctx, server, true, "POST", mfed.URLPath{"v1", "user", "keys", "query"},
		map[string]any{"device_keys": ask}, &resp); err != nil {
		return nil, fmt.Errorf("%s: %w", server, err)
	}
	for u, devices := range resp.DeviceKeys {
		if _, asked := ask[u]; !asked {
			continue // a server answers for the users asked about only
		}
		kept := map[id.DeviceID]json.RawMessage{}
		for d, raw := range devices {
			if _, err := e2ee.CheckRemoteDeviceKeys(raw, u, d); err != nil {
				s.log.Warn("keys query: bad device keys left out", "user", u, "device", d, "error", err)
				continue
			}
			if want := ask[u]; len(want) > 0 && !slices.Contains(want, d) {
				continue
			}
			kept[d] = raw
		}
		out.DeviceKeys[u] = kept
	}
	for _, k := range []struct {
		usage string
		in    map[id.UserID]json.RawMessage
		out   map[id.UserID]json.RawMessage
	}{{storage.KeyTypeMaster, resp.MasterKeys, out.MasterKeys}, {storage.KeyTypeSelfSigning, resp.SelfSigningKeys, out.SelfSigningKeys}} {
		for u, raw := range k.in {
			if _, asked := ask[u]; !asked {
				continue
			}
			if _, err := e2ee.CheckRemoteCrossSigningKey(raw, k.usage, u); err != nil {
				s.log.Warn("keys query: bad cross-signing key left out", "user", u, "usage", k.usage, "error", err)
				continue
			}
			k.out[u] = raw
		}
	}
	return out, nil
}

// ClaimKeys implements e2ee.Federation.
func (s *Service) ClaimKeys(ctx context.Context, query map[id.UserID]map[id.DeviceID]string) (map[id.UserID]map[id.DeviceID]map[string]json.RawMessage, map[string]any) {
	out := map[id.UserID]map[id.DeviceID]map[string]json.RawMessage{}
	failures := map[string]any{}
	byServer := map[string]map[id.UserID]map[id.DeviceID]string{}
	for u, devices := range query {
		srv := u.Homeserver()
		if byServer[srv] == nil {
			byServer[srv] = map[id.UserID]map[id.DeviceID]string{}
		}
		byServer[srv][u] = devices
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for server, q := range byServer {
		wg.Go(func() {
			got, err := s.claimServer(ctx, server, q)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.log.Info("keys claim: server did not answer", "server", server, "error", err)
				failures[server] = failure(err)
				return
			}
			for u, d := range got {
				out[u] = d
			}
		})
	}
	wg.Wait()
	return out, failures
}

func (s *Service) claimServer(ctx context.Context, server string, q map[id.UserID]map[id.DeviceID]string) (map[id.UserID]map[id.DeviceID]map[string]json.RawMessage, error) {
	if server == "" || !s.allowed(server) {
		return nil, fmt.Errorf("%s is not allowed by this server's allow_servers/deny_servers", server)
	}
	var resp struct {
		OneTimeKeys map[id.UserID]map[id.DeviceID]map[string]json.RawMessage `json:"one_time_keys"`
	}
	if err := s.client.MakeRequest(ctx, server, true, "POST", mfed.URLPath{"v1", "user", "keys", "claim"},
		map[string]any{"one_time_keys": q}, &resp); err != nil {
		return nil, fmt.Errorf("%s: %w", server, err)
	}
	out := map[id.UserID]map[id.DeviceID]map[string]json.RawMessage{}
	for u, devices := range resp.OneTimeKeys {
		asked := q[u]
		if asked == nil {
			continue
		}
		for d, keys := range devices {
			if _, ok := asked[d]; !ok || len(keys) == 0 {
				continue
			}
			if out[u] == nil {
				out[u] = map[id.DeviceID]map[string]json.RawMessage{}
			}
			out[u][d] = keys
		}
	}
	return out, nil
}
