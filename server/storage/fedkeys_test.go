package storage

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

func TestFederationKeys(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "x.db"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	// Rotation: the first key expires when the second is recorded; the
	// first put back becomes the key in use again.
	if err := db.RecordOwnSigningKey(ctx, "ed25519:a", "A", 100); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordOwnSigningKey(ctx, "ed25519:a", "A", 150); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordOwnSigningKey(ctx, "ed25519:b", "B", 200); err != nil {
		t.Fatal(err)
	}
	own, err := db.OwnSigningKeys(ctx)
	if err != nil || len(own) != 2 || own[0].ExpiredTS != 200 || own[1].ExpiredTS != 0 {
		t.Fatalf("own keys %+v %v", own, err)
	}
	if err := db.RecordOwnSigningKey(ctx, "ed25519:a", "A", 300); err != nil {
		t.Fatal(err)
	}
	own, _ = db.OwnSigningKeys(ctx)
	if own[0].ExpiredTS != 0 || own[1].ExpiredTS != 300 {
		t.Fatalf("own keys after putting the first back %+v", own)
	}

	// Remote keys: a later response with an earlier validity does not
	// shorten the cache, but counts as a fetch.
	keys := []RemoteServerKey{{KeyID: "ed25519:k", PublicKey: "P", ValidUntilTS: 1000}, {KeyID: "ed25519:o", PublicKey: "O", ValidUntilTS: 50, Old: true}}
	if err := db.RecordKeyFetchFailure(ctx, "s.example", 5); err != nil {
		t.Fatal(err)
	}
	if n, last, _ := db.KeyFetchFailures(ctx, "s.example"); n != 1 || last != 5 {
		t.Fatalf("failures %d %d", n, last)
	}
	if err := db.StoreServerKeys(ctx, "s.example", []byte(`{"v":1}`), 1000, keys, 10); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := db.KeyFetchFailures(ctx, "s.example"); n != 0 {
		t.Fatal("failures not cleared by a successful fetch")
	}
	keys[0].ValidUntilTS = 500
	if err := db.StoreServerKeys(ctx, "s.example", []byte(`{"v":2}`), 500, keys[:1], 20); err != nil {
		t.Fatal(err)
	}
	k, err := db.ServerKey(ctx, "s.example", "ed25519:k")
	if err != nil || k.ValidUntilTS != 1000 || k.Old || k.PublicKey != "P" {
		t.Fatalf("key %+v %v", k, err)
	}
	o, err := db.ServerKey(ctx, "s.example", "ed25519:o")
	if err != nil || !o.Old || o.ValidUntilTS != 50 {
		t.Fatalf("old key %+v %v", o, err)
	}
	raw, until, fetched, err := db.ServerKeyResponse(ctx, "s.example")
	if err != nil || string(raw) != `{"v":1}` || until != 1000 || fetched != 20 {
		t.Fatalf("response %s %d %d %v", raw, until, fetched, err)
	}
	if _, err := db.ServerKey(ctx, "s.example", "ed25519:none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
}
