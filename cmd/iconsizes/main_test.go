package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// The committed icons must be what the generator makes from assets/icon.png,
// so a changed logo cannot ship with stale small icons.
func TestCommittedIconsAreCurrent(t *testing.T) {
	out := t.TempDir()
	if err := Generate("../../assets/icon.png", out); err != nil {
		t.Fatal(err)
	}
	names := []string{"palpo.ico"}
	for _, n := range Sizes {
		names = append(names, fmt.Sprintf("palpo-%d.png", n))
	}
	for _, name := range names {
		want, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("../../assets/icons", name))
		if err != nil {
			t.Fatalf("%v (run: go run ./cmd/iconsizes)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("assets/icons/%s is stale: run go run ./cmd/iconsizes", name)
		}
	}
}

func TestSizesAndIco(t *testing.T) {
	out := t.TempDir()
	if err := Generate("../../assets/icon.png", out); err != nil {
		t.Fatal(err)
	}
	for _, n := range Sizes {
		f, err := os.Open(filepath.Join(out, fmt.Sprintf("palpo-%d.png", n)))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil || cfg.Width != n || cfg.Height != n {
			t.Errorf("palpo-%d.png: %dx%d, %v", n, cfg.Width, cfg.Height, err)
		}
	}
	data, err := os.ReadFile(filepath.Join(out, "palpo.ico"))
	if err != nil {
		t.Fatal(err)
	}
	var hdr [3]uint16
	if err := binary.Read(bytes.NewReader(data), binary.LittleEndian, &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr != [3]uint16{0, 1, uint16(len(icoSizes))} {
		t.Fatalf("ico header %v", hdr)
	}
	// Every directory entry points at a PNG inside the file.
	for i := range icoSizes {
		e := data[6+16*i:]
		size := binary.LittleEndian.Uint32(e[8:])
		off := binary.LittleEndian.Uint32(e[12:])
		if int(off+size) > len(data) || !bytes.HasPrefix(data[off:], []byte("\x89PNG")) {
			t.Errorf("ico entry %d (size %d) is not a PNG within the file", i, icoSizes[i])
		}
	}
}

func TestMissingSource(t *testing.T) {
	if err := Generate("testdata/missing.png", t.TempDir()); err == nil {
		t.Error("a missing source gave no error")
	}
}
