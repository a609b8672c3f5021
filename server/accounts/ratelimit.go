package accounts

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"maunium.net/go/mautrix"

	"github.com/palpo-im/palpo-desktop/server/config"
)

// bucket is a token bucket: Burst tokens, refilled at PerSecond.
type bucket struct {
	tokens float64
	last   time.Time
}

// limiter rate-limits by key (an address or an account).
type limiter struct {
	mu      sync.Mutex
	rate    float64
	burst   float64
	buckets map[string]*bucket
	sweep   time.Time
}

func newLimiter(c config.RateLimit) *limiter {
	return &limiter{rate: c.PerSecond, burst: float64(c.Burst), buckets: map[string]*bucket{}}
}

// take spends one token for key. When none is left it returns how long
// until one will be.
func (l *limiter) take(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(key, now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := (1 - b.tokens) / l.rate
	return false, time.Duration(math.Ceil(wait*1000)) * time.Millisecond
}

// check reports, without spending, whether key has a token left.
func (l *limiter) check(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(key, now)
	if b.tokens >= 1 {
		return true, 0
	}
	return false, time.Duration(math.Ceil((1-b.tokens)/l.rate*1000)) * time.Millisecond
}

func (l *limiter) refill(key string, now time.Time) *bucket {
	// Forget full buckets now and then, so memory stays bounded by the
	// number of recently active keys.
	if now.Sub(l.sweep) > time.Minute {
		for k, b := range l.buckets {
			if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
				delete(l.buckets, k)
			}
		}
		l.sweep = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
		return b
	}
	// A clock that steps back (tests move Service.Now) must not drain the
	// bucket: only time moving forward refills it.
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = math.Min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
		b.last = now
	}
	return b
}

type limiters struct {
	loginAddr    *limiter
	loginAccount *limiter
	registerAddr *limiter
}

func newLimiters(c config.RateLimits) limiters {
	return limiters{
		loginAddr:    newLimiter(c.LoginPerAddress),
		loginAccount: newLimiter(c.LoginPerAccount),
		registerAddr: newLimiter(c.RegisterPerAddress),
	}
}

// limitExceeded is the spec's 429 answer with retry_after_ms.
func limitExceeded(retryAfter time.Duration) error {
	ms := retryAfter.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	return mautrix.MLimitExceeded.WithMessage("Too many requests; try again later").
		WithStatus(http.StatusTooManyRequests).
		WithExtraField("retry_after_ms", ms).
		WithExtraHeader("Retry-After", retryAfterSeconds(retryAfter))
}

func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}
