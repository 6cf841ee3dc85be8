package probes

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gslbd/gslb/zones"
)

// AggregatorConfig configures an Aggregator. Zero values are the defaults.
type AggregatorConfig struct {
	// MaxEvents bounds the ring of recent transitions (default 256).
	MaxEvents int
	// OnChange, if set, is called after a verdict changed, without locks
	// held, from the goroutine that applied the report or noticed an ageing.
	OnChange func()
	Logger   *slog.Logger
	Metrics  *Metrics
}

// Aggregator combines the reports of every prober into cluster-wide verdicts
// per target key. It is a Sink: feed it the local prober's reports directly,
// and (later) the reports the replicated store carries from other nodes.
//
// The verdict on a key counts the probers that are fresh: they reported
// within 3×Every and the cluster has not marked them silent (SetSilent: the
// node that runs them stopped answering Raft), so a dead region's last
// votes, up or down, stop counting as soon as the cluster knows it is dead.
// A prober is suspect while it sees every one of its targets down (it is
// more likely cut off than everyone else dead): it is not counted while a
// fresh prober that is not suspect reports on the key, and counts when none
// does, so that a node alone whose prober sees every member down applies
// the records' empty= mode instead of freezing its last verdicts. The
// check's quorum= decides: majority (down only when more than half of the
// counted probers see it down; a tie stays up), any (up if one sees it up),
// all (up only if all do), or N (up if at least min(N, counted) see it up).
// With no fresh prober, a key keeps its last verdict, and a key never
// decided stays unknown, which callers treat as up.
//
// Its methods are safe for concurrent use.
type Aggregator struct {
	cfg AggregatorConfig
	log *slog.Logger

	mu       sync.Mutex
	probers  map[string]*proberState
	silent   map[string]bool // probers whose node the cluster cannot reach
	verdicts map[string]*verdict
	events   []Event // ring
	nextEv   int
	subs     []chan struct{}
	timer    *time.Timer
	closed   bool
}

type proberState struct {
	name, region string
	reported     time.Time // Time of the last report applied
	heard        time.Time // local time the last report arrived
	every        time.Duration
	statuses     map[string]Status
	down         int // statuses with Up false
	rtts         []RTT
}

func (ps *proberState) fresh(now time.Time) bool {
	return !ps.heard.IsZero() && now.Sub(ps.heard) <= 3*ps.every
}

// suspect says the prober sees every one of its targets down.
func (ps *proberState) suspect() bool {
	return len(ps.statuses) > 0 && ps.down == len(ps.statuses)
}

func (ps *proberState) set(s Status) {
	if old, ok := ps.statuses[s.Key]; ok && !old.Up {
		ps.down--
	}
	if !s.Up {
		ps.down++
	}
	ps.statuses[s.Key] = s
}

func (ps *proberState) remove(k string) {
	if old, ok := ps.statuses[k]; ok {
		if !old.Up {
			ps.down--
		}
		delete(ps.statuses, k)
	}
}

type verdict struct {
	up    bool
	since time.Time
}

// Event is a transition: a prober's view of a target (Prober set), or the
// cluster verdict (Prober empty).
type Event struct {
	Time     time.Time
	Prober   string
	Region   string
	Key      string
	From, To string // "up", "down", or "unknown"
	Reason   string
}

// NewAggregator returns an empty Aggregator.
func NewAggregator(cfg AggregatorConfig) *Aggregator {
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Aggregator{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "probes"),
		probers:  make(map[string]*proberState),
		silent:   make(map[string]bool),
		verdicts: make(map[string]*verdict),
	}
}

// Close stops the ageing timer. Reports after Close are still applied, but
// silent probers no longer age out on their own.
func (a *Aggregator) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	if a.timer != nil {
		a.timer.Stop()
	}
}

// Report applies one prober report. Reports from one prober older than the
// last one applied are ignored.
func (a *Aggregator) Report(r Report) {
	now := time.Now()
	a.mu.Lock()
	ps := a.probers[r.Prober]
	all := false // whether the prober's standing, and so every verdict, may change
	if ps == nil {
		ps = &proberState{name: r.Prober, statuses: make(map[string]Status)}
		a.probers[r.Prober] = ps
		all = true
	} else if r.Time.Before(ps.reported) {
		a.mu.Unlock()
		return
	}
	wasFresh, wasSuspect := ps.fresh(now), ps.suspect()
	ps.region, ps.reported, ps.heard = r.Region, r.Time, now
	ps.every = r.Every
	if ps.every <= 0 {
		ps.every = zones.DefaultInterval
	}
	keys := make([]string, 0, len(r.Statuses))
	for _, s := range r.Statuses {
		keys = append(keys, s.Key)
		// Events are transitions, and first reports of a target down; a
		// target first seen up is the normal start, not news.
		old, had := ps.statuses[s.Key]
		if had && old.Up != s.Up || !had && !s.Up {
			from := "unknown"
			if had {
				from = upDown(old.Up)
			}
			a.addEvent(Event{Time: s.Since, Prober: r.Prober, Region: r.Region, Key: s.Key,
				From: from, To: upDown(s.Up), Reason: s.Reason})
		}
		ps.set(s)
	}
	if r.Full {
		if len(ps.statuses) != len(r.Statuses) {
			seen := make(map[string]bool, len(keys))
			for _, k := range keys {
				seen[k] = true
			}
			for k := range ps.statuses {
				if !seen[k] {
					ps.remove(k)
				}
			}
			all = true
		}
		ps.rtts = slices.Clone(r.RTTs)
	}
	var changed bool
	if all || !wasFresh || wasSuspect != ps.suspect() {
		changed = a.recomputeAll(now)
	} else {
		for _, k := range keys {
			changed = a.decide(k, now) || changed
		}
	}
	a.rearm(now)
	a.mu.Unlock()
	if changed {
		a.notify()
	}
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// addEvent appends e to the ring; a.mu must be held.
func (a *Aggregator) addEvent(e Event) {
	if len(a.events) < a.cfg.MaxEvents {
		a.events = append(a.events, e)
		return
	}
	a.events[a.nextEv] = e
	a.nextEv = (a.nextEv + 1) % len(a.events)
}

// recomputeAll decides every key some prober reports on and drops the
// verdicts of keys none does; a.mu must be held.
func (a *Aggregator) recomputeAll(now time.Time) bool {
	changed := false
	keys := make(map[string]bool, len(a.verdicts))
	for _, ps := range a.probers {
		for k := range ps.statuses {
			if !keys[k] {
				keys[k] = true
				changed = a.decide(k, now) || changed
			}
		}
	}
	for k := range a.verdicts {
		if !keys[k] { // no prober checks it any more
			delete(a.verdicts, k)
			a.cfg.Metrics.forgetVerdict(k)
			changed = true
		}
	}
	return changed
}

// decide recomputes the verdict on key k and reports whether it changed;
// a.mu must be held.
func (a *Aggregator) decide(k string, now time.Time) bool {
	var quorum, squorum zones.Quorum
	var n, up, sn, sup int // counted probers, and suspect ones
	for _, ps := range a.probers {
		s, ok := ps.statuses[k]
		if !ok || !ps.fresh(now) || a.silent[ps.name] {
			continue
		}
		if ps.suspect() {
			squorum = s.Quorum
			sn++
			if s.Up {
				sup++
			}
			continue
		}
		quorum = s.Quorum
		n++
		if s.Up {
			up++
		}
	}
	if n == 0 { // only suspect probers, if any: they are all there is
		quorum, n, up = squorum, sn, sup
	}
	if n == 0 {
		return false // no prober counts: keep the last verdict
	}
	u := quorumUp(quorum, up, n)
	v := a.verdicts[k]
	if v != nil && v.up == u {
		return false
	}
	a.verdicts[k] = &verdict{up: u, since: now}
	a.cfg.Metrics.setVerdict(k, u)
	if v != nil || !u {
		from := "unknown"
		if v != nil {
			from = upDown(v.up)
		}
		a.addEvent(Event{Time: now, Key: k, From: from, To: upDown(u), Reason: verdictReason(up, n)})
		a.log.Info("verdict changed", "target", k, "up", u, "probers_up", up, "probers", n)
	}
	return true
}

// SetSilent marks the prober named prober as silent (its node stopped
// answering the cluster) or not: a silent prober's votes do not count, so
// the verdicts follow the probers that are still there without waiting for
// its reports to age out. The node calls it from the store's view of each
// member's last contact.
func (a *Aggregator) SetSilent(prober string, silent bool) {
	a.mu.Lock()
	if a.silent[prober] == silent {
		a.mu.Unlock()
		return
	}
	if silent {
		a.silent[prober] = true
	} else {
		delete(a.silent, prober)
	}
	changed := a.recomputeAll(time.Now())
	a.mu.Unlock()
	if changed {
		a.notify()
	}
}

// rearm sets the ageing timer to the moment the next fresh prober goes
// stale; a.mu must be held.
func (a *Aggregator) rearm(now time.Time) {
	var next time.Time
	for _, ps := range a.probers {
		if ps.fresh(now) {
			if exp := ps.heard.Add(3 * ps.every); next.IsZero() || exp.Before(next) {
				next = exp
			}
		}
	}
	switch {
	case next.IsZero() || a.closed:
		if a.timer != nil {
			a.timer.Stop()
		}
	case a.timer == nil:
		// A little after the deadline, so that the prober is stale by then.
		a.timer = time.AfterFunc(next.Sub(now)+time.Millisecond, a.age)
	default:
		a.timer.Reset(next.Sub(now) + time.Millisecond)
	}
}

func verdictReason(up, n int) string {
	return fmt.Sprintf("%d of %d probers see it up", up, n)
}

// quorumUp applies a quorum rule to up of n counted probers (n > 0).
func quorumUp(q zones.Quorum, up, n int) bool {
	switch {
	case q == zones.QuorumAny:
		return up > 0
	case q == zones.QuorumAll:
		return up == n
	case q > 0:
		return up >= min(int(q), n)
	default: // majority: down only if more than half see it down
		return 2*(n-up) <= n
	}
}

// age re-evaluates the verdicts when a prober may have gone silent.
func (a *Aggregator) age() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	now := time.Now()
	changed := a.recomputeAll(now)
	a.rearm(now)
	a.mu.Unlock()
	if changed {
		a.notify()
	}
}

func (a *Aggregator) notify() {
	a.mu.Lock()
	for _, c := range a.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	a.mu.Unlock()
	if a.cfg.OnChange != nil {
		a.cfg.OnChange()
	}
}

// Subscribe returns a channel that receives a value after verdicts change.
// Signals are coalesced: one value may stand for many changes, so read the
// verdicts again after each.
func (a *Aggregator) Subscribe() <-chan struct{} {
	c := make(chan struct{}, 1)
	a.mu.Lock()
	a.subs = append(a.subs, c)
	a.mu.Unlock()
	return c
}

// Verdict returns the cluster-wide verdict on key. known is false until some
// prober reported on key; callers then treat the target as up (cold start
// is fail-open).
func (a *Aggregator) Verdict(key string) (up, known bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.verdicts[key]
	if v == nil {
		return false, false
	}
	return v.up, true
}

// Verdicts returns every known verdict, by key.
func (a *Aggregator) Verdicts() map[string]bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := make(map[string]bool, len(a.verdicts))
	for k, v := range a.verdicts {
		m[k] = v.up
	}
	return m
}

// KeyView is the cluster's view of one target, for status pages.
type KeyView struct {
	Key       string
	Up, Known bool
	Since     time.Time // when the verdict last changed
	Probers   []ProberView
}

// ProberView is one prober's status on a target, with the prober's standing.
type ProberView struct {
	Status
	Prober, Region string
	Heard          time.Time // when its last report arrived
	Fresh, Suspect bool
}

// Snapshot returns every key some prober reports on, sorted by key, each
// with its probers sorted by name.
func (a *Aggregator) Snapshot() []KeyView {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	byKey := make(map[string]*KeyView)
	for _, ps := range a.probers {
		fresh, suspect := ps.fresh(now) && !a.silent[ps.name], ps.suspect()
		for k, s := range ps.statuses {
			kv := byKey[k]
			if kv == nil {
				kv = &KeyView{Key: k}
				if v := a.verdicts[k]; v != nil {
					kv.Up, kv.Known, kv.Since = v.up, true, v.since
				}
				byKey[k] = kv
			}
			kv.Probers = append(kv.Probers, ProberView{Status: s, Prober: ps.name, Region: ps.region,
				Heard: ps.heard, Fresh: fresh, Suspect: suspect})
		}
	}
	out := make([]KeyView, 0, len(byKey))
	for _, kv := range byKey {
		slices.SortFunc(kv.Probers, func(a, b ProberView) int { return strings.Compare(a.Prober, b.Prober) })
		out = append(out, *kv)
	}
	slices.SortFunc(out, func(a, b KeyView) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// Events returns the recent transitions, oldest first.
func (a *Aggregator) Events() []Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Event, 0, len(a.events))
	out = append(out, a.events[a.nextEv:]...)
	return append(out, a.events[:a.nextEv]...)
}

// RTTView is one prober's RTT summary.
type RTTView struct {
	RTT
	Prober, Region string
}

// RTTs returns the RTT summaries of the probers that reported within
// 3×Every, sorted by prober, kind and name.
func (a *Aggregator) RTTs() []RTTView {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []RTTView
	for _, ps := range a.probers {
		if !ps.fresh(now) {
			continue
		}
		for _, r := range ps.rtts {
			out = append(out, RTTView{RTT: r, Prober: ps.name, Region: ps.region})
		}
	}
	slices.SortFunc(out, func(a, b RTTView) int {
		if c := strings.Compare(a.Prober, b.Prober); c != 0 {
			return c
		}
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}
