package accounts

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"maunium.net/go/mautrix/id"
)

// newToken returns prefix and 256 random bits, URL-safe base64.
func newToken(prefix string) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// hashToken is how tokens are stored: their SHA-256. Tokens carry 256 bits
// of randomness, so a plain hash (not a password hash) is enough.
func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// Token prefixes make a leaked token recognisable (and greppable by secret
// scanners) and tell its kind.
const (
	accessTokenPrefix  = "pat_"
	refreshTokenPrefix = "prt_"
	loginTokenPrefix   = "plt_"
)

// newDeviceID returns ten upper-case letters, as Synapse's device IDs look.
func newDeviceID() id.DeviceID {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	var sb strings.Builder
	for _, c := range b {
		sb.WriteByte(letters[int(c)%len(letters)])
	}
	return id.DeviceID(sb.String())
}
