package probes_test

import (
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gslbd/gslb/probes"
	"github.com/gslbd/gslb/zones"
	"github.com/prometheus/client_golang/prometheus"
)

const every = 5 * time.Second

var quiet = slog.New(slog.DiscardHandler)

// full builds a full report from prober (in region) with keys listed as
// "key" (up) or "!key" (down).
func full(prober string, keys ...string) probes.Report {
	r := probes.Report{Prober: prober, Region: "r-" + prober, Time: time.Now(), Every: every, Full: true}
	for _, k := range keys {
		up := !strings.HasPrefix(k, "!")
		r.Statuses = append(r.Statuses, probes.Status{Key: strings.TrimPrefix(k, "!"), Up: up, Since: time.Now()})
	}
	return r
}

func wantVerdict(t *testing.T, a *probes.Aggregator, key string, up, known bool) {
	t.Helper()
	if gotUp, gotKnown := a.Verdict(key); gotUp != up || gotKnown != known {
		t.Errorf("Verdict(%q) = %v, %v; want %v, %v", key, gotUp, gotKnown, up, known)
	}
}

// drain empties a coalesced notification channel and reports whether it
// held a signal.
func drain(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestAggregatorColdStart(t *testing.T) {
	// ST-09: no report yet → unknown, which callers treat as up.
	a := probes.NewAggregator(probes.AggregatorConfig{Logger: quiet})
	defer a.Close()
	wantVerdict(t, a, "m1", false, false)
	a.Report(full("a", "m1"))
	wantVerdict(t, a, "m1", true, true)
}

func TestQuorumOnePartitionedProber(t *testing.T) {
	// PR-05, PR-07: three probers, one of which sees everything down (cut
	// off): the verdicts stay up and the odd one is suspect.
	synctest.Test(t, func(t *testing.T) {
		a := probes.NewAggregator(probes.AggregatorConfig{Logger: quiet})
		defer a.Close()
		changes := a.Subscribe()
		a.Report(full("a", "m1", "m2", "m3"))
		a.Report(full("b", "m1", "m2", "m3"))
		a.Report(full("c", "m1", "m2", "m3"))
		drain(changes)
		a.Report(full("c", "!m1", "!m2", "!m3"))
		for _, k := range []string{"m1", "m2", "m3"} {
			wantVerdict(t, a, k, true, true)
		}
		if drain(changes) {
			t.Error("a verdict changed when one prober saw everything down")
		}
		// Even with quorum=all the suspect prober does not count.
		r := full("c", "!m1", "!m2", "!m3")
		for i := range r.Statuses {
			r.Statuses[i].Quorum = zones.QuorumAll
		}
		a.Report(r)
		wantVerdict(t, a, "m1", true, true)
		for _, kv := range a.Snapshot() {
			for _, pv := range kv.Probers {
				if pv.Suspect != (pv.Prober == "c") {
					t.Errorf("%s: prober %s suspect=%v", kv.Key, pv.Prober, pv.Suspect)
				}
			}
		}
		// Once c sees something up again it counts again.
		a.Report(full("c", "!m1", "!m2", "m3"))
		wantVerdict(t, a, "m1", true, true) // 1 of 3 down: still up by majority
	})
}

func TestQuorumTwoOfThreeDown(t *testing.T) {
	// PR-05: with two of three probers seeing a member down it is down.
	synctest.Test(t, func(t *testing.T) {
		a := probes.NewAggregator(probes.AggregatorConfig{Logger: quiet})
		defer a.Close()
		changes := a.Subscribe()
		a.Report(full("a", "m1", "m2"))
		a.Report(full("b", "m1", "m2"))
		a.Report(full("c", "m1", "m2"))
		drain(changes)
		a.Report(full("a", "!m1", "m2"))
		wantVerdict(t, a, "m1", true, true)
		a.Report(full("b", "!m1", "m2"))
		wantVerdict(t, a, "m1", false, true)
		wantVerdict(t, a, "m2", true, true)
		if !drain(changes) {
			t.Error("no change signalled when m1 went down")
		}
		evs := a.Events()
		last := evs[len(evs)-1]
		if last.Prober != "" || last.Key != "m1" || last.From != "up" || last.To != "down" || last.Reason != "1 of 3 probers see it up" {
			t.Errorf("last event %+v, want the cluster verdict on m1 going down", last)
		}
	})
}

func TestSilentProberAgesOut(t *testing.T) {
	// PR-06: a prober silent for 3 intervals drops out of the count.
	synctest.Test(t, func(t *testing.T) {
		a := probes.NewAggregator(probes.AggregatorConfig{Logger: quiet})
		defer a.Close()
		changes := a.Subscribe()
		// m1: a up, b and c down → down. m2 keeps b and c from being suspect.
		a.Report(full("a", "m1", "m2"))
		a.Report(full("b", "!m1", "m2"))
		a.Report(full("c", "!m1", "m2"))
		wantVerdict(t, a, "m1", false, true)
		drain(changes)
		// b's region dies; a and c keep reporting every interval.
		start := time.Now()
		for time.Since(start) < 3*every {
			time.Sleep(every)
			a.Report(full("a", "m1", "m2"))
			a.Report(full("c", "!m1", "m2"))
		}
		wantVerdict(t, a, "m1", false, true) // b is silent for exactly 3 intervals: still counted
		time.Sleep(every / 2)
		synctest.Wait()
		// b dropped: a up, c down, a tie, which majority resolves as up.
		wantVerdict(t, a, "m1", true, true)
		if !drain(changes) {
			t.Error("no change signalled when b aged out")
		}
		for _, kv := range a.Snapshot() {
			for _, pv := range kv.Probers {
				if pv.Fresh != (pv.Prober != "b") {
					t.Errorf("%s: prober %s fresh=%v", kv.Key, pv.Prober, pv.Fresh)
				}
			}
		}
		// b comes back.
		a.Report(full("b", "!m1", "m2"))
		wantVerdict(t, a, "m1", false, true)
	})
}

func TestAllProbersSilentKeepsVerdicts(t *testing.T) {
	// PR-06: if every prober is silent, the last state is kept.
	synctest.Test(t, func(t *testing.T) {
		a := probes.NewAggregator(probes.AggregatorConfig{Logger: quiet})
		defer a.Close()
		a.Report(full("a", "!m1", "m2"))
		a.Report(full("b", "!m1", "m2"))
		time.Sleep(10 * every)
		synctest.Wait()
		wantVerdict(t, a, "m1", false, true)
		wantVerdict(t, a, "m2", true, true)
		if len(a.RTTs()) != 0 {
			t.Errorf("RTTs of silent probers returned: %v", a.RTTs())
		}
	})
}

func TestEveryProberSeesEverythingDown(t *testing.T) {
	// When every fresh prober sees everything down, the suspect probers are
	// all there is and they count: every verdict goes down, and the
	// records apply their empty= mode (fail open by default) instead of
	// freezing the last verdicts (issue 16: a node alone).
	a := probes.NewAggregator(probes.AggregatorConfig{Logger: quiet})
	defer a.Close()
	a.Report(full("a", "m1", "m2"))
	a.Report(full("a", "!m1", "!m2", "!m3"))
	wantVerdict(t, a, "m1", false, true)
	wantVerdict(t, a, "m2", false, true)
	wantVerdict(t, a, "m3", false, true)
	a.Report(full("b", "!m1", "!m2", "!m3"))
	wantVerdict(t, a, "m1", false, true)
	// One member back for b: b is not suspect any more, so only b counts
	// while a stays suspect.
	a.Report(full("b", "!m1", "m2", "!m3"))
	wantVerdict(t, a, "m1", false, true)
	wantVerdict(t, a, "m2", true, true)
	wantVerdict(t, a, "m3", false, true)
}

func TestSuspectIgnoredBesideOthers(t *testing.T) {
	// A suspect prober does not count while another one reports on the key.
	a := probes.NewAggregator(probes.AggregatorConfig{Logger: quiet})
	defer a.Close()
	a.Report(full("a", "m1", "m2"))
	a.Report(full("b", "m1", "m2"))
	a.Report(full("c", "!m1", "!m2"))
	a.Report(full("a", "!m1", "m2"))
	wantVerdict(t, a, "m1", true, true) // a down, b up, c not counted: a tie stays up
	wantVerdict(t, a, "m2", true, true)
}

func TestSilentProberDoesNotCount(t *testing.T) {
	// Two regions killed back to back: the survivor's own view decides as
	// soon as the cluster marks the dead nodes silent, in both directions,
	// instead of their last votes holding the verdicts for 3 report periods.
	synctest.Test(t, func(t *testing.T) {
		a := probes.NewAggregator(probes.AggregatorConfig{Logger: quiet})
		defer a.Close()
		a.Report(full("a", "ma", "mb", "mc"))
		a.Report(full("b", "ma", "mb", "mc"))
		a.Report(full("c", "ma", "mb", "mc"))
		changes := a.Subscribe()
		// a dies; c sees ma down: c down, b up (a tie with a silent)...
		a.SetSilent("a", true)
		a.Report(full("c", "!ma", "mb", "mc"))
		wantVerdict(t, a, "ma", true, true)
		a.Report(full("b", "!ma", "mb", "mc"))
		wantVerdict(t, a, "ma", false, true)
		// ...then b dies: c alone decides, at once.
		a.Report(full("c", "!ma", "!mb", "mc"))
		wantVerdict(t, a, "mb", true, true) // b's last vote still counts
		<-changes
		a.SetSilent("b", true)
		select {
		case <-changes:
		default:
			t.Error("no change signalled when b went silent")
		}
		wantVerdict(t, a, "mb", false, true)
		wantVerdict(t, a, "ma", false, true)
		wantVerdict(t, a, "mc", true, true)
		// a comes back: its votes count again, for up too.
		a.SetSilent("a", false)
		a.Report(full("a", "ma", "mb", "mc"))
		a.Report(full("c", "ma", "!mb", "mc"))
		wantVerdict(t, a, "ma", true, true)
		wantVerdict(t, a, "mb", true, true) // a up, c down, b silent: a tie stays up
		for _, kv := range a.Snapshot() {
			for _, pv := range kv.Probers {
				if pv.Prober == "b" && pv.Fresh {
					t.Errorf("%s: silent prober b shown fresh", kv.Key)
				}
			}
		}
	})
}

func TestAggregatorReportOrderAndRemoval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := probes.NewAggregator(probes.AggregatorConfig{Logger: quiet})
		defer a.Close()
		old := full("a", "m1", "m2")
		time.Sleep(time.Second)
		a.Report(full("a", "!m1", "m2"))
		a.Report(old) // older than the last applied: ignored
		wantVerdict(t, a, "m1", false, true)
		// A delta report changes only what it lists.
		d := full("a", "m1")
		d.Full = false
		a.Report(d)
		wantVerdict(t, a, "m1", true, true)
		wantVerdict(t, a, "m2", true, true)
		// A full report without m2: no prober checks it, the verdict goes.
		a.Report(full("a", "m1"))
		wantVerdict(t, a, "m2", false, false)
	})
}

func TestQuorumRules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		quorum zones.Quorum
		up     []bool // one per prober
		want   bool
	}{
		{"majority 2 of 3 up", zones.QuorumMajority, []bool{true, true, false}, true},
		{"majority 1 of 3 up", zones.QuorumMajority, []bool{true, false, false}, false},
		{"majority tie", zones.QuorumMajority, []bool{true, false}, true},
		{"any 1 of 3 up", zones.QuorumAny, []bool{true, false, false}, true},
		{"any 0 of 3 up", zones.QuorumAny, []bool{false, false, false}, false},
		{"all 2 of 3 up", zones.QuorumAll, []bool{true, true, false}, false},
		{"all 3 of 3 up", zones.QuorumAll, []bool{true, true, true}, true},
		{"2 with 2 of 3 up", 2, []bool{true, false, true}, true},
		{"2 with 1 of 3 up", 2, []bool{false, false, true}, false},
		{"5 with 3 of 3 up", 5, []bool{true, true, true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := probes.NewAggregator(probes.AggregatorConfig{Logger: quiet})
			defer a.Close()
			// m0 is up everywhere so that no prober is suspect.
			for i, up := range tc.up {
				r := full(string(rune('a'+i)), "m0")
				r.Statuses = append(r.Statuses, probes.Status{Key: "m1", Up: up, Quorum: tc.quorum})
				a.Report(r)
			}
			if got, _ := a.Verdict("m1"); got != tc.want {
				t.Errorf("quorum %d with %v: up=%v, want %v", tc.quorum, tc.up, got, tc.want)
			}
		})
	}
}

func TestAggregatorEventsBounded(t *testing.T) {
	a := probes.NewAggregator(probes.AggregatorConfig{MaxEvents: 8, Logger: quiet})
	defer a.Close()
	for i := range 20 {
		st := "m1"
		if i%2 == 1 {
			st = "!m1"
		}
		r := full("a", st, "m2")
		r.Statuses[0].Reason = "step " + string(rune('a'+i))
		a.Report(r)
	}
	evs := a.Events()
	if len(evs) != 8 {
		t.Fatalf("%d events kept, want 8", len(evs))
	}
	if last := evs[len(evs)-1]; last.Key != "m1" || last.To != "down" {
		t.Errorf("newest event %+v, want the cluster verdict on m1 going down", last)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Time.Before(evs[i-1].Time) {
			t.Errorf("events out of order at %d: %v", i, evs)
		}
	}
}

func TestAggregatorMetrics(t *testing.T) {
	// PR-11
	reg := prometheus.NewPedanticRegistry()
	m := probes.NewMetrics(reg)
	a := probes.NewAggregator(probes.AggregatorConfig{Metrics: m, Logger: quiet})
	defer a.Close()
	a.Report(full("a", "!m1", "m2"))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "gslb_member_verdict" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			got[mt.GetLabel()[0].GetValue()] = mt.GetGauge().GetValue()
		}
	}
	if got["m1"] != 0 || got["m2"] != 1 || len(got) != 2 {
		t.Errorf("gslb_member_verdict = %v, want m1 0, m2 1", got)
	}
}

func TestSuspectByDeltaReports(t *testing.T) {
	// The probers send each transition as a delta: c's targets go down one
	// by one, and c turns suspect on the last, which must clear the views it
	// gave while it still counted.
	a := probes.NewAggregator(probes.AggregatorConfig{Logger: quiet})
	defer a.Close()
	a.Report(full("a", "m1", "m2", "m3"))
	a.Report(full("b", "!m1", "m2", "m3"))
	a.Report(full("c", "m1", "m2", "m3"))
	wantVerdict(t, a, "m1", true, true)
	delta := func(k string) probes.Report {
		r := full("c", k)
		r.Full = false
		return r
	}
	a.Report(delta("!m1")) // a up, b down, c down: down
	wantVerdict(t, a, "m1", false, true)
	a.Report(delta("!m2"))
	a.Report(delta("!m3")) // c is suspect now: m1 is a up, b down, a tie
	wantVerdict(t, a, "m1", true, true)
	wantVerdict(t, a, "m2", true, true)
	a.Report(delta("m3")) // c counts again
	wantVerdict(t, a, "m1", false, true)
	wantVerdict(t, a, "m2", true, true)
}
