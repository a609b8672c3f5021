package clientapi_test

import (
	"maps"
	"net/http"
	"slices"
	"testing"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

func TestCapabilities(t *testing.T) {
	ts := testserver.New(t)
	alice := ts.RegisterUser("alice")

	caps, err := alice.Capabilities(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if caps.RoomVersions == nil || caps.RoomVersions.Default != "12" {
		t.Fatalf("m.room_versions: %+v", caps.RoomVersions)
	}
	versions := slices.Sorted(maps.Keys(caps.RoomVersions.Available))
	if want := []string{"1", "10", "11", "12", "2", "3", "4", "5", "6", "7", "8", "9"}; !slices.Equal(versions, want) {
		t.Fatalf("available room versions %v, want %v", versions, want)
	}
	for v, stability := range caps.RoomVersions.Available {
		if stability != "stable" {
			t.Errorf("room version %s is %q", v, stability)
		}
	}

	// The boolean capabilities, read raw: mautrix defaults absent ones to
	// enabled, which would hide a missing key.
	r := acctDo(t, alice, http.MethodGet, "/_matrix/client/v3/capabilities", nil)
	acctExpect(t, "capabilities", r, http.StatusOK, "")
	all, _ := r.Body["capabilities"].(map[string]any)
	for name, want := range map[string]bool{
		"m.change_password": true,
		"m.set_displayname": true,
		"m.set_avatar_url":  true,
		"m.3pid_changes":    false,
		"m.get_login_token": true,
	} {
		c, _ := all[name].(map[string]any)
		if got, ok := c["enabled"].(bool); !ok || got != want {
			t.Errorf("%s = %v, want enabled %v", name, all[name], want)
		}
	}
}
