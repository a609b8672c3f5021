package accounts

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters: OWASP's recommended minimum (19 MiB, 2 passes, one
// lane). Deliberately slow, so a stolen database resists guessing; a login
// costs one hash, around 30 ms on this project's reference 2-core machine.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16
)

// HashPassword returns a PHC-format argon2id hash of password.
func HashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argonKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemoryKiB, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// errBadHash means a stored hash could not be parsed.
var errBadHash = errors.New("unrecognised password hash")

// VerifyPassword checks password against a PHC-format argon2id hash, using
// the parameters stored in the hash (so they can be raised later).
func VerifyPassword(hash, password string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errBadHash
	}
	var mem, iters uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &iters, &threads); err != nil || mem == 0 || iters == 0 || threads == 0 {
		return false, errBadHash
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, errBadHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, errBadHash
	}
	got := argonKey([]byte(password), salt, iters, mem, threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// argonKey is argon2.IDKey followed by a garbage collection. The hash's
// 19 MiB is garbage once it returns, but a collection that ran during it
// counted it as live and so let the heap grow to twice that (over 40 MB)
// before the next one: the garbage of the minutes after a login piled up
// in that room, and what survived it stayed spread over as many pages,
// which Go cannot give back (measured: 46-50 MB resident after the load
// test, 38 MB with this). The collection costs a few milliseconds of a
// login that costs 30.
func argonKey(password, salt []byte, passes, memoryKiB uint32, threads uint8, keyLen uint32) []byte {
	key := argon2.IDKey(password, salt, passes, memoryKiB, threads, keyLen)
	runtime.GC()
	return key
}

// dummyHash is verified against when a login names an unknown user, so the
// answer takes as long as for a real one and does not reveal which users
// exist. It is made on first use: hashing costs 19 MiB that an idle server
// should not hold from start-up.
var dummyHash = sync.OnceValue(func() string {
	h, err := HashPassword("palpo-dummy-password")
	if err != nil {
		panic(err)
	}
	return h
})

// CheckPasswordStrength enforces the configured password policy.
func (s *Service) CheckPasswordStrength(password string) error {
	if len([]rune(password)) < s.cfg.MinPasswordLength {
		return MWeakPassword.WithMessage(fmt.Sprintf("Password must be at least %d characters long", s.cfg.MinPasswordLength))
	}
	if len(password) > 512 {
		return MWeakPassword.WithMessage("Password must be at most 512 bytes long")
	}
	return nil
}
