package clientapi_test

import (
	"context"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// pairInRoom starts a server with alice and bob, both in a public room
// alice made with the given name.
func pairInRoom(t *testing.T, name string) (ts *testserver.Server, alice, bob *mautrix.Client, roomID id.RoomID) {
	t.Helper()
	ts = testserver.New(t)
	alice = ts.RegisterUser("alice")
	bob = ts.RegisterUser("bob")
	return ts, alice, bob, sharedRoom(t, alice, bob, name)
}

// sharedRoom is a public room creator made (named name) and joiner joined.
func sharedRoom(t *testing.T, creator, joiner *mautrix.Client, name string) id.RoomID {
	t.Helper()
	roomID := roomCreate(t, creator, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: name})
	if _, err := joiner.JoinRoomByID(context.Background(), roomID); err != nil {
		t.Fatal(err)
	}
	return roomID
}

// restrictedRoom is a room creator made that members of the room via may
// join (join rule "restricted").
func restrictedRoom(t *testing.T, creator *mautrix.Client, via id.RoomID) id.RoomID {
	t.Helper()
	return roomCreate(t, creator, &mautrix.ReqCreateRoom{InitialState: []*event.Event{{
		Type: event.StateJoinRules, Content: event.Content{Parsed: &event.JoinRulesEventContent{
			JoinRule: event.JoinRuleRestricted,
			Allow:    []event.JoinRuleAllow{{Type: event.JoinRuleAllowRoomMembership, RoomID: via}},
		}},
	}}})
}

// toDeviceFrom sends one to-device message of type org.example.ping from
// one client to another's device.
func toDeviceFrom(from, to *mautrix.Client, content map[string]any) error {
	_, err := from.SendToDevice(context.Background(), event.Type{Type: "org.example.ping", Class: event.ToDeviceEventType}, &mautrix.ReqSendToDevice{
		Messages: map[id.UserID]map[id.DeviceID]*event.Content{to.UserID: {to.DeviceID: {Raw: content}}},
	})
	return err
}
