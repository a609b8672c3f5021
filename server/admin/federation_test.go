package admin_test

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

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
	Total int `json:"total"`
}

// A server as installed has federation off: the status says so, with no
// listener and no destinations.
func TestFederationStatusOffByDefault(t *testing.T) {
	ts := testserver.New(t)
	root := ts.RegisterAdmin("root")
	var st federationStatus
	ok(t, root, req{method: http.MethodGet, path: federationPath}, http.StatusOK, &st)
	if st.Enabled || st.ServerName != "localhost" || st.Listen != nil || st.ListeningOn != nil ||
		st.WellKnownServer != nil || st.Destinations == nil || len(st.Destinations) != 0 || st.Total != 0 {
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
