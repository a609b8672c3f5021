package clientapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/palpo-im/palpo-desktop/server/config"
	"github.com/palpo-im/palpo-desktop/server/internal/testserver"
)

// getJSON fetches url without a token and decodes the body into out.
func getJSON(t *testing.T, url string, out any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: body is not JSON: %v", url, err)
	}
	return resp.StatusCode
}

func TestSupportNotConfiguredIs404(t *testing.T) {
	ts := testserver.New(t)
	var body map[string]any
	if status := getJSON(t, ts.URL+"/.well-known/matrix/support", &body); status != http.StatusNotFound || body["errcode"] != "M_NOT_FOUND" {
		t.Fatalf("got %d %v, want 404 M_NOT_FOUND", status, body)
	}
}

func TestSupportFromConfig(t *testing.T) {
	ts := testserver.New(t, func(c *config.Config) {
		c.Support = config.Support{
			Contacts: []config.SupportContact{
				{MatrixID: "@admin:example.org", EmailAddress: "admin@example.org", Role: "m.role.admin"},
				{EmailAddress: "security@example.org", Role: "m.role.security"},
			},
			Page: "https://example.org/help.html",
		}
	})
	var body struct {
		Contacts []map[string]string `json:"contacts"`
		Page     string              `json:"support_page"`
	}
	if status := getJSON(t, ts.URL+"/.well-known/matrix/support", &body); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if body.Page != "https://example.org/help.html" || len(body.Contacts) != 2 {
		t.Fatalf("got %+v", body)
	}
	if c := body.Contacts[0]; c["matrix_id"] != "@admin:example.org" || c["email_address"] != "admin@example.org" || c["role"] != "m.role.admin" {
		t.Fatalf("first contact %v", c)
	}
	if c := body.Contacts[1]; c["email_address"] != "security@example.org" || c["role"] != "m.role.security" {
		t.Fatalf("second contact %v", c)
	}
	if _, has := body.Contacts[1]["matrix_id"]; has {
		t.Fatalf("a contact without a Matrix ID shows one: %v", body.Contacts[1])
	}
}

// A page alone is enough; contacts are then left out.
func TestSupportPageOnly(t *testing.T) {
	ts := testserver.New(t, func(c *config.Config) { c.Support.Page = "https://example.org/help" })
	var body map[string]any
	if status := getJSON(t, ts.URL+"/.well-known/matrix/support", &body); status != http.StatusOK || body["support_page"] != "https://example.org/help" {
		t.Fatalf("got %d %v", status, body)
	}
	if _, has := body["contacts"]; has {
		t.Fatalf("empty contacts shown: %v", body)
	}
}
