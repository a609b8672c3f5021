package storage

import (
	"context"
	"errors"
	"testing"
)

// TestOAuthCodeSingleUseAndSessionByGrant: a code is consumed once; a
// second consume says it was used, and the session it made is found by
// the code's hash (to be revoked); signing the device out drops the row.
func TestOAuthCodeSingleUseAndSessionByGrant(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	if err := db.CreateUser(ctx, &User{UserID: "@a:x", CreatedTS: 1}); err != nil {
		t.Fatal(err)
	}
	if err := db.InsertOAuthClient(ctx, "c1", []byte(`{}`), 1); err != nil {
		t.Fatal(err)
	}
	code := &OAuthCode{Hash: []byte("h1"), ClientID: "c1", UserID: "@a:x", DeviceID: "D1", RedirectURI: "r", Scope: "s", CodeChallenge: "ch", CreatedTS: 10, ExpiresTS: 20}
	if err := db.InsertOAuthCode(ctx, code); err != nil {
		t.Fatal(err)
	}
	got, err := db.ConsumeOAuthCode(ctx, []byte("h1"), 11)
	if err != nil || got.Used || got.DeviceID != "D1" || got.CodeChallenge != "ch" {
		t.Fatalf("first consume: %+v %v", got, err)
	}
	if got, err = db.ConsumeOAuthCode(ctx, []byte("h1"), 12); err != nil || !got.Used {
		t.Fatalf("second consume: %+v %v", got, err)
	}
	if _, err := db.ConsumeOAuthCode(ctx, []byte("nope"), 12); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown code: %v", err)
	}
	ns := &NewSession{UserID: "@a:x", DeviceID: "D1", AccessHash: []byte("a1"), RefreshHash: []byte("r1"), NowTS: 12,
		OAuth: &OAuthSession{ClientID: "c1", Scope: "s", GrantHash: []byte("h1")}}
	if err := db.CreateSession(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if u, d, err := db.OAuthSessionByGrant(ctx, []byte("h1")); err != nil || u != "@a:x" || d != "D1" {
		t.Fatalf("by grant: %s %s %v", u, d, err)
	}
	if s, err := db.OAuthSessionByRefreshToken(ctx, []byte("r1")); err != nil || s.ClientID != "c1" {
		t.Fatalf("by refresh: %+v %v", s, err)
	}
	if u, d, err := db.TokenDevice(ctx, []byte("r1")); err != nil || u != "@a:x" || d != "D1" {
		t.Fatalf("token device: %s %s %v", u, d, err)
	}
	// A password login taking the device over makes it an OAuth session no more.
	if err := db.CreateSession(ctx, &NewSession{UserID: "@a:x", DeviceID: "D1", AccessHash: []byte("a2"), NowTS: 13}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.OAuthSessionByGrant(ctx, []byte("h1")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after takeover: %v", err)
	}
}

// TestOAuthDeviceGrantLifecycle: pending, approved once, claimed by one poll.
func TestOAuthDeviceGrantLifecycle(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	if err := db.CreateUser(ctx, &User{UserID: "@a:x", CreatedTS: 1}); err != nil {
		t.Fatal(err)
	}
	if err := db.InsertOAuthClient(ctx, "c1", []byte(`{}`), 1); err != nil {
		t.Fatal(err)
	}
	g := &OAuthDeviceGrant{DeviceCodeHash: []byte("dc"), UserCode: "ABCD-EFGH", ClientID: "c1", DeviceID: "D", Scope: "s", CreatedTS: 10, ExpiresTS: 100}
	if err := db.InsertOAuthDeviceGrant(ctx, g); err != nil {
		t.Fatal(err)
	}
	g2 := *g
	g2.DeviceCodeHash = []byte("dc2")
	if err := db.InsertOAuthDeviceGrant(ctx, &g2); !errors.Is(err, ErrTokenExists) {
		t.Fatalf("duplicate user code: %v", err)
	}
	if p, err := db.PollOAuthDeviceGrant(ctx, []byte("dc"), 11); err != nil || p.State != OAuthDevicePending || p.LastPollTS != 0 {
		t.Fatalf("poll: %+v %v", p, err)
	}
	if err := db.DecideOAuthDeviceGrant(ctx, "ABCD-EFGH", "@a:x", true, 200); !errors.Is(err, ErrNotFound) {
		t.Fatalf("approve after expiry: %v", err)
	}
	if err := db.DecideOAuthDeviceGrant(ctx, "ABCD-EFGH", "@a:x", true, 12); err != nil {
		t.Fatal(err)
	}
	if err := db.DecideOAuthDeviceGrant(ctx, "ABCD-EFGH", "@a:x", false, 12); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second decision: %v", err)
	}
	if p, err := db.PollOAuthDeviceGrant(ctx, []byte("dc"), 13); err != nil || p.State != OAuthDeviceApproved || p.UserID != "@a:x" || p.LastPollTS != 11 {
		t.Fatalf("approved poll: %+v %v", p, err)
	}
	if p, err := db.PollOAuthDeviceGrant(ctx, []byte("dc"), 14); err != nil || p.State != OAuthDeviceDone {
		t.Fatalf("claimed poll: %+v %v", p, err)
	}
}
