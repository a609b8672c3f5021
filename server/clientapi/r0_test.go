package clientapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/clientapi"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/httpapi"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// These tests speak to the server the way matrix-nio 0.20 (Debian 12's
// python3-matrix-nio, under weechat-matrix) does: every path under r0, the
// access token in the query string, path segments quoted like Python's
// urllib.parse.quote.

const (
	r0Client = "/_matrix/client/r0"
	r0Media  = "/_matrix/media/r0"
)

// pyQuote escapes s as Python's urllib.parse.quote does (only letters,
// digits and "_.-~/" stay), so room and event IDs reach the server
// exactly as nio sends them.
func pyQuote(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("_.-~/", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// r0Session is what an old client keeps after logging in.
type r0Session struct {
	userID   id.UserID
	deviceID id.DeviceID
	token    string
}

// with adds the access token to a path, as nio does.
func (s r0Session) with(path string) string {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + "access_token=" + url.QueryEscape(s.token)
}

// r0Call sends body as JSON (nil: none) and decodes the answer into out
// (if not nil); it returns the status and the raw answer.
func r0Call(t *testing.T, ts *testserver.Server, method, path string, body, out any) (int, []byte) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	} else {
		rd = bytes.NewReader(nil)
	}
	resp, data := mediaDo(t, ts, "", method, path, rd, http.Header{"Content-Type": {"application/json"}})
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: answer %s: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, data
}

// r0OK is r0Call for a request that must succeed.
func r0OK(t *testing.T, ts *testserver.Server, method, path string, body, out any) {
	t.Helper()
	if status, data := r0Call(t, ts, method, path, body, out); status != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, path, status, data)
	}
}

// r0Register registers as nio's register() does: one request carrying the
// m.login.dummy stage, without a session.
func r0Register(t *testing.T, ts *testserver.Server, user string) r0Session {
	t.Helper()
	var res struct {
		UserID      id.UserID   `json:"user_id"`
		DeviceID    id.DeviceID `json:"device_id"`
		AccessToken string      `json:"access_token"`
	}
	r0OK(t, ts, http.MethodPost, r0Client+"/register", map[string]any{
		"auth": map[string]any{"type": "m.login.dummy"}, "username": user, "password": goodPassword,
		"initial_device_display_name": "weechat",
	}, &res)
	if res.UserID != id.NewUserID(user, "localhost") || res.AccessToken == "" || res.DeviceID == "" {
		t.Fatalf("r0 register answered %+v", res)
	}
	return r0Session{res.UserID, res.DeviceID, res.AccessToken}
}

// r0Sync is the part of a /sync answer these tests look at.
type r0Sync struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[id.RoomID]struct {
			Timeline struct {
				Events    []map[string]any `json:"events"`
				PrevBatch string           `json:"prev_batch"`
			} `json:"timeline"`
			State struct {
				Events []map[string]any `json:"events"`
			} `json:"state"`
			Ephemeral struct {
				Events []map[string]any `json:"events"`
			} `json:"ephemeral"`
		} `json:"join"`
	} `json:"rooms"`
}

func (s r0Sync) has(roomID id.RoomID, section, evType, key, want string) bool {
	room, ok := s.Rooms.Join[roomID]
	if !ok {
		return false
	}
	evs := map[string][]map[string]any{"timeline": room.Timeline.Events, "state": room.State.Events, "ephemeral": room.Ephemeral.Events}[section]
	for _, ev := range evs {
		if ev["type"] != evType {
			continue
		}
		if key == "" || strings.Contains(fmt.Sprint(ev[key]), want) {
			return true
		}
	}
	return false
}

func (s r0Session) sync(t *testing.T, ts *testserver.Server, since string, timeoutMS int) r0Sync {
	t.Helper()
	q := url.Values{"timeout": {fmt.Sprint(timeoutMS)}, "filter": {`{"room":{"state":{"lazy_load_members":true}}}`}}
	if since != "" {
		q.Set("since", since)
	}
	var out r0Sync
	r0OK(t, ts, http.MethodGet, s.with(r0Client+"/sync?"+q.Encode()), nil, &out)
	if out.NextBatch == "" {
		t.Fatal("r0 sync without next_batch")
	}
	return out
}

func TestR0OldClientSession(t *testing.T) {
	ts := testserver.New(t, openRegistration)

	var versions struct {
		Versions []string `json:"versions"`
	}
	r0OK(t, ts, http.MethodGet, "/_matrix/client/versions", nil, &versions)
	if !slices.Contains(versions.Versions, "r0.6.1") {
		t.Fatalf("versions %v", versions.Versions)
	}

	r0Register(t, ts, "alice")
	bob := r0Register(t, ts, "bob")

	// Log in as nio does: the flows, then the legacy "user" field.
	var flows struct {
		Flows []struct {
			Type string `json:"type"`
		} `json:"flows"`
	}
	r0OK(t, ts, http.MethodGet, r0Client+"/login", nil, &flows)
	if !slices.ContainsFunc(flows.Flows, func(f struct {
		Type string `json:"type"`
	}) bool {
		return f.Type == "m.login.password"
	}) {
		t.Fatalf("login flows %+v", flows)
	}
	var login struct {
		UserID      id.UserID   `json:"user_id"`
		DeviceID    id.DeviceID `json:"device_id"`
		AccessToken string      `json:"access_token"`
	}
	r0OK(t, ts, http.MethodPost, r0Client+"/login", map[string]any{
		"type": "m.login.password", "user": "alice", "password": goodPassword, "initial_device_display_name": "weechat",
	}, &login)
	alice := r0Session{login.UserID, login.DeviceID, login.AccessToken}
	if alice.userID != "@alice:localhost" || alice.token == "" {
		t.Fatalf("r0 login answered %+v", login)
	}

	// Rooms: create, join, send.
	var created struct {
		RoomID id.RoomID `json:"room_id"`
	}
	r0OK(t, ts, http.MethodPost, alice.with(r0Client+"/createRoom"), map[string]any{
		"visibility": "private", "creation_content": map[string]any{"m.federate": true}, "is_direct": false,
		"preset": "public_chat", "name": "Old clients",
	}, &created)
	roomID := created.RoomID
	room := r0Client + "/rooms/" + pyQuote(string(roomID))
	r0OK(t, ts, http.MethodPost, bob.with(r0Client+"/join/"+pyQuote(string(roomID))), map[string]any{}, nil)

	first := alice.sync(t, ts, "", 0)
	if !first.has(roomID, "timeline", "m.room.member", "state_key", string(bob.userID)) {
		t.Fatalf("initial r0 sync lacks bob's join: %+v", first.Rooms.Join[roomID])
	}
	if !first.has(roomID, "state", "m.room.create", "", "") && !first.has(roomID, "timeline", "m.room.create", "", "") {
		t.Fatalf("initial r0 sync lacks the room's creation")
	}

	var sent struct {
		EventID id.EventID `json:"event_id"`
	}
	r0OK(t, ts, http.MethodPut, alice.with(room+"/send/m.room.message/txn1"), map[string]any{"msgtype": "m.text", "body": "hello from r0"}, &sent)
	if sent.EventID == "" {
		t.Fatal("r0 send gave no event_id")
	}
	next := alice.sync(t, ts, first.NextBatch, 10000)
	if !next.has(roomID, "timeline", "m.room.message", "event_id", string(sent.EventID)) {
		t.Fatalf("incremental r0 sync lacks the message: %+v", next.Rooms.Join[roomID])
	}

	// Typing, a receipt and read markers from bob reach alice's next sync.
	r0OK(t, ts, http.MethodPut, bob.with(room+"/typing/"+pyQuote(string(bob.userID))), map[string]any{"typing": true, "timeout": 30000}, nil)
	r0OK(t, ts, http.MethodPost, bob.with(room+"/receipt/m.read/"+pyQuote(string(sent.EventID))), map[string]any{}, nil)
	r0OK(t, ts, http.MethodPost, bob.with(room+"/read_markers"), map[string]any{"m.fully_read": sent.EventID, "m.read": sent.EventID}, nil)
	eph := alice.sync(t, ts, next.NextBatch, 10000)
	if !eph.has(roomID, "ephemeral", "m.typing", "content", string(bob.userID)) {
		t.Fatalf("r0 typing not synced: %+v", eph.Rooms.Join[roomID].Ephemeral)
	}
	if !eph.has(roomID, "ephemeral", "m.receipt", "content", string(sent.EventID)) {
		t.Fatalf("r0 receipt not synced: %+v", eph.Rooms.Join[roomID].Ephemeral)
	}

	// History from the timeline's prev_batch, as nio's room_messages does.
	var msgs struct {
		Chunk []map[string]any `json:"chunk"`
	}
	q := url.Values{"from": {next.Rooms.Join[roomID].Timeline.PrevBatch}, "limit": {"10"}, "dir": {"b"}}
	r0OK(t, ts, http.MethodGet, alice.with(room+"/messages?"+q.Encode()), nil, &msgs)
	q.Set("from", next.NextBatch)
	r0OK(t, ts, http.MethodGet, alice.with(room+"/messages?"+q.Encode()), nil, &msgs)
	if !slices.ContainsFunc(msgs.Chunk, func(ev map[string]any) bool { return ev["event_id"] == string(sent.EventID) }) {
		t.Fatalf("r0 messages lack the message: %v", msgs.Chunk)
	}

	// State, with nio's empty state key (a trailing slash).
	r0OK(t, ts, http.MethodPut, alice.with(room+"/state/m.room.topic/"), map[string]any{"topic": "spoken in r0"}, nil)
	var topic map[string]any
	r0OK(t, ts, http.MethodGet, alice.with(room+"/state/m.room.topic/"), nil, &topic)
	if topic["topic"] != "spoken in r0" {
		t.Fatalf("r0 state event %v", topic)
	}
	var state []map[string]any
	r0OK(t, ts, http.MethodGet, bob.with(room+"/state"), nil, &state)
	if !slices.ContainsFunc(state, func(ev map[string]any) bool { return ev["type"] == "m.room.topic" }) ||
		!slices.ContainsFunc(state, func(ev map[string]any) bool { return ev["type"] == "m.room.create" }) {
		t.Fatalf("r0 room state %v", state)
	}

	// End-to-end keys: upload, query, claim.
	holder, _ := mautrix.NewClient(ts.URL, alice.userID, alice.token)
	holder.DeviceID = alice.deviceID
	dev := keysNewDevice(t, holder)
	var counts struct {
		Counts map[string]int `json:"one_time_key_counts"`
	}
	r0OK(t, ts, http.MethodPost, alice.with(r0Client+"/keys/upload"), map[string]any{
		"device_keys": dev.deviceKeys(t), "one_time_keys": dev.otks(t, 3, false),
	}, &counts)
	if counts.Counts["signed_curve25519"] != 3 {
		t.Fatalf("r0 keys/upload counts %v", counts.Counts)
	}
	var queried struct {
		DeviceKeys map[id.UserID]map[id.DeviceID]map[string]any `json:"device_keys"`
	}
	r0OK(t, ts, http.MethodPost, bob.with(r0Client+"/keys/query"), map[string]any{"device_keys": map[id.UserID][]string{alice.userID: {}}}, &queried)
	if queried.DeviceKeys[alice.userID][alice.deviceID] == nil {
		t.Fatalf("r0 keys/query %v", queried.DeviceKeys)
	}
	var claimed struct {
		OneTimeKeys map[id.UserID]map[id.DeviceID]map[string]any `json:"one_time_keys"`
	}
	r0OK(t, ts, http.MethodPost, bob.with(r0Client+"/keys/claim"), map[string]any{
		"one_time_keys": map[id.UserID]map[id.DeviceID]string{alice.userID: {alice.deviceID: "signed_curve25519"}},
	}, &claimed)
	if len(claimed.OneTimeKeys[alice.userID][alice.deviceID]) != 1 {
		t.Fatalf("r0 keys/claim %v", claimed.OneTimeKeys)
	}

	// Logging out ends the token.
	r0OK(t, ts, http.MethodPost, alice.with(r0Client+"/logout"), map[string]any{}, nil)
	status, data := r0Call(t, ts, http.MethodGet, alice.with(r0Client+"/sync?timeout=0"), nil, nil)
	if status != http.StatusUnauthorized || !strings.Contains(string(data), "M_UNKNOWN_TOKEN") {
		t.Fatalf("r0 sync after logout: %d %s", status, data)
	}
}

// r0Upload uploads as nio's upload() does: r0, token and filename in the
// query string.
func r0Upload(t *testing.T, ts *testserver.Server, s r0Session, data []byte, contentType, name string) id.ContentURI {
	t.Helper()
	path := s.with(r0Media + "/upload?filename=" + url.QueryEscape(name))
	resp, body := mediaDo(t, ts, "", http.MethodPost, path, bytes.NewReader(data), http.Header{"Content-Type": {contentType}})
	var out struct {
		ContentURI id.ContentURI `json:"content_uri"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil || out.ContentURI.FileID == "" {
		t.Fatalf("r0 upload: %d %s", resp.StatusCode, body)
	}
	return out.ContentURI
}

func TestR0Media(t *testing.T) {
	var img bytes.Buffer
	if err := png.Encode(&img, mediaGradient(200, 100)); err != nil {
		t.Fatal(err)
	}

	// With the default configuration (unauthenticated media frozen for
	// all media), an old client's upload and config work: they carry its
	// access token. Its unauthenticated r0 downloads obey the freeze, as
	// v3's do; the upload is there for every client using authenticated
	// media.
	ts := testserver.New(t)
	c := ts.RegisterUser("alice")
	alice := r0Session{c.UserID, c.DeviceID, c.AccessToken}
	var cfg map[string]int64
	r0OK(t, ts, http.MethodGet, alice.with(r0Media+"/config"), nil, &cfg)
	if cfg["m.upload.size"] != 100<<20 {
		t.Fatalf("r0 media config %v", cfg)
	}
	resp, body := mediaDo(t, ts, "", http.MethodGet, r0Media+"/config", nil, nil)
	mediaWantErr(t, "r0 config without a token", resp, body, 401, "M_MISSING_TOKEN")
	resp, body = mediaDo(t, ts, "", http.MethodPost, r0Media+"/upload", bytes.NewReader(img.Bytes()), http.Header{"Content-Type": {"image/png"}})
	mediaWantErr(t, "r0 upload without a token", resp, body, 401, "M_MISSING_TOKEN")

	uri := r0Upload(t, ts, alice, img.Bytes(), "image/png", "a.png")
	resp, body = mediaDo(t, ts, c.AccessToken, http.MethodGet, mediaDownloadPath(uri), nil, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, img.Bytes()) {
		t.Fatalf("authenticated download of an r0 upload: %d", resp.StatusCode)
	}
	for _, path := range []string{
		r0Media + "/download/localhost/" + uri.FileID,
		r0Media + "/download/localhost/" + uri.FileID + "/a.png",
		r0Media + "/thumbnail/localhost/" + uri.FileID + "?width=32&height=32&method=crop",
	} {
		resp, body = mediaDo(t, ts, "", http.MethodGet, path, nil, nil)
		mediaWantErr(t, path, resp, body, 404, "M_NOT_FOUND")
	}
	// Asynchronous upload came after r0: it has no r0 form.
	resp, body = mediaDo(t, ts, c.AccessToken, http.MethodPut, r0Media+"/upload/localhost/"+uri.FileID, bytes.NewReader(img.Bytes()), nil)
	mediaWantErr(t, "r0 asynchronous upload", resp, body, 404, "M_UNRECOGNIZED")

	// An administrator who lets old clients download (a freeze date in the
	// future) gets r0 downloads and thumbnails working as v3's.
	open := testserver.New(t, func(c *config.Config) { c.Media.UnauthenticatedBefore = "2100-01-01T00:00:00Z" })
	c = open.RegisterUser("bob")
	bob := r0Session{c.UserID, c.DeviceID, c.AccessToken}
	uri = r0Upload(t, open, bob, img.Bytes(), "image/png", "a.png")
	resp, body = mediaDo(t, open, "", http.MethodGet, r0Media+"/download/localhost/"+uri.FileID, nil, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, img.Bytes()) || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("r0 download: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp, _ = mediaDo(t, open, "", http.MethodGet, r0Media+"/download/localhost/"+uri.FileID+"/other.png", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Disposition"), "other.png") {
		t.Fatalf("r0 download with a file name: %d %s", resp.StatusCode, resp.Header.Get("Content-Disposition"))
	}
	resp, body = mediaDo(t, open, "", http.MethodGet, r0Media+"/thumbnail/localhost/"+uri.FileID+"?width=32&height=32&method=scale&allow_remote=true", nil, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("r0 thumbnail: %d %s", resp.StatusCode, body)
	}
	if _, err := png.Decode(bytes.NewReader(body)); err != nil {
		t.Fatalf("r0 thumbnail is not a PNG: %v", err)
	}
}

// TestR0TwinForEveryV3Route checks the router serves every client and
// media v3 route under r0 too, except the few kept to v3 on purpose, so a
// new endpoint cannot miss its r0 form.
func TestR0TwinForEveryV3Route(t *testing.T) {
	ts := testserver.New(t)
	all := ts.Routes()
	routes := map[httpapi.Route]bool{}
	for _, r := range all {
		routes[r] = true
	}
	v3Only := map[httpapi.Route]bool{}
	for _, r := range clientapi.V3Only() {
		if !routes[r] {
			t.Errorf("v3-only exception %v is not a route: rename or remove it", r)
		}
		v3Only[r] = true
	}
	twins := 0
	for _, r := range all {
		for _, pair := range [][2]string{{"/_matrix/client/v3/", "/_matrix/client/r0/"}, {"/_matrix/media/v3/", "/_matrix/media/r0/"}} {
			rest, ok := strings.CutPrefix(r.Path, pair[0])
			if !ok {
				continue
			}
			twin := httpapi.Route{Method: r.Method, Path: pair[1] + rest}
			switch {
			case v3Only[r] && routes[twin]:
				t.Errorf("%s %s is v3-only but served under r0", r.Method, r.Path)
			case !v3Only[r] && !routes[twin]:
				t.Errorf("%s %s has no r0 twin", r.Method, r.Path)
			case routes[twin]:
				twins++
			}
		}
	}
	// Every r0 route is a twin: none is registered on its own.
	for r := range routes {
		if strings.HasPrefix(r.Path, "/_matrix/client/r0/") || strings.HasPrefix(r.Path, "/_matrix/media/r0/") {
			twins--
		}
	}
	if twins != 0 {
		t.Errorf("%d r0 routes without a v3 route", -twins)
	}
	status, data := r0Call(t, ts, http.MethodPost, r0Client+"/keys/device_signing/upload", map[string]any{}, nil)
	if status != 404 || !strings.Contains(string(data), "M_UNRECOGNIZED") {
		t.Fatalf("r0 cross-signing upload: %d %s", status, data)
	}
}
