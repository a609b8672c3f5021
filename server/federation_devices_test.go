package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mau.fi/util/jsontime"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/event"
	mfed "maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// Device lists and keys across servers (spec: server-server "Device
// Management" and "End-to-End Encryption"), driven by mautrix clients.

var b64 = base64.RawStdEncoding

// signJSON signs obj (without its signatures and unsigned) as user with
// key keyName, and returns it with the signature added.
func signJSON(t *testing.T, obj map[string]any, user id.UserID, keyName string, priv ed25519.PrivateKey) map[string]any {
	t.Helper()
	bare := map[string]any{}
	for k, v := range obj {
		if k != "signatures" && k != "unsigned" {
			bare[k] = v
		}
	}
	raw, err := canonicaljson.Marshal(bare)
	if err != nil {
		t.Fatal(err)
	}
	sigs, _ := obj["signatures"].(map[string]any)
	if sigs == nil {
		sigs = map[string]any{}
	}
	mine, _ := sigs[string(user)].(map[string]any)
	if mine == nil {
		mine = map[string]any{}
	}
	mine[keyName] = b64.EncodeToString(ed25519.Sign(priv, raw))
	sigs[string(user)] = mine
	obj["signatures"] = sigs
	return obj
}

func newKey(t *testing.T) (string, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(pub), priv
}

// uploadDeviceKeys uploads signed identity keys and otks one-time keys
// for c's device, and returns its ed25519 key.
func uploadDeviceKeys(t *testing.T, c *mautrix.Client, otks int) string {
	t.Helper()
	pub, priv := newKey(t)
	curve, _ := newKey(t) // any 32 bytes stand for a curve25519 key here
	dev := string(c.DeviceID)
	keys := signJSON(t, map[string]any{
		"user_id": c.UserID, "device_id": dev,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys":       map[string]any{"ed25519:" + dev: pub, "curve25519:" + dev: curve},
	}, c.UserID, "ed25519:"+dev, priv)
	one := map[string]any{}
	for i := range otks {
		k, _ := newKey(t)
		one[fmt.Sprintf("signed_curve25519:AAAA%d", i)] = signJSON(t, map[string]any{"key": k}, c.UserID, "ed25519:"+dev, priv)
	}
	body := map[string]any{"device_keys": keys, "one_time_keys": one}
	if _, err := c.MakeRequest(context.Background(), "POST", c.BuildClientURL("v3", "keys", "upload"), body, nil); err != nil {
		t.Fatalf("upload keys of %s: %v", c.DeviceID, err)
	}
	return pub
}

// crossSigning uploads master, self-signing and user-signing keys for c
// and returns the master and user-signing public keys and the
// user-signing private key.
func crossSigning(t *testing.T, c *mautrix.Client) (master, usk string, uskPriv ed25519.PrivateKey) {
	t.Helper()
	master, masterPriv := newKey(t)
	ssk, _ := newKey(t)
	usk, uskPriv = newKey(t)
	key := func(usage, pub string) map[string]any {
		return map[string]any{"user_id": c.UserID, "usage": []string{usage}, "keys": map[string]any{"ed25519:" + pub: pub}}
	}
	body := map[string]any{
		"master_key":       key("master", master),
		"self_signing_key": signJSON(t, key("self_signing", ssk), c.UserID, "ed25519:"+master, masterPriv),
		"user_signing_key": signJSON(t, key("user_signing", usk), c.UserID, "ed25519:"+master, masterPriv),
	}
	if _, err := c.MakeRequest(context.Background(), "POST", c.BuildClientURL("v3", "keys", "device_signing", "upload"), body, nil); err != nil {
		t.Fatalf("cross-signing keys of %s: %v", c.UserID, err)
	}
	return master, usk, uskPriv
}

// keysQuery is a raw /keys/query answer.
type keysQuery struct {
	Failures        map[string]json.RawMessage                               `json:"failures"`
	DeviceKeys      map[id.UserID]map[id.DeviceID]map[string]json.RawMessage `json:"device_keys"`
	MasterKeys      map[id.UserID]map[string]json.RawMessage                 `json:"master_keys"`
	SelfSigningKeys map[id.UserID]json.RawMessage                            `json:"self_signing_keys"`
	UserSigningKeys map[id.UserID]json.RawMessage                            `json:"user_signing_keys"`
}

func queryRaw(t *testing.T, c *mautrix.Client, timeoutMS int, users ...id.UserID) *keysQuery {
	t.Helper()
	q := map[id.UserID][]string{}
	for _, u := range users {
		q[u] = []string{}
	}
	var resp keysQuery
	if _, err := c.MakeRequest(context.Background(), "POST", c.BuildClientURL("v3", "keys", "query"),
		map[string]any{"device_keys": q, "timeout": timeoutMS}, &resp); err != nil {
		t.Fatalf("keys query by %s: %v", c.UserID, err)
	}
	return &resp
}

func deviceIDs(m map[id.DeviceID]map[string]json.RawMessage) []id.DeviceID {
	var out []id.DeviceID
	for d := range m {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// waitDeviceListChanged long-polls c's /sync from since until user is in
// device_lists.changed, and returns the next since.
func waitDeviceListChanged(t *testing.T, c *mautrix.Client, since string, user id.UserID) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.SyncRequest(context.Background(), 2000, since, "", false, event.PresenceOnline)
		if err != nil {
			t.Fatalf("sync: %v", err)
		}
		since = resp.NextBatch
		if slices.Contains(resp.DeviceLists.Changed, user) {
			return since
		}
	}
	t.Fatalf("%s never saw %s in device_lists.changed", c.UserID, user)
	return ""
}

func syncToken(t *testing.T, c *mautrix.Client) string {
	t.Helper()
	resp, err := c.SyncRequest(context.Background(), 0, "", "", false, event.PresenceOnline)
	if err != nil {
		t.Fatal(err)
	}
	return resp.NextBatch
}

// sharedRoom makes alice (on a) create a room that bob (of another
// server) joins.
func sharedRoom(t *testing.T, a *testserver.Server, alice, bob *mautrix.Client) id.RoomID {
	t.Helper()
	ctx := context.Background()
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoom(ctx, room.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{a.ServerName()}}); err != nil {
		t.Fatal(err)
	}
	waitMembership(t, a, room.RoomID, bob.UserID, event.MembershipJoin)
	return room.RoomID
}

// TestFederationDeviceKeys: bob (B) sees alice's (A) devices once they
// share a room; alice's new device reaches bob's /sync and /keys/query
// through an m.device_list_update, /keys/changes names her, bob claims
// her one-time keys through A, sees her cross-signing keys, and an
// unreachable server lands in failures while the cache still answers.
func TestFederationDeviceKeys(t *testing.T) {
	a, b := fedPair(t)
	ctx := context.Background()
	alice := a.RegisterUser("alice")
	bob := b.RegisterUser("bob")
	a.RegisterUser("carol") // shares no room with anyone on B
	alice1Key := uploadDeviceKeys(t, alice, 2)
	uploadDeviceKeys(t, bob, 0)
	room := sharedRoom(t, a, alice, bob)

	q := queryRaw(t, bob, 10000, alice.UserID)
	if got := deviceIDs(q.DeviceKeys[alice.UserID]); !slices.Equal(got, []id.DeviceID{alice.DeviceID}) {
		t.Fatalf("bob sees alice's devices %v, want [%s]; failures %v", got, alice.DeviceID, q.Failures)
	}
	var keys map[string]string
	if err := json.Unmarshal(q.DeviceKeys[alice.UserID][alice.DeviceID]["keys"], &keys); err != nil || keys["ed25519:"+string(alice.DeviceID)] != alice1Key {
		t.Fatalf("alice's device keys as bob sees them: %v %v", keys, err)
	}

	// A second device of alice: bob's /sync says her list changed, and
	// B's cache (fed by the EDU) has the device.
	since := syncToken(t, bob)
	alice2 := a.Login("alice", testserver.DefaultPassword)
	uploadDeviceKeys(t, alice2, 1)
	waitDeviceListChanged(t, bob, since, alice.UserID)
	deadline := time.Now().Add(20 * time.Second)
	for {
		cached, err := b.DB().RemoteDeviceKeysOf(ctx, []id.UserID{alice.UserID})
		if err != nil {
			t.Fatal(err)
		}
		if len(cached) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B's cache of alice's devices: %+v", cached)
		}
		time.Sleep(20 * time.Millisecond)
	}
	q = queryRaw(t, bob, 10000, alice.UserID)
	want := []id.DeviceID{alice.DeviceID, alice2.DeviceID}
	slices.Sort(want)
	if got := deviceIDs(q.DeviceKeys[alice.UserID]); !slices.Equal(got, want) {
		t.Fatalf("after alice's new device, bob sees %v, want %v", got, want)
	}
	// (mautrix's GetKeyChanges sends a body, which GET must not have.)
	var changes struct {
		Changed []id.UserID `json:"changed"`
	}
	_, err := bob.MakeRequest(ctx, "GET", bob.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "keys", "changes"}, map[string]string{"from": since}), nil, &changes)
	if err != nil || !slices.Contains(changes.Changed, alice.UserID) {
		t.Fatalf("bob's /keys/changes from %s: %+v %v", since, changes, err)
	}

	// One-time keys are claimed through A, each once.
	claimed := map[string]bool{}
	for range 2 {
		resp, err := bob.ClaimKeys(ctx, &mautrix.ReqClaimKeys{OneTimeKeys: mautrix.OneTimeKeysRequest{
			alice.UserID: {alice.DeviceID: id.KeyAlgorithmSignedCurve25519}}})
		if err != nil {
			t.Fatal(err)
		}
		got := resp.OneTimeKeys[alice.UserID][alice.DeviceID]
		if len(got) != 1 {
			t.Fatalf("claimed %v, failures %v", got, resp.Failures)
		}
		for k := range got {
			claimed[string(k)] = true
		}
	}
	if len(claimed) != 2 {
		t.Fatalf("the same one-time key was handed out twice: %v", claimed)
	}
	if counts, _, err := a.DB().DeviceKeyCounts(ctx, alice.UserID, alice.DeviceID); err != nil || counts["signed_curve25519"] != 0 {
		t.Fatalf("alice's one-time keys left: %v %v", counts, err)
	}

	// Alice's cross-signing keys reach bob (m.signing_key_update), her
	// user-signing key does not.
	since = syncToken(t, bob)
	master, _, _ := crossSigning(t, alice)
	waitDeviceListChanged(t, bob, since, alice.UserID)
	q = queryRaw(t, bob, 10000, alice.UserID)
	var mk struct {
		Keys map[string]string `json:"keys"`
	}
	raw, _ := json.Marshal(q.MasterKeys[alice.UserID])
	if err := json.Unmarshal(raw, &mk); err != nil || mk.Keys["ed25519:"+master] != master {
		t.Fatalf("bob sees alice's master key %s, want %s", raw, master)
	}
	if _, ok := q.SelfSigningKeys[alice.UserID]; !ok {
		t.Fatalf("bob does not see alice's self-signing key: %+v", q)
	}
	if _, ok := q.UserSigningKeys[alice.UserID]; ok {
		t.Fatal("bob sees alice's user-signing key")
	}

	// A unreachable: carol (not tracked) fails with A in failures; alice
	// is answered from the cache, which the EDUs keep current.
	bl := &blockable{}
	b.Federation().SetTransport(bl.choose)
	bl.set(true)
	q = queryRaw(t, bob, 2000, alice.UserID, id.UserID("@carol:"+a.ServerName()))
	if _, ok := q.Failures[a.ServerName()]; !ok {
		t.Fatalf("failures %v, want %s", q.Failures, a.ServerName())
	}
	if got := deviceIDs(q.DeviceKeys[alice.UserID]); !slices.Equal(got, want) {
		t.Fatalf("from the cache bob sees %v, want %v", got, want)
	}
	claim, err := bob.ClaimKeys(ctx, &mautrix.ReqClaimKeys{OneTimeKeys: mautrix.OneTimeKeysRequest{
		alice.UserID: {alice2.DeviceID: id.KeyAlgorithmSignedCurve25519}}, Timeout: 2000})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := claim.Failures[a.ServerName()]; !ok {
		t.Fatalf("claim failures %v, want %s", claim.Failures, a.ServerName())
	}
	bl.set(false)

	// A deleted device goes from bob's view too.
	since = syncToken(t, bob)
	if _, err := alice2.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	waitDeviceListChanged(t, bob, since, alice.UserID)
	deadline = time.Now().Add(20 * time.Second)
	for {
		q = queryRaw(t, bob, 10000, alice.UserID)
		if got := deviceIDs(q.DeviceKeys[alice.UserID]); slices.Equal(got, []id.DeviceID{alice.DeviceID}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after alice's logout bob sees %v", deviceIDs(q.DeviceKeys[alice.UserID]))
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Bob leaves the only room he shared with alice: his /sync says so
	// in device_lists.left, and B forgets her list, which A stops
	// updating.
	since = syncToken(t, bob)
	if _, err := bob.LeaveRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for !slices.Contains(syncLeft(t, bob, &since), alice.UserID) {
		if time.Now().After(deadline) {
			t.Fatal("alice never in bob's device_lists.left")
		}
	}
	if current, err := b.DB().CurrentRemoteDeviceLists(ctx, []id.UserID{alice.UserID}); err != nil || current[alice.UserID] {
		t.Fatalf("B still caches alice's list after bob left: %v %v", current, err)
	}
}

// syncLeft long-polls one /sync from *since and returns device_lists.left.
func syncLeft(t *testing.T, c *mautrix.Client, since *string) []id.UserID {
	t.Helper()
	resp, err := c.SyncRequest(context.Background(), 2000, *since, "", false, event.PresenceOnline)
	if err != nil {
		t.Fatal(err)
	}
	*since = resp.NextBatch
	return resp.DeviceLists.Left
}

// sendEDUs sends a transaction of EDUs from one server to another, signed
// by the sender, as its outbound queue would.
func sendEDUs(t *testing.T, from, to *testserver.Server, edus ...map[string]any) {
	t.Helper()
	var raw []mfed.EDU
	for _, e := range edus {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, b)
	}
	_, err := from.Federation().Client().SendTransaction(context.Background(), &mfed.ReqSendTransaction{
		Destination: to.ServerName(), TxnID: fmt.Sprintf("test%d", time.Now().UnixNano()), Origin: from.ServerName(),
		OriginServerTS: jsontime.UM(time.Now()), PDUs: []mfed.PDU{}, EDUs: raw,
	})
	if err != nil {
		t.Fatalf("transaction %s -> %s: %v", from.ServerName(), to.ServerName(), err)
	}
}

// fakeDevice is device keys for user's device, signed by a new key.
func fakeDevice(t *testing.T, user id.UserID, device string) map[string]any {
	t.Helper()
	pub, priv := newKey(t)
	return signJSON(t, map[string]any{
		"user_id": user, "device_id": device, "algorithms": []string{"m.megolm.v1.aes-sha2"},
		"keys": map[string]any{"ed25519:" + device: pub, "curve25519:" + device: pub},
	}, user, "ed25519:"+device, priv)
}

// TestFederationDeviceListBadInput: a server speaks only for its own
// users (a device or cross-signing key update about another server's
// user is refused), an update after a missed one makes the list fetched
// again from its server instead of trusted, a federation keys query or
// devices request answers for the server's own users only, and a local
// user's signature of a remote user's master key stays with its signer.
func TestFederationDeviceListBadInput(t *testing.T) {
	ca := testserver.NewCA(t)
	a := testserver.New(t, testserver.Federated(ca))
	b := testserver.New(t, testserver.Federated(ca))
	c := testserver.New(t, testserver.Federated(ca))
	ctx := context.Background()
	alice, bob, carol := a.RegisterUser("alice"), b.RegisterUser("bob"), c.RegisterUser("carol")
	uploadDeviceKeys(t, alice, 0)
	uploadDeviceKeys(t, bob, 0)
	master, _, _ := crossSigning(t, alice)
	room := sharedRoom(t, a, alice, bob)
	if _, err := carol.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{a.ServerName()}}); err != nil {
		t.Fatal(err)
	}
	waitMembership(t, b, room, carol.UserID, event.MembershipJoin)
	if got := deviceIDs(queryRaw(t, bob, 10000, alice.UserID).DeviceKeys[alice.UserID]); !slices.Equal(got, []id.DeviceID{alice.DeviceID}) {
		t.Fatalf("bob sees alice's devices %v", got)
	}

	// C speaks for alice (of A): refused, though B tracks her list.
	evilMaster, _ := newKey(t)
	sendEDUs(t, c, b,
		map[string]any{"edu_type": "m.device_list_update", "content": map[string]any{
			"user_id": alice.UserID, "device_id": "EVIL", "stream_id": 1000, "prev_id": []int{},
			"keys": fakeDevice(t, alice.UserID, "EVIL")}},
		map[string]any{"edu_type": "m.signing_key_update", "content": map[string]any{
			"user_id": alice.UserID, "master_key": map[string]any{"user_id": alice.UserID, "usage": []string{"master"},
				"keys": map[string]any{"ed25519:" + evilMaster: evilMaster}}}})
	q := queryRaw(t, bob, 10000, alice.UserID)
	if got := deviceIDs(q.DeviceKeys[alice.UserID]); !slices.Equal(got, []id.DeviceID{alice.DeviceID}) {
		t.Fatalf("after C's forged update bob sees alice's devices %v", got)
	}
	if mk := q.MasterKeys[alice.UserID]["keys"]; !json.Valid(mk) || !containsKey(mk, master) {
		t.Fatalf("after C's forged update bob sees alice's master key %s, want %s", mk, master)
	}

	// A itself, after an update B never got: B does not apply it but
	// fetches alice's list again, which has no such device.
	sendEDUs(t, a, b, map[string]any{"edu_type": "m.device_list_update", "content": map[string]any{
		"user_id": alice.UserID, "device_id": "GHOST", "stream_id": 50, "prev_id": []int{49},
		"keys": fakeDevice(t, alice.UserID, "GHOST")}})
	deadline := time.Now().Add(20 * time.Second)
	for {
		current, err := b.DB().CurrentRemoteDeviceLists(ctx, []id.UserID{alice.UserID})
		if err != nil {
			t.Fatal(err)
		}
		if current[alice.UserID] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("B never fetched alice's device list again after the gap")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := deviceIDs(queryRaw(t, bob, 10000, alice.UserID).DeviceKeys[alice.UserID]); !slices.Equal(got, []id.DeviceID{alice.DeviceID}) {
		t.Fatalf("after the gap bob sees alice's devices %v", got)
	}

	// Over federation A answers for its own users only, even for a user
	// it could ask another server about.
	var fq struct {
		DeviceKeys map[id.UserID]json.RawMessage `json:"device_keys"`
	}
	if err := c.Federation().Client().MakeRequest(ctx, a.ServerName(), true, "POST", mfed.URLPath{"v1", "user", "keys", "query"},
		map[string]any{"device_keys": map[id.UserID][]string{bob.UserID: {}, alice.UserID: {}}}, &fq); err != nil {
		t.Fatal(err)
	}
	if _, ok := fq.DeviceKeys[bob.UserID]; ok {
		t.Fatalf("A answered for B's user: %v", fq.DeviceKeys)
	}
	if _, ok := fq.DeviceKeys[alice.UserID]; !ok {
		t.Fatalf("A did not answer for alice: %v", fq.DeviceKeys)
	}
	err := c.Federation().Client().MakeRequest(ctx, a.ServerName(), true, "GET", mfed.URLPath{"v1", "user", "devices", string(bob.UserID)}, nil, nil)
	if !errors.Is(err, mautrix.MInvalidParam) {
		t.Fatalf("A's devices of B's user: %v, want M_INVALID_PARAM", err)
	}

	// Bob verifies alice: his signature of her master key is his to see.
	_, usk, uskPriv := crossSigning(t, bob)
	mk := map[string]any{}
	if err := json.Unmarshal(mustMarshal(t, queryRaw(t, bob, 10000, alice.UserID).MasterKeys[alice.UserID]), &mk); err != nil {
		t.Fatal(err)
	}
	signed := signJSON(t, mk, bob.UserID, "ed25519:"+usk, uskPriv)
	var up struct {
		Failures map[string]any `json:"failures"`
	}
	if _, err := bob.MakeRequest(ctx, "POST", bob.BuildClientURL("v3", "keys", "signatures", "upload"),
		map[id.UserID]map[string]any{alice.UserID: {master: signed}}, &up); err != nil || len(up.Failures) > 0 {
		t.Fatalf("bob signs alice's master key: %v %v", up.Failures, err)
	}
	if !strings.Contains(string(queryRaw(t, bob, 10000, alice.UserID).MasterKeys[alice.UserID]["signatures"]), string(bob.UserID)) {
		t.Fatal("bob does not see his signature of alice's master key")
	}
	if strings.Contains(string(queryRaw(t, alice, 10000, alice.UserID).MasterKeys[alice.UserID]["signatures"]), string(bob.UserID)) {
		t.Fatal("alice sees bob's signature of her master key")
	}
}

func containsKey(raw json.RawMessage, key string) bool {
	var keys map[string]string
	return json.Unmarshal(raw, &keys) == nil && keys["ed25519:"+key] == key
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
