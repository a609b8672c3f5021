//go:build goolm

package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// End-to-end encryption with a real client implementation: mautrix-go's
// crypto over goolm, the pure-Go Olm/Megolm (build tag goolm, no cgo).
// Every device runs its own Olm machine against a real Palpo, so these
// tests pass only if the server stores and routes keys exactly: device and
// one-time keys (upload, query, claim), to-device delivery, device-list
// changes in /sync, cross-signing signatures and key backups.

// TestE2EEGoolmMegolmAcrossDevices: two users with two devices each; a
// Megolm session shared over to-device decrypts on all four devices, the
// sender's other device included, in both directions.
func TestE2EEGoolmMegolmAcrossDevices(t *testing.T) {
	c := newE2EEChat(t)

	evt1, sess1 := c.alice1.sendEncrypted(c.room, "hello from alice1")
	for _, d := range c.devices() {
		dec := d.waitDecrypt(evt1, "hello from alice1")
		if dec.Sender != c.alice {
			t.Errorf("%s: sender %s, want %s", d.name, dec.Sender, c.alice)
		}
		checkSenderDevice(t, d, dec, c.alice1)
	}
	// What the server holds and serves is ciphertext only.
	if got := fetchEncrypted(t, c.bob1.cli, c.room, evt1).Content.AsEncrypted().SessionID; got != sess1 {
		t.Errorf("served event has session %s, want %s", got, sess1)
	}

	evt2, sess2 := c.bob2.sendEncrypted(c.room, "hi alice, bob2 here")
	if sess2 == sess1 {
		t.Fatal("bob2 used alice1's Megolm session")
	}
	for _, d := range c.devices() {
		dec := d.waitDecrypt(evt2, "hi alice, bob2 here")
		checkSenderDevice(t, d, dec, c.bob2)
	}

	// A second message from alice1 reuses her session: nobody needs a new
	// key, and every device still decrypts (its ratchet moves on).
	evt3, sess3 := c.alice1.sendEncrypted(c.room, "still alice1")
	if sess3 != sess1 {
		t.Errorf("alice1 rotated her session without a reason: %s then %s", sess1, sess3)
	}
	for _, d := range c.devices() {
		d.waitDecrypt(evt3, "still alice1")
	}
	// Every key share arrived once, and the server let go of each once
	// the device's next sync acknowledged it.
	for _, d := range c.devices() {
		d.checkToDeviceOnce(c.ts)
	}
}

// checkSenderDevice checks that d's Olm machine tied a decrypted event to
// the device that sent it: the Megolm key arrived Olm-encrypted from that
// device's identity key, which d learned from /keys/query.
func checkSenderDevice(t *testing.T, d *e2eeDevice, dec *event.Event, sender *e2eeDevice) {
	t.Helper()
	if d == sender {
		if dec.Mautrix.TrustState != id.TrustStateVerified {
			t.Errorf("%s: own message trust %s, want verified", d.name, dec.Mautrix.TrustState)
		}
		return
	}
	src := dec.Mautrix.TrustSource
	if src == nil || src.UserID != sender.cli.UserID || src.DeviceID != sender.cli.DeviceID {
		t.Errorf("%s: decrypted %s as coming from %+v, want %s %s", d.name, dec.ID, src, sender.cli.UserID, sender.cli.DeviceID)
	}
	switch dec.Mautrix.TrustState {
	case id.TrustStateUnknownDevice, id.TrustStateDeviceKeyMismatch, id.TrustStateForwarded:
		t.Errorf("%s: trust of %s's message is %s", d.name, sender.name, dec.Mautrix.TrustState)
	}
}

// TestE2EEGoolmNewDeviceGetsKeysAfterReshare: bob3 logs in after the first
// message. The server tells alice1 (device_lists.changed in /sync) that
// bob's devices changed; her Olm machine then starts a new Megolm session
// and shares it with every device it now knows, bob3 included. bob3
// decrypts the next message but not the earlier one.
func TestE2EEGoolmNewDeviceGetsKeysAfterReshare(t *testing.T) {
	ctx := context.Background()
	c := newE2EEChat(t)
	evt1, sess1 := c.alice1.sendEncrypted(c.room, "before bob3")
	for _, d := range c.devices() {
		d.waitDecrypt(evt1, "before bob3")
	}
	c.alice1.resetDeviceLists()

	bob3 := c.addDevice(t, "bob3", "bob")
	c.alice1.waitKnowsDevices(c.bob, bob3.cli.DeviceID)
	if c.alice1.changed[c.bob] == 0 {
		t.Error("alice1 learned of bob3 without bob in device_lists.changed")
	}

	evt2, sess2 := c.alice1.sendEncrypted(c.room, "after bob3")
	if sess2 == sess1 {
		t.Fatal("alice1 kept her Megolm session after bob's devices changed; bob3 would never get its key")
	}
	for _, d := range append(c.devices(), bob3) {
		d.waitDecrypt(evt2, "after bob3")
	}
	// bob3 has processed everything up to evt2, and never got the first
	// session: the old message stays closed to it.
	old := fetchEncrypted(t, bob3.cli, c.room, evt1)
	if _, err := bob3.mach.DecryptMegolmEvent(ctx, old); !errors.Is(err, crypto.ErrNoSessionFound) {
		t.Fatalf("bob3 decrypting the message from before it existed: got %v, want %v", err, crypto.ErrNoSessionFound)
	}
}

// TestE2EEGoolmDeletedDeviceStopsReceiving: bob1 deletes bob2 (DELETE
// /devices with password auth). The server drops bob2's token, keys and
// pending messages and tells alice1 bob's devices changed; alice1's next
// session goes to bob1 only, and bob2's Olm machine, which still holds the
// old session, cannot read the next message.
func TestE2EEGoolmDeletedDeviceStopsReceiving(t *testing.T) {
	ctx := context.Background()
	c := newE2EEChat(t)
	evt1, sess1 := c.alice1.sendEncrypted(c.room, "before deletion")
	for _, d := range c.devices() {
		d.waitDecrypt(evt1, "before deletion")
	}

	bob2ID := c.bob2.cli.DeviceID
	deleteDeviceWithUIA(t, c.bob1.cli, bob2ID)

	// bob2 can no longer sync: nothing can reach it any more.
	if err := c.bob2.syncOnce(ctx, 0); !errors.Is(err, mautrix.MUnknownToken) {
		t.Fatalf("bob2 sync after deletion: got %v, want M_UNKNOWN_TOKEN", err)
	}
	// Its keys are gone from /keys/query.
	q, err := c.alice1.cli.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{c.bob: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := q.DeviceKeys[c.bob][bob2ID]; ok || len(q.DeviceKeys[c.bob]) != 1 {
		t.Fatalf("/keys/query for bob after deleting bob2: %v", keysOf(q.DeviceKeys[c.bob]))
	}

	c.alice1.syncUntil("bob2 gone from alice1's view of bob's devices", func() error {
		if known := c.alice1.knownDevices(c.bob); slices.Contains(known, bob2ID) {
			return errors.New("alice1 still lists " + deviceList(known))
		}
		return nil
	})

	evt2, sess2 := c.alice1.sendEncrypted(c.room, "after deletion")
	if sess2 == sess1 {
		t.Fatal("alice1 kept her Megolm session after bob2 was deleted; bob2 could read on")
	}
	c.bob1.waitDecrypt(evt2, "after deletion")
	c.alice2.waitDecrypt(evt2, "after deletion")

	// bob2's machine still works (it reads the old message) but has no
	// key for the new one: the key share never reached it.
	if _, err := c.bob2.mach.DecryptMegolmEvent(ctx, fetchEncrypted(t, c.bob1.cli, c.room, evt1)); err != nil {
		t.Fatalf("bob2 cannot decrypt the old message any more: %v", err)
	}
	if _, err := c.bob2.mach.DecryptMegolmEvent(ctx, fetchEncrypted(t, c.bob1.cli, c.room, evt2)); !errors.Is(err, crypto.ErrNoSessionFound) {
		t.Fatalf("bob2 decrypting the message sent after its deletion: got %v, want %v", err, crypto.ErrNoSessionFound)
	}

	// A client with a stale device list may still address bob2: the
	// server accepts the request (the spec ignores unknown devices) and
	// stores nothing for it.
	_, err = c.alice1.cli.SendToDevice(ctx, event.ToDeviceEncrypted, &mautrix.ReqSendToDevice{
		Messages: map[id.UserID]map[id.DeviceID]*event.Content{c.bob: {bob2ID: {Raw: map[string]any{"algorithm": id.AlgorithmOlmV1, "ciphertext": map[string]any{}}}}},
	})
	if err != nil {
		t.Fatalf("to-device to a deleted device: %v", err)
	}
	if n, err := c.ts.DB().CountToDevice(ctx, c.bob, bob2ID); err != nil || n != 0 {
		t.Fatalf("to-device messages held for deleted bob2: %d (%v)", n, err)
	}
}

// TestE2EEGoolmCrossSigning: both users bootstrap cross-signing with
// mautrix; alice signs her devices and bob's master key. bob sees alice's
// master and self-signing keys and her devices signed by them through
// /keys/query, and his Olm machine trusts them; alice sees her signature
// of bob's master key and trusts bob's device through it; bob never sees
// that signature, nor alice's user-signing key.
func TestE2EEGoolmCrossSigning(t *testing.T) {
	ctx := context.Background()
	ts := testserver.New(t)
	logs := newE2EELogs(t)
	alice1 := newE2EEDevice(t, logs, "alice1", ts.RegisterUser("alice"))
	alice2 := newE2EEDevice(t, logs, "alice2", ts.Login("alice", testserver.DefaultPassword))
	bob1 := newE2EEDevice(t, logs, "bob1", ts.RegisterUser("bob"))
	alice, bob := alice1.cli.UserID, bob1.cli.UserID
	// A shared room, so each hears of the other's key changes in /sync.
	room := createEncryptedRoom(t, alice1.cli, bob1.cli)
	for _, d := range []*e2eeDevice{alice1, alice2, bob1} {
		d.waitRoomReady(room, alice, bob)
	}

	// Bootstrap. The first upload of a user's cross-signing keys needs no
	// user-interactive auth (spec v1.11+, what Element's bootstrap
	// expects); replacing them does.
	var bobUIA, aliceUIA int
	if _, _, err := bob1.mach.GenerateAndUploadCrossSigningKeys(ctx, passwordUIA(bob, testserver.DefaultPassword, &bobUIA), ""); err != nil {
		t.Fatalf("bob bootstraps cross-signing: %v", err)
	}
	if err := bob1.mach.SignOwnDevice(ctx, bob1.mach.OwnIdentity()); err != nil {
		t.Fatalf("bob signs bob1: %v", err)
	}
	if _, _, err := alice1.mach.GenerateAndUploadCrossSigningKeys(ctx, passwordUIA(alice, testserver.DefaultPassword, &aliceUIA), ""); err != nil {
		t.Fatalf("alice bootstraps cross-signing: %v", err)
	}
	if bobUIA != 0 || aliceUIA != 0 {
		t.Errorf("first cross-signing upload asked for auth (bob %d, alice %d times)", bobUIA, aliceUIA)
	}
	first := alice1.mach.CrossSigningKeys.MasterKey.PublicKey()

	// alice resets her identity: the server asks for her password, and
	// refuses a wrong one.
	keys, err := alice1.mach.GenerateCrossSigningKeys()
	if err != nil {
		t.Fatal(err)
	}
	var wrong int
	err = alice1.mach.PublishCrossSigningKeys(ctx, keys, passwordUIA(alice, "not the password", &wrong))
	if wrong != 1 || !errors.Is(err, mautrix.MForbidden) {
		t.Fatalf("replacing cross-signing keys with a wrong password: %v (challenged %d times)", err, wrong)
	}
	if got := firstKey(queryKeys(t, bob1.cli, alice).MasterKeys[alice]); got != first {
		t.Fatalf("a failed reset changed alice's master key to %s", got)
	}
	if err := alice1.mach.PublishCrossSigningKeys(ctx, keys, passwordUIA(alice, testserver.DefaultPassword, &aliceUIA)); err != nil {
		t.Fatalf("alice resets cross-signing: %v", err)
	}
	if aliceUIA != 1 {
		t.Errorf("replacing cross-signing keys: challenged %d times, want 1", aliceUIA)
	}
	master, ssk, usk := keys.MasterKey.PublicKey(), keys.SelfSigningKey.PublicKey(), keys.UserSigningKey.PublicKey()

	// alice1 signs itself and alice2 with her self-signing key; alice2
	// signs her master key with its device key (what verifying a new
	// login does); alice signs bob's master key with her user-signing key.
	bob1.resetDeviceLists()
	if err := alice1.mach.SignOwnDevice(ctx, alice1.mach.OwnIdentity()); err != nil {
		t.Fatalf("alice1 signs itself: %v", err)
	}
	if _, err := alice1.mach.FetchKeys(ctx, []id.UserID{alice, bob}, true); err != nil {
		t.Fatal(err)
	}
	alice2Dev, err := alice1.mach.CryptoStore.GetDevice(ctx, alice, alice2.cli.DeviceID)
	if err != nil || alice2Dev == nil {
		t.Fatalf("alice1 does not know alice2: %v", err)
	}
	if err := alice1.mach.SignOwnDevice(ctx, alice2Dev); err != nil {
		t.Fatalf("alice1 signs alice2: %v", err)
	}
	if err := alice2.mach.SignOwnMasterKey(ctx); err != nil {
		t.Fatalf("alice2 signs alice's master key: %v", err)
	}
	bobKeys, err := alice1.mach.GetCrossSigningPublicKeys(ctx, bob)
	if err != nil || bobKeys == nil {
		t.Fatalf("alice1 has no cross-signing keys of bob: %v", err)
	}
	if err := alice1.mach.SignUser(ctx, bob, bobKeys.MasterKey); err != nil {
		t.Fatalf("alice signs bob's master key: %v", err)
	}

	// bob hears that alice's keys changed…
	bob1.syncUntil("alice in bob1's device_lists.changed", func() error {
		if bob1.changed[alice] == 0 {
			return errors.New("not yet")
		}
		return nil
	})
	// …and sees her keys and signatures, each verifying.
	seen := queryKeys(t, bob1.cli, alice, bob)
	mk := seen.MasterKeys[alice]
	if mk.FirstKey() != master {
		t.Fatalf("bob sees alice's master key %s, want %s", mk.FirstKey(), master)
	}
	for _, dev := range []*e2eeDevice{alice1, alice2} {
		verifySig(t, "alice's master key by "+dev.name, mk, alice, dev.cli.DeviceID.String(), dev.mach.OwnIdentity().SigningKey)
	}
	sk := seen.SelfSigningKeys[alice]
	if sk.FirstKey() != ssk {
		t.Fatalf("bob sees alice's self-signing key %s, want %s", sk.FirstKey(), ssk)
	}
	verifySig(t, "alice's self-signing key by her master key", sk, alice, master.String(), master)
	for _, dev := range []*e2eeDevice{alice1, alice2} {
		dk, ok := seen.DeviceKeys[alice][dev.cli.DeviceID]
		if !ok {
			t.Fatalf("bob does not see %s", dev.name)
		}
		verifySig(t, dev.name+" by alice's self-signing key", dk, alice, ssk.String(), ssk)
	}
	if _, ok := seen.UserSigningKeys[alice]; ok {
		t.Error("bob sees alice's user-signing key")
	}
	if sigs := seen.MasterKeys[bob].Signatures[alice]; len(sigs) != 0 {
		t.Errorf("bob sees alice's signature of his master key: %v", sigs)
	}
	// bob's Olm machine, fed the same answer, trusts alice's devices
	// through her cross-signing (trust on first use of her master key).
	if _, err := bob1.mach.FetchKeys(ctx, []id.UserID{alice}, true); err != nil {
		t.Fatal(err)
	}
	for _, dev := range []*e2eeDevice{alice1, alice2} {
		d, err := bob1.mach.CryptoStore.GetDevice(ctx, alice, dev.cli.DeviceID)
		if err != nil || d == nil {
			t.Fatalf("bob1 does not know %s: %v", dev.name, err)
		}
		if trust, err := bob1.mach.ResolveTrustContext(ctx, d); err != nil || trust != id.TrustStateCrossSignedTOFU {
			t.Errorf("bob1's trust in %s: %s (%v), want %s", dev.name, trust, err, id.TrustStateCrossSignedTOFU)
		}
	}

	// alice sees her own user-signing key and her signature of bob…
	mine := queryKeys(t, alice1.cli, alice, bob)
	if got := firstKey(mine.UserSigningKeys[alice]); got != usk {
		t.Errorf("alice sees her user-signing key as %q, want %s", got, usk)
	}
	verifySig(t, "bob's master key by alice's user-signing key", mine.MasterKeys[bob], alice, usk.String(), usk)
	// …and her machine trusts bob's device: her user-signing key signed
	// bob's master key, which signed his self-signing key, which signed bob1.
	if _, err := alice1.mach.FetchKeys(ctx, []id.UserID{bob}, true); err != nil {
		t.Fatal(err)
	}
	bob1Dev, err := alice1.mach.CryptoStore.GetDevice(ctx, bob, bob1.cli.DeviceID)
	if err != nil || bob1Dev == nil {
		t.Fatalf("alice1 does not know bob1: %v", err)
	}
	if trust, err := alice1.mach.ResolveTrustContext(ctx, bob1Dev); err != nil || trust != id.TrustStateCrossSignedVerified {
		t.Errorf("alice1's trust in bob1: %s (%v), want %s", trust, err, id.TrustStateCrossSignedVerified)
	}
}

// queryKeys runs /keys/query for every device of users.
func queryKeys(t *testing.T, c *mautrix.Client, users ...id.UserID) *mautrix.RespQueryKeys {
	t.Helper()
	req := &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{}}
	for _, u := range users {
		req.DeviceKeys[u] = mautrix.DeviceIDList{}
	}
	resp, err := c.QueryKeys(context.Background(), req)
	if err != nil {
		t.Fatalf("/keys/query: %v", err)
	}
	return resp
}

// verifySig checks that obj carries a valid signature by signer's key
// keyName (a device ID or a public key) with the ed25519 key.
func verifySig(t *testing.T, what string, obj any, signer id.UserID, keyName string, key id.Ed25519) {
	t.Helper()
	ok, err := signatures.VerifySignatureJSON(obj, signer, keyName, key)
	if err != nil || !ok {
		t.Errorf("%s: no valid signature by %s ed25519:%s (%v)", what, signer, keyName, err)
	}
}

// TestE2EEGoolmKeyBackupRoundTrip: alice1 backs up her Megolm session
// (m.megolm_backup.v1.curve25519-aes-sha2) and keeps the backup key in
// secret storage; alice3, a device that logs in afterwards and never got
// the key, restores it with the recovery key and reads the old message.
func TestE2EEGoolmKeyBackupRoundTrip(t *testing.T) {
	ctx := context.Background()
	ts := testserver.New(t)
	logs := newE2EELogs(t)
	alice1 := newE2EEDevice(t, logs, "alice1", ts.RegisterUser("alice"))
	bob1 := newE2EEDevice(t, logs, "bob1", ts.RegisterUser("bob"))
	alice, bob := alice1.cli.UserID, bob1.cli.UserID
	room := createEncryptedRoom(t, alice1.cli, bob1.cli)
	for _, d := range []*e2eeDevice{alice1, bob1} {
		d.waitRoomReady(room, alice, bob)
	}
	evt, sess := alice1.sendEncrypted(room, "remember this")
	bob1.waitDecrypt(evt, "remember this")

	// alice1 sets up secure backup and backs up her session of the room.
	bk := alice1.createBackupWithRecoveryKey()
	version, recoveryKey := bk.version, bk.recoveryKey
	if ids, count := alice1.backUpRoom(bk, room); len(ids) != 1 || ids[0] != sess || count != 1 {
		t.Fatalf("alice1 backed up sessions %v (backup counts %d), want exactly the one of her message (%s)", ids, count, sess)
	}
	// bob cannot see alice's backup.
	if _, err := bob1.cli.GetKeyBackupVersion(ctx, version); !errors.Is(err, mautrix.MNotFound) {
		t.Errorf("bob reading alice's backup version: got %v, want M_NOT_FOUND", err)
	}

	// alice3 logs in later: no key was ever shared with it.
	alice3 := newE2EEDevice(t, logs, "alice3", ts.Login("alice", testserver.DefaultPassword))
	alice3.waitRoomReady(room, alice, bob)
	old := fetchEncrypted(t, alice3.cli, room, evt)
	if _, err := alice3.mach.DecryptMegolmEvent(ctx, old); !errors.Is(err, crypto.ErrNoSessionFound) {
		t.Fatalf("alice3 before restoring: got %v, want %v", err, crypto.ErrNoSessionFound)
	}

	// The user types the recovery key: secret storage gives the backup
	// key, and the backup gives the session.
	alice3.restoreBackup(recoveryKey, version)
	dec, err := alice3.mach.DecryptMegolmEvent(ctx, old)
	if err != nil {
		t.Fatalf("alice3 after restoring the backup: %v", err)
	}
	checkPlaintext(t, "alice3", dec, "remember this")
	if dec.Mautrix.TrustState != id.TrustStateBackup {
		t.Errorf("restored session trust %s, want %s", dec.Mautrix.TrustState, id.TrustStateBackup)
	}
}

// firstKey is the public key of a cross-signing key ("" if absent).
func firstKey(k mautrix.CrossSigningKeys) id.Ed25519 { return k.FirstKey() }

func deviceList(devices []id.DeviceID) string {
	b, _ := json.Marshal(devices)
	return string(b)
}

func keysOf[V any](m map[id.DeviceID]V) []id.DeviceID {
	var out []id.DeviceID
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
