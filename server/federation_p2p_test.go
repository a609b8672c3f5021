package server_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	mfed "maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/p2p/servername"
	"github.com/palpo-im/palpo-desktop/server"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/identity"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// TestP2PFederationTwoServers: two servers with P2P names and no TCP
// federation at all share a room over libp2p on loopback: join by alias,
// messages both ways, and the admin API shows the P2P side.
func TestP2PFederationTwoServers(t *testing.T) {
	a := testserver.NewP2P(t)
	b := testserver.NewP2P(t, testserver.Peers(a))
	for _, s := range []*testserver.Server{a, b} {
		if !servername.IsP2P(s.ServerName()) || s.Federation().Addr() != nil {
			t.Fatalf("%s: not a P2P-only server (TLS listener %v)", s.ServerName(), s.Federation().Addr())
		}
	}
	ctx := context.Background()
	alice, bob := a.RegisterAdmin("alice"), b.RegisterUser("bob")
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "family"})
	if err != nil {
		t.Fatal(err)
	}
	alias := id.RoomAlias(fmt.Sprintf("#family:%s", a.ServerName()))
	joined, err := bob.JoinRoom(ctx, string(alias), nil)
	if err != nil {
		t.Fatalf("join %s from %s: %v", alias, b.ServerName(), err)
	}
	if joined.RoomID != created.RoomID {
		t.Fatalf("joined %s, want %s", joined.RoomID, created.RoomID)
	}
	if _, err := bob.SendText(ctx, created.RoomID, "hello over libp2p from b"); err != nil {
		t.Fatal(err)
	}
	waitForMessage(t, alice, created.RoomID, "hello over libp2p from b")
	if _, err := alice.SendText(ctx, created.RoomID, "hello over libp2p from a"); err != nil {
		t.Fatal(err)
	}
	waitForMessage(t, bob, created.RoomID, "hello over libp2p from a")
	// Profiles (a query) cross too.
	if _, err := bob.GetProfile(ctx, alice.UserID); err != nil {
		t.Fatalf("bob reads alice's profile: %v", err)
	}

	var st struct {
		Enabled    bool    `json:"enabled"`
		ServerName string  `json:"server_name"`
		Listen     *string `json:"listen"`
		P2P        *struct {
			Running      bool     `json:"running"`
			PeerID       string   `json:"peer_id"`
			ServerName   string   `json:"server_name"`
			Reachability string   `json:"reachability"`
			Peers        int      `json:"peers"`
			ListenAddrs  []string `json:"listen_addrs"`
		} `json:"p2p"`
		Destinations []struct {
			Destination string `json:"destination"`
		} `json:"destinations"`
	}
	u := alice.BuildURL(mautrix.BaseURLPath{"_palpo", "admin", "v1", "federation"})
	if _, err := alice.MakeRequest(ctx, http.MethodGet, u, nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.Enabled || st.Listen != nil || st.P2P == nil || !st.P2P.Running || st.P2P.ServerName != a.ServerName() ||
		st.P2P.PeerID != a.P2P().PeerID().String() || st.P2P.Peers < 1 || len(st.P2P.ListenAddrs) == 0 || st.P2P.Reachability == "" {
		raw, _ := json.Marshal(st)
		t.Fatalf("admin federation status %s", raw)
	}
	if len(st.Destinations) != 1 || st.Destinations[0].Destination != b.ServerName() {
		t.Fatalf("destinations %+v, want %s", st.Destinations, b.ServerName())
	}
}

// TestP2PFederationThreeServers: a third P2P server joins; each server's
// messages reach the other two.
func TestP2PFederationThreeServers(t *testing.T) {
	a := testserver.NewP2P(t)
	b := testserver.NewP2P(t, testserver.Peers(a))
	c := testserver.NewP2P(t, testserver.Peers(a, b))
	ctx := context.Background()
	alice, bob, carol := a.RegisterUser("alice"), b.RegisterUser("bob"), c.RegisterUser("carol")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []*mautrix.Client{bob, carol} {
		if _, err := u.JoinRoom(ctx, room.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{a.ServerName()}}); err != nil {
			t.Fatalf("%s joins: %v", u.UserID, err)
		}
	}
	waitMembership(t, b, room.RoomID, carol.UserID, event.MembershipJoin)
	for _, from := range []*mautrix.Client{alice, bob, carol} {
		body := "p2p message from " + from.UserID.Localpart()
		if _, err := from.SendText(ctx, room.RoomID, body); err != nil {
			t.Fatal(err)
		}
		for _, to := range []*mautrix.Client{alice, bob, carol} {
			if to != from {
				waitForMessage(t, to, room.RoomID, body)
			}
		}
	}
	sameCurrentState(t, a, b, room.RoomID)
	sameCurrentState(t, a, c, room.RoomID)
}

// TestP2PNameRules: a server with p2p on must run under its key's P2P
// name (the error names it), and a P2P name of another key is refused
// before the database records it.
func TestP2PNameRules(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	cfg := config.Default()
	cfg.Listen = []string{"127.0.0.1:0"}
	testserver.LoopbackP2P(cfg)
	_, refused := server.New(context.Background(), cfg, dir, log)
	if refused == nil || !strings.Contains(refused.Error(), "p2p.enabled") {
		t.Fatalf("p2p on under \"localhost\": %v", refused)
	}
	key, err := identity.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	own := servername.FromKey(key.Priv.Public().(ed25519.PublicKey))
	if !strings.Contains(refused.Error(), `server_name = "`+own+`"`) {
		t.Fatalf("the error does not name this server's P2P name %s: %v", own, refused)
	}
	if _, err := os.Stat(filepath.Join(dir, cfg.Database.Path)); err == nil {
		t.Fatal("the database was created under the refused name")
	}
	// Another key's P2P name is refused, with or without p2p on.
	other := servername.FromKey(mfed.GenerateSigningKey().Priv.Public().(ed25519.PublicKey))
	for _, on := range []bool{true, false} {
		cfg.ServerName, cfg.P2P.Enabled = other, on
		if _, err := server.New(context.Background(), cfg, dir, log); err == nil || !strings.Contains(err.Error(), own) {
			t.Fatalf("another key's name (p2p %v): %v", on, err)
		}
	}
	// The name the error gave works.
	cfg.ServerName, cfg.P2P.Enabled = own, true
	s, err := server.New(context.Background(), cfg, dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if s.P2P() == nil || s.P2P().ServerName() != own || s.P2P().PeerID().String() == "" {
		t.Fatal("no P2P node with the server's identity")
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A server with a domain may turn p2p on beside federation over TLS.
	ca := testserver.NewCA(t)
	gw := testserver.New(t, testserver.Federated(ca), testserver.LoopbackP2P)
	if gw.P2P() == nil || servername.IsP2P(gw.ServerName()) || gw.Federation().Addr() == nil {
		t.Fatal("a domain server with p2p on has no P2P node or no TLS listener")
	}
}

// TestP2PMixedRoom: a room of D, a server with a domain (here an IP
// literal) and both transports, shared with P, a P2P server that also
// sends to DNS-named servers, and E, a DNS-only server. P reaches D and E
// over TCP+TLS; D reaches P over libp2p; E cannot reach P at all (its
// name is not in DNS), so P gets E's messages only through D: the next
// event of D's refers to E's, and P fetches what it missed from D.
func TestP2PMixedRoom(t *testing.T) {
	ca := testserver.NewCA(t)
	d := testserver.New(t, testserver.Federated(ca), testserver.LoopbackP2P)
	p := testserver.NewP2P(t, testserver.Peers(d), testserver.OutboundFederation(ca))
	e := testserver.New(t, testserver.Federated(ca))
	if p.Federation().Addr() != nil {
		t.Fatal("a P2P-named server started a TLS listener")
	}
	ctx := context.Background()
	dan, pat, eve := d.RegisterUser("dan"), p.RegisterUser("pat"), e.RegisterUser("eve")
	room, err := dan.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []*mautrix.Client{pat, eve} {
		if _, err := u.JoinRoom(ctx, room.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{d.ServerName()}}); err != nil {
			t.Fatalf("%s joins through %s: %v", u.UserID, d.ServerName(), err)
		}
	}
	waitMembership(t, e, room.RoomID, pat.UserID, event.MembershipJoin)
	// E sent eve's join to P in vain; P learns of it from dan's next
	// message, which refers to it.
	if _, err := dan.SendText(ctx, room.RoomID, "from the gateway"); err != nil {
		t.Fatal(err)
	}
	waitForMessage(t, pat, room.RoomID, "from the gateway")
	waitMembership(t, p, room.RoomID, eve.UserID, event.MembershipJoin)
	// P reaches both others itself.
	if _, err := pat.SendText(ctx, room.RoomID, "from the P2P server"); err != nil {
		t.Fatal(err)
	}
	waitForMessage(t, dan, room.RoomID, "from the P2P server")
	waitForMessage(t, eve, room.RoomID, "from the P2P server")
	if _, err := eve.SendText(ctx, room.RoomID, "from the DNS-only server"); err != nil {
		t.Fatal(err)
	}
	waitForMessage(t, dan, room.RoomID, "from the DNS-only server")
	if _, err := dan.SendText(ctx, room.RoomID, "after eve"); err != nil {
		t.Fatal(err)
	}
	waitForMessage(t, pat, room.RoomID, "from the DNS-only server")
}

// TestP2PFederationByMDNS: two P2P servers that were told nothing of each
// other find each other by mDNS and share a room. Skipped where no
// interface carries multicast.
func TestP2PFederationByMDNS(t *testing.T) {
	mdns := func(cfg *config.Config) { cfg.P2P.MDNS = true }
	a := testserver.NewP2P(t, mdns)
	b := testserver.NewP2P(t, mdns)
	deadline := time.Now().Add(10 * time.Second)
	for a.P2P().Status().Peers == 0 || b.P2P().Status().Peers == 0 {
		if time.Now().After(deadline) {
			t.Skip("mDNS found no peer within 10 s: no multicast-capable interface here")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx := context.Background()
	alice, bob := a.RegisterUser("alice"), b.RegisterUser("bob")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoom(ctx, room.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{a.ServerName()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.SendText(ctx, room.RoomID, "found you on the home network"); err != nil {
		t.Fatal(err)
	}
	waitForMessage(t, alice, room.RoomID, "found you on the home network")
}
