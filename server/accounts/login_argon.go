package accounts

// Argon2Params are the argon2id parameters new password hashes use.
type Argon2Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
	KeyLen    uint32
	SaltLen   int
}

// PasswordHashParams reports the argon2id parameters of HashPassword, for
// benchmarks and diagnostics that quote what a login costs.
func PasswordHashParams() Argon2Params {
	return Argon2Params{MemoryKiB: argonMemoryKiB, Time: argonTime, Threads: argonThreads, KeyLen: argonKeyLen, SaltLen: argonSaltLen}
}
