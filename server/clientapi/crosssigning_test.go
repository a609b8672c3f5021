package clientapi_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/goolm/pk"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/federation/signutil"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// csFirst is the public key of a cross-signing key from a map ("" if
// absent).
func csFirst(keys map[id.UserID]mautrix.CrossSigningKeys, user id.UserID) id.Ed25519 {
	k, ok := keys[user]
	if !ok {
		return ""
	}
	return k.FirstKey()
}

// csIdentity is a user's three cross-signing key pairs.
type csIdentity struct {
	user                  id.UserID
	master, self, userKey *pk.Signing
}

func csNewSigning(t *testing.T) *pk.Signing {
	t.Helper()
	s, err := pk.NewSigning()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func csNew(t *testing.T, user id.UserID) *csIdentity {
	t.Helper()
	return &csIdentity{user: user, master: csNewSigning(t), self: csNewSigning(t), userKey: csNewSigning(t)}
}

func csKeyID(s *pk.Signing) string { return "ed25519:" + string(s.PublicKey()) }

// csSign signs obj with s as user, under s's key ID.
func csSign(t *testing.T, s *pk.Signing, user id.UserID, obj any) signatures.Signatures {
	t.Helper()
	sig, err := s.SignJSON(obj)
	if err != nil {
		t.Fatal(err)
	}
	return signatures.NewSingleSignature(user, id.KeyAlgorithmEd25519, string(s.PublicKey()), sig)
}

// key is the public CrossSigningKey of s, signed by signer (if any).
func (x *csIdentity) key(t *testing.T, s *pk.Signing, usage id.CrossSigningUsage, signer *pk.Signing) mautrix.CrossSigningKeys {
	t.Helper()
	k := mautrix.CrossSigningKeys{
		UserID: x.user,
		Usage:  []id.CrossSigningUsage{usage},
		Keys:   map[id.KeyID]id.Ed25519{id.KeyID(csKeyID(s)): s.PublicKey()},
	}
	if signer != nil {
		k.Signatures = csSign(t, signer, x.user, k)
	}
	return k
}

func (x *csIdentity) request(t *testing.T) *mautrix.UploadCrossSigningKeysReq[any] {
	t.Helper()
	return &mautrix.UploadCrossSigningKeysReq[any]{
		Master:      x.key(t, x.master, id.XSUsageMaster, nil),
		SelfSigning: x.key(t, x.self, id.XSUsageSelfSigning, x.master),
		UserSigning: x.key(t, x.userKey, id.XSUsageUserSigning, x.master),
	}
}

// csPassword answers a UIA challenge with the test password.
func csPassword(localpart string) mautrix.UIACallback {
	return func(r *mautrix.RespUserInteractive) any {
		return &mautrix.ReqUIAuthLogin{
			BaseAuthData: mautrix.BaseAuthData{Type: mautrix.AuthTypePassword, Session: r.Session},
			User:         localpart,
			Password:     testserver.DefaultPassword,
		}
	}
}

// csVerified checks that key carries a valid signature by signer.
func csVerified(t *testing.T, what string, key any, user id.UserID, signer *pk.Signing) {
	t.Helper()
	csVerifiedKey(t, what, key, user, csKeyID(signer), string(signer.PublicKey()))
}

// csVerifiedKey checks that key carries a valid signature by user's key
// keyID, whose public key is pub.
func csVerifiedKey(t *testing.T, what string, key any, user id.UserID, keyID, pub string) {
	t.Helper()
	raw, err := json.Marshal(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := signutil.VerifyJSON(string(user), id.KeyID(keyID), id.SigningKey(pub), json.RawMessage(raw)); err != nil {
		t.Fatalf("%s: signature by %s does not verify: %v (%s)", what, keyID, err, raw)
	}
}

func TestCrossSigningBootstrap(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(t.Context(), roomID); err != nil {
		t.Fatal(err)
	}
	bobSince := syncOnce(t, bob, "", "", 0).NextBatch
	x := csNew(t, alice.UserID)

	// The first upload needs no password (Element's bootstrap).
	if err := alice.UploadCrossSigningKeys(t.Context(), x.request(t), nil); err != nil {
		t.Fatalf("first upload: %v", err)
	}
	own := keysQuery(t, alice, alice.UserID)
	if csFirst(own.MasterKeys, alice.UserID) != x.master.PublicKey() ||
		csFirst(own.SelfSigningKeys, alice.UserID) != x.self.PublicKey() ||
		csFirst(own.UserSigningKeys, alice.UserID) != x.userKey.PublicKey() {
		t.Fatalf("alice's own view: %+v %+v %+v", own.MasterKeys, own.SelfSigningKeys, own.UserSigningKeys)
	}
	csVerified(t, "self-signing key", own.SelfSigningKeys[alice.UserID], alice.UserID, x.master)
	theirs := keysQuery(t, bob, alice.UserID)
	if csFirst(theirs.MasterKeys, alice.UserID) != x.master.PublicKey() || csFirst(theirs.SelfSigningKeys, alice.UserID) != x.self.PublicKey() {
		t.Fatalf("bob's view: %+v %+v", theirs.MasterKeys, theirs.SelfSigningKeys)
	}
	if _, ok := theirs.UserSigningKeys[alice.UserID]; ok {
		t.Fatal("bob sees alice's user-signing key")
	}
	resp := syncOnce(t, bob, bobSince, "", 0)
	if !slices.Contains(resp.DeviceLists.Changed, alice.UserID) {
		t.Fatalf("bob's device_lists after alice's cross-signing upload: %+v", resp.DeviceLists)
	}
	bobSince = resp.NextBatch

	// The same keys again (a retry whose answer got lost) need no password.
	if err := alice.UploadCrossSigningKeys(t.Context(), x.request(t), nil); err != nil {
		t.Fatalf("identical re-upload: %v", err)
	}

	// Replacing them does: 401 with the password flow, then success.
	y := csNew(t, alice.UserID)
	r := acctDo(t, alice, "POST", "/_matrix/client/v3/keys/device_signing/upload", y.request(t))
	if flows := fmt.Sprint(r.Body["flows"]); r.Status != 401 || flows != "[map[stages:[m.login.password]]]" || r.Body["session"] == nil {
		t.Fatalf("replacing without auth: %d %v, want a 401 asking for the password", r.Status, r.Body)
	}
	wrong := func(r *mautrix.RespUserInteractive) any {
		return &mautrix.ReqUIAuthLogin{BaseAuthData: mautrix.BaseAuthData{Type: mautrix.AuthTypePassword, Session: r.Session}, User: "alice", Password: "not the password"}
	}
	roomErr(t, "replacing with a wrong password", alice.UploadCrossSigningKeys(t.Context(), y.request(t), wrong), 401, "M_FORBIDDEN")
	if got := csFirst(keysQuery(t, bob, alice.UserID).MasterKeys, alice.UserID); got != x.master.PublicKey() {
		t.Fatal("a refused replacement changed the master key")
	}
	if err := alice.UploadCrossSigningKeys(t.Context(), y.request(t), csPassword("alice")); err != nil {
		t.Fatalf("replacing with the password: %v", err)
	}
	if got := csFirst(keysQuery(t, bob, alice.UserID).MasterKeys, alice.UserID); got != y.master.PublicKey() {
		t.Fatalf("master key after replacement: %s", got)
	}
	if resp := syncOnce(t, bob, bobSince, "", 0); !slices.Contains(resp.DeviceLists.Changed, alice.UserID) {
		t.Fatalf("bob's device_lists after alice replaced her keys: %+v", resp.DeviceLists)
	}
}

func TestCrossSigningUploadRejects(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	x := csNew(t, alice.UserID)
	const path = "/_matrix/client/v3/keys/device_signing/upload"
	master := x.key(t, x.master, id.XSUsageMaster, nil)
	ssk := x.key(t, x.self, id.XSUsageSelfSigning, x.master)
	unsignedSSK := x.key(t, x.self, id.XSUsageSelfSigning, nil)
	wrongSigner := x.key(t, x.self, id.XSUsageSelfSigning, x.userKey)
	bobs := csNew(t, bob.UserID)
	twoKeys := master
	twoKeys.Keys = map[id.KeyID]id.Ed25519{id.KeyID(csKeyID(x.master)): x.master.PublicKey(), id.KeyID(csKeyID(x.self)): x.self.PublicKey()}
	misnamed := master
	misnamed.Keys = map[id.KeyID]id.Ed25519{id.KeyID(csKeyID(x.self)): x.master.PublicKey()}
	wrongUsage := x.key(t, x.master, id.XSUsageSelfSigning, nil)

	for _, tc := range []struct {
		what    string
		body    any
		status  int
		errcode string
	}{
		{"self-signing key without a master key", map[string]any{"self_signing_key": ssk}, 400, "M_MISSING_PARAM"},
		{"unsigned self-signing key", map[string]any{"master_key": master, "self_signing_key": unsignedSSK}, 400, "M_INVALID_SIGNATURE"},
		{"self-signing key signed by another key", map[string]any{"master_key": master, "self_signing_key": wrongSigner}, 400, "M_INVALID_SIGNATURE"},
		{"someone else's key", map[string]any{"master_key": bobs.key(t, bobs.master, id.XSUsageMaster, nil)}, 400, "M_INVALID_PARAM"},
		{"wrong usage", map[string]any{"master_key": wrongUsage}, 400, "M_INVALID_PARAM"},
		{"two keys in one", map[string]any{"master_key": twoKeys}, 400, "M_INVALID_PARAM"},
		{"key named after another key", map[string]any{"master_key": misnamed}, 400, "M_INVALID_PARAM"},
		{"missing usage", map[string]any{"master_key": map[string]any{"user_id": alice.UserID, "keys": master.Keys}}, 400, "M_MISSING_PARAM"},
		{"key of the wrong type", map[string]any{"master_key": "key"}, 400, "M_BAD_JSON"},
		{"not JSON", "{", 400, "M_NOT_JSON"},
	} {
		acctExpect(t, tc.what, acctDo(t, alice, "POST", path, tc.body), tc.status, tc.errcode)
	}
	acctExpect(t, "no token", acctDo(t, ts.Client(), "POST", path, map[string]any{"master_key": master}), 401, "M_MISSING_TOKEN")
	if q := keysQuery(t, bob, alice.UserID); len(q.MasterKeys)+len(q.SelfSigningKeys) != 0 {
		t.Fatalf("rejected uploads stored keys: %+v %+v", q.MasterKeys, q.SelfSigningKeys)
	}

	// A cross-signing key may not share its ID with a device.
	clash := csNewSigning(t)
	if _, err := ts.Client().Login(t.Context(), &mautrix.ReqLogin{
		Type:       mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"},
		Password:   testserver.DefaultPassword,
		DeviceID:   id.DeviceID(clash.PublicKey()),
	}); err != nil {
		t.Fatal(err)
	}
	clashing := x.key(t, clash, id.XSUsageMaster, nil)
	acctExpect(t, "master key named like a device", acctDo(t, alice, "POST", path, map[string]any{"master_key": clashing}), 403, "M_FORBIDDEN")
}

func TestSignatureUpload(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	for _, c := range []*mautrix.Client{bob, carol} {
		if _, err := c.JoinRoomByID(t.Context(), roomID); err != nil {
			t.Fatal(err)
		}
	}
	laptop := keysNewDevice(t, alice)
	laptop.upload(t, 0)
	phone := keysNewDevice(t, ts.Login("alice", testserver.DefaultPassword))
	phone.upload(t, 0)
	ax, bx, cx := csNew(t, alice.UserID), csNew(t, bob.UserID), csNew(t, carol.UserID)
	for _, u := range []struct {
		c *mautrix.Client
		x *csIdentity
	}{{alice, ax}, {bob, bx}, {carol, cx}} {
		if err := u.c.UploadCrossSigningKeys(t.Context(), u.x.request(t), nil); err != nil {
			t.Fatal(err)
		}
	}
	bobSince := syncOnce(t, bob, "", "", 0).NextBatch

	// Alice signs her laptop with her self-signing key, forges the phone's
	// signature, names a device that does not exist, and signs her master
	// key with her laptop: one batch, per-key answers.
	laptopKeys := laptop.deviceKeys(t)
	laptopSigned := mautrix.ReqKeysSignatures{UserID: alice.UserID, DeviceID: alice.DeviceID, Algorithms: laptopKeys.Algorithms,
		Keys: map[id.KeyID]string{}}
	for k, v := range laptopKeys.Keys {
		laptopSigned.Keys[id.KeyID(k)] = v
	}
	laptopSigned.Signatures = csSign(t, ax.self, alice.UserID, laptopSigned)
	phoneKeys := phone.deviceKeys(t)
	phoneSigned := mautrix.ReqKeysSignatures{UserID: alice.UserID, DeviceID: phone.c.DeviceID, Algorithms: phoneKeys.Algorithms, Keys: map[id.KeyID]string{}}
	for k, v := range phoneKeys.Keys {
		phoneSigned.Keys[id.KeyID(k)] = v
	}
	forgery, err := csNewSigning(t).SignJSON(phoneSigned)
	if err != nil {
		t.Fatal(err)
	}
	phoneSigned.Signatures = signatures.Signatures{alice.UserID: {id.KeyID(csKeyID(ax.self)): forgery}}
	masterSigned := mautrix.ReqKeysSignatures{UserID: alice.UserID, Usage: []id.CrossSigningUsage{id.XSUsageMaster},
		Keys: map[id.KeyID]string{id.KeyID(csKeyID(ax.master)): string(ax.master.PublicKey())}}
	masterSigned.Signatures = laptop.sign(t, masterSigned)

	resp, err := alice.UploadSignatures(t.Context(), &mautrix.ReqUploadSignatures{alice.UserID: {
		string(alice.DeviceID):        laptopSigned,
		string(phone.c.DeviceID):      phoneSigned,
		"NOSUCHDEVICE":                laptopSigned,
		string(ax.master.PublicKey()): masterSigned,
	}})
	if err != nil {
		t.Fatal(err)
	}
	fails := csFailures(t, resp)
	if len(fails) != 2 || fails[string(alice.UserID)+"/"+string(phone.c.DeviceID)] != "M_INVALID_SIGNATURE" || fails[string(alice.UserID)+"/NOSUCHDEVICE"] != "M_NOT_FOUND" {
		t.Fatalf("failures = %v, want the forged phone and the unknown device only", fails)
	}
	q := keysQuery(t, bob, alice.UserID)
	csVerified(t, "alice's laptop as bob sees it", q.DeviceKeys[alice.UserID][alice.DeviceID], alice.UserID, ax.self)
	if sigs := q.DeviceKeys[alice.UserID][phone.c.DeviceID].Signatures[alice.UserID]; len(sigs) != 1 {
		t.Fatalf("the forged signature was stored: %v", sigs)
	}
	if got := q.MasterKeys[alice.UserID].Signatures[alice.UserID][id.KeyID(laptop.keyID())]; got == "" {
		t.Fatalf("alice's master key lacks her laptop's signature: %+v", q.MasterKeys[alice.UserID])
	}
	resp2 := syncOnce(t, bob, bobSince, "", 0)
	if !slices.Contains(resp2.DeviceLists.Changed, alice.UserID) {
		t.Fatalf("bob's device_lists after alice signed her device: %+v", resp2.DeviceLists)
	}
	bobSince = resp2.NextBatch

	// Bob verifies alice (signs her master key with his user-signing key),
	// and in the same batch sends carol's master key with a bad signature.
	aliceMaster := keysQuery(t, bob, alice.UserID).MasterKeys[alice.UserID]
	bobSigned := mautrix.ReqKeysSignatures{UserID: alice.UserID, Usage: aliceMaster.Usage, Keys: map[id.KeyID]string{}}
	for k, v := range aliceMaster.Keys {
		bobSigned.Keys[k] = string(v)
	}
	bobSigned.Signatures = csSign(t, bx.userKey, bob.UserID, bobSigned)
	carolSigned := mautrix.ReqKeysSignatures{UserID: carol.UserID, Usage: []id.CrossSigningUsage{id.XSUsageMaster},
		Keys: map[id.KeyID]string{id.KeyID(csKeyID(cx.master)): string(cx.master.PublicKey())}}
	carolSigned.Signatures = csSign(t, bx.self, bob.UserID, carolSigned) // the wrong key of bob's
	carolSigned.Signatures = signatures.Signatures{bob.UserID: {id.KeyID(csKeyID(bx.userKey)): carolSigned.Signatures[bob.UserID][id.KeyID(csKeyID(bx.self))]}}
	resp, err = bob.UploadSignatures(t.Context(), &mautrix.ReqUploadSignatures{
		alice.UserID: {string(ax.master.PublicKey()): bobSigned},
		carol.UserID: {string(cx.master.PublicKey()): carolSigned, "CAROLSDEVICE": carolSigned},
	})
	if err != nil {
		t.Fatal(err)
	}
	fails = csFailures(t, resp)
	if len(fails) != 2 || fails[string(carol.UserID)+"/"+string(cx.master.PublicKey())] != "M_INVALID_SIGNATURE" || fails[string(carol.UserID)+"/CAROLSDEVICE"] != "M_NOT_FOUND" {
		t.Fatalf("failures = %v, want carol's bad signature and her device", fails)
	}
	byBob := keysQuery(t, bob, alice.UserID).MasterKeys[alice.UserID]
	csVerified(t, "alice's master key signed by bob, as bob sees it", byBob, bob.UserID, bx.userKey)
	csVerifiedKey(t, "alice's master key keeps her laptop's signature", byBob, alice.UserID, laptop.keyID(), laptop.ed25519())
	// Who bob verified is his business: carol and alice do not see it.
	for _, viewer := range []*mautrix.Client{carol, alice} {
		if sigs := keysQuery(t, viewer, alice.UserID).MasterKeys[alice.UserID].Signatures[bob.UserID]; len(sigs) != 0 {
			t.Fatalf("%s sees bob's signature of alice: %v", viewer.UserID, sigs)
		}
	}
	if resp := syncOnce(t, bob, bobSince, "", 0); !slices.Contains(resp.DeviceLists.Changed, alice.UserID) {
		t.Fatalf("bob's device_lists after he signed alice: %+v", resp.DeviceLists)
	}

	// Bad input: not an object of objects, no token, a non-user key.
	const path = "/_matrix/client/v3/keys/signatures/upload"
	acctExpect(t, "not JSON", acctDo(t, bob, "POST", path, "{"), 400, "M_NOT_JSON")
	acctExpect(t, "user entry not an object", acctDo(t, bob, "POST", path, map[string]any{string(alice.UserID): "x"}), 400, "M_BAD_JSON")
	acctExpect(t, "not a user ID", acctDo(t, bob, "POST", path, map[string]any{"alice": map[string]any{}}), 400, "M_INVALID_PARAM")
	acctExpect(t, "no token", acctDo(t, ts.Client(), "POST", path, map[string]any{}), 401, "M_MISSING_TOKEN")
	r := acctDo(t, carol, "POST", path, map[string]any{string(carol.UserID): map[string]any{"X": "not an object"}})
	acctExpect(t, "key not an object", r, 200, "")
	if f := r.Body["failures"].(map[string]any)[string(carol.UserID)].(map[string]any)["X"].(map[string]any); f["errcode"] != "M_BAD_JSON" {
		t.Fatalf("failure for a non-object key: %v", f)
	}
}

// csFailures flattens a signature upload's failures to "user/key" →
// errcode.
func csFailures(t *testing.T, resp *mautrix.RespUploadSignatures) map[string]string {
	t.Helper()
	out := map[string]string{}
	for user, keys := range resp.Failures {
		for key, f := range keys.(map[string]any) {
			out[user+"/"+key] = f.(map[string]any)["errcode"].(string)
		}
	}
	return out
}
