// Command login-bench measures password logins on a real Palpo server
// started in-process on a loopback port with a temporary data directory:
//
//  1. N sequential password logins over HTTP with mautrix's client (rate
//     limits lifted, so the figures are the cost of a login: one argon2id
//     verification plus a session write), reported as latency percentiles and
//     logins per second;
//  2. with the default rate limits, a burst of wrong-password attempts from
//     one address at one account, reporting how many were refused with 403
//     (password checked) or 429 (rate-limited before any hashing) and the
//     retry_after_ms the server asked for; then whether the right password
//     gets through while the account is limited.
//
// Run it with `go run ./cmd/login-bench`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"time"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server"
	"github.com/palpo-im/palpo-desktop/server/accounts"
	"github.com/palpo-im/palpo-desktop/server/config"
)

const (
	benchUser     = "bench"
	benchPassword = "correct horse battery staple"
)

func main() {
	n := flag.Int("n", 200, "sequential password logins to time")
	attempts := flag.Int("attempts", 100, "rapid wrong-password attempts against the default rate limits")
	flag.Parse()
	if *n < 1 || *attempts < 1 {
		fmt.Fprintln(os.Stderr, "login-bench: -n and -attempts must be at least 1")
		os.Exit(2)
	}
	if err := run(*n, *attempts); err != nil {
		fmt.Fprintln(os.Stderr, "login-bench:", err)
		os.Exit(1)
	}
}

func run(n, attempts int) error {
	p := accounts.PasswordHashParams()
	fmt.Printf("login-bench: %s/%s, %d CPUs, GOMAXPROCS %d\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	fmt.Printf("argon2id: memory %d KiB, time %d, threads %d, key %d bytes, salt %d bytes\n\n",
		p.MemoryKiB, p.Time, p.Threads, p.KeyLen, p.SaltLen)

	if err := timeLogins(n); err != nil {
		return err
	}
	fmt.Println()
	return hammer(attempts)
}

// benchServer is a server on a temporary data directory with one user.
type benchServer struct {
	srv *server.Server
	dir string
	// client stays anonymous (credentials are not stored), so one client,
	// and its kept-alive connection, serves every login.
	client *mautrix.Client
}

func startServer(limits config.RateLimits) (*benchServer, error) {
	dir, err := os.MkdirTemp("", "palpo-login-bench-")
	if err != nil {
		return nil, err
	}
	cfg := config.Default()
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.RateLimits = limits
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := context.Background()
	srv, err := server.New(ctx, cfg, dir, log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	b := &benchServer{srv: srv, dir: dir}
	if err := srv.Start(); err != nil {
		b.stop()
		return nil, err
	}
	if b.client, err = mautrix.NewClient("http://"+srv.Addrs()[0].String(), "", ""); err != nil {
		b.stop()
		return nil, err
	}
	if _, err := srv.Accounts().CreateAccount(ctx, accounts.NewAccount{Localpart: benchUser, Password: benchPassword, ByAdmin: true}); err != nil {
		b.stop()
		return nil, fmt.Errorf("create user: %w", err)
	}
	return b, nil
}

func (b *benchServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = b.srv.Shutdown(ctx)
	os.RemoveAll(b.dir)
}

func (b *benchServer) login(ctx context.Context, password string) error {
	_, err := b.client.Login(ctx, &mautrix.ReqLogin{
		Type:       mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: benchUser},
		Password:   password,
	})
	return err
}

// timeLogins runs n sequential logins with rate limits out of the way.
func timeLogins(n int) error {
	lifted := config.RateLimit{PerSecond: 1e6, Burst: 1e6}
	b, err := startServer(config.RateLimits{LoginPerAddress: lifted, LoginPerAccount: lifted, RegisterPerAddress: lifted})
	if err != nil {
		return err
	}
	defer b.stop()
	ctx := context.Background()
	// One untimed login warms the connection and the database.
	if err := b.login(ctx, benchPassword); err != nil {
		return fmt.Errorf("warm-up login: %w", err)
	}
	lat := make([]time.Duration, 0, n)
	start := time.Now()
	for i := range n {
		t0 := time.Now()
		if err := b.login(ctx, benchPassword); err != nil {
			return fmt.Errorf("login %d: %w", i+1, err)
		}
		lat = append(lat, time.Since(t0))
	}
	total := time.Since(start)
	slices.Sort(lat)
	fmt.Printf("%d sequential password logins (POST /login over HTTP, mautrix client, rate limits lifted)\n", n)
	fmt.Printf("  latency p50 %v, p90 %v, p99 %v, min %v, max %v\n",
		ms(pct(lat, 0.50)), ms(pct(lat, 0.90)), ms(pct(lat, 0.99)), ms(lat[0]), ms(lat[len(lat)-1]))
	fmt.Printf("  throughput %.1f logins/s (%v in all)\n", float64(n)/total.Seconds(), total.Round(time.Millisecond))
	return nil
}

// hammer fires wrong passwords at one account from one address with the
// default rate limits and counts the answers.
func hammer(attempts int) error {
	limits := config.Default().RateLimits
	b, err := startServer(limits)
	if err != nil {
		return err
	}
	defer b.stop()
	ctx := context.Background()
	var forbidden, limited, other int
	var retryMin, retryMax float64
	var forbiddenLat, limitedLat time.Duration
	start := time.Now()
	for range attempts {
		t0 := time.Now()
		err := b.login(ctx, "wrong password")
		d := time.Since(t0)
		var he mautrix.HTTPError
		switch {
		case errors.As(err, &he) && he.Response != nil && he.Response.StatusCode == 403:
			forbidden++
			forbiddenLat += d
		case errors.As(err, &he) && he.Response != nil && he.Response.StatusCode == 429 && he.RespError != nil:
			limited++
			limitedLat += d
			ms, _ := he.RespError.ExtraData["retry_after_ms"].(float64)
			if retryMin == 0 || ms < retryMin {
				retryMin = ms
			}
			retryMax = max(retryMax, ms)
		default:
			other++
			fmt.Printf("  unexpected answer: %v\n", err)
		}
	}
	total := time.Since(start)
	fmt.Printf("%d rapid wrong-password logins at one account from one address, default rate limits\n", attempts)
	fmt.Printf("  (per address: burst %d, then %.2f/s; failures per account: burst %d, then %.2f/s)\n",
		limits.LoginPerAddress.Burst, limits.LoginPerAddress.PerSecond, limits.LoginPerAccount.Burst, limits.LoginPerAccount.PerSecond)
	fmt.Printf("  403 M_FORBIDDEN: %d", forbidden)
	if forbidden > 0 {
		fmt.Printf(" (mean %v: password hashed)", ms(forbiddenLat/time.Duration(forbidden)))
	}
	fmt.Printf("\n  429 M_LIMIT_EXCEEDED: %d", limited)
	if limited > 0 {
		fmt.Printf(" (mean %v: refused before hashing), retry_after_ms %.0f to %.0f", ms(limitedLat/time.Duration(limited)), retryMin, retryMax)
	}
	fmt.Printf("\n  other: %d; all %d attempts took %v\n", other, attempts, total.Round(time.Millisecond))

	err = b.login(ctx, benchPassword)
	var he mautrix.HTTPError
	switch {
	case err == nil:
		fmt.Println("  right password right after: accepted")
	case errors.As(err, &he) && he.Response != nil:
		fmt.Printf("  right password right after: refused, %d %s\n", he.Response.StatusCode, errCode(he))
	default:
		return err
	}
	return nil
}

func errCode(he mautrix.HTTPError) string {
	if he.RespError == nil {
		return ""
	}
	return he.RespError.ErrCode
}

func pct(sorted []time.Duration, p float64) time.Duration {
	return sorted[int(p*float64(len(sorted)-1)+0.5)]
}

// ms rounds a duration for printing.
func ms(d time.Duration) time.Duration {
	if d > time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
