package proxy

import (
	"hash/maphash"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a per-key rate limit (token bucket or sliding-window
// counter) with bounded memory: keys idle for longer than it takes to
// refill are evicted when a shard fills up, and keys beyond MaxKeys share
// one overflow entry.
type limiter struct {
	cfg    RateLimitConfig
	seed   maphash.Seed
	shards [16]limShard
	idle   time.Duration
}

type limShard struct {
	mu       sync.Mutex
	m        map[string]*limEntry
	overflow *limEntry
}

type limEntry struct {
	tb       *rate.Limiter
	win      int64 // sliding window: index of the current window
	cur      float64
	prev     float64
	lastSeen int64
}

func newLimiter(cfg RateLimitConfig) *limiter {
	l := &limiter{cfg: cfg, seed: maphash.MakeSeed()}
	// A token bucket is full again after Burst/rate; a sliding window
	// forgets after two windows.
	perSec := cfg.Rate / cfg.Window.Seconds()
	l.idle = max(2*cfg.Window, time.Duration(float64(cfg.Burst)/perSec*float64(time.Second)))
	for i := range l.shards {
		l.shards[i].m = map[string]*limEntry{}
	}
	return l
}

func (l *limiter) newEntry() *limEntry {
	e := &limEntry{}
	if l.cfg.Algorithm == "token_bucket" {
		e.tb = rate.NewLimiter(rate.Limit(l.cfg.Rate/l.cfg.Window.Seconds()), l.cfg.Burst)
	}
	return e
}

// Len returns the number of tracked keys.
func (l *limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// allow takes one request for key at now. When it is refused, retry is
// how long until a request would be allowed.
func (l *limiter) allow(key string, now time.Time) (ok bool, retry time.Duration) {
	s := &l.shards[maphash.String(l.seed, key)%uint64(len(l.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := now.UnixNano()
	e := s.m[key]
	if e == nil {
		perShard := max(1, l.cfg.MaxKeys/len(l.shards))
		if len(s.m) >= perShard {
			for k, x := range s.m {
				if ns-x.lastSeen > int64(l.idle) {
					delete(s.m, k)
				}
			}
		}
		if len(s.m) >= perShard {
			if s.overflow == nil {
				s.overflow = l.newEntry()
			}
			e = s.overflow
		} else {
			e = l.newEntry()
			s.m[key] = e
		}
	}
	e.lastSeen = ns
	if e.tb != nil {
		r := e.tb.ReserveN(now, 1)
		if d := r.DelayFrom(now); d > 0 {
			r.CancelAt(now)
			return false, d
		}
		return true, 0
	}
	// Sliding-window counter: the previous window's count weighted by how
	// much of it still overlaps the sliding window, plus the current one.
	w := int64(l.cfg.Window)
	win := ns / w
	switch {
	case win == e.win:
	case win == e.win+1:
		e.prev, e.cur = e.cur, 0
	default:
		e.prev, e.cur = 0, 0
	}
	e.win = win
	into := float64(ns-win*w) / float64(w)
	est := e.prev*(1-into) + e.cur
	if est+1 > l.cfg.Rate {
		// Wait until the previous window's weight has decayed enough, or
		// until the next window if the current one alone is full.
		need := est + 1 - l.cfg.Rate
		var d time.Duration
		if e.prev > 0 && need <= e.prev*(1-into) {
			d = time.Duration(math.Ceil(need / e.prev * float64(w)))
		} else {
			d = time.Duration(w - (ns - win*w))
		}
		return false, max(d, time.Millisecond)
	}
	e.cur++
	return true, 0
}
