package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palpo-im/palpo-desktop/server/httpapi"
)

const (
	specDir    = "../../../shared/matrix-spec/data/api/client-server"
	fedSpecDir = "../../../shared/matrix-spec/data/api/server-server"
)

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	yaml := `openapi: 3.1.0
paths:
  /register:
    post:
      summary: x
  "/rooms/{roomId}/state/{eventType}/{stateKey}":
    get:
      summary: y
    put:
      deprecated: true
servers:
  - url: "{protocol}://{hostname}{basePath}"
    variables:
      basePath:
        default: /_matrix/client/v3
`
	if err := os.WriteFile(filepath.Join(dir, "x.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	ops, err := LoadSpec(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Operation{
		{File: "x", Method: "POST", Path: "/_matrix/client/v3/register"},
		{File: "x", Method: "GET", Path: "/_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}"},
		{File: "x", Method: "PUT", Path: "/_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}", Deprecated: true},
	}
	if len(ops) != len(want) {
		t.Fatalf("got %+v", ops)
	}
	for _, w := range want {
		found := false
		for _, o := range ops {
			found = found || o == w
		}
		if !found {
			t.Errorf("missing %+v in %+v", w, ops)
		}
	}
	// An r0 route (old clients' twin of a v3 one) does not serve the v3
	// endpoint: only the v3 route counts.
	for _, c := range Compare(ops, []httpapi.Route{{Method: "GET", Path: "/_matrix/client/r0/rooms/{roomID}/state/{type}/{key...}"}}) {
		if c.Served {
			t.Fatalf("an r0 route alone counted as serving %s", c.Path)
		}
	}
	cov := Compare(ops, []httpapi.Route{
		{Method: "GET", Path: "/_matrix/client/v3/rooms/{roomID}/state/{type}/{key...}"},
		{Method: "GET", Path: "/_matrix/client/r0/rooms/{roomID}/state/{type}/{key...}"},
	})
	served := 0
	for _, c := range cov {
		if c.Served {
			served++
		}
	}
	if served != 1 {
		t.Fatalf("wildcards not normalised: %+v", cov)
	}
	if doc := Render(API{Name: "Client-server", Anchor: "client-server", Coverage: cov}); !strings.Contains(doc, "**Client-server API: 1 of 2 endpoints served.**") ||
		!strings.Contains(doc, "| [x](#client-server-x) | 1 / 2 |") || !strings.Contains(doc, "### client-server x\n") {
		t.Fatal(doc)
	}
}

// TestCommittedReportIsCurrent fails when docs/spec-coverage.md is stale:
// run `make spec-coverage` and commit the result.
func TestCommittedReportIsCurrent(t *testing.T) {
	if _, err := os.Stat(specDir); err != nil {
		t.Skipf("spec not found at %s: %v", specDir, err)
	}
	ops, err := LoadSpec(specDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) < 150 {
		t.Fatalf("only %d operations parsed from the spec; the scanner is missing some", len(ops))
	}
	fedOps, err := LoadSpec(fedSpecDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(fedOps) < 30 {
		t.Fatalf("only %d server-server operations parsed from the spec; the scanner is missing some", len(fedOps))
	}
	got, err := generate(specDir, fedSpecDir)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("../../docs/spec-coverage.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(committed) != got {
		t.Fatal("docs/spec-coverage.md is out of date: run `make spec-coverage` and commit it")
	}
}

// TestTrailingSlashPattern: a route written with ServeMux's {$} (exactly
// the path with its trailing slash) serves the spec's path that ends in /.
func TestTrailingSlashPattern(t *testing.T) {
	ops := []Operation{{File: "push", Method: "GET", Path: "/_matrix/client/v3/pushrules/global/"}}
	cov := Compare(ops, []httpapi.Route{{Method: "GET", Path: "/_matrix/client/v3/pushrules/global/{$}"}})
	if !cov[0].Served {
		t.Fatalf("GET /pushrules/global/ not matched by its {$} route: %+v", cov)
	}
}
