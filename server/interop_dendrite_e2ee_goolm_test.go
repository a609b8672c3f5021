//go:build goolm

package server_test

import (
	"testing"

	"github.com/palpo-im/palpo-desktop/server/internal/dendrite"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// TestInteropDendriteEncrypted: a user of Palpo and a user of Dendrite in
// an encrypted room (version 11, which Dendrite knows), each with
// mautrix-go's crypto (goolm). Each side's keys are queried and claimed
// across the servers, the Megolm keys travel as m.direct_to_device EDUs
// between two implementations, and a message each way is decrypted by
// the other side, tied to the device that sent it.
func TestInteropDendriteEncrypted(t *testing.T) {
	ca := testserver.NewCA(t)
	cert, key := ca.Issue("127.0.0.1")
	d := dendrite.Start(t, dendrite.Options{CertFile: cert, KeyFile: key, TrustedCAFile: ca.CertFile})
	p := testserver.New(t, testserver.Federated(ca))
	logs := newE2EELogs(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dendrite log:\n%s", d.Log())
		}
	})

	bob := newE2EEDevice(t, logs, "bob (Palpo)", p.RegisterUser("bob"))
	alice := newE2EEDevice(t, logs, "alice (Dendrite)", d.RegisterUser("alice"))
	room := createEncryptedRoomVersion(t, dendriteRoomVersion, bob.cli, alice.cli)
	for _, dev := range []*e2eeDevice{bob, alice} {
		dev.waitRoomReady(room, bob.cli.UserID, alice.cli.UserID)
	}

	evt1, _ := bob.sendEncrypted(room, "hello Dendrite, from Palpo")
	checkSenderDevice(t, alice, alice.waitDecrypt(evt1, "hello Dendrite, from Palpo"), bob)
	evt2, _ := alice.sendEncrypted(room, "hello Palpo, from Dendrite")
	checkSenderDevice(t, bob, bob.waitDecrypt(evt2, "hello Palpo, from Dendrite"), alice)
}
