package e2ee

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/storage"
)

// CrossSigningUpload is the body of POST /keys/device_signing/upload.
type CrossSigningUpload struct {
	MasterKey      json.RawMessage `json:"master_key"`
	SelfSigningKey json.RawMessage `json:"self_signing_key"`
	UserSigningKey json.RawMessage `json:"user_signing_key"`
	Auth           json.RawMessage `json:"auth"`
	// OAuthApprovalURL is, for a session signed in through the OAuth 2.0
	// API, the account page where the person approves a reset: the m.oauth
	// stage is offered beside the password (not part of the request body).
	OAuthApprovalURL string `json:"-"`
}

// crossSigningFields are the CrossSigningKey properties the server checks.
type crossSigningFields struct {
	UserID *string           `json:"user_id"`
	Usage  *[]string         `json:"usage"`
	Keys   map[string]string `json:"keys"`
}

// parsedKey is a checked cross-signing key of an upload.
type parsedKey struct {
	storage.CrossSigningKey
	raw json.RawMessage // as uploaded, for signature checks
}

// parseCrossSigningKey checks one key of an upload: the caller's user ID,
// the usage its field says, and exactly one ed25519 key named after
// itself ("ed25519:<public key>": <public key>).
func parseCrossSigningKey(field, usage string, raw json.RawMessage, userID id.UserID) (*parsedKey, error) {
	var f crossSigningFields
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, mautrix.MBadJSON.WithMessage(field + " must be a CrossSigningKey object: " + err.Error())
	}
	if f.UserID == nil || f.Usage == nil || f.Keys == nil {
		return nil, accounts.MMissingParam.WithMessage(field + " needs user_id, usage and keys")
	}
	if id.UserID(*f.UserID) != userID {
		return nil, mautrix.MInvalidParam.WithMessage(field + ".user_id must be your own user ID")
	}
	if !slices.Contains(*f.Usage, usage) {
		return nil, mautrix.MInvalidParam.WithMessage(fmt.Sprintf("%s.usage must include %q", field, usage))
	}
	if len(f.Keys) != 1 {
		return nil, mautrix.MInvalidParam.WithMessage(field + ".keys must hold exactly one key")
	}
	var pub string
	for name, value := range f.Keys {
		alg, keyPart, _ := strings.Cut(name, ":")
		if alg != "ed25519" || keyPart != value || !validEd25519(value) {
			return nil, mautrix.MInvalidParam.WithMessage(field + ".keys must be one ed25519 key, named ed25519:<unpadded base64 public key>")
		}
		pub = value
	}
	c, err := withoutUnsigned(raw)
	if err != nil {
		return nil, mautrix.MBadJSON.WithMessage(field + " cannot be represented as canonical JSON")
	}
	return &parsedKey{
		CrossSigningKey: storage.CrossSigningKey{UserID: userID, Type: usage, PublicKey: pub, JSON: c},
		raw:             raw,
	}, nil
}

// crossSigningKeysOf returns a user's stored cross-signing keys by type.
func (s *Service) crossSigningKeysOf(ctx context.Context, userID id.UserID) (map[string]storage.CrossSigningKey, error) {
	keys, err := s.db.CrossSigningKeysOf(ctx, []id.UserID{userID})
	if err != nil {
		return nil, err
	}
	out := map[string]storage.CrossSigningKey{}
	for _, k := range keys {
		out[k.Type] = k
	}
	return out, nil
}

// UploadCrossSigningKeys answers POST /keys/device_signing/upload. The
// self-signing and user-signing keys must be signed by the master key
// (the one uploaded with them, or the stored one). Following the spec
// (v1.11+) and Synapse, user-interactive auth is needed only to replace
// keys: the first upload, and a retry that sends exactly the stored keys,
// need none; Element's bootstrap relies on the first.
func (s *Service) UploadCrossSigningKeys(ctx context.Context, c *accounts.Caller, req *CrossSigningUpload, ip string) error {
	var uploaded []*parsedKey
	for _, f := range []struct {
		field, usage string
		raw          json.RawMessage
	}{
		{"master_key", storage.KeyTypeMaster, req.MasterKey},
		{"self_signing_key", storage.KeyTypeSelfSigning, req.SelfSigningKey},
		{"user_signing_key", storage.KeyTypeUserSigning, req.UserSigningKey},
	} {
		if !present(f.raw) {
			continue
		}
		k, err := parseCrossSigningKey(f.field, f.usage, f.raw, c.UserID)
		if err != nil {
			return err
		}
		uploaded = append(uploaded, k)
	}
	stored, err := s.crossSigningKeysOf(ctx, c.UserID)
	if err != nil {
		return err
	}
	var changed []*parsedKey
	for _, k := range uploaded {
		if old, ok := stored[k.Type]; !ok || !sameSignedPart(old.JSON, k.JSON) {
			changed = append(changed, k)
		}
	}
	if len(changed) == 0 {
		return nil // nothing new: a retry, answered as it was the first time
	}

	// The master key that signs the others.
	var master string
	for _, k := range uploaded {
		if k.Type == storage.KeyTypeMaster {
			master = k.PublicKey
		}
	}
	if master == "" {
		master = stored[storage.KeyTypeMaster].PublicKey
	}
	if master == "" {
		return accounts.MMissingParam.WithMessage("No master key available: upload master_key first, or with these keys")
	}
	for _, k := range uploaded {
		if k.Type == storage.KeyTypeMaster {
			continue
		}
		if err := verify(k.raw, c.UserID, "ed25519:"+master, master); err != nil {
			return MInvalidSignature.WithMessage(fmt.Sprintf("The %s key must be signed by the master key ed25519:%s", k.Type, master))
		}
	}
	// Cross-signing key IDs share a namespace with device IDs.
	devices, err := s.accounts.Devices(ctx, c.UserID)
	if err != nil {
		return err
	}
	for _, k := range changed {
		for _, d := range devices {
			if string(d.DeviceID) == k.PublicKey {
				return mautrix.MForbidden.WithMessage("The " + k.Type + " key's public key is the ID of one of your devices")
			}
		}
	}

	var sess *accounts.UIASession
	if _, hasMaster := stored[storage.KeyTypeMaster]; hasMaster {
		flows := [][]string{{accounts.StagePassword}}
		if c.OAuth && req.OAuthApprovalURL != "" {
			flows = append(flows, []string{accounts.StageOAuth})
		}
		sess, err = s.accounts.CheckUIA(ctx, accounts.UIARequest{
			Auth:      req.Auth,
			Flows:     flows,
			Operation: "device_signing",
			UserID:    c.UserID,
			IP:        ip,
			OAuthURL:  req.OAuthApprovalURL,
		})
		if err != nil {
			return err
		}
	}

	keys := make([]storage.CrossSigningKey, 0, len(changed))
	var changes []storage.DeviceListChange
	public, private := false, false
	for _, k := range changed {
		keys = append(keys, k.CrossSigningKey)
		if k.Type == storage.KeyTypeUserSigning {
			private = true
		} else {
			public = true
		}
	}
	// Master and self-signing keys are everyone's business; the
	// user-signing key only its owner's.
	if public {
		changes = append(changes, storage.DeviceListChange{UserID: c.UserID})
	}
	if private && !public {
		changes = append(changes, storage.DeviceListChange{UserID: c.UserID, OnlyFor: c.UserID})
	}
	if err := s.db.SetCrossSigningKeys(ctx, keys, changes, s.Now().UnixMilli()); err != nil {
		return fmt.Errorf("store cross-signing keys of %s: %w", c.UserID, err)
	}
	if sess != nil {
		s.accounts.Done(sess)
	}
	s.log.Info("cross-signing keys uploaded", "user", c.UserID, "keys", len(keys))
	if public {
		s.wakeAudience(ctx, c.UserID)
		if s.fed != nil {
			s.fed.SigningKeysChanged(ctx, c.UserID)
		}
	} else {
		s.notify.Wake(c.UserID)
	}
	return nil
}

// SignatureFailure is one entry of the failures of a signature upload.
type SignatureFailure struct {
	ErrCode string `json:"errcode"`
	Err     string `json:"error"`
}

func failure(e mautrix.RespError, msg string) SignatureFailure {
	return SignatureFailure{ErrCode: e.ErrCode, Err: msg}
}

// SignatureUploadResponse is the answer of POST /keys/signatures/upload.
type SignatureUploadResponse struct {
	Failures map[id.UserID]map[string]SignatureFailure `json:"failures"`
}

func (r *SignatureUploadResponse) fail(user id.UserID, key string, f SignatureFailure) {
	if r.Failures[user] == nil {
		r.Failures[user] = map[string]SignatureFailure{}
	}
	r.Failures[user][key] = f
}

// UploadSignatures answers POST /keys/signatures/upload: signatures of
// the caller's devices by their self-signing key, of the caller's master
// key by their devices, and of other users' master keys by the caller's
// user-signing key. Every signature is verified; each key that fails gets
// its own entry in failures while the others are stored.
func (s *Service) UploadSignatures(ctx context.Context, caller id.UserID, body map[id.UserID]map[string]json.RawMessage) (*SignatureUploadResponse, error) {
	resp := &SignatureUploadResponse{Failures: map[id.UserID]map[string]SignatureFailure{}}
	for _, u := range sortedKeys(body) {
		if _, _, err := u.Parse(); err != nil || !strings.HasPrefix(string(u), "@") {
			return nil, mautrix.MInvalidParam.WithMessage(fmt.Sprintf("%q is not a user ID", u))
		}
	}
	own, err := s.crossSigningKeysOf(ctx, caller)
	if err != nil {
		return nil, err
	}
	var sigs []storage.KeySignature
	var changes []storage.DeviceListChange
	if objs := body[caller]; len(objs) > 0 {
		got, err := s.selfSignatures(ctx, caller, own, objs, resp)
		if err != nil {
			return nil, err
		}
		if len(got) > 0 {
			sigs = append(sigs, got...)
			changes = append(changes, storage.DeviceListChange{UserID: caller})
		}
	}
	var signedUsers []id.UserID
	for _, target := range sortedKeys(body) {
		if target == caller || len(body[target]) == 0 {
			continue
		}
		sig, ok, err := s.userSignature(ctx, caller, own, target, body[target], resp)
		if err != nil {
			return nil, err
		}
		if ok {
			sigs = append(sigs, sig)
			changes = append(changes, storage.DeviceListChange{UserID: target, OnlyFor: caller})
			signedUsers = append(signedUsers, target)
		}
	}
	if len(sigs) == 0 {
		return resp, nil
	}
	if err := s.db.StoreSignatures(ctx, sigs, changes); err != nil {
		return nil, fmt.Errorf("store signatures of %s: %w", caller, err)
	}
	if len(changes) > 0 && changes[0].OnlyFor == "" {
		s.wakeAudience(ctx, caller)
		// Other servers get the caller's devices and master key with
		// their new signatures.
		s.deviceListChanged(ctx, caller)
		if s.fed != nil {
			s.fed.SigningKeysChanged(ctx, caller)
		}
	} else if len(signedUsers) > 0 {
		s.notify.Wake(caller)
	}
	return resp, nil
}

// selfSignatures checks signatures of the caller's own keys: devices
// signed by the self-signing key, and the master key signed by devices.
func (s *Service) selfSignatures(ctx context.Context, caller id.UserID, own map[string]storage.CrossSigningKey, objs map[string]json.RawMessage, resp *SignatureUploadResponse) ([]storage.KeySignature, error) {
	devices, err := s.db.DeviceKeysOf(ctx, []id.UserID{caller})
	if err != nil {
		return nil, err
	}
	deviceKeys := map[string]json.RawMessage{}
	for _, d := range devices {
		deviceKeys[string(d.DeviceID)] = d.JSON
	}
	// Signatures already stored need not verify again (a client may send
	// the key back with the signatures it got from /keys/query).
	stored, err := s.db.SignaturesOf(ctx, []id.UserID{caller}, caller)
	if err != nil {
		return nil, err
	}
	known := map[[2]string]string{}
	for _, sig := range stored {
		known[[2]string{sig.TargetKey, sig.SignerKeyID}] = sig.Signature
	}

	var out []storage.KeySignature
	master, hasMaster := own[storage.KeyTypeMaster]
	ssk, hasSSK := own[storage.KeyTypeSelfSigning]
	for _, keyID := range sortedKeys(objs) {
		raw := objs[keyID]
		mine := signaturesOf(raw)[string(caller)]
		if _, ok := object(raw); !ok {
			resp.fail(caller, keyID, failure(mautrix.MBadJSON, "Not a signed key object"))
			continue
		}
		if hasMaster && keyID == master.PublicKey {
			// The master key, signed by one or more of the caller's devices.
			if !sameSignedPart(raw, master.JSON) {
				resp.fail(caller, keyID, failure(mautrix.MInvalidParam, "The signed key does not match your master key"))
				continue
			}
			var add []storage.KeySignature
			var bad string
			for _, signer := range sortedKeys(mine) {
				sig := mine[signer]
				if known[[2]string{keyID, signer}] == sig || signaturesOf(master.JSON)[string(caller)][signer] == sig {
					continue
				}
				devID, ok := strings.CutPrefix(signer, "ed25519:")
				pub := ""
				if dk, has := deviceKeys[devID]; ok && has {
					var f deviceKeysFields
					if json.Unmarshal(dk, &f) == nil && f.Keys != nil {
						pub = (*f.Keys)[signer]
					}
				}
				if pub == "" || verify(raw, caller, signer, pub) != nil {
					bad = signer
					break
				}
				add = append(add, storage.KeySignature{TargetUserID: caller, TargetKey: keyID, SignerUserID: caller, SignerKeyID: signer, Signature: sig})
			}
			switch {
			case bad != "":
				resp.fail(caller, keyID, failure(MInvalidSignature, "Invalid signature by "+bad+": not one of your devices' keys, or it does not verify"))
			case len(add) == 0 && len(mine) == 0:
				resp.fail(caller, keyID, failure(MInvalidSignature, "No signature by one of your devices"))
			default:
				out = append(out, add...)
			}
			continue
		}
		dk, isDevice := deviceKeys[keyID]
		if !isDevice {
			resp.fail(caller, keyID, failure(mautrix.MNotFound, "Unknown device or key"))
			continue
		}
		if !hasSSK {
			resp.fail(caller, keyID, failure(mautrix.MNotFound, "You have no self-signing key to sign devices with"))
			continue
		}
		if !sameSignedPart(raw, dk) {
			resp.fail(caller, keyID, failure(mautrix.MInvalidParam, "The signed device keys do not match the device's keys"))
			continue
		}
		signer := "ed25519:" + ssk.PublicKey
		sig, ok := mine[signer]
		if !ok {
			resp.fail(caller, keyID, failure(MInvalidSignature, "No signature by your self-signing key "+signer))
			continue
		}
		if verify(raw, caller, signer, ssk.PublicKey) != nil {
			resp.fail(caller, keyID, failure(MInvalidSignature, "Invalid signature by your self-signing key"))
			continue
		}
		out = append(out, storage.KeySignature{TargetUserID: caller, TargetKey: keyID, SignerUserID: caller, SignerKeyID: signer, Signature: sig})
	}
	return out, nil
}

// userSignature checks the caller's signature of another user's master
// key by the caller's user-signing key. Any other key of that user in the
// request fails: only master keys are signed across users.
func (s *Service) userSignature(ctx context.Context, caller id.UserID, own map[string]storage.CrossSigningKey, target id.UserID, objs map[string]json.RawMessage, resp *SignatureUploadResponse) (storage.KeySignature, bool, error) {
	failAll := func(f SignatureFailure) (storage.KeySignature, bool, error) {
		for k := range objs {
			resp.fail(target, k, f)
		}
		return storage.KeySignature{}, false, nil
	}
	usk, ok := own[storage.KeyTypeUserSigning]
	if !ok {
		return failAll(failure(mautrix.MNotFound, "You have no user-signing key to sign other users with"))
	}
	master, ok, err := s.masterKeyOf(ctx, target)
	if err != nil {
		return storage.KeySignature{}, false, err
	}
	if !ok {
		return failAll(failure(mautrix.MNotFound, "This user has no master key"))
	}
	var result storage.KeySignature
	var stored bool
	for _, keyID := range sortedKeys(objs) {
		raw := objs[keyID]
		if keyID != master.PublicKey {
			resp.fail(target, keyID, failure(mautrix.MNotFound, "Unknown key: only a user's master key can be signed"))
			continue
		}
		if _, ok := object(raw); !ok || !sameSignedPart(raw, master.JSON) {
			resp.fail(target, keyID, failure(mautrix.MInvalidParam, "The signed key does not match the user's master key"))
			continue
		}
		signer := "ed25519:" + usk.PublicKey
		sig, ok := signaturesOf(raw)[string(caller)][signer]
		if !ok {
			resp.fail(target, keyID, failure(MInvalidSignature, "No signature by your user-signing key "+signer))
			continue
		}
		if verify(raw, caller, signer, usk.PublicKey) != nil {
			resp.fail(target, keyID, failure(MInvalidSignature, "Invalid signature by your user-signing key"))
			continue
		}
		result = storage.KeySignature{TargetUserID: target, TargetKey: keyID, SignerUserID: caller, SignerKeyID: signer, Signature: sig}
		stored = true
	}
	return result, stored, nil
}

// masterKeyOf returns a user's master key: a local user's as stored, a
// remote user's as /keys/query would give it (from the device-list cache
// or their server). A signature of a remote user's master key stays on
// this server, shown to its signer only: the spec has no way to pass it to
// the user's server, nor a reason to, as only the signer relies on it.
func (s *Service) masterKeyOf(ctx context.Context, user id.UserID) (storage.CrossSigningKey, bool, error) {
	if s.isLocal(user) {
		keys, err := s.crossSigningKeysOf(ctx, user)
		if err != nil {
			return storage.CrossSigningKey{}, false, err
		}
		k, ok := keys[storage.KeyTypeMaster]
		return k, ok, nil
	}
	resp, err := s.QueryKeys(ctx, "", map[id.UserID][]id.DeviceID{user: {}})
	if err != nil {
		return storage.CrossSigningKey{}, false, err
	}
	raw, ok := resp.MasterKeys[user]
	if !ok {
		return storage.CrossSigningKey{}, false, nil
	}
	pub := publicKeyOf(raw)
	if pub == "" {
		return storage.CrossSigningKey{}, false, nil
	}
	return storage.CrossSigningKey{UserID: user, Type: storage.KeyTypeMaster, PublicKey: pub, JSON: raw}, true, nil
}
