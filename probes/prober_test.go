package probes_test

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gslbd/gslb/probes"
	"github.com/gslbd/gslb/probes/probestest"
	"github.com/gslbd/gslb/zones"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeProbes is a ProberConfig.Probe whose results the test sets per
// member address, and which counts calls per target key.
type fakeProbes struct {
	mu       sync.Mutex
	down     map[netip.Addr]bool
	calls    map[string]int
	first    map[string]time.Time
	times    map[string][]time.Time
	streak   map[string]int // consecutive failures returned, per key
	okStreak map[string]int // consecutive successes returned, per key
}

func newFake() *fakeProbes {
	return &fakeProbes{down: map[netip.Addr]bool{}, calls: map[string]int{},
		first: map[string]time.Time{}, times: map[string][]time.Time{}, streak: map[string]int{}, okStreak: map[string]int{}}
}

func (f *fakeProbes) probe(_ context.Context, t probes.Target) probes.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := t.Key()
	if f.calls[k] == 0 {
		f.first[k] = time.Now()
	}
	f.times[k] = append(f.times[k], time.Now())
	f.calls[k]++
	if f.down[t.Addr] {
		f.streak[k]++
		f.okStreak[k] = 0
		return probes.Result{Up: false, Reason: "fake failure", RTT: time.Millisecond}
	}
	f.streak[k] = 0
	f.okStreak[k]++
	return probes.Result{Up: true, Reason: "fake ok", RTT: time.Millisecond}
}

func (f *fakeProbes) setDown(a netip.Addr, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[a] = down
}

func (f *fakeProbes) count(k string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[k]
}

func addr(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}) }

func tcpTarget(a netip.Addr, iv time.Duration) probes.Target {
	return probes.Target{Check: zones.Check{Scheme: "tcp", Port: 443, Interval: iv, Timeout: iv / 2, Fails: 3, Passes: 2}, Addr: a}
}

// runProber runs p until the test function returns.
func runProber(t *testing.T, p *probes.Prober) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestProberDeduplicates(t *testing.T) {
	// PR-08, PR-09: one checker per (target, check) however many pools
	// refer to it; checks start when targets are set, without any query.
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		p := probes.NewProber(probes.ProberConfig{Name: "a", Region: "us", Probe: f.probe, Logger: quiet})
		iv := time.Second
		shared := tcpTarget(addr(10), iv)
		other := tcpTarget(addr(11), iv)
		unchecked := probes.Target{Addr: addr(12)}
		p.SetTargets([]probes.Target{shared, other, shared, shared, unchecked})
		runProber(t, p)
		time.Sleep(10 * iv)
		synctest.Wait()
		// One checker's schedule in 10 intervals: the first check within
		// the short interval, the fast confirmation of that first pass,
		// then one check per ±5 %-jittered interval from a random point
		// of the first: 10 to 13. A checker per reference would make
		// about three times as many.
		for _, tg := range []probes.Target{shared, other} {
			if n := f.count(tg.Key()); n < 10 || n > 13 {
				t.Errorf("%s: %d probes in 10 intervals, want 10-13 (one checker)", tg, n)
			}
		}
		if len(f.calls) != 2 {
			t.Errorf("%d distinct targets probed, want 2: %v", len(f.calls), f.calls)
		}
		// Re-setting the same targets (a zone reload) does not add checkers.
		p.SetTargets([]probes.Target{other, shared})
		p.SetTargets([]probes.Target{shared, other})
		before := f.count(shared.Key())
		time.Sleep(10 * iv)
		synctest.Wait()
		if n := f.count(shared.Key()) - before; n < 9 || n > 11 {
			t.Errorf("%s after reloads: %d probes in 10 intervals, want 10±1", shared, n)
		}
	})
}

func TestProberSpreadsChecks(t *testing.T) {
	// PR-08: targets loaded together do not probe in step. The first check
	// of each comes within the short interval (a starting node knows its
	// targets at once), and the regular checks after it spread over the
	// interval.
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		p := probes.NewProber(probes.ProberConfig{Name: "a", Probe: f.probe, Logger: quiet})
		iv := 10 * time.Second
		fast := 100 * time.Millisecond
		var ts []probes.Target
		for i := range 200 {
			ts = append(ts, tcpTarget(netip.AddrFrom4([4]byte{10, 0, byte(i / 256), byte(i)}), iv))
		}
		start := time.Now()
		p.SetTargets(ts)
		runProber(t, p)
		time.Sleep(fast + iv)
		synctest.Wait()
		var buckets [10]int
		f.mu.Lock()
		late := 0
		for k, at := range f.first {
			if at.Sub(start) >= fast {
				late++
			}
			if len(f.times[k]) > 1 {
				buckets[min(int(f.times[k][1].Sub(at)/time.Second), 9)]++
			}
		}
		n := len(f.first)
		f.mu.Unlock()
		t.Logf("second probes per second of the first interval: %v", buckets)
		if n != 200 || late > 0 {
			t.Errorf("%d of 200 targets probed in the first %v, want all", n-late, fast)
		}
		for i, b := range buckets {
			// 20 expected per second; 50 is more than 7 standard deviations away.
			if b > 50 {
				t.Errorf("second %d of the first interval: %d second probes, want about 20", i, b)
			}
		}
	})
}

func TestProberHysteresisAndReports(t *testing.T) {
	// PR-01: exactly Fails failures to go down, Passes successes to come
	// back; each transition is reported at once (a delta report), and the
	// streak the fake probe returned is read at that moment.
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		agg := probes.NewAggregator(probes.AggregatorConfig{Logger: quiet})
		defer agg.Close()
		var mu sync.Mutex
		var deltas []probes.Report
		var streaks []int // f's failure streak (down) or success streak (up) at each delta
		watch := sinkFunc(func(r probes.Report) {
			if r.Full {
				return
			}
			f.mu.Lock()
			k := r.Statuses[0].Key
			st := f.streak[k]
			if r.Statuses[0].Up {
				st = f.okStreak[k]
			}
			f.mu.Unlock()
			mu.Lock()
			deltas = append(deltas, r)
			streaks = append(streaks, st)
			mu.Unlock()
		})
		p := probes.NewProber(probes.ProberConfig{Name: "a", Region: "us", Probe: f.probe, Sink: sinks{watch, agg}, Logger: quiet})
		iv := time.Second
		m1, m2 := tcpTarget(addr(1), iv), tcpTarget(addr(2), iv)
		p.SetTargets([]probes.Target{m1, m2})
		runProber(t, p)
		time.Sleep(2 * iv)
		synctest.Wait()
		if up, known := agg.Verdict(m1.Key()); !up || !known {
			t.Fatalf("m1 before failures: up=%v known=%v", up, known)
		}
		f.setDown(addr(1), true)
		time.Sleep(6 * iv)
		synctest.Wait()
		if up, _ := agg.Verdict(m1.Key()); up {
			t.Fatalf("m1 still up after %d failures", f.count(m1.Key()))
		}
		f.setDown(addr(1), false)
		time.Sleep(6 * iv)
		synctest.Wait()
		if up, _ := agg.Verdict(m1.Key()); !up {
			t.Fatal("m1 still down after 6 successes")
		}
		mu.Lock()
		defer mu.Unlock()
		// First results of m1 and m2 (up), then m1 down, then m1 up.
		if len(deltas) != 4 {
			t.Fatalf("%d delta reports, want 4: %+v", len(deltas), deltas)
		}
		down, up := deltas[2].Statuses[0], deltas[3].Statuses[0]
		if down.Key != m1.Key() || down.Up || down.Reason != "fake failure" || down.RTT != time.Millisecond ||
			deltas[2].Prober != "a" || deltas[2].Region != "us" {
			t.Errorf("down report %+v", deltas[2])
		}
		if streaks[2] != 3 {
			t.Errorf("m1 reported down after %d consecutive failures, want fails=3", streaks[2])
		}
		if up.Key != m1.Key() || !up.Up || streaks[3] != 2 {
			t.Errorf("m1 reported up (%+v) after %d consecutive successes, want passes=2", up, streaks[3])
		}
	})
}

type sinkFunc func(probes.Report)

func (f sinkFunc) Report(r probes.Report) { f(r) }

// sinks sends each report to every sink in turn.
type sinks []probes.Sink

func (s sinks) Report(r probes.Report) {
	for _, k := range s {
		k.Report(r)
	}
}

func TestProberKeepsStateOnReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		col := probestest.NewCollector()
		reg := prometheus.NewRegistry()
		p := probes.NewProber(probes.ProberConfig{Name: "a", Probe: f.probe, Sink: col, Metrics: probes.NewMetrics(reg), Logger: quiet})
		iv := time.Second
		a, b, c := tcpTarget(addr(1), iv), tcpTarget(addr(2), iv), tcpTarget(addr(3), iv)
		f.setDown(addr(1), true)
		p.SetTargets([]probes.Target{a, b})
		runProber(t, p)
		time.Sleep(5 * iv)
		synctest.Wait()
		before := statusOf(p, a.Key())
		if before == nil || before.Up {
			t.Fatalf("a after 5 failures: %+v, want down", before)
		}
		calls := f.count(a.Key())
		if !seriesTargets(t, reg)["gslb_member_up"][b.Key()] {
			t.Fatal("no gslb_member_up series for b before the reload")
		}
		// Reload: a stays (its quorum changed, which is not part of the key),
		// b goes, c comes.
		a2 := a
		a2.Check.Quorum = zones.QuorumAll
		p.SetTargets([]probes.Target{a2, c})
		after := statusOf(p, a.Key())
		if after == nil || after.Up || !after.Since.Equal(before.Since) || after.Quorum != zones.QuorumAll {
			t.Errorf("a after reload: %+v, want down since %v with quorum all", after, before.Since)
		}
		if s := statusOf(p, b.Key()); s != nil {
			t.Errorf("b after reload: %+v, want gone", s)
		}
		// b's series are gone too (PR-11: labels stay bounded by the zones).
		for name, targets := range seriesTargets(t, reg) {
			if targets[b.Key()] {
				t.Errorf("%s still has a series for removed target b", name)
			}
		}
		reps := col.Reports()
		last := reps[len(reps)-1]
		if !last.Full || len(last.Statuses) != 1 || last.Statuses[0].Key != a.Key() {
			t.Errorf("report after reload: %+v, want a full report with a only", last)
		}
		time.Sleep(2 * iv)
		synctest.Wait()
		if statusOf(p, c.Key()) == nil {
			t.Error("c not probed after reload")
		}
		// a kept its schedule: its next probe came one interval (±5%) after
		// the last one before the reload, not at a fresh random offset.
		f.mu.Lock()
		ts := f.times[a.Key()]
		f.mu.Unlock()
		if len(ts) <= calls {
			t.Fatal("a not probed after the reload")
		}
		if gap := ts[calls].Sub(ts[calls-1]); gap < iv*95/100 || gap > iv*105/100 {
			t.Errorf("a's first probe after the reload came %v after the one before, want %v±5%%", gap, iv)
		}
	})
}

func statusOf(p *probes.Prober, key string) *probes.Status {
	for _, s := range p.Statuses() {
		if s.Key == key {
			return &s
		}
	}
	return nil
}

func TestProberBoundedConcurrency(t *testing.T) {
	// PR-10: blackholed targets (every probe runs into its timeout) do not
	// take more than MaxConcurrent slots; probes that cannot start within
	// their interval are counted as missed.
	synctest.Test(t, func(t *testing.T) {
		var inflight, peak, total atomic.Int64
		blackhole := func(ctx context.Context, tg probes.Target) probes.Result {
			n := inflight.Add(1)
			defer inflight.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			total.Add(1)
			select {
			case <-time.After(tg.Check.Timeout):
			case <-ctx.Done():
			}
			return probes.Result{Reason: "timeout"}
		}
		reg := prometheus.NewRegistry()
		p := probes.NewProber(probes.ProberConfig{Name: "a", Probe: blackhole, MaxConcurrent: 4,
			Metrics: probes.NewMetrics(reg), Logger: quiet})
		iv := time.Second
		var ts []probes.Target
		for i := range 100 {
			ts = append(ts, tcpTarget(netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}), iv))
		}
		p.SetTargets(ts)
		runProber(t, p)
		time.Sleep(5 * iv)
		synctest.Wait()
		// 4 slots for 5 s of 0.5 s probes: at most 40 probes.
		if peak.Load() > 4 || total.Load() > 40 {
			t.Errorf("peak %d probes in flight, %d probes in 5 intervals; want at most 4 and 40", peak.Load(), total.Load())
		}
		missed := counterValue(t, reg, "gslb_probe_missed_total")
		t.Logf("100 blackholed targets, 4 slots, 5 intervals: peak %d in flight, %d probes, %v missed", peak.Load(), total.Load(), missed)
		if missed < 100 {
			t.Errorf("gslb_probe_missed_total = %v, want the skipped probes counted (at least 100)", missed)
		}
	})
}

// seriesTargets returns, per metric name, the target label values present.
func seriesTargets(t *testing.T, reg *prometheus.Registry) map[string]map[string]bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "target" {
					if out[mf.GetName()] == nil {
						out[mf.GetName()] = map[string]bool{}
					}
					out[mf.GetName()][l.GetValue()] = true
				}
			}
		}
	}
	return out
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestProberEndToEnd runs a prober and an aggregator in real time against
// a real HTTP server that two pools share.
func TestProberEndToEnd(t *testing.T) {
	srv := probestest.NewServer(t)
	reg := prometheus.NewRegistry()
	m := probes.NewMetrics(reg)
	agg := probes.NewAggregator(probes.AggregatorConfig{Metrics: m, Logger: quiet})
	defer agg.Close()
	changes := agg.Subscribe()
	p := probes.NewProber(probes.ProberConfig{Name: "a", Region: "local", Sink: agg, Metrics: m, Logger: quiet})
	ck := httpCheck("http", srv.Addr.Port(), "/healthz")
	// A timeout longer than the interval is fine for the prober (the next
	// probe waits), and keeps a loaded machine from causing spurious failures.
	ck.Interval, ck.Timeout, ck.Fails, ck.Passes = zones.MinInterval, testTimeout, 2, 2
	tg := probes.Target{Check: ck, Addr: loopback}
	// A second member that stays up: a prober that sees every target down
	// is suspect and would not count.
	other := probestest.NewServer(t)
	ck2 := httpCheck("http", other.Addr.Port(), "/")
	ck2.Interval = zones.MinInterval
	p.SetTargets([]probes.Target{tg, tg, {Check: ck2, Addr: loopback}}) // tg: two pools, one check
	runProber(t, p)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wait := func(what string, want bool) {
		t.Helper()
		for {
			if up, known := agg.Verdict(tg.Key()); known && up == want {
				return
			}
			select {
			case <-changes:
			case <-ctx.Done():
				t.Fatalf("%s: timed out waiting for the verdict on %s", what, tg)
			}
		}
	}
	wait("start", true)
	srv.Set(503, "maintenance")
	wait("server answering 503", false)
	evs := agg.Events()
	var sawProber bool
	for _, e := range evs {
		if e.Prober == "a" && e.To == "down" && e.Reason != "" {
			sawProber = true
			t.Logf("event: %+v", e)
		}
	}
	if !sawProber {
		t.Errorf("no prober transition event in %+v", evs)
	}
	srv.Set(200, "ok")
	wait("server back", true)
	if tr := counterValue(t, reg, "gslb_probe_transitions_total"); tr != 2 {
		t.Errorf("gslb_probe_transitions_total = %v, want 2", tr)
	}
	mfs, _ := reg.Gather()
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"gslb_probe_duration_seconds", "gslb_member_up", "gslb_member_verdict",
		"gslb_probe_transitions_total", "gslb_member_last_change_timestamp_seconds"} {
		if !names[n] {
			t.Errorf("metric %s not exported", n)
		}
	}
}

func TestProberMeasuresRTT(t *testing.T) {
	// Region nodes and client networks get smoothed RTTs in the full reports.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	col := probestest.NewCollector()
	p := probes.NewProber(probes.ProberConfig{Name: "a", Region: "us", Sink: col, ReportEvery: 50 * time.Millisecond, Logger: quiet})
	p.SetNodes([]probes.Node{{Region: "eu", Addr: netip.MustParseAddrPort(ln.Addr().String())}})
	p.MeasureNetwork(netip.MustParsePrefix("127.0.0.0/8"), loopback)
	runProber(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ok := col.WaitFor(ctx, func(rs []probes.Report) bool {
		if len(rs) == 0 {
			return false
		}
		r := rs[len(rs)-1]
		kinds := map[string]bool{}
		for _, x := range r.RTTs {
			if x.EWMA > 0 && x.Min > 0 {
				kinds[x.Kind+" "+x.Name] = true
			}
		}
		return kinds["region eu"] && kinds["network 127.0.0.0/8"]
	})
	if !ok {
		t.Fatalf("no report with RTTs to region eu and 127.0.0.0/8: %+v", p.RTTs())
	}
	t.Logf("RTTs: %+v", p.RTTs())
}
