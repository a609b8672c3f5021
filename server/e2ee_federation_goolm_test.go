//go:build goolm

package server_test

import (
	"context"
	"errors"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
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
	logs := newE2EELogs(t)
	c := &e2eeChat{ts: a, logs: logs}
	c.alice1 = newE2EEDevice(t, logs, "alice1", a.RegisterUser("alice"))
	c.alice2 = newE2EEDevice(t, logs, "alice2", a.Login("alice", testserver.DefaultPassword))
	c.bob1 = newE2EEDevice(t, logs, "bob1", b.RegisterUser("bob"))
	c.bob2 = newE2EEDevice(t, logs, "bob2", b.Login("bob", testserver.DefaultPassword))
	c.alice, c.bob = c.alice1.cli.UserID, c.bob1.cli.UserID
	c.room = createEncryptedRoom(t, c.alice1.cli, c.bob1.cli)
	for _, d := range c.devices() {
		d.waitRoomReady(c.room, c.alice, c.bob)
	}
	// Each device learns of its own user's other device (other users'
	// are fetched, across servers, when a room key is first shared).
	own := map[id.UserID][]id.DeviceID{
		c.alice: {c.alice1.cli.DeviceID, c.alice2.cli.DeviceID},
		c.bob:   {c.bob1.cli.DeviceID, c.bob2.cli.DeviceID},
	}
	for _, d := range c.devices() {
		d.waitKnowsDevices(d.cli.UserID, own[d.cli.UserID]...)
	}
	return c, b
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
