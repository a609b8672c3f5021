package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/synapseadmin"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/admin"
	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

var ctx = context.Background()

// req describes one request to the admin API.
type req struct {
	method string
	path   string // under /_synapse/admin, or a full path under /_palpo/admin
	body   any    // JSON-encoded; ignored when raw is set
	raw    []byte // sent as is
}

// do sends r as c (whose token may be empty) and decodes a success into
// out. It returns the status and mautrix's error for non-2xx answers.
func do(t *testing.T, c *mautrix.Client, r req, out any) (int, error) {
	t.Helper()
	path := "/_synapse/admin" + r.path
	if strings.HasPrefix(r.path, "/_palpo/admin/") {
		path = r.path
	}
	full := mautrix.FullRequest{Method: r.method, URL: c.HomeserverURL.String() + path, ResponseJSON: out, MaxAttempts: 1}
	if r.raw != nil {
		full.RequestBytes = r.raw
		full.Headers = http.Header{"Content-Type": {"application/json"}}
	} else if r.body != nil {
		full.RequestJSON = r.body
	}
	_, resp, err := c.MakeFullRequestWithResp(ctx, full)
	if resp != nil {
		return resp.StatusCode, err
	}
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.Response != nil {
		return he.Response.StatusCode, err
	}
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	return 0, err
}

// ok sends r and fails the test unless the answer has the wanted status.
func ok(t *testing.T, c *mautrix.Client, r req, status int, out any) {
	t.Helper()
	got, err := do(t, c, r, out)
	if err != nil || got != status {
		t.Fatalf("%s %s: status %d, error %v; want %d", r.method, r.path, got, err, status)
	}
}

// fails sends r and checks the Matrix error.
func fails(t *testing.T, c *mautrix.Client, r req, status int, errcode string) {
	t.Helper()
	_, err := do(t, c, r, nil)
	expectErr(t, err, status, errcode)
}

func expectErr(t *testing.T, err error, status int, errcode string) {
	t.Helper()
	var he mautrix.HTTPError
	if !errors.As(err, &he) || he.Response == nil {
		t.Fatalf("want %d %s, got %v", status, errcode, err)
	}
	code := ""
	if he.RespError != nil {
		code = he.RespError.ErrCode
	}
	if he.Response.StatusCode != status || code != errcode {
		t.Fatalf("want %d %s, got %d %s (%s)", status, errcode, he.Response.StatusCode, code, he.ResponseBody)
	}
}

func userPath(userID id.UserID, rest ...string) string {
	return "/v2/users/" + url.PathEscape(string(userID)) + strings.Join(rest, "")
}

func anon(t *testing.T, ts *testserver.Server) *mautrix.Client { return ts.Client() }

func withSecret(secret string) testserver.Option {
	return func(c *config.Config) { c.Registration.SharedSecret = secret }
}

func TestServerVersionIsPublic(t *testing.T) {
	ts := testserver.New(t)
	var out map[string]string
	ok(t, anon(t, ts), req{method: http.MethodGet, path: "/v1/server_version"}, http.StatusOK, &out)
	if out["server_version"] != admin.Version || admin.Version == "" {
		t.Fatalf("server_version %q, want %q", out["server_version"], admin.Version)
	}
}

// TestEveryEndpointNeedsAnAdmin walks every registered admin route, so a
// route added later without the admin check fails here.
func TestEveryEndpointNeedsAnAdmin(t *testing.T) {
	ts := testserver.New(t, withSecret("s3cret"))
	ts.RegisterAdmin("root")
	alice := ts.RegisterUser("alice")
	badToken, err := mautrix.NewClient(ts.URL, "@alice:localhost", "pat_not_a_token")
	if err != nil {
		t.Fatal(err)
	}
	public := map[string]bool{
		"GET /_synapse/admin/v1/server_version": true,
		"GET /_synapse/admin/v1/register":       true,
		"POST /_synapse/admin/v1/register":      true,
	}
	fill := strings.NewReplacer("{userId}", "@alice:localhost", "{deviceId}", string(alice.DeviceID), "{token}", "sometoken")
	checked := 0
	for _, rt := range ts.Routes() {
		if !strings.HasPrefix(rt.Path, "/_synapse/admin/") && !strings.HasPrefix(rt.Path, "/_palpo/admin/") || public[rt.Method+" "+rt.Path] {
			continue
		}
		checked++
		r := req{method: rt.Method, path: strings.TrimPrefix(fill.Replace(rt.Path), "/_synapse/admin")}
		if rt.Method != http.MethodGet {
			r.body = map[string]any{"deactivated": true, "admin": true, "devices": []string{string(alice.DeviceID)}}
		}
		fails(t, anon(t, ts), r, http.StatusUnauthorized, "M_MISSING_TOKEN")
		fails(t, badToken, r, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		_, err := do(t, alice, r, nil)
		expectErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		if !strings.Contains(err.Error(), "You are not a server admin") {
			t.Errorf("%s %s: %v", rt.Method, rt.Path, err)
		}
	}
	if checked < 14 {
		t.Fatalf("only %d admin routes checked", checked)
	}
	// Nothing the refused requests asked for happened.
	if _, err := alice.Whoami(ctx); err != nil {
		t.Fatalf("alice's session was touched: %v", err)
	}
}

func TestListUsers(t *testing.T) {
	ts := testserver.New(t)
	root := ts.RegisterAdmin("root")
	sa := synapseadmin.Client{Client: root}
	names := []string{"@root:localhost"}
	for _, lp := range []string{"ann", "bea", "cal", "dee", "eve"} {
		ts.RegisterUser(lp)
		names = append(names, "@"+lp+":localhost")
	}
	sort.Strings(names)
	// Follow next_token through pages of two.
	var got []string
	from := "0"
	for pages := 0; from != ""; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		var page struct {
			Users []struct {
				Name        string  `json:"name"`
				DisplayName *string `json:"displayname"`
				AvatarURL   *string `json:"avatar_url"`
				CreationTS  int64   `json:"creation_ts"`
				Admin       bool    `json:"admin"`
			} `json:"users"`
			NextToken string `json:"next_token"`
			Total     int    `json:"total"`
		}
		ok(t, root, req{method: http.MethodGet, path: "/v2/users?limit=2&from=" + from}, http.StatusOK, &page)
		if page.Total != 6 || len(page.Users) > 2 {
			t.Fatalf("page from %s: total %d, %d users", from, page.Total, len(page.Users))
		}
		for _, u := range page.Users {
			got = append(got, u.Name)
			// creation_ts is in milliseconds in the list.
			if age := time.Since(time.UnixMilli(u.CreationTS)); age < 0 || age > time.Minute {
				t.Errorf("%s creation_ts %d is not a recent time in ms", u.Name, u.CreationTS)
			}
			if u.DisplayName == nil || "@"+*u.DisplayName+":localhost" != u.Name || u.AvatarURL != nil {
				t.Errorf("%s: displayname %v avatar %v", u.Name, u.DisplayName, u.AvatarURL)
			}
			if u.Admin != (u.Name == "@root:localhost") {
				t.Errorf("%s admin %v", u.Name, u.Admin)
			}
		}
		from = page.NextToken
	}
	if !slices.Equal(got, names) {
		t.Fatalf("paged through %v, want %v", got, names)
	}

	list := func(query string) []string {
		t.Helper()
		var out struct {
			Users []struct {
				Name string `json:"name"`
			} `json:"users"`
			Total int `json:"total"`
		}
		ok(t, root, req{method: http.MethodGet, path: "/v2/users?" + query}, http.StatusOK, &out)
		var names []string
		for _, u := range out.Users {
			names = append(names, u.Name)
		}
		if out.Total != len(names) {
			t.Fatalf("%s: total %d for %d users", query, out.Total, len(names))
		}
		return names
	}
	zebra := "Zebra Crossing"
	if err := sa.CreateOrModifyAccount(ctx, "@cal:localhost", synapseadmin.ReqCreateOrModifyAccount{Displayname: zebra}); err != nil {
		t.Fatal(err)
	}
	for query, want := range map[string][]string{
		"name=ZEBRA":               {"@cal:localhost"},
		"name=e":                   {"@bea:localhost", "@cal:localhost", "@dee:localhost", "@eve:localhost"}, // cal by display name
		"name=local":               nil,                                                                      // the server name is not part of the localpart
		"user_id=ee%3Alocal":       {"@dee:localhost"},
		"admins=true":              {"@root:localhost"},
		"admins=false&name=a":      {"@ann:localhost", "@bea:localhost", "@cal:localhost"},
		"order_by=name&dir=b":      {"@root:localhost", "@eve:localhost", "@dee:localhost", "@cal:localhost", "@bea:localhost", "@ann:localhost"},
		"name=ee&user_id=nomatter": {"@dee:localhost"}, // user_id is ignored with name
	} {
		if got := list(query); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", query, got, want)
		}
	}
	var page struct {
		Users     []any  `json:"users"`
		NextToken string `json:"next_token"`
		Total     int    `json:"total"`
	}
	ok(t, root, req{method: http.MethodGet, path: "/v2/users?limit=0"}, http.StatusOK, &page)
	if len(page.Users) != 0 || page.Total != 6 || page.NextToken != "0" {
		t.Fatalf("limit=0: %+v", page)
	}
	page.NextToken = ""
	ok(t, root, req{method: http.MethodGet, path: "/v2/users?from=5"}, http.StatusOK, &page)
	if len(page.Users) != 1 || page.Total != 6 || page.NextToken != "" {
		t.Fatalf("from=5: %+v", page)
	}
	// Deactivated users are hidden unless asked for.
	if err := sa.DeactivateAccount(ctx, "@eve:localhost", synapseadmin.ReqDeleteUser{}); err != nil {
		t.Fatal(err)
	}
	if got := list("name=eve"); got != nil {
		t.Errorf("deactivated eve listed: %v", got)
	}
	if got := list("name=eve&deactivated=true"); !slices.Equal(got, []string{"@eve:localhost"}) {
		t.Errorf("deactivated=true: %v", got)
	}
	for _, bad := range []string{"from=-1", "limit=x", "limit=-5", "deactivated=yes", "admins=1", "guests=maybe", "order_by=shoe_size", "dir=sideways"} {
		fails(t, root, req{method: http.MethodGet, path: "/v2/users?" + bad}, http.StatusBadRequest, "M_INVALID_PARAM")
	}
}

func TestGetUser(t *testing.T) {
	ts := testserver.New(t)
	root := ts.RegisterAdmin("root")
	sa := synapseadmin.Client{Client: root}
	ts.RegisterUser("alice")
	info, err := sa.GetUserInfo(ctx, "@alice:localhost")
	if err != nil {
		t.Fatal(err)
	}
	// creation_ts is in seconds here, as in Synapse (mautrix reads it so).
	if info.UserID != "@alice:localhost" || info.DisplayName != "alice" || info.Admin || info.Deactivated || info.Guest ||
		time.Since(info.CreationTS.Time) > time.Minute || time.Since(info.CreationTS.Time) < -time.Second {
		t.Fatalf("alice: %+v", info)
	}
	var raw map[string]any
	ok(t, root, req{method: http.MethodGet, path: userPath("@alice:localhost")}, http.StatusOK, &raw)
	for _, field := range []string{"threepids", "external_ids", "user_type", "avatar_url", "last_seen_ts", "locked", "erased", "shadow_banned"} {
		if _, present := raw[field]; !present {
			t.Errorf("field %s missing from %v", field, raw)
		}
	}
	fails(t, root, req{method: http.MethodGet, path: userPath("@nobody:localhost")}, http.StatusNotFound, "M_NOT_FOUND")
	fails(t, root, req{method: http.MethodGet, path: userPath("@alice:example.org")}, http.StatusBadRequest, "M_INVALID_PARAM")
	fails(t, root, req{method: http.MethodGet, path: userPath("alice")}, http.StatusBadRequest, "M_INVALID_PARAM")
}

type userDetails struct {
	Name        id.UserID `json:"name"`
	DisplayName *string   `json:"displayname"`
	AvatarURL   *string   `json:"avatar_url"`
	Admin       bool      `json:"admin"`
	Deactivated bool      `json:"deactivated"`
	UserType    *string   `json:"user_type"`
}

func TestCreateAndModifyUser(t *testing.T) {
	ts := testserver.New(t)
	root := ts.RegisterAdmin("root")
	const pw = "a long enough password"

	var d userDetails
	ok(t, root, req{method: http.MethodPut, path: userPath("@bob:localhost"), body: map[string]any{
		"password": pw, "displayname": "Bob", "avatar_url": "mxc://localhost/abc", "user_type": "bot",
	}}, http.StatusCreated, &d)
	if d.Name != "@bob:localhost" || d.DisplayName == nil || *d.DisplayName != "Bob" || d.AvatarURL == nil ||
		*d.AvatarURL != "mxc://localhost/abc" || d.Admin || d.UserType == nil || *d.UserType != "bot" {
		t.Fatalf("created: %+v", d)
	}
	bob := ts.Login("bob", pw)

	// Modify: 200, fields changed, absent fields kept.
	ok(t, root, req{method: http.MethodPut, path: userPath("@bob:localhost"), body: map[string]any{
		"displayname": "Bobby", "admin": true, "user_type": nil,
	}}, http.StatusOK, &d)
	if *d.DisplayName != "Bobby" || !d.Admin || d.UserType != nil || d.AvatarURL == nil {
		t.Fatalf("modified: %+v", d)
	}
	// Bob is an admin now, and can use the admin API.
	ok(t, bob, req{method: http.MethodGet, path: userPath("@root:localhost")}, http.StatusOK, nil)
	ok(t, root, req{method: http.MethodPut, path: userPath("@bob:localhost"), body: map[string]any{"admin": false, "avatar_url": ""}}, http.StatusOK, &d)
	if d.Admin || d.AvatarURL != nil {
		t.Fatalf("demoted: %+v", d)
	}
	fails(t, bob, req{method: http.MethodGet, path: userPath("@root:localhost")}, http.StatusForbidden, "M_FORBIDDEN")

	// A new password signs bob out everywhere by default.
	const pw2 = "another long password"
	ok(t, root, req{method: http.MethodPut, path: userPath("@bob:localhost"), body: map[string]any{"password": pw2}}, http.StatusOK, nil)
	if _, err := bob.Whoami(ctx); err == nil {
		t.Fatal("bob's session survived a password reset")
	}
	bob = ts.Login("bob", pw2)
	// ...unless logout_devices is false.
	ok(t, root, req{method: http.MethodPut, path: userPath("@bob:localhost"), body: map[string]any{"password": pw, "logout_devices": false}}, http.StatusOK, nil)
	if _, err := bob.Whoami(ctx); err != nil {
		t.Fatalf("logout_devices=false signed bob out: %v", err)
	}

	// Deactivate: sessions end, the password no longer works.
	ok(t, root, req{method: http.MethodPut, path: userPath("@bob:localhost"), body: map[string]any{"deactivated": true}}, http.StatusOK, &d)
	if !d.Deactivated {
		t.Fatalf("deactivated: %+v", d)
	}
	if _, err := bob.Whoami(ctx); err == nil {
		t.Fatal("bob's session survived deactivation")
	}
	if err := ts.Accounts().CheckPassword(ctx, "@bob:localhost", pw); err == nil {
		t.Fatal("deactivated bob's password still works")
	}
	// Reactivation needs a new password: the old one is gone.
	fails(t, root, req{method: http.MethodPut, path: userPath("@bob:localhost"), body: map[string]any{"deactivated": false}}, http.StatusBadRequest, "M_MISSING_PARAM")
	ok(t, root, req{method: http.MethodPut, path: userPath("@bob:localhost"), body: map[string]any{"deactivated": false, "password": pw2}}, http.StatusOK, &d)
	if d.Deactivated {
		t.Fatalf("reactivated: %+v", d)
	}
	ts.Login("bob", pw2)

	// An admin cannot demote themselves (someone must be able to undo it).
	fails(t, root, req{method: http.MethodPut, path: userPath("@root:localhost"), body: map[string]any{"admin": false}}, http.StatusBadRequest, "M_INVALID_PARAM")
	ok(t, root, req{method: http.MethodGet, path: userPath("@root:localhost")}, http.StatusOK, &d)
	if !d.Admin {
		t.Fatal("root lost admin")
	}
	// ...but may change their own password without losing this session.
	ok(t, root, req{method: http.MethodPut, path: userPath("@root:localhost"), body: map[string]any{"password": pw}}, http.StatusOK, nil)
	if _, err := root.Whoami(ctx); err != nil {
		t.Fatalf("root's own session ended: %v", err)
	}

	// A created account without a password cannot log in, but exists.
	ok(t, root, req{method: http.MethodPut, path: userPath("@nopass:localhost"), body: map[string]any{}}, http.StatusCreated, &d)
	if *d.DisplayName != "nopass" {
		t.Fatalf("default display name: %+v", d)
	}

	// Bad input changes nothing.
	for _, tc := range []struct {
		name   string
		r      req
		status int
		code   string
	}{
		{"malformed JSON", req{raw: []byte(`{"displayname":`)}, 400, "M_NOT_JSON"},
		{"array body", req{raw: []byte(`["displayname"]`)}, 400, "M_BAD_JSON"},
		{"admin not bool", req{body: map[string]any{"admin": "yes"}}, 400, "M_BAD_JSON"},
		{"displayname not string", req{body: map[string]any{"displayname": 5}}, 400, "M_INVALID_PARAM"},
		{"deactivated not bool", req{body: map[string]any{"deactivated": "true"}}, 400, "M_INVALID_PARAM"},
		{"weak password", req{body: map[string]any{"password": "short", "displayname": "Changed"}}, 400, "M_WEAK_PASSWORD"},
		{"password not string", req{body: map[string]any{"password": 12345678}}, 400, "M_INVALID_PARAM"},
		{"displayname with a control character", req{body: map[string]any{"displayname": "Bob\x00by"}}, 400, "M_INVALID_PARAM"},
		{"bad user type", req{body: map[string]any{"user_type": "wizard", "displayname": "Changed"}}, 400, "M_INVALID_PARAM"},
		{"long display name", req{body: map[string]any{"displayname": strings.Repeat("x", 257)}}, 400, "M_INVALID_PARAM"},
		{"locked not bool", req{body: map[string]any{"locked": "yes"}}, 400, "M_INVALID_PARAM"},
		{"threepids", req{body: map[string]any{"threepids": []any{map[string]string{"medium": "email", "address": "a@b.c"}}}}, 400, "M_INVALID_PARAM"},
	} {
		tc.r.method, tc.r.path = http.MethodPut, userPath("@bob:localhost")
		_, err := do(t, root, tc.r, nil)
		t.Run(tc.name, func(t *testing.T) { expectErr(t, err, tc.status, tc.code) })
	}
	ok(t, root, req{method: http.MethodGet, path: userPath("@bob:localhost")}, http.StatusOK, &d)
	if *d.DisplayName != "Bobby" {
		t.Fatalf("a refused request changed bob: %+v", d)
	}
	// Empty threepids (which synapse-admin sends) are fine.
	ok(t, root, req{method: http.MethodPut, path: userPath("@bob:localhost"), body: map[string]any{"threepids": []any{}, "external_ids": []any{}}}, http.StatusOK, nil)

	// Names the rules refuse, and other servers' users.
	fails(t, root, req{method: http.MethodPut, path: userPath("@Bad Name:localhost"), body: map[string]any{}}, http.StatusBadRequest, "M_INVALID_USERNAME")
	fails(t, root, req{method: http.MethodPut, path: userPath("@_bridge:localhost"), body: map[string]any{}}, http.StatusBadRequest, "M_INVALID_USERNAME")
	fails(t, root, req{method: http.MethodPut, path: userPath("@bob:example.org"), body: map[string]any{}}, http.StatusBadRequest, "M_INVALID_PARAM")
	fails(t, root, req{method: http.MethodPut, path: userPath("@carol:localhost"), body: map[string]any{"password": "short"}}, http.StatusBadRequest, "M_WEAK_PASSWORD")
	fails(t, root, req{method: http.MethodGet, path: userPath("@carol:localhost")}, http.StatusNotFound, "M_NOT_FOUND")
}

// The v1 endpoints mautrix's synapseadmin package calls.
func TestDeactivateAndResetPasswordV1(t *testing.T) {
	ts := testserver.New(t)
	root := ts.RegisterAdmin("root")
	sa := synapseadmin.Client{Client: root}
	alice := ts.RegisterUser("alice")
	const pw = "a fresh long password"
	if err := sa.ResetPassword(ctx, synapseadmin.ReqResetPassword{UserID: "@alice:localhost", NewPassword: pw, LogoutDevices: false}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Whoami(ctx); err != nil {
		t.Fatalf("logout_devices=false signed alice out: %v", err)
	}
	ts.Login("alice", pw)
	expectErr(t, sa.ResetPassword(ctx, synapseadmin.ReqResetPassword{UserID: "@alice:localhost", NewPassword: "short"}), 400, "M_WEAK_PASSWORD")
	expectErr(t, sa.ResetPassword(ctx, synapseadmin.ReqResetPassword{UserID: "@ghost:localhost", NewPassword: pw}), 404, "M_NOT_FOUND")
	fails(t, root, req{method: http.MethodPost, path: "/v1/reset_password/@alice:localhost", body: map[string]any{}}, 400, "M_MISSING_PARAM")

	if err := sa.DeactivateAccount(ctx, "@alice:localhost", synapseadmin.ReqDeleteUser{Erase: true}); err != nil {
		t.Fatal(err)
	}
	info, err := sa.GetUserInfo(ctx, "@alice:localhost")
	if err != nil || !info.Deactivated || !info.Erased || info.DisplayName != "" {
		t.Fatalf("after erase: %+v %v", info, err)
	}
	if _, err := alice.Whoami(ctx); err == nil {
		t.Fatal("alice's session survived deactivation")
	}
	// An empty body is allowed; deactivating twice is fine.
	ok(t, root, req{method: http.MethodPost, path: "/v1/deactivate/@alice:localhost", raw: []byte{}}, 200, nil)
	fails(t, root, req{method: http.MethodPost, path: "/v1/deactivate/@ghost:localhost"}, 404, "M_NOT_FOUND")
	fails(t, root, req{method: http.MethodPost, path: "/v1/deactivate/@alice:localhost", body: map[string]any{"erase": "yes"}}, 400, "M_BAD_JSON")
}

func TestDevices(t *testing.T) {
	ts := testserver.New(t)
	root := ts.RegisterAdmin("root")
	sa := synapseadmin.Client{Client: root}
	alice := ts.RegisterUser("alice")
	alice2 := ts.Login("alice", testserver.DefaultPassword)
	devs, err := sa.ListDevices(ctx, "@alice:localhost")
	if err != nil {
		t.Fatal(err)
	}
	var ids []id.DeviceID
	for _, d := range devs.Devices {
		ids = append(ids, d.DeviceID)
	}
	want := []id.DeviceID{alice.DeviceID, alice2.DeviceID}
	slices.Sort(want)
	if devs.Total != 2 || !slices.Equal(ids, want) {
		t.Fatalf("devices %v (total %d), want %v", ids, devs.Total, want)
	}
	dev := userPath("@alice:localhost", "/devices/", string(alice.DeviceID))
	var d struct {
		DeviceID    id.DeviceID `json:"device_id"`
		DisplayName *string     `json:"display_name"`
		UserID      id.UserID   `json:"user_id"`
		LastSeenTS  *int64      `json:"last_seen_ts"`
	}
	ok(t, root, req{method: http.MethodGet, path: dev}, 200, &d)
	if d.DeviceID != alice.DeviceID || d.UserID != "@alice:localhost" || d.DisplayName == nil || *d.DisplayName != "test device" || d.LastSeenTS == nil {
		t.Fatalf("device: %+v", d)
	}
	ok(t, root, req{method: http.MethodPut, path: dev, body: map[string]any{"display_name": "Alice's phone"}}, 200, nil)
	ok(t, root, req{method: http.MethodGet, path: dev}, 200, &d)
	if *d.DisplayName != "Alice's phone" {
		t.Fatalf("renamed: %+v", d)
	}
	ok(t, root, req{method: http.MethodPut, path: dev, raw: []byte{}}, 200, nil)
	fails(t, root, req{method: http.MethodPut, path: dev, body: map[string]any{"display_name": strings.Repeat("x", 101)}}, 400, "M_TOO_LARGE")
	fails(t, root, req{method: http.MethodPut, path: dev, body: map[string]any{"display_name": 7}}, 400, "M_BAD_JSON")
	fails(t, root, req{method: http.MethodPut, path: userPath("@alice:localhost", "/devices/NOSUCH"), body: map[string]any{"display_name": "x"}}, 404, "M_NOT_FOUND")
	fails(t, root, req{method: http.MethodGet, path: userPath("@alice:localhost", "/devices/NOSUCH")}, 404, "M_NOT_FOUND")
	// Another user's device is not found under alice.
	fails(t, root, req{method: http.MethodGet, path: userPath("@alice:localhost", "/devices/", string(root.DeviceID))}, 404, "M_NOT_FOUND")
	fails(t, root, req{method: http.MethodGet, path: userPath("@ghost:localhost", "/devices")}, 404, "M_NOT_FOUND")
	fails(t, root, req{method: http.MethodGet, path: userPath("@alice:example.org", "/devices")}, 400, "M_INVALID_PARAM")

	// Deleting a device signs it out; an unknown one is already gone.
	ok(t, root, req{method: http.MethodDelete, path: dev}, 200, nil)
	if _, err := alice.Whoami(ctx); err == nil {
		t.Fatal("deleted device still works")
	}
	if _, err := alice2.Whoami(ctx); err != nil {
		t.Fatalf("the other device went too: %v", err)
	}
	ok(t, root, req{method: http.MethodDelete, path: dev}, 200, nil)

	fails(t, root, req{method: http.MethodPost, path: userPath("@alice:localhost", "/delete_devices"), body: map[string]any{}}, 400, "M_MISSING_PARAM")
	fails(t, root, req{method: http.MethodPost, path: userPath("@alice:localhost", "/delete_devices"), body: map[string]any{"devices": "ALL"}}, 400, "M_BAD_JSON")
	fails(t, root, req{method: http.MethodPost, path: userPath("@alice:localhost", "/delete_devices"), raw: []byte("nope")}, 400, "M_NOT_JSON")
	ok(t, root, req{method: http.MethodPost, path: userPath("@alice:localhost", "/delete_devices"), body: map[string]any{"devices": []string{string(alice2.DeviceID), "NOSUCH"}}}, 200, nil)
	if _, err := alice2.Whoami(ctx); err == nil {
		t.Fatal("delete_devices left the device")
	}
	devs, err = sa.ListDevices(ctx, "@alice:localhost")
	if err != nil || devs.Total != 0 || len(devs.Devices) != 0 {
		t.Fatalf("after deleting all: %+v %v", devs, err)
	}
	// root's own device was never in danger.
	if _, err := root.Whoami(ctx); err != nil {
		t.Fatal(err)
	}
}

type tokenJSON struct {
	Token       string `json:"token"`
	UsesAllowed *int   `json:"uses_allowed"`
	Pending     int    `json:"pending"`
	Completed   int    `json:"completed"`
	ExpiryTime  *int64 `json:"expiry_time"`
}

func TestRegistrationTokens(t *testing.T) {
	ts := testserver.New(t)
	root := ts.RegisterAdmin("root")
	const base = "/v1/registration_tokens"

	var tok tokenJSON
	ok(t, root, req{method: http.MethodPost, path: base + "/new", body: map[string]any{}}, 200, &tok)
	if len(tok.Token) != 16 || strings.Trim(tok.Token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-") != "" ||
		tok.UsesAllowed != nil || tok.ExpiryTime != nil || tok.Pending != 0 || tok.Completed != 0 {
		t.Fatalf("generated: %+v", tok)
	}
	generated := tok.Token
	ok(t, root, req{method: http.MethodPost, path: base + "/new", body: map[string]any{"length": 64}}, 200, &tok)
	if len(tok.Token) != 64 {
		t.Fatalf("length 64: %q", tok.Token)
	}
	future := time.Now().Add(time.Hour).UnixMilli()
	ok(t, root, req{method: http.MethodPost, path: base + "/new", body: map[string]any{"token": "family-2024", "uses_allowed": 1, "expiry_time": future}}, 200, &tok)
	if tok.Token != "family-2024" || *tok.UsesAllowed != 1 || *tok.ExpiryTime != future {
		t.Fatalf("named: %+v", tok)
	}

	for _, tc := range []struct {
		name string
		body any
	}{
		{"duplicate", map[string]any{"token": "family-2024"}},
		{"bad character", map[string]any{"token": "no spaces"}},
		{"too long", map[string]any{"token": strings.Repeat("a", 65)}},
		{"empty token", map[string]any{"token": ""}},
		{"token not string", map[string]any{"token": 5}},
		{"length zero", map[string]any{"length": 0}},
		{"length 65", map[string]any{"length": 65}},
		{"length float", map[string]any{"length": 1.5}},
		{"length string", map[string]any{"length": "8"}},
		{"negative uses", map[string]any{"uses_allowed": -1}},
		{"uses float", map[string]any{"uses_allowed": 2.5}},
		{"uses bool", map[string]any{"uses_allowed": true}},
		{"expiry in the past", map[string]any{"expiry_time": time.Now().Add(-time.Hour).UnixMilli()}},
		{"expiry string", map[string]any{"expiry_time": "tomorrow"}},
	} {
		_, err := do(t, root, req{method: http.MethodPost, path: base + "/new", body: tc.body}, nil)
		t.Run(tc.name, func(t *testing.T) { expectErr(t, err, 400, "M_INVALID_PARAM") })
	}
	fails(t, root, req{method: http.MethodPost, path: base + "/new", raw: []byte("{")}, 400, "M_NOT_JSON")

	// Get, update (only the fields given), delete.
	ok(t, root, req{method: http.MethodGet, path: base + "/family-2024"}, 200, &tok)
	if tok.Token != "family-2024" || *tok.UsesAllowed != 1 {
		t.Fatalf("get: %+v", tok)
	}
	ok(t, root, req{method: http.MethodPut, path: base + "/family-2024", body: map[string]any{"uses_allowed": 5}}, 200, &tok)
	if *tok.UsesAllowed != 5 || tok.ExpiryTime == nil || *tok.ExpiryTime != future {
		t.Fatalf("update uses: %+v", tok)
	}
	ok(t, root, req{method: http.MethodPut, path: base + "/family-2024", body: map[string]any{"expiry_time": nil}}, 200, &tok)
	if *tok.UsesAllowed != 5 || tok.ExpiryTime != nil {
		t.Fatalf("clear expiry: %+v", tok)
	}
	ok(t, root, req{method: http.MethodPut, path: base + "/family-2024", body: map[string]any{}}, 200, &tok)
	if *tok.UsesAllowed != 5 {
		t.Fatalf("empty update: %+v", tok)
	}
	fails(t, root, req{method: http.MethodPut, path: base + "/family-2024", body: map[string]any{"uses_allowed": -2}}, 400, "M_INVALID_PARAM")
	fails(t, root, req{method: http.MethodPut, path: base + "/family-2024", body: map[string]any{"expiry_time": 1000}}, 400, "M_INVALID_PARAM")
	fails(t, root, req{method: http.MethodPut, path: base + "/nosuch", body: map[string]any{"uses_allowed": 1}}, 404, "M_NOT_FOUND")
	fails(t, root, req{method: http.MethodGet, path: base + "/nosuch"}, 404, "M_NOT_FOUND")
	fails(t, root, req{method: http.MethodDelete, path: base + "/nosuch"}, 404, "M_NOT_FOUND")
	ok(t, root, req{method: http.MethodDelete, path: base + "/" + generated}, 200, nil)
	fails(t, root, req{method: http.MethodGet, path: base + "/" + generated}, 404, "M_NOT_FOUND")

	// Uses: a registration that passed the token stage holds one use
	// (pending); a completed one counts (completed). A used-up token is
	// listed as invalid.
	ok(t, root, req{method: http.MethodPut, path: base + "/family-2024", body: map[string]any{"uses_allowed": 2}}, 200, nil)
	_, err := ts.Accounts().CheckUIA(ctx, accountsUIA("family-2024"))
	if err == nil {
		t.Fatal("a two-stage flow completed after one stage")
	}
	ok(t, root, req{method: http.MethodGet, path: base + "/family-2024"}, 200, &tok)
	if tok.Pending != 1 || tok.Completed != 0 {
		t.Fatalf("pending: %+v", tok)
	}
	registerWithToken(t, ts, "newbie", "family-2024")
	ok(t, root, req{method: http.MethodGet, path: base + "/family-2024"}, 200, &tok)
	if tok.Pending != 1 || tok.Completed != 1 {
		t.Fatalf("after registering: %+v", tok)
	}
	listTokens := func(query string) []string {
		var out struct {
			Tokens []tokenJSON `json:"registration_tokens"`
		}
		ok(t, root, req{method: http.MethodGet, path: base + query}, 200, &out)
		var names []string
		for _, tk := range out.Tokens {
			names = append(names, tk.Token)
		}
		sort.Strings(names)
		return names
	}
	if got := listTokens("?valid=false"); !slices.Equal(got, []string{"family-2024"}) {
		t.Fatalf("valid=false: %v", got)
	}
	if got := listTokens("?valid=true"); len(got) != 1 || got[0] == "family-2024" {
		t.Fatalf("valid=true: %v", got)
	}
	if got := listTokens(""); len(got) != 2 {
		t.Fatalf("all: %v", got)
	}
	fails(t, root, req{method: http.MethodGet, path: base + "?valid=perhaps"}, 400, "M_INVALID_PARAM")
}

func TestSharedSecretRegistration(t *testing.T) {
	const secret = "correct secret"
	ts := testserver.New(t, withSecret(secret))
	sa := synapseadmin.Client{Client: ts.Client()}
	resp, err := sa.SharedSecretRegister(ctx, secret, synapseadmin.ReqSharedSecretRegister{
		Username: "Scripted", Password: "a long enough password", Admin: true, Displayname: "The Script", UserType: "bot",
	})
	if err != nil {
		t.Fatal(err)
	}
	// The user name is lower-cased, as in Synapse. home_server is part of
	// Synapse's answer, so it is checked although mautrix deprecates it.
	//lint:ignore SA1019 see above
	if resp.UserID != "@scripted:localhost" || resp.AccessToken == "" || resp.DeviceID == "" || resp.HomeServer != "localhost" {
		t.Fatalf("registered: %+v", resp)
	}
	c, err := mautrix.NewClient(ts.URL, resp.UserID, resp.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	// The new account is an admin with the given profile and type.
	var d userDetails
	ok(t, c, req{method: http.MethodGet, path: userPath(resp.UserID)}, 200, &d)
	if !d.Admin || *d.DisplayName != "The Script" || d.UserType == nil || *d.UserType != "bot" {
		t.Fatalf("details: %+v", d)
	}

	// Without login.
	resp, err = sa.SharedSecretRegister(ctx, secret, synapseadmin.ReqSharedSecretRegister{Username: "quiet", Password: "a long enough password", InhibitLogin: true})
	if err != nil || resp.AccessToken != "" || resp.UserID != "@quiet:localhost" {
		t.Fatalf("inhibit_login: %+v %v", resp, err)
	}

	// A wrong secret (so a wrong MAC) is refused, and spends the nonce.
	nonce, err := sa.GetRegisterNonce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sa.SharedSecretRegister(ctx, "wrong secret", synapseadmin.ReqSharedSecretRegister{Nonce: nonce, Username: "mallory", Password: "a long enough password"})
	expectErr(t, err, 403, "M_FORBIDDEN")
	_, err = sa.SharedSecretRegister(ctx, secret, synapseadmin.ReqSharedSecretRegister{Nonce: nonce, Username: "mallory", Password: "a long enough password"})
	expectErr(t, err, 400, "M_UNKNOWN")
	// A MAC for one request does not fit another (admin flipped).
	nonce, _ = sa.GetRegisterNonce(ctx)
	r := synapseadmin.ReqSharedSecretRegister{Nonce: nonce, Username: "mallory", Password: "a long enough password"}
	r.SHA1Checksum = r.Sign(secret)
	r.Admin = true
	fails(t, ts.Client(), req{method: http.MethodPost, path: "/v1/register", body: r}, 403, "M_FORBIDDEN")

	// A nonce is single-use even after success.
	nonce, _ = sa.GetRegisterNonce(ctx)
	if _, err := sa.SharedSecretRegister(ctx, secret, synapseadmin.ReqSharedSecretRegister{Nonce: nonce, Username: "once", Password: "a long enough password"}); err != nil {
		t.Fatal(err)
	}
	_, err = sa.SharedSecretRegister(ctx, secret, synapseadmin.ReqSharedSecretRegister{Nonce: nonce, Username: "twice", Password: "a long enough password"})
	expectErr(t, err, 400, "M_UNKNOWN")
	_, err = sa.SharedSecretRegister(ctx, secret, synapseadmin.ReqSharedSecretRegister{Nonce: "made-up", Username: "twice", Password: "a long enough password"})
	expectErr(t, err, 400, "M_UNKNOWN")

	// The account rules apply: taken and invalid names, weak passwords.
	_, err = sa.SharedSecretRegister(ctx, secret, synapseadmin.ReqSharedSecretRegister{Username: "once", Password: "a long enough password"})
	expectErr(t, err, 400, "M_USER_IN_USE")
	_, err = sa.SharedSecretRegister(ctx, secret, synapseadmin.ReqSharedSecretRegister{Username: "not valid!", Password: "a long enough password"})
	expectErr(t, err, 400, "M_INVALID_USERNAME")
	_, err = sa.SharedSecretRegister(ctx, secret, synapseadmin.ReqSharedSecretRegister{Username: "weak", Password: "short"})
	expectErr(t, err, 400, "M_WEAK_PASSWORD")
	_, err = sa.SharedSecretRegister(ctx, secret, synapseadmin.ReqSharedSecretRegister{Username: "robot", Password: "a long enough password", UserType: "wizard"})
	expectErr(t, err, 400, "M_INVALID_PARAM")
	_, err = sa.SharedSecretRegister(ctx, secret, synapseadmin.ReqSharedSecretRegister{Username: "newline", Password: "a long enough password", Displayname: "New\nLine"})
	expectErr(t, err, 400, "M_INVALID_PARAM")

	// Missing fields and bad JSON.
	nonce, _ = sa.GetRegisterNonce(ctx)
	for _, body := range []map[string]any{
		{"username": "x", "password": "a long enough password", "mac": "00"},
		{"nonce": nonce, "password": "a long enough password", "mac": "00"},
		{"nonce": nonce, "username": "x", "mac": "00"},
		{"nonce": nonce, "username": "x", "password": "a long enough password"},
		{"nonce": nonce, "username": 5, "password": "a long enough password", "mac": "00"},
		{"nonce": nonce, "username": "x", "password": "a long enough password", "mac": "00", "admin": "yes"},
	} {
		fails(t, ts.Client(), req{method: http.MethodPost, path: "/v1/register", body: body}, 400, "M_BAD_JSON")
	}
	fails(t, ts.Client(), req{method: http.MethodPost, path: "/v1/register", raw: []byte("{")}, 400, "M_NOT_JSON")
}

func TestSharedSecretRegistrationDisabled(t *testing.T) {
	ts := testserver.New(t)
	sa := synapseadmin.Client{Client: ts.Client()}
	_, err := sa.GetRegisterNonce(ctx)
	expectErr(t, err, 400, "M_UNKNOWN")
	if !strings.Contains(err.Error(), "not enabled") {
		t.Fatal(err)
	}
	_, err = sa.SharedSecretRegister(ctx, "", synapseadmin.ReqSharedSecretRegister{Nonce: "x", Username: "a", Password: "a long enough password"})
	expectErr(t, err, 400, "M_UNKNOWN")
	if _, err := ts.Accounts().GetUser(ctx, "@a:localhost"); err == nil {
		t.Fatal("registered with shared secret disabled")
	}
}

// Wrong MACs are rate-limited per address, so the secret cannot be guessed
// at speed; right ones are not.
func TestSharedSecretGuessingIsLimited(t *testing.T) {
	const secret = "correct secret"
	ts := testserver.New(t, withSecret(secret), func(c *config.Config) {
		c.RateLimits.RegisterPerAddress = config.RateLimit{PerSecond: 0.001, Burst: 2}
	})
	sa := synapseadmin.Client{Client: ts.Client()}
	for range 2 {
		_, err := sa.SharedSecretRegister(ctx, "guess", synapseadmin.ReqSharedSecretRegister{Username: "x", Password: "a long enough password"})
		expectErr(t, err, 403, "M_FORBIDDEN")
	}
	_, err := sa.SharedSecretRegister(ctx, secret, synapseadmin.ReqSharedSecretRegister{Username: "x", Password: "a long enough password"})
	expectErr(t, err, 429, "M_LIMIT_EXCEEDED")
}

// accountsUIA starts a two-stage authentication whose first stage takes
// the registration token, so the token is held (pending) but not spent.
func accountsUIA(token string) accounts.UIARequest {
	auth, _ := json.Marshal(map[string]string{"type": accounts.StageRegistrationToken, "token": token})
	return accounts.UIARequest{Auth: auth, Flows: [][]string{{accounts.StageRegistrationToken, accounts.StageDummy}}, Operation: "register"}
}

// registerWithToken registers through the client API with a registration
// token, as an invited person's client would.
func registerWithToken(t *testing.T, ts *testserver.Server, localpart, token string) {
	t.Helper()
	body := map[string]any{
		"username": localpart, "password": "a long enough password", "inhibit_login": true,
		"auth": map[string]any{"type": "m.login.registration_token", "token": token},
	}
	c := ts.Client()
	var out json.RawMessage
	if _, err := c.MakeRequest(ctx, http.MethodPost, ts.URL+"/_matrix/client/v3/register", body, &out); err != nil {
		t.Fatalf("register %s with token: %v", localpart, err)
	}
}
