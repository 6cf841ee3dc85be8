package node

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/gslbd/gslb/probes"
	"github.com/gslbd/gslb/store"
	"github.com/gslbd/gslb/zones"
)

// What goes between the probers and the store, translated here and only
// here (both ways, with table tests in reports_test.go):
//
//   - a prober's verdict transitions (store.Transition: the check's key and
//     readable target, up or down, the reason, the RTTs and an https
//     certificate's expiry), sent only when its hysteresis flips;
//   - once per report period, a heartbeat (store.Heartbeat: when it last
//     reported and how often it reports) and its RTT summaries to region
//     nodes and client networks (store.RTTSummary: kind, name, address,
//     EWMA and minimum).
//
// Not replicated: individual probe results, the probers' schedules, and
// anything a node computes from these (verdicts by quorum, the health view).

// transitionOf is the committed form of one status change of a prober.
func transitionOf(r probes.Report, st probes.Status) store.Transition {
	return store.Transition{Prober: r.Prober, Region: r.Region, Key: st.Key, Target: st.Target, Up: st.Up,
		Reason: st.Reason, At: r.Time, RTT: st.RTT, MinRTT: st.MinRTT, CertExpiry: st.CertExpiry}
}

// heartbeatOf is the committed liveness of a prober's full report.
func heartbeatOf(r probes.Report) *store.Heartbeat {
	return &store.Heartbeat{Prober: r.Prober, Region: r.Region, At: r.Time, Every: r.Every}
}

// rttsOf are the committed RTT summaries of a full report.
func rttsOf(r probes.Report) []store.RTTSummary {
	out := make([]store.RTTSummary, 0, len(r.RTTs))
	for _, rt := range r.RTTs {
		kind := store.RTTRegion
		if rt.Kind == probes.KindNetwork {
			kind = store.RTTNetwork
		}
		s := store.RTTSummary{Prober: r.Prober, Kind: kind, Name: rt.Name, EWMA: rt.EWMA, Min: rt.Min, At: rt.Time}
		if rt.Addr.IsValid() {
			s.Addr = rt.Addr.String()
		}
		out = append(out, s)
	}
	return out
}

// defaultEvery is the report period assumed for a prober whose heartbeat
// has not been seen.
const defaultEvery = 5 * time.Second

// reportsFrom turns the committed state into one full report per remote
// prober (self excluded), stamped with its last heartbeat or transition,
// for the local aggregator: a prober whose region died stops heartbeating
// and ages out of the verdicts. quorum gives each check key its quorum=
// rule (from the zones served).
func reportsFrom(st *store.State, self string, quorum map[string]zones.Quorum) []probes.Report {
	type acc struct {
		region string
		at     time.Time
		every  time.Duration
		sts    []probes.Status
		rtts   []probes.RTT
	}
	by := map[string]*acc{}
	get := func(p string) *acc {
		a := by[p]
		if a == nil {
			a = &acc{every: defaultEvery}
			by[p] = a
		}
		return a
	}
	for _, h := range st.Heartbeats() {
		if h.Prober == self {
			continue
		}
		a := get(h.Prober)
		a.at, a.region = h.At, h.Region
		if h.Every > 0 {
			a.every = h.Every
		}
	}
	for _, t := range st.Transitions() {
		if t.Prober == self {
			continue
		}
		a := get(t.Prober)
		if a.region == "" {
			a.region = t.Region
		}
		if t.At.After(a.at) {
			a.at = t.At
		}
		a.sts = append(a.sts, statusOf(t, quorum))
	}
	for _, r := range st.RTTs() {
		if r.Prober == self {
			continue
		}
		kind := probes.KindRegion
		if r.Kind == store.RTTNetwork {
			kind = probes.KindNetwork
		}
		rt := probes.RTT{Kind: kind, Name: r.Name, EWMA: r.EWMA, Min: r.Min, Time: r.At}
		rt.Addr, _ = netip.ParseAddr(r.Addr)
		a := get(r.Prober)
		a.rtts = append(a.rtts, rt)
	}
	out := make([]probes.Report, 0, len(by))
	for p, a := range by {
		out = append(out, probes.Report{Prober: p, Region: a.region, Time: a.at, Every: a.every, Full: true, Statuses: a.sts, RTTs: a.rtts})
	}
	return out
}

// statusOf is a prober's status as its transition t says, with the
// quorum= rule of its check key.
func statusOf(t store.Transition, quorum map[string]zones.Quorum) probes.Status {
	target := t.Target
	if target == "" {
		target = t.Key
	}
	return probes.Status{Key: t.Key, Target: target, Up: t.Up, Since: t.At, Reason: t.Reason,
		Quorum: quorum[t.Key], RTT: t.RTT, MinRTT: t.MinRTT, CertExpiry: t.CertExpiry}
}

// quorums gives each check key of the zones served its quorum= rule.
func (n *Node) quorums() map[string]zones.Quorum {
	quorum := map[string]zones.Quorum{}
	for _, t := range probes.TargetsFromZones(n.loader.Zones()...) {
		quorum[t.Key()] = t.Check.Quorum
	}
	return quorum
}

// feedRemoteReports hands other probers' committed views to the local
// aggregator, each prober's only when it has something newer.
func (n *Node) feedRemoteReports(st *store.State) {
	quorum := n.quorums()
	n.remoteMu.Lock()
	defer n.remoteMu.Unlock()
	if n.remoteSeen == nil {
		n.remoteSeen = map[string]time.Time{}
	}
	for _, r := range reportsFrom(st, n.name, quorum) {
		if !r.Time.After(n.remoteSeen[r.Prober]) {
			continue
		}
		n.remoteSeen[r.Prober] = r.Time
		n.health.agg.Report(r)
	}
}

// told applies the transitions that another member's prober sent straight
// to this node (store.Tell), as that prober's report, and re-checks the
// members on which it disagrees with this prober: the survivors of a dead
// region hear each other's verdicts during a Raft election, when nothing
// commits. The committed state reconciles: the same transitions arrive
// again with the commit (the aggregator applies a prober's reports in the
// order of their times, so an older one never undoes a newer one), and a
// prober whose transition was told but never committed is corrected by
// its next committed report.
func (n *Node) told(b *store.ReportBatch) {
	if n.health == nil || b.Prober == n.name || len(b.Transitions) == 0 {
		return
	}
	quorum := n.quorums()
	r := probes.Report{Prober: b.Prober, Every: defaultEvery}
	for _, t := range b.Transitions {
		r.Region = t.Region
		if t.At.After(r.Time) {
			r.Time = t.At
		}
		r.Statuses = append(r.Statuses, statusOf(t, quorum))
	}
	n.health.agg.Report(r)
	n.recheckTransitions(b.Transitions)
}

// reportForwarder carries the local prober's transitions, and with each
// full report a heartbeat and the RTT summaries, to the replicated store:
// only changes and one summary per report period, never every probe
// result.
type reportForwarder struct {
	n     *Node
	s     *store.Store
	mu    sync.Mutex
	sent  map[string]bool // key -> up, as last committed
	queue []store.Transition
	rtts  []store.RTTSummary
	beat  *store.Heartbeat
	wake  chan struct{}
	// Transitions to tell the other members (tellLoop), its signal, and
	// how (Store.Tell).
	tellQ    []store.Transition
	tellWake chan struct{}
	tell     func(context.Context, *store.ReportBatch) error
}

// tellTimeout bounds how long a batch is told to the other members; a
// member that does not answer by then learns it from the commit. At most
// tellMax transitions go in one request.
const (
	tellTimeout = time.Second
	tellMax     = 500
)

func newReportForwarder(n *Node, s *store.Store) *reportForwarder {
	return &reportForwarder{n: n, s: s, sent: map[string]bool{}, wake: make(chan struct{}, 1), tellWake: make(chan struct{}, 1), tell: s.Tell}
}

// tellLoop tells the queued transitions to the other members, one request
// per member for all that queued up meanwhile (tellMax at most), one
// batch at a time: a thousand targets starting, or a region of them
// dying, make a few requests, not a thousand.
func (f *reportForwarder) tellLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.tellWake:
		}
		f.mu.Lock()
		q := f.tellQ
		f.tellQ = nil
		f.mu.Unlock()
		for len(q) > 0 {
			n := min(len(q), tellMax)
			tctx, cancel := context.WithTimeout(ctx, tellTimeout)
			if err := f.tell(tctx, &store.ReportBatch{Prober: f.n.name, Transitions: q[:n]}); err != nil {
				f.n.log.Debug("telling the other members a transition", "err", err)
			}
			cancel()
			q = q[n:]
		}
	}
}

// Report is the prober's sink (called from the prober's goroutines). New
// transitions are also told to the other members at once (store.Tell),
// so that they count before they commit.
func (f *reportForwarder) Report(r probes.Report) {
	f.mu.Lock()
	told := len(f.tellQ)
	for _, st := range r.Statuses {
		if up, ok := f.sent[st.Key]; ok && up == st.Up {
			continue
		}
		t := transitionOf(r, st)
		f.queue = append(f.queue, t)
		f.tellQ = append(f.tellQ, t)
		f.sent[st.Key] = st.Up
	}
	tell := len(f.tellQ) > told
	if r.Full {
		f.beat = heartbeatOf(r)
		f.rtts = rttsOf(r)
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
	if tell {
		select {
		case f.tellWake <- struct{}{}:
		default:
		}
	}
}

func (f *reportForwarder) run(ctx context.Context) {
	go f.tellLoop(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		}
		f.mu.Lock()
		if len(f.queue) == 0 && f.beat == nil {
			f.mu.Unlock()
			continue
		}
		b := &store.ReportBatch{Prober: f.n.name, Transitions: f.queue, Heartbeat: f.beat}
		if f.beat != nil {
			b.RTTs = f.rtts
		}
		f.queue, f.beat, f.rtts = nil, nil, nil
		f.mu.Unlock()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := f.s.Submit(sctx, b)
		cancel()
		if err != nil {
			// No quorum: keep the transitions for the next try (the
			// heartbeat is simply the next one). Submit already waited an
			// election's time for a leader, so try again soon: a region
			// whose node was the leader fails over on this commit.
			f.mu.Lock()
			f.queue = append(b.Transitions, f.queue...)
			f.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			select {
			case f.wake <- struct{}{}:
			default:
			}
		}
	}
}
