package clientapi_test

import (
	"context"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

func TestRoomTags(t *testing.T) {
	ts := testserver.New(t)
	ctx := context.Background()
	alice := ts.RegisterUser("alice")
	bob := ts.RegisterUser("bob")
	roomID := roomCreate(t, alice, &mautrix.ReqCreateRoom{})
	since := syncOnce(t, alice, "", "", 0).NextBatch
	if err := alice.AddTagWithCustomData(ctx, roomID, event.RoomTagFavourite, map[string]any{"order": 0.5}); err != nil {
		t.Fatal(err)
	}
	if err := alice.AddTag(ctx, roomID, "u.work", 0.1); err != nil {
		t.Fatal(err)
	}
	tags, err := alice.GetTags(ctx, roomID)
	if err != nil || len(tags.Tags) != 2 || tags.Tags[event.RoomTagFavourite].Order != "0.5" {
		t.Fatalf("tags: %+v %v", tags, err)
	}
	// Tags reach the client as m.tag room account data.
	resp := syncOnce(t, alice, since, "", 0)
	jr := resp.Rooms.Join[roomID]
	if jr == nil || len(jr.AccountData.Events) == 0 || jr.AccountData.Events[len(jr.AccountData.Events)-1].Type.Type != "m.tag" {
		t.Fatalf("m.tag not in sync: %+v", jr)
	}
	if err := alice.RemoveTag(ctx, roomID, "u.work"); err != nil {
		t.Fatal(err)
	}
	tags, _ = alice.GetTags(ctx, roomID)
	if _, ok := tags.Tags["u.work"]; ok || len(tags.Tags) != 1 {
		t.Fatalf("after delete: %+v", tags)
	}
	// Someone else's tags, bad order, malformed body.
	_, err = bob.MakeRequest(ctx, http.MethodGet, ts.URL+"/_matrix/client/v3/user/"+string(alice.UserID)+"/rooms/"+string(roomID)+"/tags", nil, nil)
	roomErr(t, "someone else's tags", err, 403, "M_FORBIDDEN")
	_, err = alice.MakeFullRequest(ctx, mautrix.FullRequest{Method: http.MethodPut, URL: ts.URL + "/_matrix/client/v3/user/" + string(alice.UserID) + "/rooms/" + string(roomID) + "/tags/x", RequestJSON: map[string]any{"order": "first"}})
	roomErr(t, "bad order", err, 400, "M_BAD_JSON")
	_, err = alice.MakeFullRequest(ctx, mautrix.FullRequest{Method: http.MethodPut, URL: ts.URL + "/_matrix/client/v3/user/" + string(alice.UserID) + "/rooms/" + string(roomID) + "/tags/x", RequestBytes: []byte("{")})
	roomErr(t, "malformed", err, 400, "M_NOT_JSON")
}
