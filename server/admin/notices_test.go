package admin_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

func notice(to id.UserID, body string) map[string]any {
	return map[string]any{"user_id": to, "content": map[string]any{"msgtype": "m.text", "body": body}}
}

type eventIDJSON struct {
	EventID id.EventID `json:"event_id"`
}

// syncUntil long-polls alice's sync from since until done says the
// response has what the test waits for, or a deadline passes.
func syncUntil(t *testing.T, c *mautrix.Client, since string, what string, done func(*mautrix.RespSync) bool) (*mautrix.RespSync, string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.SyncRequest(ctx, 2000, since, "", false, event.PresenceOnline)
		if err != nil {
			t.Fatal(err)
		}
		since = resp.NextBatch
		if done(resp) {
			return resp, since
		}
	}
	t.Fatalf("sync never showed %s", what)
	return nil, ""
}

func TestServerNotices(t *testing.T) {
	ts := testserver.New(t)
	root := ts.RegisterAdmin("root")
	alice := ts.RegisterUser("alice")
	system := id.NewUserID("server", ts.ServerName())

	// Permissions and bad input.
	fails(t, alice, req{method: http.MethodPost, path: "/v1/send_server_notice", body: notice(alice.UserID, "hi")}, http.StatusForbidden, "M_FORBIDDEN")
	fails(t, anon(t, ts), req{method: http.MethodPost, path: "/v1/send_server_notice", body: notice(alice.UserID, "hi")}, http.StatusUnauthorized, "M_MISSING_TOKEN")
	fails(t, root, req{method: http.MethodPost, path: "/v1/send_server_notice", raw: []byte("{nope")}, http.StatusBadRequest, "M_NOT_JSON")
	fails(t, root, req{method: http.MethodPost, path: "/v1/send_server_notice", body: map[string]any{"content": map[string]any{}}}, http.StatusBadRequest, "M_MISSING_PARAM")
	fails(t, root, req{method: http.MethodPost, path: "/v1/send_server_notice", body: map[string]any{"user_id": alice.UserID}}, http.StatusBadRequest, "M_MISSING_PARAM")
	fails(t, root, req{method: http.MethodPost, path: "/v1/send_server_notice", body: map[string]any{"user_id": alice.UserID, "content": "hi"}}, http.StatusBadRequest, "M_BAD_JSON")
	fails(t, root, req{method: http.MethodPost, path: "/v1/send_server_notice", body: map[string]any{"user_id": 5, "content": map[string]any{}}}, http.StatusBadRequest, "M_BAD_JSON")
	fails(t, root, req{method: http.MethodPost, path: "/v1/send_server_notice", body: notice("@alice:elsewhere.example", "hi")}, http.StatusBadRequest, "M_INVALID_PARAM")
	fails(t, root, req{method: http.MethodPost, path: "/v1/send_server_notice", body: notice(id.NewUserID("nobody", ts.ServerName()), "hi")}, http.StatusNotFound, "M_NOT_FOUND")

	// The first notice makes the room and invites alice from the system user.
	var first, second, again eventIDJSON
	ok(t, root, req{method: http.MethodPost, path: "/v1/send_server_notice", body: notice(alice.UserID, "first")}, http.StatusOK, &first)
	var roomID id.RoomID
	resp, since := syncUntil(t, alice, "", "the notices invite", func(r *mautrix.RespSync) bool { return len(r.Rooms.Invite) > 0 })
	for rid, inv := range resp.Rooms.Invite {
		roomID = rid
		var name string
		var inviter id.UserID
		for _, ev := range inv.State.Events {
			if ev.Type == event.StateRoomName {
				name, _ = ev.Content.Raw["name"].(string)
			}
			if ev.Type == event.StateMember && ev.GetStateKey() == string(alice.UserID) {
				inviter = ev.Sender
			}
		}
		if name != "Server Notices" || inviter != system {
			t.Fatalf("invite to %q from %s, want \"Server Notices\" from %s", name, inviter, system)
		}
	}
	if first.EventID == "" || len(resp.Rooms.Invite) != 1 {
		t.Fatalf("event %q, invites %v", first.EventID, resp.Rooms.Invite)
	}

	// The invite cannot be rejected.
	_, err := alice.LeaveRoom(ctx, roomID)
	expectErr(t, err, http.StatusForbidden, "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM")
	// Nor by sending the leave as a member state event.
	_, err = alice.SendStateEvent(ctx, roomID, event.StateMember, string(alice.UserID), map[string]any{"membership": "leave"})
	expectErr(t, err, http.StatusForbidden, "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM")

	// The PUT form, retried, sends once; it goes to the same room.
	ok(t, root, req{method: http.MethodPut, path: "/v1/send_server_notice/txn1", body: notice(alice.UserID, "second")}, http.StatusOK, &second)
	ok(t, root, req{method: http.MethodPut, path: "/v1/send_server_notice/txn1", body: notice(alice.UserID, "second")}, http.StatusOK, &again)
	if second.EventID == "" || again.EventID != second.EventID || second.EventID == first.EventID {
		t.Fatalf("PUT retry: %s then %s (first %s)", second.EventID, again.EventID, first.EventID)
	}

	// Joining tags the room m.server_notice; even a suspended user may join.
	if err := ts.Accounts().SetSuspended(ctx, mustCaller(t, ts, root), alice.UserID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatalf("join notices room: %v", err)
	}
	syncUntil(t, alice, since, "the m.server_notice tag", func(r *mautrix.RespSync) bool {
		jr := r.Rooms.Join[roomID]
		if jr == nil {
			return false
		}
		for _, ev := range jr.AccountData.Events {
			if ev.Type == event.AccountDataRoomTags {
				if tags, _ := ev.Content.Raw["tags"].(map[string]any); tags["m.server_notice"] != nil {
					return true
				}
			}
		}
		return false
	})

	msgs, err := alice.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 20)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, ev := range msgs.Chunk {
		if ev.Type == event.EventMessage {
			if ev.Sender != system {
				t.Fatalf("notice from %s", ev.Sender)
			}
			body, _ := ev.Content.Raw["body"].(string)
			bodies = append(bodies, body)
		}
	}
	if len(bodies) != 2 || bodies[0] != "second" || bodies[1] != "first" {
		t.Fatalf("notices %v, want [second first]", bodies)
	}

	// Users cannot write in the room; the system user has its display name.
	if err := ts.Accounts().SetSuspended(ctx, mustCaller(t, ts, root), alice.UserID, false); err != nil {
		t.Fatal(err)
	}
	_, err = alice.SendText(ctx, roomID, "reply")
	expectErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
	profile, err := alice.GetProfile(ctx, system)
	if err != nil || profile.DisplayName != "Server Notices" {
		t.Fatalf("system user's profile %+v, %v", profile, err)
	}

	// Having joined, alice may leave; the next notice comes in a new room.
	if _, err := alice.LeaveRoom(ctx, roomID); err != nil {
		t.Fatalf("leave after joining: %v", err)
	}
	ok(t, root, req{method: http.MethodPost, path: "/v1/send_server_notice", body: notice(alice.UserID, "third")}, http.StatusOK, &first)
	syncUntil(t, alice, since, "a new invite", func(r *mautrix.RespSync) bool {
		for rid := range r.Rooms.Invite {
			if rid != roomID {
				return true
			}
		}
		return false
	})

	// Nobody may register the system user's name.
	_, err = ts.Client().RegisterAvailable(ctx, "server")
	expectErr(t, err, http.StatusBadRequest, "M_EXCLUSIVE")
}

// mustCaller is root's caller, for calling the accounts service directly.
func mustCaller(t *testing.T, ts *testserver.Server, c *mautrix.Client) *accounts.Caller {
	t.Helper()
	caller, err := ts.Accounts().AuthenticateToken(ctx, c.AccessToken, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return caller
}

// Synapse's user API shows the lock and the suspension, and can lock.
// TestServerNoticesRefuseOrdinaryAccount: an account someone can log in as
// is never made the notices user (it would own every notices room).
func TestServerNoticesRefuseOrdinaryAccount(t *testing.T) {
	ts := testserver.New(t)
	root := ts.RegisterAdmin("root")
	alice := ts.RegisterUser("alice")
	ts.RegisterUser("server") // has a password
	fails(t, root, req{method: http.MethodPost, path: "/v1/send_server_notice", body: notice(alice.UserID, "hi")}, http.StatusInternalServerError, "M_UNKNOWN")
	if rooms, err := alice.JoinedRooms(context.Background()); err != nil || len(rooms.JoinedRooms) != 0 {
		t.Fatalf("alice's rooms: %v %v", rooms, err)
	}
	resp, err := alice.SyncRequest(context.Background(), 0, "", "", false, "")
	if err != nil || len(resp.Rooms.Invite) != 0 {
		t.Fatalf("alice was invited to a notices room: %v %v", resp, err)
	}
}

func TestUserAPILockAndSuspension(t *testing.T) {
	ts := testserver.New(t)
	root := ts.RegisterAdmin("root")
	bob := ts.RegisterUser("bob")
	var d map[string]any
	ok(t, root, req{method: http.MethodPut, path: userPath(bob.UserID), body: map[string]any{"locked": true}}, http.StatusOK, &d)
	if d["locked"] != true {
		t.Fatalf("after locking: %v", d)
	}
	_, err := bob.Whoami(ctx)
	expectErr(t, err, http.StatusUnauthorized, "M_USER_LOCKED")
	if err := ts.Accounts().SetSuspended(ctx, mustCaller(t, ts, root), bob.UserID, true); err != nil {
		t.Fatal(err)
	}
	ok(t, root, req{method: http.MethodGet, path: userPath(bob.UserID)}, http.StatusOK, &d)
	if d["locked"] != true || d["suspended"] != true {
		t.Fatalf("locked and suspended bob: %v", d)
	}
	var list struct {
		Users []map[string]any `json:"users"`
	}
	ok(t, root, req{method: http.MethodGet, path: "/v2/users?order_by=locked&dir=b"}, http.StatusOK, &list)
	if len(list.Users) == 0 || list.Users[0]["name"] != string(bob.UserID) || list.Users[0]["locked"] != true {
		t.Fatalf("users by lock, locked first: %v", list.Users)
	}
	ok(t, root, req{method: http.MethodPut, path: userPath(bob.UserID), body: map[string]any{"locked": false}}, http.StatusOK, &d)
	if _, err := bob.Whoami(ctx); err != nil {
		t.Fatalf("whoami after unlocking: %v", err)
	}
}
