package clientapi_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/goolm/pk"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/federation/signutil"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// keysDevice is a logged-in device with its own ed25519 identity key,
// signing its uploads the way a real client does.
type keysDevice struct {
	c      *mautrix.Client
	signer *pk.Signing
	curve  string
	n      int // one-time keys made so far
}

func keysRandomKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawStdEncoding.EncodeToString(b)
}

func keysNewDevice(t *testing.T, c *mautrix.Client) *keysDevice {
	t.Helper()
	s, err := pk.NewSigning()
	if err != nil {
		t.Fatal(err)
	}
	return &keysDevice{c: c, signer: s, curve: keysRandomKey(t)}
}

func (d *keysDevice) ed25519() string { return string(d.signer.PublicKey()) }

func (d *keysDevice) keyID() string { return "ed25519:" + string(d.c.DeviceID) }

// sign signs obj with the device's key, as "signatures" expects it.
func (d *keysDevice) sign(t *testing.T, obj any) signatures.Signatures {
	t.Helper()
	sig, err := d.signer.SignJSON(obj)
	if err != nil {
		t.Fatal(err)
	}
	return signatures.NewSingleSignature(d.c.UserID, id.KeyAlgorithmEd25519, string(d.c.DeviceID), sig)
}

// deviceKeys returns the device's signed identity keys.
func (d *keysDevice) deviceKeys(t *testing.T) *mautrix.DeviceKeys {
	t.Helper()
	dk := &mautrix.DeviceKeys{
		UserID:     d.c.UserID,
		DeviceID:   d.c.DeviceID,
		Algorithms: []id.Algorithm{id.AlgorithmOlmV1, id.AlgorithmMegolmV1},
		Keys: mautrix.KeyMap{
			id.NewDeviceKeyID(id.KeyAlgorithmEd25519, d.c.DeviceID):    d.ed25519(),
			id.NewDeviceKeyID(id.KeyAlgorithmCurve25519, d.c.DeviceID): d.curve,
		},
	}
	dk.Signatures = d.sign(t, dk)
	return dk
}

// otks makes n signed one-time keys (or one fallback key).
func (d *keysDevice) otks(t *testing.T, n int, fallback bool) map[id.KeyID]mautrix.OneTimeKey {
	t.Helper()
	out := map[id.KeyID]mautrix.OneTimeKey{}
	for range n {
		d.n++
		k := mautrix.OneTimeKey{Key: id.Curve25519(keysRandomKey(t)), Fallback: fallback, IsSigned: true}
		k.Signatures = d.sign(t, &k)
		out[id.NewKeyID(id.KeyAlgorithmSignedCurve25519, fmt.Sprintf("AAAA%04d", d.n))] = k
	}
	return out
}

// upload sends device keys and n one-time keys, and returns the count.
func (d *keysDevice) upload(t *testing.T, n int) int {
	t.Helper()
	resp, err := d.c.UploadKeys(t.Context(), &mautrix.ReqUploadKeys{DeviceKeys: d.deviceKeys(t), OneTimeKeys: d.otks(t, n, false)})
	if err != nil {
		t.Fatalf("upload keys of %s: %v", d.c.DeviceID, err)
	}
	return resp.OneTimeKeyCounts.SignedCurve25519
}

// uploadFallback sends a fallback key (and no one-time key).
func (d *keysDevice) uploadFallback(t *testing.T, key map[id.KeyID]mautrix.OneTimeKey) {
	t.Helper()
	r := acctDo(t, d.c, "POST", "/_matrix/client/v3/keys/upload", map[string]any{"fallback_keys": key})
	acctExpect(t, "upload fallback key", r, 200, "")
}

// keysQuery asks c's server for the keys of users (all devices).
func keysQuery(t *testing.T, c *mautrix.Client, users ...id.UserID) *mautrix.RespQueryKeys {
	t.Helper()
	req := &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{}}
	for _, u := range users {
		req.DeviceKeys[u] = mautrix.DeviceIDList{}
	}
	resp, err := c.QueryKeys(t.Context(), req)
	if err != nil {
		t.Fatalf("query keys: %v", err)
	}
	return resp
}

// keysClaim claims one signed_curve25519 key of each device.
func keysClaim(t *testing.T, c *mautrix.Client, devices ...*keysDevice) *mautrix.RespClaimKeys {
	t.Helper()
	req := &mautrix.ReqClaimKeys{OneTimeKeys: mautrix.OneTimeKeysRequest{}}
	for _, d := range devices {
		if req.OneTimeKeys[d.c.UserID] == nil {
			req.OneTimeKeys[d.c.UserID] = map[id.DeviceID]id.KeyAlgorithm{}
		}
		req.OneTimeKeys[d.c.UserID][d.c.DeviceID] = id.KeyAlgorithmSignedCurve25519
	}
	resp, err := c.ClaimKeys(t.Context(), req)
	if err != nil {
		t.Fatalf("claim keys: %v", err)
	}
	return resp
}

// keysClaimed returns the one key claimed for d ("" if none).
func keysClaimed(resp *mautrix.RespClaimKeys, d *keysDevice) (id.KeyID, mautrix.OneTimeKey) {
	for kid, k := range resp.OneTimeKeys[d.c.UserID][d.c.DeviceID] {
		return kid, k
	}
	return "", mautrix.OneTimeKey{}
}

func TestKeysUploadAndQuery(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	if err := alice.SetDeviceInfo(t.Context(), alice.DeviceID, &mautrix.ReqDeviceInfo{DisplayName: "Alice's laptop"}); err != nil {
		t.Fatal(err)
	}
	dev := keysNewDevice(t, alice)
	if n := dev.upload(t, 5); n != 5 {
		t.Fatalf("one_time_key_counts after uploading 5: %d", n)
	}

	resp := keysQuery(t, bob, alice.UserID)
	got, ok := resp.DeviceKeys[alice.UserID][alice.DeviceID]
	if !ok {
		t.Fatalf("bob does not see alice's device: %+v", resp.DeviceKeys)
	}
	if got.Keys.GetEd25519(alice.DeviceID) != id.Ed25519(dev.ed25519()) || got.Keys.GetCurve25519(alice.DeviceID) != id.Curve25519(dev.curve) {
		t.Fatalf("keys changed on the way: %+v", got.Keys)
	}
	if got.Unsigned["device_display_name"] != "Alice's laptop" {
		t.Fatalf("unsigned = %v, want the device's display name", got.Unsigned)
	}
	// The keys as served still carry the device's valid signature.
	raw, err := json.Marshal(&got)
	if err != nil {
		t.Fatal(err)
	}
	if err := signutil.VerifyJSON(string(alice.UserID), id.KeyID(dev.keyID()), id.SigningKey(dev.ed25519()), json.RawMessage(raw)); err != nil {
		t.Fatalf("served device keys do not verify: %v", err)
	}

	// One device by ID, an unknown device, an unknown user, another server.
	r := acctDo(t, bob, "POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[string]any{
		string(alice.UserID):         []string{string(alice.DeviceID), "NOSUCHDEVICE"},
		"@nobody:" + ts.ServerName(): []string{},
		"@carol:elsewhere.example":   nil,
	}, "timeout": 10000})
	acctExpect(t, "query by device", r, 200, "")
	dks := r.Body["device_keys"].(map[string]any)
	if devs := dks[string(alice.UserID)].(map[string]any); len(devs) != 1 || devs[string(alice.DeviceID)] == nil {
		t.Fatalf("query by device ID: %v", devs)
	}
	if _, ok := dks["@nobody:"+ts.ServerName()]; ok {
		t.Fatal("an unknown user appears in device_keys")
	}
	if f := r.Body["failures"].(map[string]any); f["elsewhere.example"] == nil || len(f) != 1 {
		t.Fatalf("failures = %v, want the unreachable server", f)
	}

	// A user who never uploaded keys is there, with no devices.
	if devs, ok := keysQuery(t, alice, bob.UserID).DeviceKeys[bob.UserID]; !ok || len(devs) != 0 {
		t.Fatalf("bob without keys: present=%v %v", ok, devs)
	}

	// The same keys again are fine and change nothing.
	if _, err := alice.UploadKeys(t.Context(), &mautrix.ReqUploadKeys{DeviceKeys: dev.deviceKeys(t)}); err != nil {
		t.Fatalf("identical re-upload: %v", err)
	}
	if n := dev.upload(t, 0); n != 5 {
		t.Fatalf("count after re-upload: %d", n)
	}
}

// Device keys whose signature is missing or wrong are stored as sent, as
// Synapse does: the clients that fetch them verify the signature.
func TestKeysUploadKeepsUnverifiedDeviceKeys(t *testing.T) {
	ts := testserver.New(t)
	ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	for _, tc := range []struct {
		what   string
		change func(dk *mautrix.DeviceKeys, dev, forger *keysDevice)
	}{
		{"forged signature", func(dk *mautrix.DeviceKeys, _, forger *keysDevice) { dk.Signatures = forger.sign(t, dk) }},
		{"no signature", func(dk *mautrix.DeviceKeys, _, _ *keysDevice) { dk.Signatures = signatures.Signatures{} }},
		{"tampered after signing", func(dk *mautrix.DeviceKeys, _, _ *keysDevice) { dk.Algorithms = dk.Algorithms[:1] }},
		{"no ed25519 key", func(dk *mautrix.DeviceKeys, dev, _ *keysDevice) {
			dk.Keys = mautrix.KeyMap{id.NewDeviceKeyID(id.KeyAlgorithmCurve25519, dev.c.DeviceID): dev.curve}
		}},
	} {
		alice := ts.Login("alice", testserver.DefaultPassword)
		dev, forger := keysNewDevice(t, alice), keysNewDevice(t, alice)
		dk := dev.deviceKeys(t)
		tc.change(dk, dev, forger)
		if _, err := alice.UploadKeys(t.Context(), &mautrix.ReqUploadKeys{DeviceKeys: dk}); err != nil {
			t.Fatalf("%s: %v", tc.what, err)
		}
		got, ok := keysQuery(t, bob, alice.UserID).DeviceKeys[alice.UserID][alice.DeviceID]
		if !ok || len(got.Algorithms) != len(dk.Algorithms) || len(got.Keys) != len(dk.Keys) ||
			got.Keys.GetCurve25519(alice.DeviceID) != id.Curve25519(dev.curve) {
			t.Fatalf("%s: stored %+v, sent %+v", tc.what, got, dk)
		}
	}
}

func TestKeysUploadRejectsBadKeys(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	dev := keysNewDevice(t, alice)
	other := keysNewDevice(t, alice) // another key pair for the same device: a forger
	const path = "/_matrix/client/v3/keys/upload"

	asMap := func(v any) map[string]any {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	good := asMap(dev.deviceKeys(t))
	with := func(change func(m map[string]any)) map[string]any {
		m := asMap(good)
		change(m)
		return map[string]any{"device_keys": m}
	}

	for _, tc := range []struct {
		what    string
		body    any
		status  int
		errcode string
	}{
		{"wrong user ID", with(func(m map[string]any) { m["user_id"] = string(bob.UserID) }), 400, "M_BAD_JSON"},
		{"wrong device ID", with(func(m map[string]any) { m["device_id"] = "OTHERDEVICE" }), 400, "M_BAD_JSON"},
		{"missing algorithms", with(func(m map[string]any) { delete(m, "algorithms") }), 400, "M_BAD_JSON"},
		{"missing user ID", with(func(m map[string]any) { delete(m, "user_id") }), 400, "M_BAD_JSON"},
		{"null device ID", with(func(m map[string]any) { m["device_id"] = nil }), 400, "M_BAD_JSON"},
		{"missing signatures", with(func(m map[string]any) { delete(m, "signatures") }), 400, "M_BAD_JSON"},
		{"user ID not a string", with(func(m map[string]any) { m["user_id"] = 7 }), 400, "M_BAD_JSON"},
		{"algorithms not strings", with(func(m map[string]any) { m["algorithms"] = []any{1} }), 400, "M_BAD_JSON"},
		{"signatures of the wrong shape", with(func(m map[string]any) { m["signatures"] = map[string]any{"x": "y"} }), 400, "M_BAD_JSON"},
		{"keys of the wrong type", with(func(m map[string]any) { m["keys"] = []string{"x"} }), 400, "M_BAD_JSON"},
		{"device_keys not an object", map[string]any{"device_keys": "keys"}, 400, "M_BAD_JSON"},
		{"one_time_keys not an object", map[string]any{"one_time_keys": []string{"a"}}, 400, "M_BAD_JSON"},
		{"not JSON", "{oops", 400, "M_NOT_JSON"},
	} {
		acctExpect(t, tc.what, acctDo(t, alice, "POST", path, tc.body), tc.status, tc.errcode)
	}
	acctExpect(t, "no token", acctDo(t, ts.Client(), "POST", path, map[string]any{}), 401, "M_MISSING_TOKEN")
	if devs := keysQuery(t, bob, alice.UserID).DeviceKeys[alice.UserID]; len(devs) != 0 {
		t.Fatalf("a rejected upload stored keys: %v", devs)
	}

	// Signed one-time keys need the device's keys to check them against.
	acctExpect(t, "signed key before device keys", acctDo(t, alice, "POST", path, map[string]any{"one_time_keys": dev.otks(t, 1, false)}), 400, "M_INVALID_SIGNATURE")
	dev.upload(t, 1)

	// A device's identity cannot change once uploaded.
	changed := keysNewDevice(t, alice)
	_, err := alice.UploadKeys(t.Context(), &mautrix.ReqUploadKeys{DeviceKeys: changed.deviceKeys(t)})
	roomErr(t, "changing device keys", err, 400, "M_INVALID_PARAM")
	if got := keysQuery(t, bob, alice.UserID).DeviceKeys[alice.UserID][alice.DeviceID]; got.Keys.GetEd25519(alice.DeviceID) != id.Ed25519(dev.ed25519()) {
		t.Fatal("the device's keys changed")
	}

	// One-time keys: forged, badly named, re-used IDs.
	forgedOTK := other.otks(t, 1, false)
	acctExpect(t, "forged one-time key", acctDo(t, alice, "POST", path, map[string]any{"one_time_keys": forgedOTK}), 400, "M_INVALID_SIGNATURE")
	acctExpect(t, "key ID without algorithm", acctDo(t, alice, "POST", path, map[string]any{"one_time_keys": map[string]any{"AAAA": "x"}}), 400, "M_BAD_JSON")
	acctExpect(t, "unsigned signed_curve25519", acctDo(t, alice, "POST", path, map[string]any{"one_time_keys": map[string]any{"signed_curve25519:B": "x"}}), 400, "M_BAD_JSON")
	acctExpect(t, "key of a bad type", acctDo(t, alice, "POST", path, map[string]any{"one_time_keys": map[string]any{"curve25519:B": 5}}), 400, "M_BAD_JSON")
	first := dev.otks(t, 1, false)
	if _, err := alice.UploadKeys(t.Context(), &mautrix.ReqUploadKeys{OneTimeKeys: first}); err != nil {
		t.Fatal(err)
	}
	if resp, err := alice.UploadKeys(t.Context(), &mautrix.ReqUploadKeys{OneTimeKeys: first}); err != nil || resp.OneTimeKeyCounts.SignedCurve25519 != 2 {
		t.Fatalf("retrying an upload: %v, count %+v", err, resp)
	}
	var kid id.KeyID
	for k := range first {
		kid = k
	}
	reused := dev.otks(t, 1, false)
	for _, v := range reused {
		reused = map[id.KeyID]mautrix.OneTimeKey{kid: v}
	}
	_, err = alice.UploadKeys(t.Context(), &mautrix.ReqUploadKeys{OneTimeKeys: reused})
	roomErr(t, "another key under a used ID", err, 400, "M_INVALID_PARAM")

	two := dev.otks(t, 2, true)
	acctExpect(t, "two fallback keys of one algorithm", acctDo(t, alice, "POST", path, map[string]any{"fallback_keys": two}), 400, "M_INVALID_PARAM")
}

func TestKeysClaimHandsOutEachKeyOnce(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	dev := keysNewDevice(t, alice)
	dev.upload(t, 1)
	// Keys go out in upload order: one upload after another.
	for range 2 {
		if _, err := alice.UploadKeys(t.Context(), &mautrix.ReqUploadKeys{OneTimeKeys: dev.otks(t, 1, false)}); err != nil {
			t.Fatal(err)
		}
	}
	var got []id.KeyID
	for range 3 {
		kid, k := keysClaimed(keysClaim(t, bob, dev), dev)
		if kid == "" {
			t.Fatalf("claim %d found no key", len(got)+1)
		}
		raw, err := json.Marshal(&k)
		if err != nil {
			t.Fatal(err)
		}
		if err := signutil.VerifyJSON(string(alice.UserID), id.KeyID(dev.keyID()), id.SigningKey(dev.ed25519()), json.RawMessage(raw)); err != nil {
			t.Fatalf("claimed key does not verify: %v", err)
		}
		got = append(got, kid)
	}
	want := []id.KeyID{"signed_curve25519:AAAA0001", "signed_curve25519:AAAA0002", "signed_curve25519:AAAA0003"}
	if !slices.Equal(got, want) {
		t.Fatalf("claimed %v, want %v (upload order, each once)", got, want)
	}
	if kid, _ := keysClaimed(keysClaim(t, bob, dev), dev); kid != "" {
		t.Fatalf("a fourth claim got %s with no keys left", kid)
	}

	// Unknown users and devices are simply absent; other servers fail.
	r := acctDo(t, bob, "POST", "/_matrix/client/v3/keys/claim", map[string]any{"one_time_keys": map[string]any{
		"@nobody:" + ts.ServerName(): map[string]string{"DEV": "signed_curve25519"},
		string(alice.UserID):         map[string]string{"NOSUCHDEVICE": "signed_curve25519"},
		"@carol:elsewhere.example":   map[string]string{"DEV": "signed_curve25519"},
	}})
	acctExpect(t, "claim for unknown users", r, 200, "")
	if otks := r.Body["one_time_keys"].(map[string]any); len(otks) != 0 {
		t.Fatalf("one_time_keys = %v, want none", otks)
	}
	if f := r.Body["failures"].(map[string]any); len(f) != 1 || f["elsewhere.example"] == nil {
		t.Fatalf("failures = %v", f)
	}

	for _, tc := range []struct {
		what    string
		body    any
		errcode string
	}{
		{"missing one_time_keys", map[string]any{}, "M_MISSING_PARAM"},
		{"one_time_keys not an object", map[string]any{"one_time_keys": []string{}}, "M_BAD_JSON"},
		{"not a user ID", map[string]any{"one_time_keys": map[string]any{"alice": map[string]string{"D": "signed_curve25519"}}}, "M_INVALID_PARAM"},
		{"empty algorithm", map[string]any{"one_time_keys": map[string]any{string(alice.UserID): map[string]string{"D": ""}}}, "M_INVALID_PARAM"},
		{"not JSON", "nope", "M_NOT_JSON"},
	} {
		acctExpect(t, tc.what, acctDo(t, bob, "POST", "/_matrix/client/v3/keys/claim", tc.body), 400, tc.errcode)
	}
	acctExpect(t, "claim without token", acctDo(t, ts.Client(), "POST", "/_matrix/client/v3/keys/claim", map[string]any{"one_time_keys": map[string]any{}}), 401, "M_MISSING_TOKEN")
}

func TestKeysConcurrentClaims(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	dev := keysNewDevice(t, alice)
	dev.upload(t, 1)
	claimers := make([]*mautrix.Client, 4)
	for i := range claimers {
		claimers[i] = ts.RegisterUser(fmt.Sprintf("claimer%d", i))
	}
	body := map[string]any{"one_time_keys": map[string]any{string(alice.UserID): map[string]string{string(alice.DeviceID): "signed_curve25519"}}}

	// 20 claims at once for one key: exactly one gets it.
	const n = 20
	results := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			r, err := acctTry(t, claimers[i%len(claimers)], "POST", "/_matrix/client/v3/keys/claim", body)
			if err != nil || r.Status != 200 {
				errs[i] = fmt.Errorf("claim %d: %v %v", i, err, r.Body)
				return
			}
			for _, keys := range r.Body["one_time_keys"].(map[string]any) {
				for _, k := range keys.(map[string]any) {
					for kid := range k.(map[string]any) {
						results[i] = kid
					}
				}
			}
		})
	}
	close(start)
	wg.Wait()
	var winners []string
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if results[i] != "" {
			winners = append(winners, results[i])
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d claims got the one key: %v", len(winners), winners)
	}
}

func TestKeysFallbackAndCountsInSync(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	dev := keysNewDevice(t, alice)

	// Before any upload: a zero count, still present, and no fallback key.
	body := rawSync(t, alice, "", "")
	if c := body["device_one_time_keys_count"]; fmt.Sprint(c) != "map[signed_curve25519:0]" {
		t.Fatalf("device_one_time_keys_count = %v, want signed_curve25519: 0", c)
	}
	if fb, ok := body["device_unused_fallback_key_types"].([]any); !ok || len(fb) != 0 {
		t.Fatalf("device_unused_fallback_key_types = %v, want []", body["device_unused_fallback_key_types"])
	}

	dev.upload(t, 1)
	fallback := dev.otks(t, 1, true)
	dev.uploadFallback(t, fallback)
	resp := syncOnce(t, alice, "", "", 0)
	if resp.DeviceOTKCount.SignedCurve25519 != 1 || !slices.Equal(resp.FallbackKeys, []id.KeyAlgorithm{id.KeyAlgorithmSignedCurve25519}) {
		t.Fatalf("counts %+v, fallback %v", resp.DeviceOTKCount, resp.FallbackKeys)
	}

	// The one-time key first, then the fallback key, again and again.
	if kid, k := keysClaimed(keysClaim(t, bob, dev), dev); kid == "" || k.Fallback {
		t.Fatalf("first claim: %s fallback=%v", kid, k.Fallback)
	}
	var fallbackID id.KeyID
	for kid := range fallback {
		fallbackID = kid
	}
	for i := range 2 {
		kid, k := keysClaimed(keysClaim(t, bob, dev), dev)
		if kid != fallbackID || !k.Fallback {
			t.Fatalf("claim %d with no one-time keys left: %s fallback=%v, want the fallback key %s", i+2, kid, k.Fallback, fallbackID)
		}
	}
	body = rawSync(t, alice, "", "")
	if c := body["device_one_time_keys_count"]; fmt.Sprint(c) != "map[signed_curve25519:0]" {
		t.Fatalf("count after the claims = %v", c)
	}
	if fb := body["device_unused_fallback_key_types"].([]any); len(fb) != 0 {
		t.Fatalf("a used fallback key is still listed unused: %v", fb)
	}

	// Uploading the same fallback key again leaves it used; a new one is not.
	dev.uploadFallback(t, fallback)
	if fb := syncOnce(t, alice, "", "", 0).FallbackKeys; len(fb) != 0 {
		t.Fatalf("re-uploading the used fallback key marked it unused: %v", fb)
	}
	dev.uploadFallback(t, dev.otks(t, 1, true))
	if fb := syncOnce(t, alice, "", "", 0).FallbackKeys; !slices.Equal(fb, []id.KeyAlgorithm{id.KeyAlgorithmSignedCurve25519}) {
		t.Fatalf("after a new fallback key: %v", fb)
	}
}

func TestKeysDeviceListsInSync(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	carol := ts.RegisterUser("carol")
	dave := ts.RegisterUser("dave") // shares no room with anyone
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(t.Context(), roomID); err != nil {
		t.Fatal(err)
	}
	// Everyone syncs once first, so that no other news (such as presence
	// going online) is pending when bob starts to wait.
	aliceSince := syncOnce(t, alice, "", "", 0).NextBatch
	daveSince := syncOnce(t, dave, "", "", 0).NextBatch
	bobSince := syncOnce(t, bob, "", "", 0).NextBatch

	// Bob long-polls; alice's new device keys wake him.
	done := make(chan *mautrix.RespSync, 1)
	go func() {
		resp, err := bob.FullSyncRequest(t.Context(), mautrix.ReqSync{Since: bobSince, Timeout: 20000})
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	waitForWaiters(t, ts, 1)
	started := time.Now()
	keysNewDevice(t, alice).upload(t, 0)
	var resp *mautrix.RespSync
	select {
	case resp = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("bob's sync was not woken by alice's keys")
	}
	if resp == nil {
		t.FailNow()
	}
	if time.Since(started) > 10*time.Second || !slices.Contains(resp.DeviceLists.Changed, alice.UserID) {
		t.Fatalf("bob's device_lists = %+v after %v, want alice changed", resp.DeviceLists, time.Since(started))
	}
	bobSince = resp.NextBatch
	if resp := syncOnce(t, alice, aliceSince, "", 0); !slices.Contains(resp.DeviceLists.Changed, alice.UserID) {
		t.Fatalf("alice's own sync: %+v, want herself changed", resp.DeviceLists)
	}
	if resp := syncOnce(t, dave, daveSince, "", 0); !resp.DeviceLists.IsZero() {
		t.Fatalf("dave shares no room with alice but sees %+v", resp.DeviceLists)
	}
	// GET /keys/changes from the same starting point says the same.
	changes, err := keysChanges(t, dave, daveSince, "")
	if err != nil || len(changes.Changed) != 0 {
		t.Fatalf("dave's key changes: %+v %v", changes, err)
	}
	aliceNext := syncOnce(t, alice, "", "", 0).NextBatch

	// Carol joins: alice and bob learn of her, and she of them.
	carolSince := syncOnce(t, carol, "", "", 0).NextBatch
	if _, err := carol.JoinRoomByID(t.Context(), roomID); err != nil {
		t.Fatal(err)
	}
	resp = syncOnce(t, bob, bobSince, "", 0)
	if !slices.Contains(resp.DeviceLists.Changed, carol.UserID) {
		t.Fatalf("bob's device_lists after carol joined: %+v", resp.DeviceLists)
	}
	bobSince = resp.NextBatch
	resp = syncOnce(t, carol, carolSince, "", 0)
	if !slices.Contains(resp.DeviceLists.Changed, alice.UserID) || !slices.Contains(resp.DeviceLists.Changed, bob.UserID) {
		t.Fatalf("carol's device_lists after joining: %+v", resp.DeviceLists)
	}

	// Bob leaves: he no longer shares a room with alice or carol, and they
	// no longer with him.
	if _, err := bob.LeaveRoom(t.Context(), roomID); err != nil {
		t.Fatal(err)
	}
	resp = syncOnce(t, bob, bobSince, "", 0)
	slices.Sort(resp.DeviceLists.Left)
	if want := []id.UserID{alice.UserID, carol.UserID}; !slices.Equal(resp.DeviceLists.Left, want) {
		t.Fatalf("bob's device_lists.left = %v, want %v", resp.DeviceLists.Left, want)
	}
	resp = syncOnce(t, alice, aliceNext, "", 0)
	if !slices.Equal(resp.DeviceLists.Left, []id.UserID{bob.UserID}) || slices.Contains(resp.DeviceLists.Changed, bob.UserID) {
		t.Fatalf("alice's device_lists after bob left: %+v", resp.DeviceLists)
	}
	changes, err = keysChanges(t, alice, aliceNext, resp.NextBatch)
	if err != nil || !slices.Equal(changes.Left, []id.UserID{bob.UserID}) || !slices.Contains(changes.Changed, carol.UserID) {
		t.Fatalf("alice's /keys/changes: %+v %v", changes, err)
	}

	// Once they share no room, bob's new keys are none of alice's business.
	bobDev := keysNewDevice(t, bob)
	bobDev.upload(t, 0)
	if resp := syncOnce(t, alice, resp.NextBatch, "", 0); slices.Contains(resp.DeviceLists.Changed, bob.UserID) {
		t.Fatalf("alice sees bob's keys change without a shared room: %+v", resp.DeviceLists)
	}
}

// keysChanges calls GET /keys/changes (mautrix's GetKeyChanges sends a
// POST, which the spec does not define).
func keysChanges(t *testing.T, c *mautrix.Client, from, to string) (*mautrix.RespKeyChanges, error) {
	t.Helper()
	path := "/_matrix/client/v3/keys/changes?from=" + from
	if to != "" {
		path += "&to=" + to
	}
	r := acctDo(t, c, "GET", path, nil)
	if r.Status != 200 {
		return nil, fmt.Errorf("keys/changes: %d %v", r.Status, r.Body)
	}
	b, err := json.Marshal(r.Body)
	if err != nil {
		return nil, err
	}
	var out mautrix.RespKeyChanges
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	if out.Changed == nil || out.Left == nil {
		return nil, fmt.Errorf("keys/changes lacks changed or left: %v", r.Body)
	}
	return &out, nil
}

func TestKeysChangesBadInput(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	now := syncOnce(t, alice, "", "", 0).NextBatch
	for _, tc := range []struct {
		what, query, errcode string
	}{
		{"no from", "?to=" + now, "M_MISSING_PARAM"},
		{"bad from", "?from=garbage&to=" + now, "M_INVALID_PARAM"},
		{"bad to", "?from=" + now + "&to=s1_x", "M_INVALID_PARAM"},
	} {
		acctExpect(t, tc.what, acctDo(t, alice, "GET", "/_matrix/client/v3/keys/changes"+tc.query, nil), 400, tc.errcode)
	}
	acctExpect(t, "no token", acctDo(t, ts.Client(), "GET", "/_matrix/client/v3/keys/changes?from="+now+"&to="+now, nil), 401, "M_MISSING_TOKEN")
	if c, err := keysChanges(t, alice, now, now); err != nil || len(c.Changed)+len(c.Left) != 0 {
		t.Fatalf("an empty range: %+v %v", c, err)
	}
}

func TestKeysQueryBadInput(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	const path = "/_matrix/client/v3/keys/query"
	for _, tc := range []struct {
		what    string
		body    any
		errcode string
	}{
		{"missing device_keys", map[string]any{"timeout": 10}, "M_MISSING_PARAM"},
		{"device_keys not an object", map[string]any{"device_keys": []string{}}, "M_BAD_JSON"},
		{"device list not a list", map[string]any{"device_keys": map[string]any{string(alice.UserID): "DEV"}}, "M_BAD_JSON"},
		{"not a user ID", map[string]any{"device_keys": map[string]any{"alice": []string{}}}, "M_INVALID_PARAM"},
		{"timeout not a number", map[string]any{"device_keys": map[string]any{}, "timeout": "soon"}, "M_BAD_JSON"},
		{"not JSON", "[", "M_NOT_JSON"},
	} {
		acctExpect(t, tc.what, acctDo(t, alice, "POST", path, tc.body), 400, tc.errcode)
	}
	acctExpect(t, "no token", acctDo(t, ts.Client(), "POST", path, map[string]any{"device_keys": map[string]any{}}), 401, "M_MISSING_TOKEN")
	bad := ts.Client()
	bad.AccessToken = "nonsense"
	acctExpect(t, "bad token", acctDo(t, bad, "POST", path, map[string]any{"device_keys": map[string]any{}}), 401, "M_UNKNOWN_TOKEN")
}

func TestKeysGoWithTheirDevice(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if _, err := bob.JoinRoomByID(t.Context(), roomID); err != nil {
		t.Fatal(err)
	}
	phone := ts.Login("alice", testserver.DefaultPassword)
	laptop := keysNewDevice(t, alice)
	laptop.upload(t, 2)
	phoneDev := keysNewDevice(t, phone)
	phoneDev.upload(t, 2)
	if devs := keysQuery(t, bob, alice.UserID).DeviceKeys[alice.UserID]; len(devs) != 2 {
		t.Fatalf("alice's devices before: %d", len(devs))
	}
	bobSince := syncOnce(t, bob, "", "", 0).NextBatch

	// Deleting the phone (with the password, as the API asks) removes its
	// keys, its one-time keys, and tells bob.
	r := sessUIA(t, ts, alice, "alice", testserver.DefaultPassword, "DELETE", "/_matrix/client/v3/devices/"+string(phone.DeviceID), map[string]any{})
	sessExpect(t, "delete the phone", r, 200, "")
	devs := keysQuery(t, bob, alice.UserID).DeviceKeys[alice.UserID]
	if len(devs) != 1 || devs[alice.DeviceID].DeviceID != alice.DeviceID {
		t.Fatalf("alice's devices after deleting the phone: %v", devs)
	}
	if kid, _ := keysClaimed(keysClaim(t, bob, phoneDev), phoneDev); kid != "" {
		t.Fatalf("claimed %s of a deleted device", kid)
	}
	if resp := syncOnce(t, bob, bobSince, "", 0); !slices.Contains(resp.DeviceLists.Changed, alice.UserID) {
		t.Fatalf("bob's device_lists after alice deleted a device: %+v", resp.DeviceLists)
	}

	// Logging out does the same.
	bobSince = syncOnce(t, bob, "", "", 0).NextBatch
	if _, err := alice.Logout(t.Context()); err != nil {
		t.Fatal(err)
	}
	if devs := keysQuery(t, bob, alice.UserID).DeviceKeys[alice.UserID]; len(devs) != 0 {
		t.Fatalf("alice's devices after logging out: %v", devs)
	}
	if resp := syncOnce(t, bob, bobSince, "", 0); !slices.Contains(resp.DeviceLists.Changed, alice.UserID) {
		t.Fatalf("bob's device_lists after alice logged out: %+v", resp.DeviceLists)
	}
	if strings.Contains(ts.Logs(), "level=ERROR") {
		t.Fatalf("errors in the log:\n%s", ts.Logs())
	}
}
