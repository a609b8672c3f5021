package clientapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// Helpers of the key backup tests carry a "kb" prefix.

const kbRoom = id.RoomID("!room:example.org")

func kbAuthData(key string) backup.MegolmAuthData {
	return backup.MegolmAuthData{PublicKey: id.Ed25519(key)}
}

func kbCreate(t *testing.T, c *mautrix.Client, key string) id.KeyBackupVersion {
	t.Helper()
	resp, err := c.CreateKeyBackupVersion(context.Background(), &mautrix.ReqRoomKeysVersionCreate[backup.MegolmAuthData]{
		Algorithm: id.KeyBackupAlgorithmMegolmBackupV1, AuthData: kbAuthData(key)})
	if err != nil {
		t.Fatalf("create backup version: %v", err)
	}
	return resp.Version
}

// kbKey is a key whose session_data carries a marker, to tell which
// upload the server kept.
func kbKey(verified bool, firstIndex, forwarded int, marker string) mautrix.ReqKeyBackupData {
	data, _ := json.Marshal(map[string]string{
		"ephemeral":  base64Unpadded(make([]byte, 32)), // a curve25519 key, as mautrix parses it
		"ciphertext": base64Unpadded([]byte(marker)),
		"mac":        base64Unpadded([]byte("mac")),
	})
	return mautrix.ReqKeyBackupData{FirstMessageIndex: firstIndex, ForwardedCount: forwarded, IsVerified: verified, SessionData: data}
}

func kbPut(t *testing.T, c *mautrix.Client, version id.KeyBackupVersion, room id.RoomID, session id.SessionID, k mautrix.ReqKeyBackupData) *mautrix.RespRoomKeysUpdate {
	t.Helper()
	resp, err := c.PutKeysInBackupForRoomAndSession(context.Background(), version, room, session, &k)
	if err != nil {
		t.Fatalf("put key %s: %v", session, err)
	}
	return resp
}

// kbMarker reads back which upload of a session the server holds.
func kbMarker(t *testing.T, c *mautrix.Client, version id.KeyBackupVersion, room id.RoomID, session id.SessionID) string {
	t.Helper()
	var resp struct {
		SessionData struct {
			Ciphertext string `json:"ciphertext"`
		} `json:"session_data"`
	}
	u := c.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "room_keys", "keys", room.String(), session.String()}, map[string]string{"version": string(version)})
	if _, err := c.MakeRequest(context.Background(), http.MethodGet, u, nil, &resp); err != nil {
		t.Fatalf("get key %s: %v", session, err)
	}
	marker, err := base64.RawStdEncoding.DecodeString(resp.SessionData.Ciphertext)
	if err != nil {
		t.Fatalf("session_data of %s came back changed: %v", session, err)
	}
	return string(marker)
}

func base64Unpadded(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }

func kbPath(version id.KeyBackupVersion, rest string) string {
	return "/_matrix/client/v3/room_keys/keys" + rest + "?version=" + string(version)
}

func TestKeyBackupRoundTrip(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")

	_, err := alice.GetKeyBackupLatestVersion(ctx)
	roomErr(t, "latest before any backup", err, 404, "M_NOT_FOUND")

	version := kbCreate(t, alice, "pubkey1")
	info, err := alice.GetKeyBackupLatestVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != version || info.Algorithm != id.KeyBackupAlgorithmMegolmBackupV1 || info.AuthData.PublicKey != "pubkey1" || info.Count != 0 || info.ETag == "" {
		t.Fatalf("latest version: %+v", info)
	}
	etag0 := info.ETag

	// Upload several rooms at once.
	upd, err := alice.PutKeysInBackup(ctx, version, &mautrix.ReqKeyBackup{Rooms: map[id.RoomID]mautrix.ReqRoomKeyBackup{
		kbRoom:               {Sessions: map[id.SessionID]mautrix.ReqKeyBackupData{"s1": kbKey(true, 0, 0, "one"), "s2": kbKey(false, 3, 1, "two")}},
		"!other:example.org": {Sessions: map[id.SessionID]mautrix.ReqKeyBackupData{"s3": kbKey(false, 0, 0, "three")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if upd.Count != 3 || upd.ETag == etag0 {
		t.Fatalf("after upload: %+v (etag before %s)", upd, etag0)
	}
	etag1 := upd.ETag
	// A room's keys through the per-room path.
	upd, err = alice.PutKeysInBackupForRoom(ctx, version, "!third:example.org", &mautrix.ReqRoomKeyBackup{
		Sessions: map[id.SessionID]mautrix.ReqKeyBackupData{"s4": kbKey(false, 0, 0, "four")}})
	if err != nil || upd.Count != 4 || upd.ETag == etag1 {
		t.Fatalf("per-room upload: %+v %v", upd, err)
	}
	etag2 := upd.ETag

	all, err := alice.GetKeyBackup(ctx, version)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Rooms) != 3 || len(all.Rooms[kbRoom].Sessions) != 2 {
		t.Fatalf("all keys: %+v", all.Rooms)
	}
	s2 := all.Rooms[kbRoom].Sessions["s2"]
	if s2.FirstMessageIndex != 3 || s2.ForwardedCount != 1 || s2.IsVerified || string(s2.SessionData.Ciphertext) != "two" {
		t.Fatalf("s2: %+v", s2)
	}
	if got := kbMarker(t, alice, version, kbRoom, "s2"); got != "two" {
		t.Fatalf("s2 data %q", got)
	}
	room, err := alice.GetKeyBackupForRoom(ctx, version, "!other:example.org")
	if err != nil || len(room.Sessions) != 1 {
		t.Fatalf("room keys: %+v %v", room, err)
	}
	// A room without keys is an empty object, a missing session 404.
	r := sessRaw(t, ts, alice.AccessToken, http.MethodGet, kbPath(version, "/!empty:example.org"), nil)
	if r.status != 200 || r.raw != `{"sessions":{}}` {
		t.Fatalf("empty room: %d %s", r.status, r.raw)
	}
	_, err = alice.GetKeyBackupForRoomAndSession(ctx, version, kbRoom, "nope")
	roomErr(t, "missing session", err, 404, "M_NOT_FOUND")
	info, err = alice.GetKeyBackupVersion(ctx, version)
	if err != nil || info.Count != 4 || info.ETag != etag2 {
		t.Fatalf("version info: %+v %v", info, err)
	}

	// Update auth_data (mautrix's UpdateKeyBackupVersion sends no body).
	update := func(v id.KeyBackupVersion, body any) sessResp {
		return sessRaw(t, ts, alice.AccessToken, http.MethodPut, "/_matrix/client/v3/room_keys/version/"+string(v), body)
	}
	sessExpect(t, "update", update(version, map[string]any{"algorithm": id.KeyBackupAlgorithmMegolmBackupV1, "auth_data": kbAuthData("pubkey2")}), 200, "")
	sessExpect(t, "update with matching version", update(version, map[string]any{"algorithm": id.KeyBackupAlgorithmMegolmBackupV1, "auth_data": kbAuthData("pubkey3"), "version": version}), 200, "")
	if info, err := alice.GetKeyBackupVersion(ctx, version); err != nil || info.AuthData.PublicKey != "pubkey3" || info.Count != 4 {
		t.Fatalf("after update: %+v %v", info, err)
	}
	sessExpect(t, "update with another version in the body", update(version, map[string]any{"algorithm": id.KeyBackupAlgorithmMegolmBackupV1, "auth_data": kbAuthData("x"), "version": "99"}), 400, "M_INVALID_PARAM")
	sessExpect(t, "update changing the algorithm", update(version, map[string]any{"algorithm": "org.example.other", "auth_data": kbAuthData("x")}), 400, "M_INVALID_PARAM")
	sessExpect(t, "update unknown version", update("99", map[string]any{"algorithm": id.KeyBackupAlgorithmMegolmBackupV1, "auth_data": kbAuthData("x")}), 404, "M_NOT_FOUND")
	if info, _ := alice.GetKeyBackupVersion(ctx, version); info.AuthData.PublicKey != "pubkey3" {
		t.Fatalf("a refused update changed auth_data: %+v", info)
	}

	// Deleting keys: one session, a room, everything; the etag moves.
	upd, err = alice.DeleteKeysInBackupForRoomAndSession(ctx, version, kbRoom, "s1")
	if err != nil || upd.Count != 3 || upd.ETag == etag2 {
		t.Fatalf("delete session: %+v %v", upd, err)
	}
	etag3 := upd.ETag
	upd, err = alice.DeleteKeysInBackupForRoomAndSession(ctx, version, kbRoom, "s1")
	if err != nil || upd.Count != 3 || upd.ETag != etag3 {
		t.Fatalf("deleting a missing session changed something: %+v %v", upd, err)
	}
	upd, err = alice.DeleteKeysFromBackupForRoom(ctx, version, kbRoom)
	if err != nil || upd.Count != 2 || upd.ETag == etag3 {
		t.Fatalf("delete room: %+v %v", upd, err)
	}
	upd, err = alice.DeleteKeyBackup(ctx, version)
	if err != nil || upd.Count != 0 {
		t.Fatalf("delete all: %+v %v", upd, err)
	}
	if all, err := alice.GetKeyBackup(ctx, version); err != nil || len(all.Rooms) != 0 {
		t.Fatalf("after deleting all: %+v %v", all, err)
	}
	r = sessRaw(t, ts, alice.AccessToken, http.MethodGet, kbPath(version, ""), nil)
	if r.raw != `{"rooms":{}}` {
		t.Fatalf("empty backup: %s", r.raw)
	}

	// Deleting the version: gone, deleting it again is fine, a version
	// that never existed is not found, and numbers are not reused.
	kbPut(t, alice, version, kbRoom, "s9", kbKey(false, 0, 0, "nine"))
	if err := alice.DeleteKeyBackupVersion(ctx, version); err != nil {
		t.Fatal(err)
	}
	_, err = alice.GetKeyBackupVersion(ctx, version)
	roomErr(t, "deleted version", err, 404, "M_NOT_FOUND")
	_, err = alice.GetKeyBackupLatestVersion(ctx)
	roomErr(t, "latest after deleting the only version", err, 404, "M_NOT_FOUND")
	_, err = alice.GetKeyBackup(ctx, version)
	roomErr(t, "keys of a deleted version", err, 404, "M_NOT_FOUND")
	if err := alice.DeleteKeyBackupVersion(ctx, version); err != nil {
		t.Fatalf("deleting a deleted version again: %v", err)
	}
	roomErr(t, "delete a version that never existed", alice.DeleteKeyBackupVersion(ctx, "99"), 404, "M_NOT_FOUND")
	sessExpect(t, "update a deleted version", update(version, map[string]any{"algorithm": id.KeyBackupAlgorithmMegolmBackupV1, "auth_data": kbAuthData("x")}), 404, "M_NOT_FOUND")
	v2 := kbCreate(t, alice, "pubkey4")
	if v2 == version {
		t.Fatalf("version %s reused", v2)
	}
	if info, err := alice.GetKeyBackupVersion(ctx, v2); err != nil || info.Count != 0 {
		t.Fatalf("new version: %+v %v", info, err)
	}
}

func TestKeyBackupReplacementRules(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	version := kbCreate(t, alice, "pk")
	cases := []struct {
		what     string
		stored   mautrix.ReqKeyBackupData
		upload   mautrix.ReqKeyBackupData
		replaced bool
	}{
		{"verified beats unverified, even with a worse index", kbKey(false, 0, 0, "old"), kbKey(true, 10, 5, "new"), true},
		{"unverified never replaces verified", kbKey(true, 10, 5, "old"), kbKey(false, 0, 0, "new"), false},
		{"lower first_message_index wins", kbKey(false, 5, 0, "old"), kbKey(false, 2, 3, "new"), true},
		{"higher first_message_index loses", kbKey(true, 2, 3, "old"), kbKey(true, 5, 0, "new"), false},
		{"same index: lower forwarded_count wins", kbKey(true, 4, 2, "old"), kbKey(true, 4, 1, "new"), true},
		{"same index: higher forwarded_count loses", kbKey(false, 4, 1, "old"), kbKey(false, 4, 2, "new"), false},
		{"a tie keeps the stored key", kbKey(false, 4, 1, "old"), kbKey(false, 4, 1, "new"), false},
	}
	for i, c := range cases {
		session := id.SessionID(fmt.Sprintf("session%d", i))
		before := kbPut(t, alice, version, kbRoom, session, c.stored)
		after := kbPut(t, alice, version, kbRoom, session, c.upload)
		want := "old"
		if c.replaced {
			want = "new"
		}
		if got := kbMarker(t, alice, version, kbRoom, session); got != want {
			t.Fatalf("%s: kept %q, want %q", c.what, got, want)
		}
		if (after.ETag != before.ETag) != c.replaced || after.Count != before.Count {
			t.Fatalf("%s: etag %s -> %s, count %d -> %d", c.what, before.ETag, after.ETag, before.Count, after.Count)
		}
		k, err := alice.GetKeyBackupForRoomAndSession(context.Background(), version, kbRoom, session)
		kept := c.stored
		if c.replaced {
			kept = c.upload
		}
		if err != nil || k.IsVerified != kept.IsVerified || k.FirstMessageIndex != kept.FirstMessageIndex || k.ForwardedCount != kept.ForwardedCount {
			t.Fatalf("%s: stored %+v %v", c.what, k, err)
		}
	}
	// In one request, replaced and kept sessions mix; the etag moves once.
	info, _ := alice.GetKeyBackupVersion(context.Background(), version)
	upd, err := alice.PutKeysInBackupForRoom(context.Background(), version, kbRoom, &mautrix.ReqRoomKeyBackup{Sessions: map[id.SessionID]mautrix.ReqKeyBackupData{
		"session0": kbKey(true, 0, 0, "better"),
		"session1": kbKey(false, 0, 0, "worse"),
		"fresh":    kbKey(false, 0, 0, "fresh"),
	}})
	if err != nil || upd.Count != info.Count+1 || upd.ETag == info.ETag {
		t.Fatalf("mixed upload: %+v %v (before %+v)", upd, err, info)
	}
	if kbMarker(t, alice, version, kbRoom, "session0") != "better" || kbMarker(t, alice, version, kbRoom, "session1") != "old" {
		t.Fatal("mixed upload applied the rules wrongly")
	}
}

func TestKeyBackupWrongVersion(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	k := kbKey(false, 0, 0, "x")
	// No backup at all: not found.
	_, err := alice.PutKeysInBackupForRoomAndSession(ctx, "1", kbRoom, "s", &k)
	roomErr(t, "put without any backup", err, 404, "M_NOT_FOUND")

	v1 := kbCreate(t, alice, "pk1")
	kbPut(t, alice, v1, kbRoom, "s", k)
	v2 := kbCreate(t, alice, "pk2")
	if info, err := alice.GetKeyBackupLatestVersion(ctx); err != nil || info.Version != v2 {
		t.Fatalf("latest: %+v %v", info, err)
	}
	for what, put := range map[string]func() error{
		"session": func() error { _, err := alice.PutKeysInBackupForRoomAndSession(ctx, v1, kbRoom, "s2", &k); return err },
		"room": func() error {
			_, err := alice.PutKeysInBackupForRoom(ctx, v1, kbRoom, &mautrix.ReqRoomKeyBackup{Sessions: map[id.SessionID]mautrix.ReqKeyBackupData{"s2": k}})
			return err
		},
		"all": func() error {
			_, err := alice.PutKeysInBackup(ctx, v1, &mautrix.ReqKeyBackup{Rooms: map[id.RoomID]mautrix.ReqRoomKeyBackup{kbRoom: {Sessions: map[id.SessionID]mautrix.ReqKeyBackupData{"s2": k}}}})
			return err
		},
	} {
		e := sessErr(t, "put to the old version ("+what+")", put(), 403, "M_WRONG_ROOM_KEYS_VERSION")
		if e.ExtraData["current_version"] != string(v2) {
			t.Fatalf("current_version %v, want %s", e.ExtraData["current_version"], v2)
		}
	}
	for _, v := range []id.KeyBackupVersion{"99", "abc", "01", "-1"} {
		_, err := alice.PutKeysInBackupForRoomAndSession(ctx, v, kbRoom, "s", &k)
		roomErr(t, "put to version "+string(v), err, 404, "M_NOT_FOUND")
		_, err = alice.GetKeyBackupVersion(ctx, v)
		roomErr(t, "get version "+string(v), err, 404, "M_NOT_FOUND")
	}
	// The old version can still be read and its keys deleted.
	if all, err := alice.GetKeyBackup(ctx, v1); err != nil || len(all.Rooms[kbRoom].Sessions) != 1 {
		t.Fatalf("old version's keys: %+v %v", all, err)
	}
	// Deleting the current version makes the previous one current again.
	if err := alice.DeleteKeyBackupVersion(ctx, v2); err != nil {
		t.Fatal(err)
	}
	if upd := kbPut(t, alice, v1, kbRoom, "s2", k); upd.Count != 2 {
		t.Fatalf("put to the current version again: %+v", upd)
	}
	_, err = alice.PutKeysInBackupForRoomAndSession(ctx, v2, kbRoom, "s3", &k)
	roomErr(t, "put to the deleted version", err, 404, "M_NOT_FOUND")
}

func TestKeyBackupOtherUsersBackup(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	v := kbCreate(t, alice, "alice's key")
	kbPut(t, alice, v, kbRoom, "s", kbKey(true, 0, 0, "secret"))

	_, err := bob.GetKeyBackupLatestVersion(ctx)
	roomErr(t, "bob's latest", err, 404, "M_NOT_FOUND")
	_, err = bob.GetKeyBackupVersion(ctx, v)
	roomErr(t, "alice's version as bob", err, 404, "M_NOT_FOUND")
	_, err = bob.GetKeyBackup(ctx, v)
	roomErr(t, "alice's keys as bob", err, 404, "M_NOT_FOUND")
	_, err = bob.GetKeyBackupForRoomAndSession(ctx, v, kbRoom, "s")
	roomErr(t, "alice's session as bob", err, 404, "M_NOT_FOUND")
	k := kbKey(true, 0, 0, "bob's")
	_, err = bob.PutKeysInBackupForRoomAndSession(ctx, v, kbRoom, "s", &k)
	roomErr(t, "put into alice's version as bob", err, 404, "M_NOT_FOUND")
	_, err = bob.DeleteKeyBackup(ctx, v)
	roomErr(t, "delete alice's keys as bob", err, 404, "M_NOT_FOUND")
	roomErr(t, "delete alice's version as bob", bob.DeleteKeyBackupVersion(ctx, v), 404, "M_NOT_FOUND")
	r := sessRaw(t, ts, bob.AccessToken, http.MethodPut, "/_matrix/client/v3/room_keys/version/"+string(v),
		map[string]any{"algorithm": id.KeyBackupAlgorithmMegolmBackupV1, "auth_data": kbAuthData("bob's key")})
	sessExpect(t, "update alice's version as bob", r, 404, "M_NOT_FOUND")

	// Bob's own backup has its own numbering and does not see alice's.
	bv := kbCreate(t, bob, "bob's key")
	if bv != v {
		t.Fatalf("bob's first version %s, alice's %s: versions are per user", bv, v)
	}
	if all, err := bob.GetKeyBackup(ctx, bv); err != nil || len(all.Rooms) != 0 {
		t.Fatalf("bob's backup: %+v %v", all, err)
	}
	// Alice's backup is untouched.
	info, err := alice.GetKeyBackupVersion(ctx, v)
	if err != nil || info.Count != 1 || info.AuthData.PublicKey != "alice's key" || kbMarker(t, alice, v, kbRoom, "s") != "secret" {
		t.Fatalf("alice's backup: %+v %v", info, err)
	}
}

func TestKeyBackupRestoresOnNewDevice(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	key, err := backup.NewMegolmBackupKey()
	if err != nil {
		t.Fatal(err)
	}
	pub := id.Ed25519(base64Unpadded(key.PublicKey().Bytes()))
	v, err := alice.CreateKeyBackupVersion(ctx, &mautrix.ReqRoomKeysVersionCreate[backup.MegolmAuthData]{
		Algorithm: id.KeyBackupAlgorithmMegolmBackupV1, AuthData: kbAuthData(string(pub))})
	if err != nil {
		t.Fatal(err)
	}
	session := backup.MegolmSessionData{Algorithm: id.AlgorithmMegolmV1, SenderKey: "senderkey", SessionKey: "the megolm session key",
		SenderClaimedKeys: backup.SenderClaimedKeys{Ed25519: "claimed"}, ForwardingKeyChain: []string{}}
	enc, err := backup.EncryptSessionData(key, session)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(enc)
	if _, err := alice.PutKeysInBackupForRoomAndSession(ctx, v.Version, kbRoom, "megolm1",
		&mautrix.ReqKeyBackupData{FirstMessageIndex: 0, IsVerified: true, SessionData: data}); err != nil {
		t.Fatal(err)
	}
	// A new device finds the backup, checks its public key against the
	// key the user typed in, and decrypts the session.
	phone := ts.Login("alice", testserver.DefaultPassword)
	info, err := phone.GetKeyBackupLatestVersion(ctx)
	if err != nil || info.AuthData.PublicKey != pub {
		t.Fatalf("backup seen from the new device: %+v %v", info, err)
	}
	all, err := phone.GetKeyBackup(ctx, info.Version)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := all.Rooms[kbRoom].Sessions["megolm1"]
	if !ok {
		t.Fatalf("restored: %+v", all.Rooms)
	}
	dec, err := got.SessionData.Decrypt(key)
	if err != nil {
		t.Fatalf("decrypt restored session: %v", err)
	}
	if dec.SessionKey != session.SessionKey || dec.SenderKey != session.SenderKey {
		t.Fatalf("restored session %+v", dec)
	}
}

func TestKeyBackupBadInput(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	v := kbCreate(t, alice, "pk")
	const versionPath = "/_matrix/client/v3/room_keys/version"
	good := map[string]any{"first_message_index": 0, "forwarded_count": 0, "is_verified": false, "session_data": map[string]any{"ciphertext": "c"}}
	without := func(field string) map[string]any {
		m := map[string]any{}
		for k, val := range good {
			if k != field {
				m[k] = val
			}
		}
		return m
	}
	with := func(field string, val any) map[string]any {
		m := without(field)
		m[field] = val
		return m
	}
	cases := []struct {
		what, method, path string
		body               any
		status             int
		errcode            string
	}{
		{"create: malformed JSON", "POST", versionPath, `{"algorithm":`, 400, "M_NOT_JSON"},
		{"create: no algorithm", "POST", versionPath, map[string]any{"auth_data": map[string]any{}}, 400, "M_MISSING_PARAM"},
		{"create: no auth_data", "POST", versionPath, map[string]any{"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2"}, 400, "M_MISSING_PARAM"},
		{"create: auth_data a string", "POST", versionPath, map[string]any{"algorithm": "a", "auth_data": "x"}, 400, "M_BAD_JSON"},
		{"create: algorithm a number", "POST", versionPath, map[string]any{"algorithm": 1, "auth_data": map[string]any{}}, 400, "M_BAD_JSON"},
		{"update: malformed JSON", "PUT", versionPath + "/" + string(v), `{`, 400, "M_NOT_JSON"},
		{"update: no auth_data", "PUT", versionPath + "/" + string(v), map[string]any{"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2"}, 400, "M_MISSING_PARAM"},
		{"update: version a number", "PUT", versionPath + "/" + string(v), map[string]any{"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": map[string]any{}, "version": 1}, 400, "M_BAD_JSON"},
		{"put: no version parameter", "PUT", "/_matrix/client/v3/room_keys/keys/!r:x/s", good, 400, "M_MISSING_PARAM"},
		{"get: no version parameter", "GET", "/_matrix/client/v3/room_keys/keys", nil, 400, "M_MISSING_PARAM"},
		{"delete: no version parameter", "DELETE", "/_matrix/client/v3/room_keys/keys/!r:x", nil, 400, "M_MISSING_PARAM"},
		{"put: malformed JSON", "PUT", kbPath(v, "/!r:x/s"), `{"first_message_index": `, 400, "M_NOT_JSON"},
		{"put: body an array", "PUT", kbPath(v, "/!r:x/s"), `[]`, 400, "M_BAD_JSON"},
		{"put: no first_message_index", "PUT", kbPath(v, "/!r:x/s"), without("first_message_index"), 400, "M_MISSING_PARAM"},
		{"put: no forwarded_count", "PUT", kbPath(v, "/!r:x/s"), without("forwarded_count"), 400, "M_MISSING_PARAM"},
		{"put: no is_verified", "PUT", kbPath(v, "/!r:x/s"), without("is_verified"), 400, "M_MISSING_PARAM"},
		{"put: no session_data", "PUT", kbPath(v, "/!r:x/s"), without("session_data"), 400, "M_MISSING_PARAM"},
		{"put: negative forwarded_count", "PUT", kbPath(v, "/!r:x/s"), with("forwarded_count", -1), 400, "M_INVALID_PARAM"},
		{"put: negative first_message_index", "PUT", kbPath(v, "/!r:x/s"), with("first_message_index", -3), 400, "M_INVALID_PARAM"},
		{"put: fractional index", "PUT", kbPath(v, "/!r:x/s"), with("first_message_index", 1.5), 400, "M_BAD_JSON"},
		{"put: is_verified a string", "PUT", kbPath(v, "/!r:x/s"), with("is_verified", "yes"), 400, "M_BAD_JSON"},
		{"put: session_data an array", "PUT", kbPath(v, "/!r:x/s"), with("session_data", []any{}), 400, "M_BAD_JSON"},
		{"put: bad room ID in the path", "PUT", kbPath(v, "/room/s"), good, 400, "M_INVALID_PARAM"},
		{"put room: no sessions", "PUT", kbPath(v, "/!r:x"), map[string]any{}, 400, "M_MISSING_PARAM"},
		{"put room: a session not an object", "PUT", kbPath(v, "/!r:x"), map[string]any{"sessions": map[string]any{"s": 1}}, 400, "M_BAD_JSON"},
		{"put room: a null session", "PUT", kbPath(v, "/!r:x"), map[string]any{"sessions": map[string]any{"s": nil}}, 400, "M_BAD_JSON"},
		{"put room: an empty session ID", "PUT", kbPath(v, "/!r:x"), map[string]any{"sessions": map[string]any{"": good}}, 400, "M_INVALID_PARAM"},
		{"put all: no rooms", "PUT", kbPath(v, ""), map[string]any{}, 400, "M_MISSING_PARAM"},
		{"put all: bad room ID", "PUT", kbPath(v, ""), map[string]any{"rooms": map[string]any{"room": map[string]any{"sessions": map[string]any{}}}}, 400, "M_INVALID_PARAM"},
		{"put all: a room not an object", "PUT", kbPath(v, ""), map[string]any{"rooms": map[string]any{"!r:x": []any{}}}, 400, "M_BAD_JSON"},
		{"put all: a bad key among good ones", "PUT", kbPath(v, ""), map[string]any{"rooms": map[string]any{"!r:x": map[string]any{"sessions": map[string]any{"a": good, "b": without("is_verified")}}}}, 400, "M_MISSING_PARAM"},
		{"get: bad room ID", "GET", kbPath(v, "/room"), nil, 400, "M_INVALID_PARAM"},
		{"latest: wrong method", "PATCH", versionPath, nil, 405, "M_UNRECOGNIZED"},
	}
	for _, c := range cases {
		sessExpect(t, c.what, sessRaw(t, ts, alice.AccessToken, c.method, c.path, c.body), c.status, c.errcode)
	}
	// Nothing of it was stored.
	if info, err := alice.GetKeyBackupVersion(context.Background(), v); err != nil || info.Count != 0 || info.ETag != "0" {
		t.Fatalf("after bad input: %+v %v", info, err)
	}
	// Any algorithm is accepted: the server never reads the backup.
	sessExpect(t, "create with another algorithm", sessRaw(t, ts, alice.AccessToken, "POST", versionPath,
		map[string]any{"algorithm": "org.example.future", "auth_data": map[string]any{"k": 1}}), 200, "")

	// Every endpoint needs a token.
	for _, ep := range [][2]string{
		{"POST", versionPath}, {"GET", versionPath}, {"GET", versionPath + "/1"}, {"PUT", versionPath + "/1"}, {"DELETE", versionPath + "/1"},
		{"PUT", kbPath(v, "")}, {"GET", kbPath(v, "")}, {"DELETE", kbPath(v, "")},
		{"PUT", kbPath(v, "/!r:x")}, {"GET", kbPath(v, "/!r:x")}, {"DELETE", kbPath(v, "/!r:x")},
		{"PUT", kbPath(v, "/!r:x/s")}, {"GET", kbPath(v, "/!r:x/s")}, {"DELETE", kbPath(v, "/!r:x/s")},
	} {
		sessExpect(t, ep[0]+" "+ep[1]+" without a token", sessRaw(t, ts, "", ep[0], ep[1], map[string]any{}), 401, "M_MISSING_TOKEN")
		sessExpect(t, ep[0]+" "+ep[1]+" with a bad token", sessRaw(t, ts, "bogus", ep[0], ep[1], map[string]any{}), 401, "M_UNKNOWN_TOKEN")
	}
}
