package admin_test

import (
	"net/http"
	"testing"

	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

const federationCheckPath = "/_palpo/admin/v1/federation/check"

type federationCheck struct {
	ServerName string `json:"server_name"`
	Failed     bool   `json:"failed"`
	Results    []struct {
		Check   string `json:"check"`
		Status  string `json:"status"`
		Message string `json:"message"`
		Fix     string `json:"fix"`
	} `json:"results"`
}

func (c federationCheck) status(check string) string {
	for _, r := range c.Results {
		if r.Check == check {
			return r.Status
		}
	}
	return ""
}

// A federating server checks itself through its real listener: the route
// is its server_name (an IP literal with a port), the certificate is the
// test CA's, and the key that answers is its own.
func TestFederationCheckReachesOwnKey(t *testing.T) {
	ts := testserver.New(t, testserver.Federated(testserver.NewCA(t)))
	root := ts.RegisterAdmin("root")
	var got federationCheck
	ok(t, root, req{method: http.MethodGet, path: federationCheckPath}, http.StatusOK, &got)
	t.Logf("%+v", got)
	if got.Failed || got.ServerName != ts.Config.ServerName {
		t.Fatalf("check of a working server: %+v", got)
	}
	for check, want := range map[string]string{"route": "ok", "connect": "ok", "key": "ok", "certificate": "warn" /* the test CA issues for a day */} {
		if st := got.status(check); st != want {
			t.Errorf("%s: %s, want %s", check, st, want)
		}
	}
	for _, r := range got.Results {
		if r.Message == "" || r.Status != "ok" && r.Fix == "" {
			t.Errorf("%s: message or fix missing: %+v", r.Check, r)
		}
	}
}

// A server named localhost cannot federate, and the check says so
// without going to the network.
func TestFederationCheckLocalhost(t *testing.T) {
	ts := testserver.New(t)
	root := ts.RegisterAdmin("root")
	var got federationCheck
	ok(t, root, req{method: http.MethodGet, path: federationCheckPath}, http.StatusOK, &got)
	if !got.Failed || len(got.Results) != 1 || got.status("server_name") != "fail" {
		t.Fatalf("check of localhost: %+v", got)
	}
}

func TestFederationCheckNeedsAdmin(t *testing.T) {
	ts := testserver.New(t)
	ts.RegisterAdmin("root")
	user := ts.RegisterUser("alice")
	fails(t, user, req{method: http.MethodGet, path: federationCheckPath}, http.StatusForbidden, "M_FORBIDDEN")
	anon := ts.Client()
	fails(t, anon, req{method: http.MethodGet, path: federationCheckPath}, http.StatusUnauthorized, "M_MISSING_TOKEN")
}
