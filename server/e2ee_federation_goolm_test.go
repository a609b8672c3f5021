//go:build goolm

package server_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// newFedE2EEChat is newE2EEChat across two federating servers: alice's
// devices on A, bob's on B, every key, device list and room key crossing
// between them over federation.
func newFedE2EEChat(t *testing.T) (*e2eeChat, *testserver.Server) {
	t.Helper()
	ca := testserver.NewCA(t)
	a := testserver.New(t, testserver.Federated(ca))
	b := testserver.New(t, testserver.Federated(ca))
	return newE2EEChatOn(t, a, b), b
}

// TestE2EEGoolmAcrossServers: an encrypted chat between a user of A and a
// user of B, two devices each: every message decrypted on every device,
// tied to the device that sent it; then a new device of bob's on B is
// learned by alice on A through a device list update and receives the
// next room key.
func TestE2EEGoolmAcrossServers(t *testing.T) {
	c, b := newFedE2EEChat(t)
	evt1, _ := c.alice1.sendEncrypted(c.room, "hello bob, from A")
	for _, d := range c.devices() {
		dec := d.waitDecrypt(evt1, "hello bob, from A")
		checkSenderDevice(t, d, dec, c.alice1)
	}
	evt2, _ := c.bob2.sendEncrypted(c.room, "hello alice, from B")
	for _, d := range c.devices() {
		dec := d.waitDecrypt(evt2, "hello alice, from B")
		checkSenderDevice(t, d, dec, c.bob2)
	}
	// A new device on B: alice1 on A hears of it and shares her next
	// session with it.
	c.alice1.resetDeviceLists()
	bob3 := newE2EEDevice(t, c.logs, "bob3", b.Login("bob", testserver.DefaultPassword))
	bob3.waitRoomReady(c.room, c.alice, c.bob)
	c.alice1.waitKnowsDevices(c.bob, bob3.cli.DeviceID)
	if c.alice1.changed[c.bob] == 0 {
		t.Error("alice1 learned of bob3 without bob in device_lists.changed")
	}
	evt3, _ := c.alice1.sendEncrypted(c.room, "welcome bob3")
	for _, d := range append(c.devices(), bob3) {
		d.waitDecrypt(evt3, "welcome bob3")
	}
}

// TestE2EEGoolmKeyBackupAcrossServers: bob on B backs up the Megolm
// session alice on A used in their room (it reached bob over federation);
// a device bob logs in on B afterwards, which no key was shared with,
// restores it from the backup and reads the old message.
func TestE2EEGoolmKeyBackupAcrossServers(t *testing.T) {
	ctx := context.Background()
	c, b := newFedE2EEChat(t)
	evt, sess := c.alice1.sendEncrypted(c.room, "keep this, bob")
	c.bob1.waitDecrypt(evt, "keep this, bob")

	bk := c.bob1.createBackupWithRecoveryKey()
	if ids, count := c.bob1.backUpRoom(bk, c.room); len(ids) != 1 || ids[0] != sess || count != 1 {
		t.Fatalf("bob1 backed up sessions %v (backup counts %d), want alice's session %s only", ids, count, sess)
	}
	// alice's server knows nothing of bob's backup.
	if _, err := c.alice1.cli.GetKeyBackupVersion(ctx, bk.version); !errors.Is(err, mautrix.MNotFound) {
		t.Errorf("alice reading bob's backup version on A: got %v, want M_NOT_FOUND", err)
	}

	bob3 := newE2EEDevice(t, c.logs, "bob3", b.Login("bob", testserver.DefaultPassword))
	bob3.waitRoomReady(c.room, c.alice, c.bob)
	old := fetchEncrypted(t, bob3.cli, c.room, evt)
	if _, err := bob3.mach.DecryptMegolmEvent(ctx, old); !errors.Is(err, crypto.ErrNoSessionFound) {
		t.Fatalf("bob3 before restoring: got %v, want %v", err, crypto.ErrNoSessionFound)
	}
	bob3.restoreBackup(bk.recoveryKey, bk.version)
	dec, err := bob3.mach.DecryptMegolmEvent(ctx, old)
	if err != nil {
		t.Fatalf("bob3 after restoring the backup: %v", err)
	}
	checkPlaintext(t, "bob3", dec, "keep this, bob")
	if dec.Sender != c.alice || dec.Mautrix.TrustState != id.TrustStateBackup {
		t.Errorf("restored message from %s with trust %s, want %s and %s", dec.Sender, dec.Mautrix.TrustState, c.alice, id.TrustStateBackup)
	}
}

// TestE2EEGoolmSASAcrossServers: alice1 on A and bob1 on B, each user
// with cross-signing set up, verify each other with SAS (emoji and
// decimal) through mautrix's verification helper. Every
// m.key.verification.* message crosses between the servers as an
// m.direct_to_device EDU. Both show the same string, both confirm, and
// afterwards each holds the other's device as verified and has signed the
// other's master key with its user-signing key: alice sees her signature
// of bob's master key (kept on A) in /keys/query, and through it trusts
// bob2, which bob signed but alice never verified; bob2, which got the
// request too, is told it was accepted elsewhere.
func TestE2EEGoolmSASAcrossServers(t *testing.T) {
	ctx := context.Background()
	c, _ := newFedE2EEChat(t)
	a, b := c.alice1, c.bob1

	// Both users set up cross-signing and sign the device they use; each
	// side hears of the other's new keys over federation.
	for _, d := range []*e2eeDevice{a, b} {
		var uia int
		if _, _, err := d.mach.GenerateAndUploadCrossSigningKeys(ctx, passwordUIA(d.cli.UserID, testserver.DefaultPassword, &uia), ""); err != nil {
			t.Fatalf("%s bootstraps cross-signing: %v", d.name, err)
		}
		if err := d.mach.SignOwnDevice(ctx, d.mach.OwnIdentity()); err != nil {
			t.Fatalf("%s signs itself: %v", d.name, err)
		}
	}
	// bob1 also signs bob2 with bob's self-signing key: alice will never
	// verify bob2 herself, and must trust it through bob's identity.
	bob2Dev, err := b.mach.CryptoStore.GetDevice(ctx, c.bob, c.bob2.cli.DeviceID)
	if err != nil || bob2Dev == nil {
		t.Fatalf("bob1 does not know bob2: %v", err)
	}
	if err := b.mach.SignOwnDevice(ctx, bob2Dev); err != nil {
		t.Fatalf("bob1 signs bob2: %v", err)
	}
	for _, pair := range [][2]*e2eeDevice{{a, b}, {b, a}} {
		d, other := pair[0], pair[1]
		want := other.mach.CrossSigningKeys.MasterKey.PublicKey()
		d.syncUntil("the cross-signing keys of "+string(other.cli.UserID), func() error {
			keys, err := d.mach.GetCrossSigningPublicKeys(ctx, other.cli.UserID)
			if err != nil || keys == nil || keys.MasterKey != want {
				return fmt.Errorf("has %+v (%v)", keys, err)
			}
			return nil
		})
	}

	va, vb := a.newVerifier(), b.newVerifier()
	txn, err := va.vh.StartVerification(ctx, c.bob)
	if err != nil {
		t.Fatalf("alice1 requests verification: %v", err)
	}
	b.syncUntil("alice1's verification request", func() error {
		if got, _, _, _, _ := vb.state(); got != txn {
			return fmt.Errorf("requested %q", got)
		}
		return nil
	})
	if err := vb.vh.AcceptVerification(ctx, txn); err != nil {
		t.Fatalf("bob1 accepts: %v", err)
	}
	a.syncUntil("bob1's ready", func() error {
		if _, ready, _, _, cancelled := va.state(); !ready {
			return fmt.Errorf("not ready (cancelled: %q)", cancelled)
		}
		return nil
	})
	if err := va.vh.StartSAS(ctx, txn); err != nil {
		t.Fatalf("alice1 starts SAS: %v", err)
	}
	// start → accept → key ↔ key: both show their strings.
	syncBothUntil(t, "both devices showing SAS", a, b, func() error {
		for _, v := range []*e2eeVerifier{va, vb} {
			if _, _, sas, _, cancelled := v.state(); sas == nil {
				return fmt.Errorf("%s shows no SAS (cancelled: %q)", v.d.name, cancelled)
			}
		}
		return nil
	})
	_, _, sasA, _, _ := va.state()
	_, _, sasB, _, _ := vb.state()
	if sasA.emojis == "" || len(sasA.decimals) != 3 || sasA.emojis != sasB.emojis || !slices.Equal(sasA.decimals, sasB.decimals) {
		t.Fatalf("SAS differ: alice1 shows %q %v, bob1 %q %v", sasA.emojis, sasA.decimals, sasB.emojis, sasB.decimals)
	}
	// Both users compare and confirm: MACs, then done, both ways.
	for _, v := range []*e2eeVerifier{va, vb} {
		if err := v.vh.ConfirmSAS(ctx, txn); err != nil {
			t.Fatalf("%s confirms: %v", v.d.name, err)
		}
	}
	syncBothUntil(t, "both verifications done", a, b, func() error {
		for _, v := range []*e2eeVerifier{va, vb} {
			if _, _, _, done, cancelled := v.state(); !done {
				return fmt.Errorf("%s not done (cancelled: %q)", v.d.name, cancelled)
			}
		}
		return nil
	})

	// Each holds the other's device as verified.
	for _, pair := range [][2]*e2eeDevice{{a, b}, {b, a}} {
		d, other := pair[0], pair[1]
		dev, err := d.mach.CryptoStore.GetDevice(ctx, other.cli.UserID, other.cli.DeviceID)
		if err != nil || dev == nil || dev.Trust != id.TrustStateVerified {
			t.Errorf("%s's store after verifying %s: %+v (%v), want trust %s", d.name, other.name, dev, err, id.TrustStateVerified)
		}
	}
	// Each signed the other's master key; the signature is seen by its
	// signer only, from the signer's own server.
	for _, pair := range [][2]*e2eeDevice{{a, b}, {b, a}} {
		d, other := pair[0], pair[1]
		usk := d.mach.CrossSigningKeys.UserSigningKey.PublicKey()
		mine := queryKeys(t, d.cli, other.cli.UserID)
		verifySig(t, d.name+"'s signature of "+string(other.cli.UserID)+"'s master key", mine.MasterKeys[other.cli.UserID], d.cli.UserID, usk.String(), usk)
		theirs := queryKeys(t, other.cli, other.cli.UserID)
		if sigs := theirs.MasterKeys[other.cli.UserID].Signatures[d.cli.UserID]; len(sigs) != 0 {
			t.Errorf("%s sees %s's signature of its master key: %v", other.name, d.cli.UserID, sigs)
		}
	}
	// alice's machine trusts bob2, which she never verified, through her
	// signature: her user-signing key signed bob's master key, which
	// signed his self-signing key, which signed bob2.
	if _, err := a.mach.FetchKeys(ctx, []id.UserID{c.bob}, true); err != nil {
		t.Fatal(err)
	}
	bob2Seen, err := a.mach.CryptoStore.GetDevice(ctx, c.bob, c.bob2.cli.DeviceID)
	if err != nil || bob2Seen == nil {
		t.Fatalf("alice1 does not know bob2: %v", err)
	}
	if trust, err := a.mach.ResolveTrustContext(ctx, bob2Seen); err != nil || trust != id.TrustStateCrossSignedVerified {
		t.Errorf("alice1's trust in bob2 through cross-signing: %s (%v), want %s", trust, err, id.TrustStateCrossSignedVerified)
	}
	// bob2 got the request, then a cancellation once bob1 took it.
	c.bob2.syncUntil("the request and its cancellation on bob2", func() error {
		if !c.bob2.receivedToDevice(event.ToDeviceVerificationRequest) || !c.bob2.receivedToDevice(event.ToDeviceVerificationCancel) {
			return errors.New("not yet")
		}
		return nil
	})
}
