package clientapi_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// TestMutualRooms: GET /v1/mutual_rooms lists the rooms both users are
// joined to (not those one was only invited to or left), pages through
// them with next_batch, and refuses bad input with the spec's errors.
func TestMutualRooms(t *testing.T) {
	ts, alice, bob, shared := pairInRoom(t, "shared")
	carol := ts.RegisterUser("carol")
	ctx := context.Background()
	want := []id.RoomID{shared}
	for range 104 {
		want = append(want, sharedRoom(t, bob, alice, "more"))
	}
	// Not mutual: bob only invited, a room alice left, carol's own room.
	invited := roomCreate(t, alice, &mautrix.ReqCreateRoom{Invite: []id.UserID{bob.UserID}})
	left := sharedRoom(t, alice, bob, "left")
	if _, err := alice.LeaveRoom(ctx, left); err != nil {
		t.Fatal(err)
	}
	_, _ = invited, roomCreate(t, carol, &mautrix.ReqCreateRoom{})
	slices.Sort(want)

	path := "/_matrix/client/v1/mutual_rooms?user_id=" + url.QueryEscape(string(bob.UserID))
	var got []id.RoomID
	from := ""
	for pages := 0; ; pages++ {
		p := path
		if from != "" {
			p += "&from=" + url.QueryEscape(from)
		}
		r := sessRaw(t, ts, alice.AccessToken, http.MethodGet, p, nil)
		sessExpect(t, "mutual rooms", r, http.StatusOK, "")
		if n, _ := r.body["count"].(float64); int(n) != len(want) {
			t.Fatalf("count %v, want %d", r.body["count"], len(want))
		}
		for _, room := range r.body["joined"].([]any) {
			got = append(got, id.RoomID(room.(string)))
		}
		next, _ := r.body["next_batch"].(string)
		if next == "" {
			break
		}
		if pages > 3 {
			t.Fatal("next_batch never ends")
		}
		from = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("mutual rooms %d: %v\nwant %d: %v", len(got), got, len(want), want)
	}
	// Nobody shared with carol; an unknown user is an empty list.
	for _, u := range []id.UserID{carol.UserID, "@nobody:localhost"} {
		r := sessRaw(t, ts, alice.AccessToken, http.MethodGet, "/_matrix/client/v1/mutual_rooms?user_id="+url.QueryEscape(string(u)), nil)
		sessExpect(t, "no mutual rooms", r, http.StatusOK, "")
		if j, _ := r.body["joined"].([]any); j == nil || len(j) != 0 || r.body["count"] != float64(0) || r.body["next_batch"] != nil {
			t.Fatalf("mutual rooms with %s: %s", u, r.raw)
		}
	}
	for _, c := range []struct{ what, query, code string }{
		{"no user_id", "", "M_MISSING_PARAM"},
		{"bad user_id", "?user_id=alice", "M_INVALID_PARAM"},
		{"own user_id", "?user_id=" + url.QueryEscape(string(alice.UserID)), "M_INVALID_PARAM"},
		{"bad from", "?user_id=" + url.QueryEscape(string(bob.UserID)) + "&from=not*a*token", "M_INVALID_PARAM"},
	} {
		sessExpect(t, c.what, sessRaw(t, ts, alice.AccessToken, http.MethodGet, "/_matrix/client/v1/mutual_rooms"+c.query, nil), http.StatusBadRequest, c.code)
	}
	sessExpect(t, "no token", sessRaw(t, ts, "", http.MethodGet, path, nil), http.StatusUnauthorized, "M_MISSING_TOKEN")
}
