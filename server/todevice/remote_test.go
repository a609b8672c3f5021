package todevice

import (
	"encoding/json"
	"strings"
	"testing"

	"maunium.net/go/mautrix/id"
)

// Messages for one server beyond maxEDUBytes are split into EDUs, each
// under the bound and with its own message_id; every message is in one of
// them, and "*" replaces explicit devices.
func TestRemoteEDUsSplit(t *testing.T) {
	big := json.RawMessage(`{"k":"` + strings.Repeat("x", 30000) + `"}`)
	req := &Request{Sender: "@alice:here.test", Type: "m.room_key", Messages: map[id.UserID]map[id.DeviceID]json.RawMessage{
		"@bob:there.test":   {"D1": big, "D2": big, "D3": big},
		"@carol:there.test": {"*": json.RawMessage(`{"all":true}`), "D4": json.RawMessage(`{}`)},
		"@dan:third.test":   {"D5": json.RawMessage(`{}`)},
	}}
	remote := map[string][]remoteEntry{}
	for _, u := range []id.UserID{"@bob:there.test", "@carol:there.test", "@dan:third.test"} {
		srv := u.Homeserver()
		remote[srv] = appendRemote(remote[srv], u, req.Messages[u])
	}
	edus, err := remoteEDUs(req, remote)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	ids := map[string]bool{}
	perDest := map[string]int{}
	for _, e := range edus {
		if e.Type != EDUType || e.CoalesceKey != "" {
			t.Fatalf("EDU type %q key %q", e.Type, e.CoalesceKey)
		}
		if len(e.Content) > maxEDUBytes {
			t.Fatalf("EDU of %d bytes", len(e.Content))
		}
		var c DirectToDevice
		if err := json.Unmarshal(e.Content, &c); err != nil {
			t.Fatal(err)
		}
		if c.Sender != req.Sender || c.Type != req.Type || c.MessageID == "" || len(c.MessageID) > 32 || ids[c.MessageID] {
			t.Fatalf("bad EDU header: %+v", c)
		}
		ids[c.MessageID] = true
		perDest[e.Destination]++
		for u, devs := range c.Messages {
			if u.Homeserver() != e.Destination {
				t.Fatalf("message for %s in an EDU for %s", u, e.Destination)
			}
			for d := range devs {
				seen[string(u)+"|"+string(d)]++
			}
		}
	}
	want := []string{"@bob:there.test|D1", "@bob:there.test|D2", "@bob:there.test|D3", "@carol:there.test|*", "@dan:third.test|D5"}
	if len(seen) != len(want) {
		t.Fatalf("messages: %v", seen)
	}
	for _, k := range want {
		if seen[k] != 1 {
			t.Fatalf("message %s in %d EDUs", k, seen[k])
		}
	}
	if perDest["there.test"] != 2 || perDest["third.test"] != 1 {
		t.Fatalf("EDUs per server: %v", perDest)
	}
}
