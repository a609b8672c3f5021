package rooms

import (
	"context"
	"testing"

	"maunium.net/go/mautrix/id"
)

func TestGlobMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "anything.example", true},
		{"*", "", true},
		{"evil.com", "EVIL.COM", true},
		{"*.evil.com", "evil.com", false},
		{"*.evil.com", "a.b.evil.com", true},
		{"ev?l.com", "evil.com", true},
		{"ev?l.com", "evl.com", false},
		{"*evil*", "notevilatall.org", true},
		{"a*b*c", "abbbc", true},
		{"a*b*c", "acb", false},
		{"", "", true},
		{"", "x", false},
		{"[::1]", "[::1]", true},
		{"ünï*", "ÜNÏCODE.example", true},
	} {
		if got := globMatch(c.pattern, c.s); got != c.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

func TestServerACLEvaluation(t *testing.T) {
	for _, c := range []struct {
		name    string
		content string
		server  string
		want    bool
	}{
		{"allow all", `{"allow":["*"]}`, "matrix.org", true},
		{"no allow denies everyone", `{}`, "matrix.org", false},
		{"deny wins over allow", `{"allow":["*"],"deny":["matrix.org"]}`, "matrix.org", false},
		{"port ignored", `{"allow":["*"],"deny":["matrix.org"]}`, "matrix.org:8448", false},
		{"port ignored in allow", `{"allow":["good.example"]}`, "good.example:443", true},
		{"IP literal allowed by default", `{"allow":["*"]}`, "1.2.3.4", true},
		{"IP literal denied", `{"allow":["*"],"allow_ip_literals":false}`, "1.2.3.4:8448", false},
		{"IPv6 literal denied", `{"allow":["*"],"allow_ip_literals":false}`, "[2001:db8::1]:8448", false},
		{"names are not IP literals", `{"allow":["*"],"allow_ip_literals":false}`, "1.2.3.4.example", true},
		// Federated events are read leniently, with the spec's defaults.
		{"allow_ip_literals not a bool means true", `{"allow":["*"],"allow_ip_literals":"no"}`, "1.2.3.4", true},
		{"non-string entries ignored", `{"allow":[1,"*"],"deny":[{"x":1},"bad.example"]}`, "bad.example", false},
		{"allow not a list denies", `{"allow":"*"}`, "matrix.org", false},
		{"deny not a list ignored", `{"allow":["*"],"deny":"matrix.org"}`, "matrix.org", true},
	} {
		if got := parseServerACL([]byte(c.content)).allows(c.server); got != c.want {
			t.Errorf("%s: allows(%s) = %v, want %v", c.name, c.server, got, c.want)
		}
	}
}

// TestServerAllowedRoom checks ServerAllowed against a room's current ACL,
// which federation will call for every request naming a room.
func TestServerAllowedRoom(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	alice := id.UserID("@alice:localhost")
	roomID, err := s.CreateRoom(ctx, alice, &CreateRoomRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.ServerAllowed(ctx, roomID, "anyone.example"); err != nil || !ok {
		t.Fatalf("no ACL: %v %v", ok, err)
	}
	if _, err := s.SetState(ctx, alice, roomID, "m.room.server_acl", "", []byte(`{"allow":["*"],"deny":["*.bad.example"]}`)); err != nil {
		t.Fatal(err)
	}
	for server, want := range map[string]bool{"good.example": true, "x.bad.example:8448": false, "localhost": true} {
		if ok, err := s.ServerAllowed(ctx, roomID, server); err != nil || ok != want {
			t.Fatalf("ServerAllowed(%s) = %v %v, want %v", server, ok, err, want)
		}
	}
	// A local ACL that shuts this server out is refused; the room keeps
	// the previous one.
	if _, err := s.SetState(ctx, alice, roomID, "m.room.server_acl", "", []byte(`{"allow":["good.example"]}`)); err == nil {
		t.Fatal("ACL denying this server was accepted")
	}
	if ok, _ := s.ServerAllowed(ctx, roomID, "good.example"); !ok {
		t.Fatal("previous ACL lost")
	}
	if _, err := s.ServerAllowed(ctx, "!unknown:localhost", "good.example"); err != nil {
		t.Fatalf("unknown room: %v", err)
	}
}
