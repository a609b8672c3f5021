package e2ee

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/federation/signutil"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/storage"
)

// MInvalidSignature answers a key whose signature does not verify.
var MInvalidSignature = mautrix.RespError{ErrCode: "M_INVALID_SIGNATURE", StatusCode: http.StatusBadRequest}

// signatures is the "signatures" property of signed JSON: user ID → key
// ID (such as ed25519:DEVICEID) → unpadded base64 signature.
type signatures map[string]map[string]string

// canonical returns raw in canonical JSON, refusing what canonical JSON
// cannot represent (duplicate keys, invalid UTF-8, out-of-range numbers):
// a signature over such JSON would mean different things to different
// clients.
func canonical(raw json.RawMessage) (json.RawMessage, error) {
	out := json.RawMessage(bytes.Clone(raw))
	if err := canonicaljson.Canonicalize(&out); err != nil {
		return nil, err
	}
	return out, nil
}

// object decodes a JSON object into its members, or reports that raw is
// not one.
func object(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, false
	}
	return m, true
}

// signedPart is what a signature of raw covers: the object without
// "signatures" and "unsigned", in canonical JSON. Two uploads of the same
// key compare equal on it even when their signatures differ. Anything
// but an object is its own signed part.
func signedPart(raw json.RawMessage) []byte {
	m, ok := object(raw)
	if !ok {
		c, err := canonical(raw)
		if err != nil {
			return raw
		}
		return c
	}
	delete(m, "signatures")
	delete(m, "unsigned")
	b, err := json.Marshal(m)
	if err != nil {
		return raw
	}
	c, err := canonical(b)
	if err != nil {
		return b
	}
	return c
}

// sameSignedPart compares two keys signatures aside.
func sameSignedPart(a, b json.RawMessage) bool { return bytes.Equal(signedPart(a), signedPart(b)) }

// withoutUnsigned drops a client-sent "unsigned" (the server fills its own
// when it hands the object out) and returns canonical JSON.
func withoutUnsigned(raw json.RawMessage) (json.RawMessage, error) {
	m, ok := object(raw)
	if !ok {
		return nil, errors.New("not a JSON object")
	}
	if _, has := m["unsigned"]; has {
		delete(m, "unsigned")
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		raw = b
	}
	return canonical(raw)
}

// validEd25519 tells whether s is an unpadded base64 ed25519 public key.
func validEd25519(s string) bool {
	b, err := base64.RawStdEncoding.DecodeString(s)
	return err == nil && len(b) == 32
}

// verify checks raw's signature by signer's key keyID ("ed25519:…") with
// the ed25519 public key pub.
func verify(raw json.RawMessage, signer id.UserID, keyID string, pub string) error {
	return signutil.VerifyJSON(string(signer), id.KeyID(keyID), id.SigningKey(pub), raw)
}

// signaturesOf reads the signatures of a signed object; a malformed
// property reads as none.
func signaturesOf(raw json.RawMessage) signatures {
	m, ok := object(raw)
	if !ok {
		return nil
	}
	var sigs signatures
	if err := json.Unmarshal(m["signatures"], &sigs); err != nil {
		return nil
	}
	return sigs
}

// merged returns raw with extra signatures added to its own, and with
// unsigned set when given. Stored keys are valid JSON objects, so failure
// here is a corrupt database and is returned.
func merged(raw json.RawMessage, extra []storage.KeySignature, unsigned map[string]any) (json.RawMessage, error) {
	if len(extra) == 0 && unsigned == nil {
		return raw, nil
	}
	m, ok := object(raw)
	if !ok {
		return nil, errors.New("stored key is not a JSON object")
	}
	if len(extra) > 0 {
		sigs := signaturesOf(raw)
		if sigs == nil {
			sigs = signatures{}
		}
		for _, sig := range extra {
			byUser := sigs[string(sig.SignerUserID)]
			if byUser == nil {
				byUser = map[string]string{}
				sigs[string(sig.SignerUserID)] = byUser
			}
			byUser[sig.SignerKeyID] = sig.Signature
		}
		b, err := json.Marshal(sigs)
		if err != nil {
			return nil, err
		}
		m["signatures"] = b
	}
	if unsigned != nil {
		b, err := json.Marshal(unsigned)
		if err != nil {
			return nil, err
		}
		m["unsigned"] = b
	}
	return json.Marshal(m)
}

// sortedKeys returns a map's keys in order, for deterministic processing.
func sortedKeys[K ~string, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}
