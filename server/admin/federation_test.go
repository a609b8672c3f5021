package admin_test

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

const federationPath = "/_palpo/admin/v1/federation"

type federationStatus struct {
	Enabled         bool    `json:"enabled"`
	ServerName      string  `json:"server_name"`
	Listen          *string `json:"listen"`
	ListeningOn     *string `json:"listening_on"`
	WellKnownServer *string `json:"well_known_server"`
	Destinations    []struct {
		Destination   string  `json:"destination"`
		Queued        int     `json:"queued"`
		RetryCount    int     `json:"retry_count"`
		LastError     *string `json:"last_error"`
		NextRetryTS   *int64  `json:"next_retry_ts"`
		LastSuccessTS *int64  `json:"last_success_ts"`
	} `json:"destinations"`
	Total            int     `json:"total"`
	HTTPSListeningOn *string `json:"https_listening_on"`
	Certificate      *struct {
		Automatic     bool    `json:"automatic"`
		Domain        *string `json:"domain"`
		CA            *string `json:"ca"`
		Issuer        *string `json:"issuer"`
		NotBeforeTS   *int64  `json:"not_before_ts"`
		ExpiresTS     *int64  `json:"expires_ts"`
		RenewalDueTS  *int64  `json:"renewal_due_ts"`
		ExpiringSoon  bool    `json:"expiring_soon"`
		LastRenewedTS *int64  `json:"last_renewed_ts"`
		LastError     *string `json:"last_error"`
		LastErrorTS   *int64  `json:"last_error_ts"`
	} `json:"certificate"`
}

// A server as installed has federation off: the status says so, with no
// listener and no destinations.
func TestFederationStatusOffByDefault(t *testing.T) {
	ts := testserver.New(t)
	root := ts.RegisterAdmin("root")
	var st federationStatus
	ok(t, root, req{method: http.MethodGet, path: federationPath}, http.StatusOK, &st)
	if st.Enabled || st.ServerName != "localhost" || st.Listen != nil || st.ListeningOn != nil ||
		st.WellKnownServer != nil || st.Destinations == nil || len(st.Destinations) != 0 || st.Total != 0 ||
		st.Certificate != nil || st.HTTPSListeningOn != nil {
		t.Fatalf("status of a server with federation off: %+v", st)
	}
	if ts.Outbound() != nil {
		t.Fatal("a federation sender exists with federation off")
	}
}

// With federation on, the status shows the listener, and a destination
// that does not answer shows up with what is queued for it and why it
// failed.
func TestFederationStatusShowsAFailingDestination(t *testing.T) {
	ts := testserver.New(t, testserver.Federated(testserver.NewCA(t)))
	root := ts.RegisterAdmin("root")
	var st federationStatus
	ok(t, root, req{method: http.MethodGet, path: federationPath}, http.StatusOK, &st)
	if !st.Enabled || st.ServerName != ts.Config.ServerName || st.Listen == nil || *st.Listen != ts.Config.Federation.Listen ||
		st.ListeningOn == nil || len(st.Destinations) != 0 {
		t.Fatalf("status before sending anything: %+v", st)
	}
	// The listener really is where the status says.
	conn, err := net.DialTimeout("tcp", *st.ListeningOn, 5*time.Second)
	if err != nil {
		t.Fatalf("federation listener at %s: %v", *st.ListeningOn, err)
	}
	conn.Close()

	// A server name on a loopback port nobody listens on: every attempt
	// is refused.
	gone := "127.0.0.1:" + strconv.Itoa(testserver.FreePort(t))
	if err := ts.Outbound().QueueEDU(ctx, []string{gone}, "m.direct_to_device", map[string]any{
		"sender": "@root:" + ts.Config.ServerName, "type": "m.test", "message_id": "1", "messages": map[string]any{},
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok(t, root, req{method: http.MethodGet, path: federationPath}, http.StatusOK, &st)
		if len(st.Destinations) == 1 && st.Destinations[0].LastError != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed attempt recorded: %+v", st)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
	d := st.Destinations[0]
	t.Logf("last error: %s", *d.LastError)
	if d.Destination != gone || d.Queued != 1 || d.RetryCount < 1 || d.NextRetryTS == nil ||
		*d.NextRetryTS <= time.Now().Add(-time.Minute).UnixMilli() || d.LastSuccessTS != nil || st.Total != 1 {
		t.Fatalf("failing destination: %+v", d)
	}
	if !strings.Contains(*d.LastError, "refused") && !strings.Contains(*d.LastError, "connect") {
		t.Errorf("last error does not say the connection failed: %q", *d.LastError)
	}
}

// cutOff fails every request, as a server that is down does.
type cutOff struct{}

func (cutOff) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("dial tcp: connect: connection refused (cut off by the test)")
}

// A server in a shared room that stops answering shows up with the
// messages it is owed and the error; once it answers again its queue
// empties and its last success is recorded.
func TestFederationStatusOfAServerThatComesBack(t *testing.T) {
	ca := testserver.NewCA(t)
	a, b := testserver.New(t, testserver.Federated(ca)), testserver.New(t, testserver.Federated(ca))
	root := a.RegisterAdmin("root")
	bob := b.RegisterUser("bob")
	room, err := root.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoom(ctx, room.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{a.ServerName()}}); err != nil {
		t.Fatal(err)
	}
	status := func() federationStatus {
		var st federationStatus
		ok(t, root, req{method: http.MethodGet, path: federationPath}, http.StatusOK, &st)
		return st
	}
	waitFor := func(what string, cond func(federationStatus) bool) federationStatus {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			st := status()
			if cond(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %+v", what, st)
			}
			time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
		}
	}
	ofB := func(st federationStatus) int {
		for i, d := range st.Destinations {
			if d.Destination == b.ServerName() {
				return i
			}
		}
		return -1
	}

	a.Federation().SetTransport(func(dest string) http.RoundTripper {
		if dest == b.ServerName() {
			return cutOff{}
		}
		return nil
	})
	for _, text := range []string{"one", "two"} {
		if _, err := root.SendText(ctx, room.RoomID, text); err != nil {
			t.Fatal(err)
		}
	}
	// Anything B sends A meanwhile (its user's receipts, presence) ends
	// the backoff at once (a retry count of 0 beside the last error) until
	// the next attempt fails again: wait for a status after a failure.
	st := waitFor("B's failure", func(st federationStatus) bool {
		i := ofB(st)
		return i >= 0 && st.Destinations[i].LastError != nil && st.Destinations[i].Queued >= 2 &&
			st.Destinations[i].RetryCount >= 1 && st.Destinations[i].NextRetryTS != nil
	})
	d := st.Destinations[ofB(st)]
	if !strings.Contains(*d.LastError, "cut off by the test") {
		t.Fatalf("B while cut off: %+v", d)
	}

	// B answers again; its next message to A tells A so at once.
	a.Federation().SetTransport(nil)
	if _, err := bob.SendText(ctx, room.RoomID, "back"); err != nil {
		t.Fatal(err)
	}
	st = waitFor("B's recovery", func(st federationStatus) bool {
		i := ofB(st)
		return i >= 0 && st.Destinations[i].Queued == 0 && st.Destinations[i].LastSuccessTS != nil
	})
	d = st.Destinations[ofB(st)]
	if d.RetryCount != 0 || d.NextRetryTS != nil {
		t.Fatalf("B after it came back: %+v", d)
	}
}

// With certificate files the status shows the certificate: not
// automatic, its issuer and expiry, nothing to renew; the test CA's
// certificates live a day, so it is expiring soon.
func TestFederationStatusShowsTheCertificate(t *testing.T) {
	ts := testserver.New(t, testserver.Federated(testserver.NewCA(t)))
	root := ts.RegisterAdmin("root")
	var st federationStatus
	ok(t, root, req{method: http.MethodGet, path: federationPath}, http.StatusOK, &st)
	c := st.Certificate
	if c == nil || c.Automatic || c.CA != nil || c.Issuer == nil || *c.Issuer != "Palpo test CA" || c.NotBeforeTS == nil || c.ExpiresTS == nil ||
		*c.ExpiresTS <= time.Now().UnixMilli() || c.RenewalDueTS != nil || !c.ExpiringSoon || c.LastRenewedTS != nil || c.LastError != nil || c.LastErrorTS != nil ||
		st.HTTPSListeningOn != nil {
		t.Fatalf("certificate status %+v", c)
	}
}
