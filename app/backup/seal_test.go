package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// flipPositions are byte offsets of a file of size n to change: every
// one of its first and last edge bytes (the gzip header, the first tar
// headers, the manifest, the seal), and every step-th byte between.
func flipPositions(n, edge, step int) []int {
	seen := map[int]bool{}
	var ps []int
	add := func(i int) {
		if i >= 0 && i < n && !seen[i] {
			seen[i] = true
			ps = append(ps, i)
		}
	}
	for i := 0; i < edge; i++ {
		add(i)
		add(n - 1 - i)
	}
	for i := 0; i < n; i += step {
		add(i)
	}
	return ps
}

// Before seals, about one changed byte in twenty of a small backup went
// unnoticed: deflate has many encodings of the same content (a
// back-reference into a run of zeros can point a little further back and
// copy the same bytes), and the gzip header's time and OS bytes are read
// by nothing, so every checksum over the content still matched.
func TestEveryChangedByteIsRefused(t *testing.T) {
	in := newInstall(t)
	in.stop(t)
	good := in.backup(t, CreateOptions{}).Path
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(raw, sealBytes(sha256Of(raw[:len(raw)-sealLen]))) {
		t.Fatal("the backup does not end with its seal")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, filepath.Base(good))
	data := bytes.Clone(raw)
	ps := flipPositions(len(raw), 512, 37)
	for _, i := range ps {
		// The lowest bit, the one most often lost before seals; and, every
		// 37th byte, the whole byte too.
		masks := []byte{0x01}
		if i%37 == 0 {
			masks = append(masks, 0xff)
		}
		for _, mask := range masks {
			data[i] ^= mask
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			data[i] ^= mask
			_, err := Verify(t.Context(), p, VerifyOptions{TempDir: dir})
			if err == nil {
				t.Errorf("byte %d of %d xor %#x: the backup still verifies", i, len(raw), mask)
			}
		}
	}
	t.Logf("%d positions of %d bytes changed, all refused", len(ps), len(raw))
	if _, err := Verify(t.Context(), good, VerifyOptions{TempDir: dir}); err != nil {
		t.Fatalf("the good backup: %v", err)
	}
}

// Encrypted backups need no seal to be safe (age authenticates its header
// and every chunk; the seal inside is checked all the same): a sparse
// sample, each verify paying for the passphrase's key derivation.
func TestEveryChangedByteOfAnEncryptedBackupIsRefused(t *testing.T) {
	in := newInstall(t)
	in.stop(t)
	good := in.backup(t, CreateOptions{Passphrase: "correct horse"}).Path
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, filepath.Base(good))
	data := bytes.Clone(raw)
	ps := flipPositions(len(raw), 24, 1499)
	for _, i := range ps {
		data[i] ^= 0x01
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		data[i] ^= 0x01
		if _, err := Verify(t.Context(), p, VerifyOptions{TempDir: dir, Passphrase: "correct horse"}); err == nil {
			t.Errorf("byte %d of %d: the encrypted backup still verifies", i, len(raw))
		}
	}
	rep, err := Verify(t.Context(), good, VerifyOptions{TempDir: dir, Passphrase: "correct horse"})
	if err != nil || !rep.Sealed {
		t.Fatalf("the good backup: %+v, %v", rep, err)
	}
}

func sha256Of(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// The seal's exact refusals, each from a change that leaves the content
// (and so every other checksum) as it was.
func TestSealRefusals(t *testing.T) {
	in := newInstall(t)
	in.stop(t)
	good := in.backup(t, CreateOptions{}).Path
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(data []byte) string {
		p := filepath.Join(t.TempDir(), filepath.Base(good))
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	body := raw[:len(raw)-sealLen]
	otherSeal := append(bytes.Clone(body), sealBytes(sha256Of([]byte("another backup")))...)
	for _, tc := range []struct{ name, path, says string }{
		// Byte 4 is the first of the gzip header's modification time.
		{"the gzip header's time changed", flipByte(t, good, 4), "do not match the checksum sealed into it"},
		{"the seal changed", flipByte(t, good, int64(len(raw)-sealLen+len("\x1f\x8b\x08\x10\x00\x00\x00\x00\x00\xff"+sealComment))), "do not match the checksum sealed into it"},
		{"another backup's seal", write(otherSeal), "do not match the checksum sealed into it"},
		{"the seal cut off", write(body), "its seal is missing"},
		{"a byte after the seal", write(append(bytes.Clone(raw), 0)), "do not match the checksum sealed into it"},
		{"a second seal", write(append(bytes.Clone(raw), raw[len(raw)-sealLen:]...)), "do not match the checksum sealed into it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(t.Context(), tc.path, VerifyOptions{})
			wantErr(t, "verify", err, ErrDamaged, tc.says)
			_, err = Restore(t.Context(), tc.path, t.TempDir(), RestoreOptions{})
			wantErr(t, "restore", err, ErrDamaged, tc.says)
		})
	}
	rep, err := Verify(t.Context(), good, VerifyOptions{})
	if err != nil || !rep.Sealed || !rep.Manifest.Sealed {
		t.Fatalf("the good backup: %+v, %v", rep, err)
	}
}

// Backups made before seals (testdata: one plain, one encrypted with
// "test passphrase", made by the Palpo that came before) still verify and
// restore; only data after their end is refused, since none was written.
func TestUnsealedBackupsStillVerifyAndRestore(t *testing.T) {
	for _, name := range []string{"format1-unsealed.tar.gz", "format1-unsealed.tar.gz.age"} {
		t.Run(name, func(t *testing.T) {
			src := filepath.Join("testdata", name)
			raw, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), name)
			if err := os.WriteFile(path, raw, 0o600); err != nil {
				t.Fatal(err)
			}
			pass := ""
			if strings.HasSuffix(name, ".age") {
				pass = "test passphrase"
			}
			rep, err := Verify(t.Context(), path, VerifyOptions{Passphrase: pass})
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if rep.Sealed || rep.Manifest.Sealed || rep.Manifest.Format != 1 || rep.Manifest.MediaFiles() != 1 {
				t.Fatalf("report %+v, manifest %+v", rep, rep.Manifest)
			}
			dataDir := t.TempDir()
			res, err := Restore(t.Context(), path, dataDir, RestoreOptions{Passphrase: pass})
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			for _, f := range res.Manifest.Files {
				if f.Path == entryDatabase {
					continue // where the config puts it; checked by the integrity check
				}
				got, err := os.ReadFile(filepath.Join(dataDir, f.Path))
				if err != nil {
					t.Fatalf("restored %s: %v", f.Path, err)
				}
				if hex.EncodeToString(sha256Of(got)) != f.SHA256 {
					t.Fatalf("restored %s differs from the backup", f.Path)
				}
			}
			if pass == "" {
				// Data after an unsealed backup's end (here a seal, an
				// empty gzip member): never written by Palpo, so refused
				// even though it decompresses to nothing.
				_, err = Verify(t.Context(), write(t, name, append(bytes.Clone(raw), sealBytes(sha256Of(raw))...)), VerifyOptions{})
				wantErr(t, "verify with data appended", err, ErrDamaged, "it has data after its end")
			}
		})
	}
}

func write(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
