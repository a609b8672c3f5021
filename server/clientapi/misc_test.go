package clientapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// The calls Element makes at start-up that have nothing behind them here
// answer as Synapse does when nothing is configured, not with errors.
func TestStartupCallsWithNothingBehind(t *testing.T) {
	ts := testserver.New(t)
	bob := ts.RegisterUser("bob")

	for _, prefix := range []string{"/_matrix/client/v3", "/_matrix/client/r0"} {
		for _, p := range []string{"/thirdparty/protocols", "/voip/turnServer"} {
			r := sessRaw(t, ts, bob.AccessToken, http.MethodGet, prefix+p, nil)
			sessExpect(t, prefix+p, r, http.StatusOK, "")
			if r.raw != "{}" {
				t.Fatalf("%s%s: %s", prefix, p, r.raw)
			}
		}
	}
	// mautrix reads the TURN answer as "no TURN server".
	turn, err := bob.TurnServer(context.Background())
	if err != nil || len(turn.URIs) != 0 {
		t.Fatalf("turn server %+v %v", turn, err)
	}

	// With no protocols, every protocol is unknown and nothing is found.
	for _, p := range []string{"/thirdparty/protocol/irc", "/thirdparty/location/irc", "/thirdparty/user/irc?nick=bob",
		"/thirdparty/location?alias=%23room:localhost", "/thirdparty/user?userid=@bob:localhost"} {
		sessExpect(t, p, pushRaw(t, ts, bob, http.MethodGet, p, nil), http.StatusNotFound, "M_NOT_FOUND")
	}
	sessExpect(t, "location without alias", pushRaw(t, ts, bob, http.MethodGet, "/thirdparty/location", nil), http.StatusBadRequest, "M_MISSING_PARAM")
	sessExpect(t, "user without userid", pushRaw(t, ts, bob, http.MethodGet, "/thirdparty/user", nil), http.StatusBadRequest, "M_MISSING_PARAM")
	sessExpect(t, "POST protocols", pushRaw(t, ts, bob, http.MethodPost, "/thirdparty/protocols", map[string]any{}), http.StatusMethodNotAllowed, "M_UNRECOGNIZED")

	for _, p := range []string{"/thirdparty/protocols", "/voip/turnServer", "/thirdparty/protocol/irc", "/thirdparty/location?alias=%23a:b"} {
		sessExpect(t, "no token "+p, sessRaw(t, ts, "", http.MethodGet, "/_matrix/client/v3"+p, nil), http.StatusUnauthorized, "M_MISSING_TOKEN")
		sessExpect(t, "bad token "+p, sessRaw(t, ts, "nope", http.MethodGet, "/_matrix/client/v3"+p, nil), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	}
}
