package e2ee

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// SignedCurve25519 is the one-time key algorithm of Olm, the one clients
// use; its count is always reported, even at zero, because clients only
// replenish keys when they see the count drop.
const SignedCurve25519 = "signed_curve25519"

// UploadRequest is the body of POST /keys/upload, its keys still raw:
// signatures are checked over the JSON exactly as the client sent it.
type UploadRequest struct {
	DeviceKeys   json.RawMessage            `json:"device_keys"`
	OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
	FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
}

// deviceKeysFields are the DeviceKeys properties the server checks; the
// pointers tell a missing property from an empty one.
type deviceKeysFields struct {
	UserID     *string                       `json:"user_id"`
	DeviceID   *string                       `json:"device_id"`
	Algorithms *[]string                     `json:"algorithms"`
	Keys       *map[string]string            `json:"keys"`
	Signatures *map[string]map[string]string `json:"signatures"`
}

func present(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// UploadKeys answers POST /keys/upload for the caller's device and returns
// its one-time key counts per algorithm.
func (s *Service) UploadKeys(ctx context.Context, userID id.UserID, deviceID id.DeviceID, req *UploadRequest) (map[string]int, error) {
	if deviceID == "" {
		return nil, mautrix.MInvalidParam.WithMessage("To upload keys, the access token must belong to a device")
	}
	up := &storage.KeyUpload{
		UserID:         userID,
		DeviceID:       deviceID,
		NowTS:          s.Now().UnixMilli(),
		SameDeviceKeys: sameSignedPart,
		SameOneTimeKey: sameSignedPart,
	}
	// The device's ed25519 key signs its one-time and fallback keys: the
	// one uploaded now, or else the one stored before.
	var signingKey string
	if present(req.DeviceKeys) {
		dk, key, err := checkDeviceKeys(req.DeviceKeys, userID, deviceID)
		if err != nil {
			return nil, err
		}
		up.DeviceKeys, signingKey = dk, key
	}
	if signingKey == "" && (len(req.OneTimeKeys) > 0 || len(req.FallbackKeys) > 0) {
		stored, err := s.db.GetDeviceKeys(ctx, userID, deviceID)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		if stored != nil {
			var f deviceKeysFields
			if err := json.Unmarshal(stored, &f); err == nil && f.Keys != nil {
				signingKey = (*f.Keys)["ed25519:"+string(deviceID)]
			}
		}
	}
	var err error
	if up.OneTimeKeys, err = checkOneTimeKeys("one_time_keys", req.OneTimeKeys, userID, deviceID, signingKey); err != nil {
		return nil, err
	}
	if up.FallbackKeys, err = checkOneTimeKeys("fallback_keys", req.FallbackKeys, userID, deviceID, signingKey); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, k := range up.FallbackKeys {
		if seen[k.Algorithm] {
			return nil, mautrix.MInvalidParam.WithMessage("fallback_keys may hold at most one key per algorithm; " + k.Algorithm + " has several")
		}
		seen[k.Algorithm] = true
	}

	counts, newDeviceKeys, err := s.db.UploadKeys(ctx, up)
	var conflict *storage.OneTimeKeyConflictError
	switch {
	case errors.Is(err, storage.ErrDeviceGone):
		return nil, mautrix.MUnknownToken.WithMessage("This device has been signed out")
	case errors.Is(err, storage.ErrDeviceKeysChanged):
		return nil, mautrix.MInvalidParam.WithMessage("This device already has different identity keys, and a device's identity cannot change: " +
			"sign in again as a new device to use new keys")
	case errors.As(err, &conflict):
		return nil, mautrix.MInvalidParam.WithMessage("One-time key " + conflict.KeyID + " was already uploaded with different content")
	case err != nil:
		return nil, fmt.Errorf("upload keys of %s %s: %w", userID, deviceID, err)
	}
	if newDeviceKeys {
		s.log.Info("device keys uploaded", "user", userID, "device", deviceID)
		s.wakeAudience(ctx, userID)
		s.deviceListChanged(ctx, userID)
	}
	if _, ok := counts[SignedCurve25519]; !ok {
		counts[SignedCurve25519] = 0
	}
	return counts, nil
}

// checkDeviceKeys validates the shape of device_keys of an upload: every
// DeviceKeys property present with its type, for the caller's own user
// and device (M_BAD_JSON otherwise, as Synapse answers). Like Synapse it
// does not check the device's signature: keys are stored as sent, and the
// clients that fetch them verify the signature before trusting them (a
// server check would add nothing, as a server could forge keys anyway).
// It returns the keys to store (canonical JSON without unsigned) and the
// device's ed25519 key, "" when there is none.
func checkDeviceKeys(raw json.RawMessage, userID id.UserID, deviceID id.DeviceID) (json.RawMessage, string, error) {
	var f deviceKeysFields
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, "", mautrix.MBadJSON.WithMessage("device_keys must be a DeviceKeys object: " + err.Error())
	}
	for _, p := range []struct {
		name    string
		missing bool
	}{
		{"user_id", f.UserID == nil}, {"device_id", f.DeviceID == nil}, {"algorithms", f.Algorithms == nil},
		{"keys", f.Keys == nil}, {"signatures", f.Signatures == nil},
	} {
		if p.missing {
			return nil, "", mautrix.MBadJSON.WithMessage("device_keys." + p.name + " is required")
		}
	}
	if id.UserID(*f.UserID) != userID {
		return nil, "", mautrix.MBadJSON.WithMessage("device_keys.user_id does not match the user the access token belongs to")
	}
	if id.DeviceID(*f.DeviceID) != deviceID {
		return nil, "", mautrix.MBadJSON.WithMessage("device_keys.device_id does not match the device the access token belongs to")
	}
	stored, err := withoutUnsigned(raw)
	if err != nil {
		return nil, "", mautrix.MBadJSON.WithMessage("device_keys cannot be represented as canonical JSON")
	}
	return stored, (*f.Keys)["ed25519:"+string(deviceID)], nil
}

// checkOneTimeKeys validates one_time_keys or fallback_keys: IDs of the
// form <algorithm>:<key_id>, values that are a key string or a key object,
// and for signed algorithms (signed_curve25519) the device's signature.
func checkOneTimeKeys(field string, keys map[string]json.RawMessage, userID id.UserID, deviceID id.DeviceID, signingKey string) ([]storage.UploadedKey, error) {
	out := make([]storage.UploadedKey, 0, len(keys))
	for _, name := range sortedKeys(keys) {
		raw := keys[name]
		alg, keyID, ok := strings.Cut(name, ":")
		if !ok || alg == "" || keyID == "" || strings.Contains(keyID, ":") {
			return nil, mautrix.MBadJSON.WithMessage(fmt.Sprintf("%s: invalid key ID %q, expected <algorithm>:<key_id>", field, name))
		}
		c, err := canonical(raw)
		if err != nil {
			return nil, mautrix.MBadJSON.WithMessage(fmt.Sprintf("%s.%s cannot be represented as canonical JSON", field, name))
		}
		obj, isObject := object(raw)
		var isString bool
		if !isObject {
			var str string
			isString = json.Unmarshal(raw, &str) == nil
		}
		switch {
		case strings.HasPrefix(alg, "signed_"):
			var key string
			if !isObject || json.Unmarshal(obj["key"], &key) != nil || key == "" {
				return nil, mautrix.MBadJSON.WithMessage(fmt.Sprintf("%s.%s must be a key object with a key", field, name))
			}
			if signingKey == "" {
				return nil, MInvalidSignature.WithMessage(fmt.Sprintf("%s.%s: upload the device's keys first, to verify the key's signature", field, name))
			}
			if err := verify(raw, userID, "ed25519:"+string(deviceID), signingKey); err != nil {
				return nil, MInvalidSignature.WithMessage(fmt.Sprintf("%s.%s is not signed by the device's ed25519 key", field, name))
			}
		case !isObject && !isString:
			return nil, mautrix.MBadJSON.WithMessage(fmt.Sprintf("%s.%s must be a key string or a key object", field, name))
		}
		out = append(out, storage.UploadedKey{Algorithm: alg, KeyID: keyID, JSON: c})
	}
	return out, nil
}

// QueryResponse is the answer of POST /keys/query.
type QueryResponse struct {
	Failures        map[string]any                                `json:"failures"`
	DeviceKeys      map[id.UserID]map[id.DeviceID]json.RawMessage `json:"device_keys"`
	MasterKeys      map[id.UserID]json.RawMessage                 `json:"master_keys"`
	SelfSigningKeys map[id.UserID]json.RawMessage                 `json:"self_signing_keys"`
	UserSigningKeys map[id.UserID]json.RawMessage                 `json:"user_signing_keys"`
}

// unreachable is the failure recorded for another server's users when
// federation is off, so their server cannot be asked.
var unreachable = map[string]any{"status": 503, "message": "Federation is turned off on this server"}

// splitUsers checks user IDs and separates this server's users from the
// others.
func (s *Service) splitUsers(field string, users []id.UserID) (local, remote []id.UserID, err error) {
	for _, u := range users {
		_, server, err := u.Parse()
		if err != nil || !strings.HasPrefix(string(u), "@") {
			return nil, nil, mautrix.MInvalidParam.WithMessage(fmt.Sprintf("%s: %q is not a user ID", field, u))
		}
		if server == s.serverName {
			local = append(local, u)
		} else {
			remote = append(remote, u)
		}
	}
	return local, remote, nil
}

// QueryKeys is QueryKeysTimeout with the default timeout.
func (s *Service) QueryKeys(ctx context.Context, viewer id.UserID, query map[id.UserID][]id.DeviceID) (*QueryResponse, error) {
	return s.QueryKeysTimeout(ctx, viewer, query, DefaultRemoteTimeout)
}

// QueryKeysTimeout answers POST /keys/query for viewer. query maps users
// to the devices wanted (none: all). Each known user of this server is in
// device_keys, with the devices that have keys; unknown users and devices
// are left out, as the spec asks. Other servers' users are answered from
// the device-list cache when it is current, else by their servers, which
// get timeout to answer; those that do not are in failures. A viewer ""
// (another server asking) sees no user's private signatures.
func (s *Service) QueryKeysTimeout(ctx context.Context, viewer id.UserID, query map[id.UserID][]id.DeviceID, timeout time.Duration) (*QueryResponse, error) {
	resp := &QueryResponse{
		DeviceKeys:      map[id.UserID]map[id.DeviceID]json.RawMessage{},
		MasterKeys:      map[id.UserID]json.RawMessage{},
		SelfSigningKeys: map[id.UserID]json.RawMessage{},
		UserSigningKeys: map[id.UserID]json.RawMessage{},
	}
	local, remote, err := s.splitUsers("device_keys", sortedKeys(query))
	if err != nil {
		return nil, err
	}
	resp.Failures = map[string]any{}
	if len(remote) > 0 {
		if err := s.queryRemote(ctx, viewer, query, remote, timeout, resp); err != nil {
			return nil, err
		}
	}
	if len(local) == 0 {
		return resp, nil
	}
	exists, err := s.db.ExistingUsers(ctx, local)
	if err != nil {
		return nil, err
	}
	var users []id.UserID
	for _, u := range local {
		if exists[u] {
			users = append(users, u)
			resp.DeviceKeys[u] = map[id.DeviceID]json.RawMessage{}
		}
	}
	if len(users) == 0 {
		return resp, nil
	}
	sigs, err := s.db.SignaturesOf(ctx, users, viewer)
	if err != nil {
		return nil, err
	}
	type target struct {
		user id.UserID
		key  string
	}
	sigsOf := map[target][]storage.KeySignature{}
	for _, sig := range sigs {
		t := target{sig.TargetUserID, sig.TargetKey}
		sigsOf[t] = append(sigsOf[t], sig)
	}

	devices, err := s.db.DeviceKeysOf(ctx, users)
	if err != nil {
		return nil, err
	}
	for _, d := range devices {
		if want := query[d.UserID]; len(want) > 0 && !slices.Contains(want, d.DeviceID) {
			continue
		}
		unsigned := map[string]any{}
		if d.DisplayName != "" {
			unsigned["device_display_name"] = d.DisplayName
		}
		out, err := merged(d.JSON, sigsOf[target{d.UserID, string(d.DeviceID)}], unsigned)
		if err != nil {
			return nil, fmt.Errorf("device keys of %s %s: %w", d.UserID, d.DeviceID, err)
		}
		resp.DeviceKeys[d.UserID][d.DeviceID] = out
	}

	csKeys, err := s.db.CrossSigningKeysOf(ctx, users)
	if err != nil {
		return nil, err
	}
	for _, k := range csKeys {
		dst := resp.MasterKeys
		switch k.Type {
		case storage.KeyTypeSelfSigning:
			dst = resp.SelfSigningKeys
		case storage.KeyTypeUserSigning:
			// Only its owner sees a user-signing key.
			if k.UserID != viewer {
				continue
			}
			dst = resp.UserSigningKeys
		}
		out, err := merged(k.JSON, sigsOf[target{k.UserID, k.PublicKey}], nil)
		if err != nil {
			return nil, fmt.Errorf("%s key of %s: %w", k.Type, k.UserID, err)
		}
		dst[k.UserID] = out
	}
	return resp, nil
}

// ClaimResponse is the answer of POST /keys/claim.
type ClaimResponse struct {
	Failures    map[string]any                                           `json:"failures"`
	OneTimeKeys map[id.UserID]map[id.DeviceID]map[string]json.RawMessage `json:"one_time_keys"`
}

// ClaimKeys is ClaimKeysTimeout with the default timeout.
func (s *Service) ClaimKeys(ctx context.Context, query map[id.UserID]map[id.DeviceID]string) (*ClaimResponse, error) {
	return s.ClaimKeysTimeout(ctx, query, DefaultRemoteTimeout)
}

// ClaimKeysTimeout answers POST /keys/claim: for each device, one one-time
// key of the algorithm asked for, or else its fallback key. Each one-time
// key is handed out exactly once. Devices with neither, and unknown users
// and devices, are left out. Other servers' users' keys are claimed from
// their servers, which get timeout to answer.
func (s *Service) ClaimKeysTimeout(ctx context.Context, query map[id.UserID]map[id.DeviceID]string, timeout time.Duration) (*ClaimResponse, error) {
	resp := &ClaimResponse{OneTimeKeys: map[id.UserID]map[id.DeviceID]map[string]json.RawMessage{}}
	local, remote, err := s.splitUsers("one_time_keys", sortedKeys(query))
	if err != nil {
		return nil, err
	}
	resp.Failures = map[string]any{}
	var claims []storage.KeyClaim
	for _, u := range local {
		for _, d := range sortedKeys(query[u]) {
			alg := query[u][d]
			if alg == "" || strings.Contains(alg, ":") {
				return nil, mautrix.MInvalidParam.WithMessage(fmt.Sprintf("one_time_keys: %q is not a key algorithm", alg))
			}
			claims = append(claims, storage.KeyClaim{UserID: u, DeviceID: d, Algorithm: alg})
		}
	}
	// Checked before any key is taken, here or elsewhere.
	if len(remote) > 0 {
		if err := s.claimRemote(ctx, query, remote, timeout, resp); err != nil {
			return nil, err
		}
	}
	if len(claims) == 0 {
		return resp, nil
	}
	claimed, err := s.db.ClaimKeys(ctx, claims)
	if err != nil {
		return nil, err
	}
	for _, k := range claimed {
		byDevice := resp.OneTimeKeys[k.UserID]
		if byDevice == nil {
			byDevice = map[id.DeviceID]map[string]json.RawMessage{}
			resp.OneTimeKeys[k.UserID] = byDevice
		}
		byDevice[k.DeviceID] = map[string]json.RawMessage{k.Algorithm + ":" + k.KeyID: k.JSON}
	}
	return resp, nil
}
