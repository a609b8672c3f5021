package servername_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/palpo-im/palpo-desktop/p2p/servername"
	"github.com/palpo-im/palpo-desktop/server/config"
)

func TestRoundTrip(t *testing.T) {
	for range 200 {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		name := servername.FromKey(pub)
		if err := config.ValidateServerName(name); err != nil {
			t.Fatalf("%s is not a valid Matrix server name: %v", name, err)
		}
		if label, _ := strings.CutSuffix(name, servername.Suffix); len(label) > 63 {
			t.Fatalf("%s: first label is longer than a DNS label", name)
		}
		if name != strings.ToLower(name) || !servername.IsP2P(name) {
			t.Fatalf("%s: not lower case or not recognised", name)
		}
		got, err := servername.Parse(name)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		if !got.Equal(pub) {
			t.Fatalf("parse %s gave another key", name)
		}
	}
}

const alphabet = "abcdefghijklmnopqrstuvwxyz234567"

func TestRejectsMalformed(t *testing.T) {
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	for i := range pub {
		pub[i] = byte(i * 7)
	}
	good := servername.FromKey(pub)
	label := strings.TrimSuffix(good, servername.Suffix)
	// The last character carries 1 bit of the key and 4 unused bits; one
	// with an unused bit set decodes to the same key.
	last := label[len(label)-1]
	var other byte
	for _, c := range []byte(alphabet) {
		if c != last && strings.IndexByte(alphabet, c)>>4 == strings.IndexByte(alphabet, last)>>4 {
			other = c
			break
		}
	}
	for _, bad := range []string{
		strings.ToUpper(label) + servername.Suffix, // upper case
		label[:51] + servername.Suffix,             // short
		label + "a" + servername.Suffix,            // long
		label[:51] + "1" + servername.Suffix,       // not base32
		label[:51] + "=" + servername.Suffix,       // padding
		label[:26] + "." + label[26:] + servername.Suffix,
		label[:51] + string(other) + servername.Suffix, // unused bits set
		label + servername.Suffix + ":8448",            // port
		"x." + label + servername.Suffix,               // extra label
		servername.Suffix[1:],
		label + ".P2P.ALT",
	} {
		if _, err := servername.Parse(bad); err == nil {
			t.Errorf("servername.Parse(%q) accepted a malformed name", bad)
		}
	}
	for _, dns := range []string{"example.org", "127.0.0.1:8448", "p2p.alt.example.org", label, "[::1]:8448"} {
		if _, err := servername.Parse(dns); !errors.Is(err, servername.ErrNotP2P) {
			t.Errorf("servername.Parse(%q) = %v, want servername.ErrNotP2P", dns, err)
		}
		if servername.IsP2P(dns) {
			t.Errorf("servername.IsP2P(%q) = true", dns)
		}
	}
}
