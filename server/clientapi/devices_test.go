package clientapi_test

import (
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

func TestListAndGetDevices(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	req := sessPassword("alice", testserver.DefaultPassword)
	req.InitialDeviceDisplayName = "Phone"
	phone, err := ts.Client().Login(sessCtx, req)
	if err != nil {
		t.Fatal(err)
	}
	// A device logged in without a name has none.
	nameless := ts.Login("alice", testserver.DefaultPassword)

	for _, prefix := range []string{"/_matrix/client/v3", "/_matrix/client/r0"} {
		r := sessRaw(t, ts, alice.AccessToken, "GET", prefix+"/devices", nil)
		sessExpect(t, "GET /devices", r, 200, "")
		list, _ := r.body["devices"].([]any)
		if len(list) != 3 {
			t.Fatalf("devices %s", r.raw)
		}
		byID := map[string]map[string]any{}
		for _, d := range list {
			m := d.(map[string]any)
			byID[m["device_id"].(string)] = m
		}
		p := byID[string(phone.DeviceID)]
		if p["display_name"] != "Phone" || p["last_seen_ip"] != "127.0.0.1" || p["last_seen_ts"].(float64) <= 0 {
			t.Fatalf("phone device %v", p)
		}
		n := byID[string(nameless.DeviceID)]
		if _, ok := n["display_name"]; ok {
			t.Fatalf("absent display name sent: %v", n)
		}
		if byID[string(alice.DeviceID)]["display_name"] != "test device" {
			t.Fatalf("alice's first device %v", byID[string(alice.DeviceID)])
		}
		if _, ok := byID[string(bob.DeviceID)]; ok {
			t.Fatal("bob's device listed for alice")
		}
	}

	d, err := alice.GetDeviceInfo(sessCtx, phone.DeviceID)
	if err != nil || d.DeviceID != phone.DeviceID || d.DisplayName != "Phone" || d.LastSeenIP != "127.0.0.1" {
		t.Fatalf("GET /devices/{id}: %+v %v", d, err)
	}
	_, err = alice.GetDeviceInfo(sessCtx, bob.DeviceID)
	sessErr(t, "someone else's device", err, 404, "M_NOT_FOUND")
	_, err = alice.GetDeviceInfo(sessCtx, "NOSUCHDEVICE")
	sessErr(t, "unknown device", err, 404, "M_NOT_FOUND")
	sessExpect(t, "GET /devices without token", sessRaw(t, ts, "", "GET", "/_matrix/client/v3/devices", nil), 401, "M_MISSING_TOKEN")
	sessExpect(t, "GET /devices/{id} with a bad token", sessRaw(t, ts, "pat_nope", "GET", "/_matrix/client/v3/devices/"+string(alice.DeviceID), nil), 401, "M_UNKNOWN_TOKEN")
}

func TestRenameDevice(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	if err := alice.SetDeviceInfo(sessCtx, alice.DeviceID, &mautrix.ReqDeviceInfo{DisplayName: "Work laptop"}); err != nil {
		t.Fatal(err)
	}
	d, err := alice.GetDeviceInfo(sessCtx, alice.DeviceID)
	if err != nil || d.DisplayName != "Work laptop" {
		t.Fatalf("after rename: %+v %v", d, err)
	}
	path := "/_matrix/client/v3/devices/" + string(alice.DeviceID)
	// No display_name: nothing changes.
	sessExpect(t, "PUT {}", sessRaw(t, ts, alice.AccessToken, "PUT", path, map[string]any{}), 200, "")
	if d, _ := alice.GetDeviceInfo(sessCtx, alice.DeviceID); d.DisplayName != "Work laptop" {
		t.Fatalf("PUT {} renamed the device to %q", d.DisplayName)
	}
	err = alice.SetDeviceInfo(sessCtx, bob.DeviceID, &mautrix.ReqDeviceInfo{DisplayName: "mine now"})
	sessErr(t, "renaming someone else's device", err, 404, "M_NOT_FOUND")
	if d, _ := bob.GetDeviceInfo(sessCtx, bob.DeviceID); d.DisplayName != "test device" {
		t.Fatalf("bob's device renamed to %q", d.DisplayName)
	}
	err = alice.SetDeviceInfo(sessCtx, "NOSUCHDEVICE", &mautrix.ReqDeviceInfo{DisplayName: "x"})
	sessErr(t, "renaming an unknown device", err, 404, "M_NOT_FOUND")
	sessExpect(t, "PUT {} on an unknown device", sessRaw(t, ts, alice.AccessToken, "PUT", "/_matrix/client/v3/devices/NOSUCHDEVICE", map[string]any{}), 404, "M_NOT_FOUND")
	for _, tc := range []struct {
		what    string
		body    any
		status  int
		errcode string
	}{
		{"name too long", map[string]any{"display_name": strings.Repeat("n", 101)}, 400, "M_TOO_LARGE"},
		{"name of wrong type", map[string]any{"display_name": 7}, 400, "M_BAD_JSON"},
		{"malformed JSON", `{"display_name": "x"`, 400, "M_NOT_JSON"},
		{"no body", nil, 400, "M_NOT_JSON"},
	} {
		sessExpect(t, tc.what, sessRaw(t, ts, alice.AccessToken, "PUT", path, tc.body), tc.status, tc.errcode)
	}
	sessExpect(t, "PUT without token", sessRaw(t, ts, "", "PUT", path, map[string]any{"display_name": "x"}), 401, "M_MISSING_TOKEN")
	if d, _ := alice.GetDeviceInfo(sessCtx, alice.DeviceID); d.DisplayName != "Work laptop" {
		t.Fatalf("a refused rename changed the name to %q", d.DisplayName)
	}
}

// sessUIA completes a password UIA request: the first call (without auth)
// must be answered 401 with the password flow; the second carries the
// password. It returns the second answer.
func sessUIA(t *testing.T, ts *testserver.Server, c *mautrix.Client, user, password, method, path string, body map[string]any) sessResp {
	t.Helper()
	r := sessRaw(t, ts, c.AccessToken, method, path, body)
	sessExpect(t, method+" "+path+" without auth", r, 401, "")
	if !strings.Contains(r.raw, `"flows":[{"stages":["m.login.password"]}]`) || r.str("session") == "" {
		t.Fatalf("UIA answer %s", r.raw)
	}
	withAuth := map[string]any{"auth": sessPasswordAuth(user, password, r.str("session"))}
	for k, v := range body {
		withAuth[k] = v
	}
	return sessRaw(t, ts, c.AccessToken, method, path, withAuth)
}

func TestDeleteDevice(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	phone := ts.Login("alice", testserver.DefaultPassword)
	path := "/_matrix/client/v3/devices/" + string(phone.DeviceID)

	// mautrix sends the first step without auth and gets the UIA answer.
	err := alice.DeleteDevice(sessCtx, phone.DeviceID, nil)
	sessErr(t, "delete without auth", err, 401, "")
	r := sessUIA(t, ts, alice, "alice", "wrong password", "DELETE", path, nil)
	sessExpect(t, "delete with a wrong password", r, 401, "M_FORBIDDEN")
	if !sessWorks(t, ts, phone.AccessToken) {
		t.Fatal("a refused delete removed the device")
	}
	// Old clients send DELETE without a body at all.
	sessExpect(t, "delete without body", sessRaw(t, ts, alice.AccessToken, "DELETE", path, nil), 401, "")

	r = sessUIA(t, ts, alice, "alice", testserver.DefaultPassword, "DELETE", path, nil)
	sessExpect(t, "delete", r, 200, "")
	_, err = phone.GetDevicesInfo(sessCtx)
	if e := sessErr(t, "deleted device's token", err, 401, "M_UNKNOWN_TOKEN"); e.ExtraData["soft_logout"] == true {
		t.Fatal("a deleted device is not soft logged out")
	}
	_, err = alice.GetDeviceInfo(sessCtx, phone.DeviceID)
	sessErr(t, "deleted device", err, 404, "M_NOT_FOUND")

	// Deleting a device that is gone (or someone else's) succeeds and does
	// nothing, as the spec asks.
	r = sessUIA(t, ts, alice, "alice", testserver.DefaultPassword, "DELETE", "/_matrix/client/v3/devices/"+string(bob.DeviceID), nil)
	sessExpect(t, "delete someone else's device", r, 200, "")
	if !sessWorks(t, ts, bob.AccessToken) {
		t.Fatal("alice deleted bob's device")
	}
	// UIA proves who the caller is: bob's password does not do.
	r = sessUIA(t, ts, alice, "bob", testserver.DefaultPassword, "DELETE", "/_matrix/client/v3/devices/"+string(alice.DeviceID), nil)
	sessExpect(t, "delete with someone else's password", r, 403, "M_FORBIDDEN")

	// A session started to delete one device cannot delete another.
	laptop := ts.Login("alice", testserver.DefaultPassword)
	r = sessRaw(t, ts, alice.AccessToken, "DELETE", "/_matrix/client/v3/devices/NOSUCHDEVICE", map[string]any{})
	sessExpect(t, "start UIA", r, 401, "")
	r = sessRaw(t, ts, alice.AccessToken, "DELETE", "/_matrix/client/v3/devices/"+string(laptop.DeviceID),
		map[string]any{"auth": sessPasswordAuth("alice", testserver.DefaultPassword, r.str("session"))})
	sessExpect(t, "UIA session of another device", r, 400, "M_UNKNOWN")
	if !sessWorks(t, ts, laptop.AccessToken) {
		t.Fatal("a session for another device deleted the laptop")
	}

	sessExpect(t, "delete with malformed JSON", sessRaw(t, ts, alice.AccessToken, "DELETE", path, `{"auth":`), 400, "M_NOT_JSON")
	sessExpect(t, "delete with auth of wrong type", sessRaw(t, ts, alice.AccessToken, "DELETE", path, `{"auth": []}`), 400, "M_BAD_JSON")
	sessExpect(t, "delete without token", sessRaw(t, ts, "", "DELETE", path, map[string]any{}), 401, "M_MISSING_TOKEN")

	// Deleting the device one is using logs it out.
	r = sessUIA(t, ts, laptop, "alice", testserver.DefaultPassword, "DELETE", "/_matrix/client/v3/devices/"+string(laptop.DeviceID), nil)
	sessExpect(t, "delete own device", r, 200, "")
	if sessWorks(t, ts, laptop.AccessToken) {
		t.Fatal("token of the deleted current device still works")
	}
}

func TestDeleteDevices(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	phone := ts.Login("alice", testserver.DefaultPassword)
	tablet := ts.Login("alice", testserver.DefaultPassword)
	const path = "/_matrix/client/v3/delete_devices"
	list := []id.DeviceID{phone.DeviceID, tablet.DeviceID, bob.DeviceID, "NOSUCHDEVICE"}

	err := alice.DeleteDevices(sessCtx, &mautrix.ReqDeleteDevices[any]{Devices: list})
	sessErr(t, "delete_devices without auth", err, 401, "")
	r := sessUIA(t, ts, alice, "alice", "wrong", "POST", path, map[string]any{"devices": list})
	sessExpect(t, "delete_devices with a wrong password", r, 401, "M_FORBIDDEN")

	// The session is bound to the list it was started for.
	r = sessRaw(t, ts, alice.AccessToken, "POST", path, map[string]any{"devices": []id.DeviceID{"NOSUCHDEVICE"}})
	r = sessRaw(t, ts, alice.AccessToken, "POST", path, map[string]any{"devices": list,
		"auth": sessPasswordAuth("alice", testserver.DefaultPassword, r.str("session"))})
	sessExpect(t, "UIA session of another list", r, 400, "M_UNKNOWN")
	if !sessWorks(t, ts, phone.AccessToken) {
		t.Fatal("a session for another list deleted devices")
	}

	r = sessUIA(t, ts, alice, "alice", testserver.DefaultPassword, "POST", path, map[string]any{"devices": list})
	sessExpect(t, "delete_devices", r, 200, "")
	for _, c := range []*mautrix.Client{phone, tablet} {
		if sessWorks(t, ts, c.AccessToken) {
			t.Fatal("a deleted device's token still works")
		}
	}
	if !sessWorks(t, ts, alice.AccessToken) || !sessWorks(t, ts, bob.AccessToken) {
		t.Fatal("delete_devices removed a device it was not given (or another user's)")
	}
	devices, err := alice.GetDevicesInfo(sessCtx)
	if err != nil || len(devices.Devices) != 1 || devices.Devices[0].DeviceID != alice.DeviceID {
		t.Fatalf("devices left: %+v %v", devices, err)
	}

	for _, tc := range []struct {
		what    string
		body    any
		status  int
		errcode string
	}{
		{"no devices", map[string]any{}, 400, "M_MISSING_PARAM"},
		{"devices of wrong type", map[string]any{"devices": "PHONE"}, 400, "M_BAD_JSON"},
		{"device IDs of wrong type", map[string]any{"devices": []int{1}}, 400, "M_BAD_JSON"},
		{"malformed JSON", `{"devices": [`, 400, "M_NOT_JSON"},
		{"no body", nil, 400, "M_NOT_JSON"},
	} {
		sessExpect(t, tc.what, sessRaw(t, ts, alice.AccessToken, "POST", path, tc.body), tc.status, tc.errcode)
	}
	sessExpect(t, "delete_devices without token", sessRaw(t, ts, "", "POST", path, map[string]any{"devices": list}), 401, "M_MISSING_TOKEN")
}
