// Package servername maps a peer-to-peer Palpo server's ed25519 key to its
// Matrix server name and back. The key is at once the Matrix signing key,
// the libp2p identity (peer ID) and, through this package, the server name,
// so a server's keys need no fetching to be trusted and its name says how
// to reach it.
//
// A P2P server name is the 32-byte ed25519 public key in lower-case base32
// (RFC 4648 alphabet, no padding: 52 characters, one DNS label) followed by
// Suffix, for example
//
//	duafvfkasysx6g3mesqxlgct7bhkun6bhff5bjyjebmlut7uhcva.p2p.alt
//
// It is a valid Matrix server name (a host name of letters, digits and
// dots, 60 characters, well under the 230 the spec recommends). The
// suffix ends in "alt", the top-level name reserved by RFC 9476 for names
// that are not resolved through DNS: no DNS name can ever collide with a
// P2P name, and a server that knows only DNS fails at once to look one up
// instead of reaching someone else.
package servername

import (
	"crypto/ed25519"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// Suffix ends every P2P server name.
const Suffix = ".p2p.alt"

// keyChars is the length of the base32 encoding of an ed25519 public key.
const keyChars = 52

var encoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ErrNotP2P is returned by Parse for a name without Suffix (a DNS name).
var ErrNotP2P = errors.New("not a peer-to-peer server name")

// FromKey is the P2P server name of an ed25519 public key.
func FromKey(pub ed25519.PublicKey) string {
	if len(pub) != ed25519.PublicKeySize {
		panic(fmt.Sprintf("servername: ed25519 public key of %d bytes", len(pub)))
	}
	return encoding.EncodeToString(pub) + Suffix
}

// IsP2P reports whether name has the P2P suffix. Such a name is never
// looked up in DNS; if Parse rejects it, it names no server at all.
func IsP2P(name string) bool {
	host := name
	if i := strings.LastIndexByte(name, ':'); i >= 0 && !strings.HasSuffix(name, "]") {
		host = name[:i]
	}
	return strings.HasSuffix(strings.ToLower(host), Suffix)
}

// Parse returns the ed25519 public key a P2P server name stands for. It
// accepts only the exact form FromKey makes (lower case, 52 characters,
// no port, the unused low bits zero), so one key has exactly one name.
func Parse(name string) (ed25519.PublicKey, error) {
	if !IsP2P(name) {
		return nil, ErrNotP2P
	}
	if strings.Contains(name, ":") {
		return nil, fmt.Errorf("%q: a peer-to-peer server name has no port", name)
	}
	label, ok := strings.CutSuffix(name, Suffix)
	if !ok || label != strings.ToLower(label) {
		return nil, fmt.Errorf("%q: a peer-to-peer server name is written in lower case", name)
	}
	if len(label) != keyChars || strings.Contains(label, ".") {
		return nil, fmt.Errorf("%q: a peer-to-peer server name is %d base32 characters followed by %q", name, keyChars, Suffix)
	}
	pub, err := encoding.DecodeString(label)
	if err != nil {
		return nil, fmt.Errorf("%q: not base32 (letters a-z and digits 2-7): %w", name, err)
	}
	if len(pub) != ed25519.PublicKeySize || encoding.EncodeToString(pub) != label {
		// Base32 of 32 bytes leaves 4 unused bits in the last character;
		// a name with them set would be a second name for the same key.
		return nil, fmt.Errorf("%q: not the canonical encoding of an ed25519 key", name)
	}
	return ed25519.PublicKey(pub), nil
}
