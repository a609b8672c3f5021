// Command spec-coverage compares the endpoints in the Matrix spec's OpenAPI
// definitions with the routes Palpo's router serves, and writes the result
// as a Markdown table (docs/spec-coverage.md). It reads the spec from
// ../shared/matrix-spec by default; `make spec-coverage` runs it.
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
	out := flag.String("out", "docs/spec-coverage.md", "Markdown file to write, or - for standard output")
	flag.Parse()
	if err := run(*specDir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "spec-coverage:", err)
		os.Exit(1)
	}
}

func run(specDir, out string) error {
	doc, err := generate(specDir)
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
// listening) so the table reflects exactly what the router serves.
func generate(specDir string) (string, error) {
	ops, err := LoadSpec(specDir)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "palpo-spec-coverage-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	srv, err := server.New(context.Background(), config.Default(), dir, slog.New(slog.DiscardHandler))
	if err != nil {
		return "", err
	}
	defer srv.Shutdown(context.Background())
	return Render(Compare(ops, srv.Routes())), nil
}
