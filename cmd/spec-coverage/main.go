// Command spec-coverage compares the endpoints in the Matrix spec's OpenAPI
// definitions (client-server and server-server) with the routes Palpo's
// routers serve, and writes the result as Markdown tables
// (docs/spec-coverage.md). It reads the spec from ../shared/matrix-spec by
// default; `make spec-coverage` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/palpo-im/palpo-desktop/server"
	"github.com/palpo-im/palpo-desktop/server/config"
)

func main() {
	specDir := flag.String("spec", "../shared/matrix-spec/data/api/client-server", "directory of the client-server OpenAPI files")
	fedSpecDir := flag.String("federation-spec", "../shared/matrix-spec/data/api/server-server", "directory of the server-server OpenAPI files")
	out := flag.String("out", "docs/spec-coverage.md", "Markdown file to write, or - for standard output")
	flag.Parse()
	if err := run(*specDir, *fedSpecDir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "spec-coverage:", err)
		os.Exit(1)
	}
}

func run(specDir, fedSpecDir, out string) error {
	doc, err := generate(specDir, fedSpecDir)
	if err != nil {
		return err
	}
	if out == "-" {
		_, err = io.WriteString(os.Stdout, doc)
		return err
	}
	return os.WriteFile(out, []byte(doc), 0o644)
}

// generate builds a real server (in a temporary data directory, without
// listening) so the tables reflect exactly what its routers serve. The
// federation router is built (and routed) whether or not federation is
// enabled, so the default config shows every server-server route.
func generate(specDir, fedSpecDir string) (string, error) {
	ops, err := LoadSpec(specDir)
	if err != nil {
		return "", err
	}
	fedOps, err := LoadSpec(fedSpecDir)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "palpo-spec-coverage-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	// Federation on, so the routes registered only then (device lists and
	// keys) count; New starts nothing, so the certificate files need not
	// exist.
	cfg := config.Default()
	cfg.ServerName = "coverage.example"
	cfg.Federation.Enabled = true
	cfg.Federation.TLSCertFile, cfg.Federation.TLSKeyFile = "unused.crt", "unused.key"
	srv, err := server.New(context.Background(), cfg, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		return "", err
	}
	defer srv.Shutdown(context.Background())
	// /.well-known/matrix/server is a server-server endpoint served on the
	// client listener (delegation lets other servers reach it on 443).
	fedRoutes := append(srv.FederationRoutes(), srv.Routes()...)
	return Render(
		API{Name: "Client-server", Anchor: "client-server", Coverage: Compare(ops, srv.Routes())},
		API{Name: "Server-server", Anchor: "server-server", Coverage: Compare(fedOps, fedRoutes)},
	), nil
}
