package probes

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// ProberConfig configures a Prober. Zero values are the documented defaults.
type ProberConfig struct {
	// Name identifies the prober in reports, events and metrics (the node
	// name); Region is the region it probes from.
	Name   string
	Region string
	// MaxConcurrent bounds the probes in flight (default 64). A probe that
	// cannot start within its interval is skipped and counted as missed.
	MaxConcurrent int
	// Sink receives the reports; nil drops them.
	Sink Sink
	// ReportEvery is the period of full reports (the prober's heartbeat)
	// and of RTT measurements to region nodes and client networks
	// (default 5s).
	ReportEvery time.Duration
	// Probe runs one probe; nil means a Checker's Probe with default config.
	Probe func(context.Context, Target) Result
	// NetworkTTL is how long a client network is measured after it was last
	// asked for (default 10m); MaxNetworks bounds how many are (default 1024).
	NetworkTTL  time.Duration
	MaxNetworks int
	// Damping holds flapping targets down; the zero value means
	// DefaultDamping(), and a negative HalfLife turns damping off.
	Damping Damping
	Logger  *slog.Logger
	Metrics *Metrics
}

// Node is a region's node, to which a prober measures RTT (ICMP echo, or a
// TCP connect to Addr).
type Node struct {
	Region string
	Addr   netip.AddrPort
}

// Prober checks targets from one region on a jittered schedule, with bounded
// concurrency and per-target hysteresis, and reports to its Sink. Targets
// are de-duplicated by Key; SetTargets keeps the state of unchanged ones.
// Its methods are safe for concurrent use.
type Prober struct {
	cfg   ProberConfig
	probe func(context.Context, Target) Result
	sem   chan struct{}
	log   *slog.Logger

	sendMu sync.Mutex // serializes building and sending reports

	mu       sync.Mutex
	ctx      context.Context // set while Run runs
	wg       sync.WaitGroup
	targets  map[string]*target
	nodes    map[Node]*sampled
	networks map[netip.Prefix]*network
	asks     chan netAsk // MeasureNetwork requests, for the RTT loop
}

// sampled is an RTT with the time of its last sample.
type sampled struct {
	rtt    RTTStat
	sample time.Time
}

type target struct {
	t      Target
	key    string
	cancel context.CancelFunc // nil until started
	wake   chan struct{}      // CheckNow's requests, for the target's goroutine
	// Guarded by Prober.mu:
	h    Hysteresis
	damp Damping
	up   bool // the reported state: h.Up() unless damping holds it down
	// Flap damping's settle windows (see settle): until watch, and for
	// settleChecks checks (watched counts them), a passed check after
	// going down puts the target on probation; prove is set while it is
	// on probation or suppressed, and cleared when it is reported up;
	// probation is when its passed checks began (zero: not begun), passed
	// how many there have been.
	watch      time.Time
	watched    int
	prove      bool
	probation  time.Time
	passed     int
	lost       bool // the node that fronts it is lost (SetLost)
	rtt        RTTStat
	since      time.Time
	reason     string
	certExpiry time.Time
}

type network struct {
	sampled
	addr  netip.Addr
	asked time.Time
}

// NewProber returns a Prober; it starts probing when Run is called.
func NewProber(cfg ProberConfig) *Prober {
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 64
	}
	if cfg.ReportEvery <= 0 {
		cfg.ReportEvery = 5 * time.Second
	}
	if cfg.NetworkTTL <= 0 {
		cfg.NetworkTTL = 10 * time.Minute
	}
	if cfg.MaxNetworks <= 0 {
		cfg.MaxNetworks = 1024
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Damping == (Damping{}) {
		cfg.Damping = DefaultDamping()
	}
	p := &Prober{
		cfg:      cfg,
		probe:    cfg.Probe,
		sem:      make(chan struct{}, cfg.MaxConcurrent),
		log:      cfg.Logger.With("component", "probes", "prober", cfg.Name),
		targets:  make(map[string]*target),
		nodes:    make(map[Node]*sampled),
		networks: make(map[netip.Prefix]*network),
		asks:     make(chan netAsk, cfg.MaxNetworks),
	}
	if p.probe == nil {
		p.probe = NewChecker(CheckerConfig{}).Probe
	}
	return p
}

// SetTargets replaces the set of targets, typically on every zone (re)load.
// Targets with the same Key are probed once; targets whose Key was already
// present keep their state and schedule; unchecked targets (Scheme "") are
// ignored. New targets start at once if Run is running.
func (p *Prober) SetTargets(ts []Target) {
	p.mu.Lock()
	want := make(map[string]Target, len(ts))
	for _, t := range ts {
		if t.Check.Scheme == "" {
			continue
		}
		if _, dup := want[t.Key()]; !dup {
			want[t.Key()] = t
		}
	}
	removed := false
	for k, tg := range p.targets {
		if _, ok := want[k]; !ok {
			if tg.cancel != nil {
				tg.cancel()
			}
			delete(p.targets, k)
			p.cfg.Metrics.forgetTarget(p.cfg.Name, k)
			removed = true
		}
	}
	for k, t := range want {
		if tg, ok := p.targets[k]; ok {
			tg.t = t // same probe; settings outside the key (quorum) may change
			continue
		}
		tg := &target{t: t, key: k, h: Hysteresis{Fails: t.fails(), Passes: t.passes()}, damp: p.cfg.Damping,
			up: true, wake: make(chan struct{}, 1)}
		p.targets[k] = tg
		if p.ctx != nil {
			p.start(tg)
		}
	}
	running := p.ctx != nil
	p.mu.Unlock()
	if removed && running {
		p.sendFull()
	}
}

// SetNodes sets the region nodes whose RTT the prober measures.
func (p *Prober) SetNodes(nodes []Node) {
	p.mu.Lock()
	defer p.mu.Unlock()
	keep := make(map[Node]*sampled, len(nodes))
	for _, n := range nodes {
		if s, ok := p.nodes[n]; ok {
			keep[n] = s
		} else {
			keep[n] = new(sampled)
		}
	}
	p.nodes = keep
}

// MeasureNetwork asks the prober to measure its RTT to client network n by
// probing addr (a resolver or host in n): ICMP echo when the process may
// send it, else a TCP connect to port 53 (a refusal is a measurement too).
// Asking again refreshes the request; a network not asked for in NetworkTTL
// is dropped, and beyond MaxNetworks the least recently asked one is. A new
// network is first measured within ReportEvery.
//
// MeasureNetwork never blocks and takes no lock: it queues the request (up
// to MaxNetworks of them) for the prober's RTT loop and drops it when the
// queue is full. It may be called from the DNS query path, but once per
// network per minute or so is plenty.
func (p *Prober) MeasureNetwork(n netip.Prefix, addr netip.Addr) {
	select {
	case p.asks <- netAsk{n: n.Masked(), addr: addr, at: time.Now()}:
	default:
	}
}

type netAsk struct {
	n    netip.Prefix
	addr netip.Addr
	at   time.Time
}

// takeAsks applies the queued MeasureNetwork requests.
func (p *Prober) takeAsks() {
	for {
		select {
		case a := <-p.asks:
			p.addNetwork(a)
		default:
			return
		}
	}
}

func (p *Prober) addNetwork(a netAsk) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if nw, ok := p.networks[a.n]; ok {
		nw.asked, nw.addr = a.at, a.addr
		return
	}
	if len(p.networks) >= p.cfg.MaxNetworks {
		var oldest netip.Prefix
		var t time.Time
		for k, nw := range p.networks {
			if t.IsZero() || nw.asked.Before(t) {
				oldest, t = k, nw.asked
			}
		}
		delete(p.networks, oldest)
	}
	p.networks[a.n] = &network{addr: a.addr, asked: a.at}
}

// Run probes until ctx is done, then waits for the probes in flight. It
// returns an error if the Prober is already running.
func (p *Prober) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.ctx != nil {
		p.mu.Unlock()
		return fmt.Errorf("probes: prober %q is already running", p.cfg.Name)
	}
	p.ctx = ctx
	for _, tg := range p.targets {
		p.start(tg)
	}
	p.mu.Unlock()

	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.rttLoop(ctx)
	}()
	p.sendFull()
	tick := time.NewTicker(p.cfg.ReportEvery)
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			p.sendFull()
		}
	}
	p.mu.Lock()
	p.ctx = nil
	for _, tg := range p.targets {
		tg.cancel = nil
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// start launches tg's goroutine; p.mu must be held and p.ctx set.
func (p *Prober) start(tg *target) {
	ctx, cancel := context.WithCancel(p.ctx)
	tg.cancel = cancel
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.loop(ctx, tg)
	}()
}

// loop probes one target every interval, and at the short interval while
// its state is in doubt (fast confirmation, as HAProxy's fastinter): a
// failure while up, or a success while down, is re-checked until fails (or
// passes) is reached or a result agrees with the state again. The first
// check comes within the short interval, so that a starting node knows its
// targets at once; the regular schedule then starts at a random point of
// the first interval and each later check is jittered by ±5%, so that
// targets loaded together spread out instead of probing in step. Fast
// re-checks and CheckNow leave the regular schedule alone: in a steady
// state a target is checked once per interval.
func (p *Prober) loop(ctx context.Context, tg *target) {
	p.mu.Lock()
	t := tg.t
	p.mu.Unlock()
	iv, fast := t.interval(), t.fastInterval()
	now := time.Now()
	first := rand.N(fast)
	due := now.Add(first + rand.N(iv))
	next := now.Add(first)
	timer := time.NewTimer(first)
	defer timer.Stop()
	var last time.Time // when the last check started
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-tg.wake:
			// Asked to check now: at most one check per short interval.
			if e := last.Add(fast); time.Now().Before(e) {
				if e.Before(next) {
					next = e
					timer.Reset(time.Until(e))
				}
				continue
			}
		}
		p.mu.Lock()
		t = tg.t
		p.mu.Unlock()
		iv, fast = t.interval(), t.fastInterval()
		if now := time.Now(); !now.Before(due) {
			// The next regular check is due one jittered interval after
			// this one was due, not after it ended, so slow probes do not
			// stretch the period.
			due = due.Add(iv + time.Duration((rand.Float64()-0.5)*0.1*float64(iv)))
		}
		// Wait for a concurrency slot; each interval spent waiting is a
		// missed probe.
		slot := time.NewTimer(iv)
	wait:
		for {
			select {
			case <-ctx.Done():
				slot.Stop()
				return
			case <-slot.C:
				p.cfg.Metrics.miss(p.cfg.Name)
				slot.Reset(iv)
				due = due.Add(iv)
			case p.sem <- struct{}{}:
				slot.Stop()
				break wait
			}
		}
		last = time.Now()
		r := p.probe(ctx, t)
		<-p.sem
		if ctx.Err() != nil {
			return // removed or stopped while probing: the result is moot
		}
		doubt := p.observe(tg, t, r)
		now := time.Now()
		if due.Before(now) {
			due = now // the probe outlasted its interval: probe again at once
		}
		next = due
		if f := now.Add(fast); doubt && f.Before(next) {
			next = f
		}
		timer.Reset(next.Sub(now))
	}
}

// CheckNow asks for a check of the targets with these keys at once: another
// region saw one of them flip, or the node or proxy that fronts them went
// silent or changed its health. Each target is checked at most once per
// short interval (a request within it is served at its end), and a check
// that disagrees with the state goes on at the short interval as any other.
// Unknown keys are ignored. CheckNow never blocks.
func (p *Prober) CheckNow(keys ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range keys {
		if tg := p.targets[k]; tg != nil {
			select {
			case tg.wake <- struct{}{}:
			default:
			}
		}
	}
}

// SetLost says whether the node that fronts the targets with these keys is
// lost: the cluster has not heard from it for a Raft heartbeat timeout. A
// failed check of a lost node's target takes it down at once (it weighs
// fails): a hung machine's proxy accepts connections and answers nothing,
// and three timeouts would take three times the check's timeout. Unknown
// keys are ignored.
func (p *Prober) SetLost(lost bool, keys ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range keys {
		if tg := p.targets[k]; tg != nil {
			tg.lost = lost
		}
	}
}

// Status returns the prober's own view of the target with key k, and
// whether it has been probed at least once.
func (p *Prober) Status(k string) (Status, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	tg := p.targets[k]
	if tg == nil || !tg.h.Known() {
		return Status{}, false
	}
	return tg.status(), true
}

// observe applies one result to tg, reports a transition, and says whether
// the target's state is in doubt (to be re-checked at the short interval).
func (p *Prober) observe(tg *target, t Target, r Result) (doubt bool) {
	m := p.cfg.Metrics
	m.observe(t.Check.Scheme, r)
	now := time.Now()
	p.mu.Lock()
	if p.targets[tg.key] != tg { // removed by SetTargets while probing
		p.mu.Unlock()
		return false
	}
	first := !tg.h.Known()
	blip := tg.h.Up() && tg.h.InDoubt() && r.Up // a failure while up, not confirmed
	var flipped bool
	switch {
	case !r.Up && tg.lost:
		flipped = tg.h.ObserveLost()
	case !r.Up && r.Refused:
		flipped = tg.h.ObserveRefused()
	default:
		flipped = tg.h.Observe(r.Up)
	}
	switch {
	case flipped && !tg.h.Up():
		tg.damp.Down(now)
	case blip:
		tg.damp.Blip(now)
	case !r.Up:
		tg.damp.Failed(now)
	}
	held, settling := tg.settle(t, r, now)
	changed := tg.up != (tg.h.Up() && !held)
	tg.up = tg.h.Up() && !held
	if changed && !tg.up && tg.damp.HalfLife > 0 {
		tg.watch, tg.watched, settling = now.Add(t.settle()), 0, true
	}
	if tg.up {
		tg.prove, tg.probation = false, time.Time{}
	}
	doubt = tg.h.InDoubt() || settling
	if r.RTT > 0 {
		tg.rtt.Add(r.RTT)
	}
	tg.reason = r.Reason
	if held {
		tg.reason = fmt.Sprintf("held down: flapping (penalty %.1f, released below %.1f); last check: %s",
			tg.damp.Penalty(now), tg.damp.Reuse, r.Reason)
	}
	if !r.CertExpiry.IsZero() {
		tg.certExpiry = r.CertExpiry
	}
	if first || changed {
		tg.since = now
	}
	up := tg.up
	p.mu.Unlock()

	if flipped && !changed {
		p.log.Info("target flipped but is held down: flapping", "target", t.String(), "up", !up, "reason", r.Reason)
	}
	m.setUp(p.cfg.Name, tg.key, up)
	if !r.CertExpiry.IsZero() {
		m.setCertExpiry(p.cfg.Name, tg.key, r.CertExpiry.Unix())
	}
	if !first && !changed {
		return doubt
	}
	m.setLastChange(p.cfg.Name, tg.key, float64(now.UnixNano())/1e9)
	if changed {
		m.transition(p.cfg.Name, tg.key, up)
		p.log.Info("target state changed", "target", t.String(), "up", up, "reason", r.Reason)
	}
	p.sendDelta(tg)
	return doubt
}

// settle applies flap damping's two settle windows to one result, after
// the hysteresis and the penalty have taken it, and says whether the
// target is held down and whether it is settling (to be re-checked at
// the short interval). p.mu must be held.
//
//   - After the target went down it is watched for a settle window (at
//     the short interval): a passed check within it means it came back
//     less than a window after it was confirmed down, as a quick restart
//     does and a flapper does at once. Such a target is put on probation.
//   - A target on probation, or whose suppression ended, is reported up
//     only after a settle window of passed checks; one failed check in it
//     suppresses it (Damping.Flapped). A restart's return is delayed by
//     one window; a member flipping every 700 ms goes down once, at its
//     first outage, fails its probation and stays down while it flaps,
//     however its checks happen to fall on its schedule.
//
// Neither delays the first outage: it is reported when the hysteresis
// confirms it; and an outage that lasts longer than the window comes back
// as soon as passes checks say so. A window lasts its time and at least
// settleChecks checks, so that checks delayed on a loaded machine do not
// shorten it below the flapping they must see.
func (tg *target) settle(t Target, r Result, now time.Time) (held, settling bool) {
	if tg.damp.HalfLife <= 0 {
		return false, false
	}
	sup := tg.damp.Suppressed(now)
	watching := !tg.up && !tg.watch.IsZero() && (now.Before(tg.watch) || tg.watched < settleChecks)
	if watching {
		tg.watched++
	} else {
		tg.watch = time.Time{}
	}
	if watching && r.Up {
		tg.prove, tg.watch, watching = true, time.Time{}, false
	}
	if sup {
		tg.prove, tg.probation = true, time.Time{}
		return tg.h.Up(), watching
	}
	if !tg.prove || tg.up || !tg.h.Up() {
		return false, watching
	}
	// Back soon after going down, or suppression over, and the checks say
	// up: on probation.
	switch {
	case !r.Up:
		tg.damp.Flapped(now)
		tg.probation = time.Time{}
		return true, false
	case tg.probation.IsZero():
		tg.probation, tg.passed = now, 1
		return true, true
	case now.Sub(tg.probation) < t.settle() || tg.passed < settleChecks:
		tg.passed++
		return true, true
	}
	return false, false
}

// settleChecks is the least number of checks in a settle window.
const settleChecks = 10

// status returns tg's Status; p.mu must be held.
func (tg *target) status() Status {
	return Status{
		Key:        tg.key,
		Target:     tg.t.String(),
		Up:         tg.up,
		Since:      tg.since,
		Reason:     tg.reason,
		Quorum:     tg.t.Check.Quorum,
		RTT:        tg.rtt.EWMA,
		MinRTT:     tg.rtt.Min(),
		CertExpiry: tg.certExpiry,
	}
}

// Statuses returns the prober's own view of every target probed at least
// once, sorted by key.
func (p *Prober) Statuses() []Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.statusesLocked()
}

func (p *Prober) statusesLocked() []Status {
	out := make([]Status, 0, len(p.targets))
	for _, tg := range p.targets {
		if tg.h.Known() {
			out = append(out, tg.status())
		}
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// RTTs returns the prober's smoothed RTTs to region nodes and client
// networks that have at least one sample.
func (p *Prober) RTTs() []RTT {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rttsLocked()
}

func (p *Prober) rttsLocked() []RTT {
	var out []RTT
	for n, s := range p.nodes {
		if s.rtt.N > 0 {
			out = append(out, RTT{Kind: KindRegion, Name: n.Region, Addr: n.Addr.Addr(), EWMA: s.rtt.EWMA, Min: s.rtt.Min(), Time: s.sample})
		}
	}
	for pfx, nw := range p.networks {
		if nw.rtt.N > 0 {
			out = append(out, RTT{Kind: KindNetwork, Name: pfx.String(), Addr: nw.addr, EWMA: nw.rtt.EWMA, Min: nw.rtt.Min(), Time: nw.sample})
		}
	}
	slices.SortFunc(out, func(a, b RTT) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

func (p *Prober) sendDelta(tg *target) {
	if p.cfg.Sink == nil {
		return
	}
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	p.mu.Lock()
	if p.targets[tg.key] != tg { // removed meanwhile
		p.mu.Unlock()
		return
	}
	r := Report{Prober: p.cfg.Name, Region: p.cfg.Region, Time: time.Now(), Every: p.cfg.ReportEvery,
		Statuses: []Status{tg.status()}}
	p.mu.Unlock()
	p.cfg.Sink.Report(r)
}

func (p *Prober) sendFull() {
	if p.cfg.Sink == nil {
		return
	}
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	p.mu.Lock()
	r := Report{Prober: p.cfg.Name, Region: p.cfg.Region, Time: time.Now(), Every: p.cfg.ReportEvery,
		Full: true, Statuses: p.statusesLocked(), RTTs: p.rttsLocked()}
	p.mu.Unlock()
	p.cfg.Sink.Report(r)
}

// rttConcurrency bounds the RTT measurements in flight. They have their own
// bound so that a thousand unresponsive client networks cannot take the
// health checks' slots.
const rttConcurrency = 16

// rttLoop measures RTTs every ReportEvery, apart from the reports so that
// slow measurements never delay the prober's heartbeat; a round that takes
// longer than the period delays the next one.
func (p *Prober) rttLoop(ctx context.Context) {
	tick := time.NewTicker(p.cfg.ReportEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			p.measureRTTs(ctx)
		}
	}
}

// measureRTTs samples the RTT to every region node and client network once,
// at most rttConcurrency at a time, and drops expired networks.
func (p *Prober) measureRTTs(ctx context.Context) {
	type job struct {
		node Node
		pfx  netip.Prefix
		addr netip.AddrPort
	}
	var jobs []job
	p.takeAsks()
	now := time.Now()
	p.mu.Lock()
	for n := range p.nodes {
		jobs = append(jobs, job{node: n, addr: n.Addr})
	}
	for pfx, nw := range p.networks {
		if now.Sub(nw.asked) > p.cfg.NetworkTTL {
			delete(p.networks, pfx)
			continue
		}
		jobs = append(jobs, job{pfx: pfx, addr: netip.AddrPortFrom(nw.addr, 53)})
	}
	p.mu.Unlock()
	timeout := min(p.cfg.ReportEvery/2, 2*time.Second)
	var wg sync.WaitGroup
	sem := make(chan struct{}, rttConcurrency)
	for _, j := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			d, ok := measureRTT(ctx, j.addr, timeout)
			if !ok {
				return
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			var s *sampled
			if j.pfx.IsValid() {
				if nw := p.networks[j.pfx]; nw != nil {
					s = &nw.sampled
				}
			} else {
				s = p.nodes[j.node]
			}
			if s != nil {
				s.rtt.Add(d)
				s.sample = time.Now()
			}
		})
	}
	wg.Wait()
}

// measureRTT times one ICMP echo to a's address when the process may send
// one, else a TCP connect to a; a refused connection is a valid sample.
func measureRTT(ctx context.Context, a netip.AddrPort, timeout time.Duration) (time.Duration, bool) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Half the time for the echo, so that a network that filters ICMP
	// still gets its TCP try.
	ictx, icancel := context.WithTimeout(ctx, timeout/2)
	d, err := pingICMP(ictx, a.Addr())
	icancel()
	if err == nil {
		return d, true
	}
	var dl net.Dialer
	start := time.Now()
	c, err := dl.DialContext(ctx, "tcp", a.String())
	d = time.Since(start)
	if err == nil {
		c.Close()
		return d, true
	}
	if isRefused(err) {
		return d, true
	}
	return 0, false
}
