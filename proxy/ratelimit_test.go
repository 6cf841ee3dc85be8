package proxy

import (
	"fmt"
	"testing"
	"time"
)

func newTestLimiter(t *testing.T, rl RateLimitConfig) *limiter {
	t.Helper()
	cfg := Config{Listeners: []ListenerConfig{{Address: "127.0.0.1:0"}},
		Groups: []GroupConfig{{Name: "g", Backends: []BackendConfig{{Address: "a:1"}}}},
		Routes: []RouteConfig{{Backends: "g", RateLimit: &rl}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return newLimiter(*cfg.Routes[0].RateLimit)
}

// The limiters let through the configured rate: 10 requests per second
// offered 100 times a second for 10 s (explicit clock).
func TestLimiterRate(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		alg      string
		burst    int
		min, max int
	}{
		{"token_bucket", 1, 100, 101},  // 1 at once, then 10/s
		{"token_bucket", 10, 109, 110}, // a full bucket of 10, then 10/s
		// The sliding-window counter assumes the previous window's requests
		// were spread evenly; under steady overload it admits a little less
		// than the rate (91 here), never more.
		{"sliding_window", 0, 85, 101},
	} {
		t.Run(fmt.Sprintf("%s-burst%d", tc.alg, tc.burst), func(t *testing.T) {
			l := newTestLimiter(t, RateLimitConfig{Algorithm: tc.alg, Rate: 10, Window: time.Second, Burst: tc.burst})
			allowed := 0
			var lastRetry time.Duration
			for i := range 1000 {
				ok, retry := l.allow("k", start.Add(time.Duration(i)*10*time.Millisecond))
				if ok {
					allowed++
				} else {
					lastRetry = retry
					if retry <= 0 || retry > time.Second {
						t.Fatalf("request %d: retry after %v, want within (0, 1s]", i, retry)
					}
				}
			}
			t.Logf("%s burst %d: %d of 1000 allowed in 10 s; a refused request is told to retry after %v", tc.alg, tc.burst, allowed, lastRetry)
			if allowed < tc.min || allowed > tc.max {
				t.Errorf("allowed %d in 10 s, want %d..%d", allowed, tc.min, tc.max)
			}
		})
	}
}

// Memory is bounded: at most MaxKeys keys are tracked; idle keys are
// evicted to make room, and keys beyond the bound share one entry.
func TestLimiterMemoryBounded(t *testing.T) {
	l := newTestLimiter(t, RateLimitConfig{Rate: 1, Window: time.Second, Burst: 1, MaxKeys: 64})
	now := time.Unix(1_700_000_000, 0)
	for i := range 10000 {
		l.allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256), now)
	}
	if n := l.Len(); n > 64 {
		t.Fatalf("%d keys tracked, want <= 64", n)
	}
	// Later, the old keys are idle: new keys replace them and get their
	// own bucket (the first request of each is allowed). The bound is per
	// shard (64/16 = 4 keys), so 4 new keys fit wherever they hash.
	later := now.Add(time.Minute)
	for i := range 4 {
		if ok, _ := l.allow(fmt.Sprintf("192.0.2.%d", i), later); !ok {
			t.Fatalf("new key %d refused after the old keys went idle", i)
		}
	}
	if n := l.Len(); n > 64 {
		t.Fatalf("%d keys tracked, want <= 64", n)
	}
}
