package server_test

import (
	"context"
	"strings"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// acmeServer starts a federating server for domain with its certificate
// from p, trusting the roots of every pebble in trust, checking
// certificates, and resolving every name to 127.0.0.1 through the test
// DNS server.
func acmeServer(t *testing.T, p *testserver.Pebble, domain string, trust ...*testserver.Pebble) *testserver.Server {
	t.Helper()
	return testserver.NewWithSetup(t, func(srv *server.Server) { srv.Federation().SetResolver(p.Resolver()) },
		testserver.AutoTLS(p, domain, config.ChallengeTLSALPN01),
		func(cfg *config.Config) {
			cfg.Federation.VerifyCertificates = true
			cfg.Federation.TrustedCAFiles = nil
			for _, q := range trust {
				cfg.Federation.TrustedCAFiles = append(cfg.Federation.TrustedCAFiles, q.IssuedRootFile)
			}
		})
}

// Two servers federate with certificates from an ACME CA, checked: a
// room made on A, joined from B, a message each way. Each has its own
// pebble, because pebble validates every name at the same port.
func TestFederationWithACMECertificates(t *testing.T) {
	pa, pb := testserver.NewPebble(t), testserver.NewPebble(t)
	a := acmeServer(t, pa, "a.palpo.test", pa, pb)
	b := acmeServer(t, pb, "b.palpo.test", pa, pb)
	waitForCertificate(t, a)
	waitForCertificate(t, b)
	alice, bob := a.RegisterUser("alice"), b.RegisterUser("bob")
	ctx := context.Background()
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoom(ctx, room.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{a.ServerName()}}); err != nil {
		t.Fatalf("join from %s: %v", b.ServerName(), err)
	}
	if _, err := alice.SendText(ctx, room.RoomID, "hello from a"); err != nil {
		t.Fatal(err)
	}
	waitForMessage(t, bob, room.RoomID, "hello from a")
	if _, err := bob.SendText(ctx, room.RoomID, "hello from b"); err != nil {
		t.Fatal(err)
	}
	waitForMessage(t, alice, room.RoomID, "hello from b")
}

// A server that does not trust the other's CA refuses it: the
// certificates really are checked.
func TestFederationWithAnUntrustedACMECertificateFails(t *testing.T) {
	pa, pb := testserver.NewPebble(t), testserver.NewPebble(t)
	a := acmeServer(t, pa, "a.palpo.test", pa, pb)
	b := acmeServer(t, pb, "b.palpo.test", pb) // does not trust a's CA
	waitForCertificate(t, a)
	waitForCertificate(t, b)
	alice, bob := a.RegisterUser("alice"), b.RegisterUser("bob")
	ctx := context.Background()
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bob.JoinRoom(ctx, room.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{a.ServerName()}})
	if err == nil {
		t.Fatal("joined through a server whose certificate b does not trust")
	}
	if !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("the join failed for another reason: %v", err)
	}
}
