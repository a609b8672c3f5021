//go:build goolm

package server_test

import (
	"testing"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// TestE2EEGoolmOverP2P: an encrypted chat between alice on A and bob on
// B, two P2P servers on loopback with no TCP federation: device lists,
// one-time keys, room keys (to-device) and the encrypted messages all
// cross over libp2p, and one message each way is decrypted on every
// device, tied to the device that sent it.
func TestE2EEGoolmOverP2P(t *testing.T) {
	a := testserver.NewP2P(t)
	b := testserver.NewP2P(t, testserver.Peers(a))
	c := newE2EEChatOn(t, a, b)
	evt1, _ := c.alice1.sendEncrypted(c.room, "hello bob, over libp2p")
	for _, d := range c.devices() {
		dec := d.waitDecrypt(evt1, "hello bob, over libp2p")
		checkSenderDevice(t, d, dec, c.alice1)
	}
	evt2, _ := c.bob2.sendEncrypted(c.room, "hello alice, over libp2p")
	for _, d := range c.devices() {
		dec := d.waitDecrypt(evt2, "hello alice, over libp2p")
		checkSenderDevice(t, d, dec, c.bob2)
	}
}
