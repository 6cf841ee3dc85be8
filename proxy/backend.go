package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gslbd/gslb/internal/balance"
)

// Backend is one server of a group. It owns live counters (atomics) that
// survive reloads: a backend keeps its identity (group name and address),
// health, ejection state and counters when a reload keeps it.
type Backend struct {
	addr      string
	idHash    uint64
	cookieVal string

	// group is the group that uses the backend now. The backend's weight
	// and backup role belong to the group (Group.weights, Group.backups):
	// a reload builds a new group around the same backend while the old
	// group's health checks still run.
	group atomic.Pointer[Group]

	active       atomic.Int64 // in-flight requests (HTTP) or connections (TCP)
	down         atomic.Bool  // active health verdict
	draining     atomic.Bool
	ejectedUntil atomic.Int64 // unix nanoseconds; 0 when not ejected
	ejections    atomic.Int32 // consecutive ejections, for the backoff
	consecFails  atomic.Int32
	upSince      atomic.Int64  // unix nanoseconds of the last recovery (slow start)
	ewmaNanos    atomic.Uint64 // float64 bits: EWMA of response latency

	requests   [6]atomic.Uint64 // by status class 1..5; [0] = transport errors
	ejectTotal atomic.Uint64
	tcpConns   atomic.Uint64 // TCP connections established

	pool connPool // idle keep-alive connections of the HTTP/1.1 fast path

	drainCtx    context.Context // cancelled when a draining backend's deadline passes
	drainCancel context.CancelFunc
}

func newBackend(addr string) *Backend {
	h := balance.Hash64(addr)
	b := &Backend{addr: addr, idHash: h, cookieVal: strconv.FormatUint(h, 36)}
	b.drainCtx, b.drainCancel = context.WithCancel(context.Background())
	context.AfterFunc(b.drainCtx, b.pool.closeAll)
	return b
}

// Address returns the backend's host:port.
func (b *Backend) Address() string { return b.addr }

// Active returns the backend's in-flight requests or connections.
func (b *Backend) Active() int64 { return b.active.Load() }

func (b *Backend) ejected(now int64) bool {
	u := b.ejectedUntil.Load()
	return u != 0 && now < u
}

// available reports whether the backend may take new requests.
func (b *Backend) available(now int64) bool {
	return !b.down.Load() && !b.draining.Load() && !b.ejected(now)
}

// acquire takes one connection slot (max <= 0: unlimited).
func (b *Backend) acquire(max int) bool {
	n := b.active.Add(1)
	if max > 0 && n > int64(max) {
		b.active.Add(-1)
		return false
	}
	return true
}

func (b *Backend) release() { b.active.Add(-1) }

// success records a good TCP connection (it resets the outlier count).
func (b *Backend) success() {
	b.tcpConns.Add(1)
	if b.consecFails.Load() != 0 {
		b.consecFails.Store(0)
	}
}

// observe records a request's latency in the EWMA (alpha 0.3).
func (b *Backend) observe(d time.Duration) {
	for {
		old := b.ewmaNanos.Load()
		o := math.Float64frombits(old)
		n := float64(d)
		if o != 0 {
			n = 0.3*n + 0.7*o
		}
		if b.ewmaNanos.CompareAndSwap(old, math.Float64bits(n)) {
			return
		}
	}
}

// result records the outcome of one request for passive outlier ejection.
// status 0 means a connection error.
func (b *Backend) result(status int) {
	if status == 0 {
		b.requests[0].Add(1)
	} else if c := status / 100; c >= 1 && c <= 5 {
		b.requests[c].Add(1)
	}
	if status != 0 && status < 500 {
		if b.consecFails.Load() != 0 {
			b.consecFails.Store(0)
		}
		return
	}
	g := b.group.Load()
	if g == nil || g.cfg.Outlier.ConsecutiveFailures < 0 {
		return
	}
	if int(b.consecFails.Add(1)) >= g.cfg.Outlier.ConsecutiveFailures {
		g.eject(b)
	}
}

// view is an immutable selection snapshot of a group: the backends that
// may take new requests and the precomputed tables of the algorithm.
type view struct {
	members  []*Backend
	weights  []int // effective weights (slow start applied)
	cum      []int // cumulative weights for weighted random
	sched    []int // SWRR cycle (round robin and weighted round robin)
	idHashes []uint64
	maglev   *balance.Maglev
	backup   bool // members are backups: no primary available
	healthy  bool // some member is really available (false in panic with none)
	panic    bool // panic mode: members include unavailable primaries
}

// Group is a backend group: its backends, its algorithm and its current
// view. Pick is safe for concurrent use and takes no lock.
type Group struct {
	name     string
	cfg      GroupConfig
	backends []*Backend
	weights  []int  // per backend, from cfg.Backends
	backups  []bool // per backend, from cfg.Backends
	v        atomic.Pointer[view]
	ctr      atomic.Uint64
	timeouts Timeouts

	log       *slog.Logger
	hkind     hashKind
	hheader   string
	transport *http.Transport

	mu        sync.Mutex // serialises rebuilds and ejections
	rampTimer *time.Timer
	closed    bool
}

func newGroup(cfg GroupConfig, backends []*Backend, t Timeouts, log *slog.Logger) *Group {
	g := &Group{name: cfg.Name, cfg: cfg, backends: backends, timeouts: t, log: log}
	g.hkind, g.hheader = g.hashKind()
	g.weights, g.backups = make([]int, len(backends)), make([]bool, len(backends))
	for i, b := range backends {
		g.weights[i], g.backups[i] = cfg.Backends[i].Weight, cfg.Backends[i].Backup
		b.group.Store(g)
	}
	g.rebuild()
	return g
}

// Name returns the group's name.
func (g *Group) Name() string { return g.name }

// Backends returns the group's backends in config order.
func (g *Group) Backends() []*Backend { return g.backends }

// Healthy reports whether some backend (primary or backup) is available.
func (g *Group) Healthy() bool { return g.v.Load().healthy }

// Panic reports whether the group is in panic mode (see
// GroupConfig.PanicThreshold).
func (g *Group) Panic() bool { return g.v.Load().panic }

func (g *Group) close() {
	g.mu.Lock()
	g.closed = true
	if g.rampTimer != nil {
		g.rampTimer.Stop()
	}
	g.mu.Unlock()
}

// rampFloor is the share of its weight a backend gets when slow start begins.
const rampFloor = 0.1

// rebuild recomputes the view from the backends' state. It runs on health
// transitions, ejections, drains and while a slow start ramps.
func (g *Group) rebuild() {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now().UnixNano()
	v := &view{}
	ramping := false
	var nextExpiry int64
	var bases []int // unscaled weights of v.members, for the Maglev table
	for _, backup := range []bool{false, true} {
		for i, b := range g.backends {
			if g.backups[i] != backup {
				continue
			}
			if u := b.ejectedUntil.Load(); u != 0 && now < u && (nextExpiry == 0 || u < nextExpiry) {
				nextExpiry = u
			}
			if !b.available(now) {
				continue
			}
			w := g.weights[i]
			if g.cfg.Algorithm == AlgRoundRobin {
				w = 1
			}
			w *= 100
			if ss := g.cfg.SlowStart; ss > 0 {
				if since := b.upSince.Load(); since != 0 && now-since < int64(ss) {
					f := rampFloor + (1-rampFloor)*float64(now-since)/float64(ss)
					w = max(1, int(float64(w)*f))
					ramping = true
				}
			}
			v.members = append(v.members, b)
			v.weights = append(v.weights, w)
			v.idHashes = append(v.idHashes, b.idHash)
			bases = append(bases, g.weights[i])
		}
		if len(v.members) > 0 {
			v.backup = backup
			break
		}
	}
	v.healthy = len(v.members) > 0
	if th := g.cfg.PanicThreshold; th > 0 && !v.backup {
		primaries := 0
		for i, b := range g.backends {
			if !g.backups[i] && !b.draining.Load() {
				primaries++
			}
		}
		if primaries > 0 && len(v.members)*100 < th*primaries {
			v, bases = &view{healthy: v.healthy, panic: true}, bases[:0]
			for i, b := range g.backends {
				if !g.backups[i] && !b.draining.Load() {
					w := g.weights[i] * 100
					if g.cfg.Algorithm == AlgRoundRobin {
						w = 100
					}
					v.members = append(v.members, b)
					v.weights = append(v.weights, w)
					v.idHashes = append(v.idHashes, b.idHash)
					bases = append(bases, g.weights[i])
				}
			}
		}
	}
	total := 0
	for _, w := range v.weights {
		total += w
		v.cum = append(v.cum, total)
	}
	switch g.cfg.Algorithm {
	case AlgRoundRobin, AlgWeightedRoundRobin:
		v.sched = balance.SWRR(v.weights, 4096)
	case AlgConsistentHash:
		if len(v.members) > 0 {
			ids := make([]string, len(v.members))
			for i, b := range v.members {
				ids[i] = b.addr
			}
			v.maglev = balance.NewMaglev(ids, bases, 0)
		}
	}
	g.v.Store(v)
	if g.closed {
		return
	}
	// Wake up again when a ramp needs its next step or an ejection ends.
	var wake time.Duration
	if ramping {
		wake = max(g.cfg.SlowStart/20, 10*time.Millisecond)
	}
	if nextExpiry != 0 {
		d := time.Duration(nextExpiry-now) + time.Millisecond
		if wake == 0 || d < wake {
			wake = d
		}
	}
	if g.rampTimer != nil {
		g.rampTimer.Stop()
		g.rampTimer = nil
	}
	if wake > 0 {
		g.rampTimer = time.AfterFunc(wake, g.rebuild)
	}
}

// eject takes b out for a backoff that doubles with each consecutive
// ejection, unless that would eject more than MaxEjectionPercent of the
// group (at least one backend may always be ejected).
func (g *Group) eject(b *Backend) {
	g.mu.Lock()
	now := time.Now().UnixNano()
	if b.ejected(now) {
		g.mu.Unlock()
		return
	}
	o := g.cfg.Outlier
	ejected := 0
	for _, x := range g.backends {
		if x.ejected(now) {
			ejected++
		}
	}
	if limit := max(1, len(g.backends)*o.MaxEjectionPercent/100); ejected+1 > limit {
		b.consecFails.Store(0)
		g.mu.Unlock()
		return
	}
	// The backoff resets when the last ejection ended long ago.
	if last := b.ejectedUntil.Load(); last != 0 && now-last > int64(o.MaxEjection) {
		b.ejections.Store(0)
	}
	k := b.ejections.Add(1)
	d := o.BaseEjection << min(k-1, 20)
	if d > o.MaxEjection || d <= 0 {
		d = o.MaxEjection
	}
	until := now + int64(d)
	b.ejectedUntil.Store(until)
	b.upSince.Store(until) // slow start begins when the ejection ends
	b.consecFails.Store(0)
	b.ejectTotal.Add(1)
	g.mu.Unlock()
	g.log.Warn("backend ejected", "group", g.name, "backend", b.addr, "for", d, "ejection", k,
		"reason", fmt.Sprintf("%d consecutive failures (5xx or connection errors)", o.ConsecutiveFailures))
	g.rebuild()
}

// setDown records an active health check verdict.
func (g *Group) setDown(b *Backend, down bool) {
	if b.down.Swap(down) == down {
		return
	}
	if !down {
		b.upSince.Store(time.Now().UnixNano())
	}
	g.rebuild()
}

// pickKey is what hash-based algorithms hash, computed lazily by the
// caller only for the group's algorithm.
type pickKey struct {
	hash   uint64
	cookie string // sticky cookie value, if any
}

// pick chooses a backend for one request and takes a connection slot on
// it; skip excludes backends already tried. It returns nil when no backend
// is available (or all are at MaxConns).
func (g *Group) pick(k *pickKey, skip []*Backend) *Backend {
	v := g.v.Load()
	n := len(v.members)
	if n == 0 {
		return nil
	}
	max := g.cfg.MaxConns
	if k != nil && k.cookie != "" {
		for _, b := range v.members {
			if b.cookieVal == k.cookie && !contains(skip, b) && b.acquire(max) {
				return b
			}
		}
	}
	i := g.choose(v, k)
	// Walk on from the choice past tried or full backends.
	for j := 0; j < n; j++ {
		b := v.members[(i+j)%n]
		if contains(skip, b) {
			continue
		}
		if b.acquire(max) {
			return b
		}
	}
	return nil
}

func contains(s []*Backend, b *Backend) bool {
	for _, x := range s {
		if x == b {
			return true
		}
	}
	return false
}

// choose returns an index into v.members by the group's algorithm.
func (g *Group) choose(v *view, k *pickKey) int {
	n := len(v.members)
	if n == 1 {
		return 0
	}
	switch g.cfg.Algorithm {
	case AlgRoundRobin, AlgWeightedRoundRobin:
		c := g.ctr.Add(1) - 1
		return v.sched[c%uint64(len(v.sched))]
	case AlgLeastConn, AlgWeightedLeastConn:
		// Ties go round robin, so equal load spreads evenly whatever the
		// order of the backends.
		start := int(g.ctr.Add(1) % uint64(n))
		best := start
		for j := 1; j < n; j++ {
			i := (start + j) % n
			if balance.LessLoaded(v.members[i].active.Load(), int64(v.weights[i]), v.members[best].active.Load(), int64(v.weights[best])) {
				best = i
			}
		}
		return best
	case AlgLeastTime:
		// Score = latency EWMA x (in flight + 1) / weight. A backend not
		// measured yet counts as the mean of the measured ones.
		var sum float64
		var measured int
		for _, b := range v.members {
			if e := math.Float64frombits(b.ewmaNanos.Load()); e > 0 {
				sum += e
				measured++
			}
		}
		mean := 1.0
		if measured > 0 {
			mean = sum / float64(measured)
		}
		start := int(g.ctr.Add(1) % uint64(n))
		best, bestScore := start, math.Inf(1)
		for j := 0; j < n; j++ {
			i := (start + j) % n
			b := v.members[i]
			e := math.Float64frombits(b.ewmaNanos.Load())
			if e == 0 {
				e = mean
			}
			score := e * float64(b.active.Load()+1) / float64(v.weights[i])
			if score < bestScore {
				best, bestScore = i, score
			}
		}
		return best
	case AlgRandom:
		return weightedRandom(v)
	case AlgP2C:
		a, b := weightedRandom(v), weightedRandom(v)
		if balance.LessLoaded(v.members[b].active.Load(), int64(v.weights[b]), v.members[a].active.Load(), int64(v.weights[a])) {
			return b
		}
		return a
	case AlgConsistentHash:
		var h uint64
		if k != nil {
			h = k.hash
		}
		return v.maglev.Lookup(h)
	default: // ip_hash, uri_hash, header_hash
		var h uint64
		if k != nil {
			h = k.hash
		}
		return balance.Rendezvous(h, v.idHashes, v.weights)
	}
}

func weightedRandom(v *view) int {
	r := rand.IntN(v.cum[len(v.cum)-1])
	lo, hi := 0, len(v.cum)-1
	for lo < hi {
		m := (lo + hi) / 2
		if v.cum[m] > r {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// hashKind says what a group's algorithm hashes.
type hashKind uint8

const (
	hashNone hashKind = iota
	hashIP
	hashURI
	hashHeader
)

func (g *Group) hashKind() (hashKind, string) {
	switch g.cfg.Algorithm {
	case AlgIPHash:
		return hashIP, ""
	case AlgURIHash:
		return hashURI, ""
	case AlgHeaderHash:
		return hashHeader, g.cfg.HashHeader
	case AlgConsistentHash:
		switch k := g.cfg.HashKey; {
		case k == "uri":
			return hashURI, ""
		case len(k) > 7 && k[:7] == "header:":
			return hashHeader, k[7:]
		default:
			return hashIP, ""
		}
	}
	return hashNone, ""
}

func hashAddr(a netip.Addr) uint64 {
	b := a.Unmap().As16()
	return balance.HashBytes(b[:])
}
