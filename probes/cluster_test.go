package probes_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gslbd/gslb/probes"
	"github.com/gslbd/gslb/probes/probestest"
	"github.com/gslbd/gslb/zones"
)

// blocker wraps a Checker: probes of blocked ports go to a closed port
// instead, which is how a prober on the wrong side of a partition sees them.
type blocker struct {
	c      *probes.Checker
	closed uint16
	mu     sync.Mutex
	ports  map[uint16]bool
	all    bool
}

func (b *blocker) probe(ctx context.Context, t probes.Target) probes.Result {
	b.mu.Lock()
	blocked := b.all || b.ports[t.Check.Port]
	b.mu.Unlock()
	if blocked {
		t.Check.Port = b.closed
	}
	return b.c.Probe(ctx, t)
}

func (b *blocker) set(all bool, ports ...uint16) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.all = all
	b.ports = map[uint16]bool{}
	for _, p := range ports {
		b.ports[p] = true
	}
}

// TestClusterOfThreeProbers runs three real probers against real servers
// into one aggregator, in real time: a partitioned prober leaves the
// verdicts alone, two of three seeing a member down take it down, and a
// prober that stops reporting ages out.
func TestClusterOfThreeProbers(t *testing.T) {
	// PR-05, PR-06, PR-07
	s1, s2 := probestest.NewServer(t), probestest.NewServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()

	agg := probes.NewAggregator(probes.AggregatorConfig{Logger: quiet})
	defer agg.Close()
	changes := agg.Subscribe()
	// Every report may change a prober's standing without changing a
	// verdict; the waits below re-check after each.
	reported := make(chan struct{}, 1)
	sink := sinks{agg, sinkFunc(func(probes.Report) {
		select {
		case reported <- struct{}{}:
		default:
		}
	})}
	var targets []probes.Target
	for _, s := range []*probestest.Server{s1, s2} {
		ck := httpCheck("http", s.Addr.Port(), "/")
		ck.Interval, ck.Fails, ck.Passes = zones.MinInterval, 1, 1
		targets = append(targets, probes.Target{Check: ck, Addr: loopback})
	}
	k1, k2 := targets[0].Key(), targets[1].Key()
	checker := probes.NewChecker(probes.CheckerConfig{})
	views := map[string]*blocker{}
	stop := map[string]func(){}
	for _, name := range []string{"a", "b", "c"} {
		views[name] = &blocker{c: checker, closed: closed}
		p := probes.NewProber(probes.ProberConfig{Name: name, Region: "r-" + name, Sink: sink,
			ReportEvery: 200 * time.Millisecond, Probe: views[name].probe, Logger: quiet})
		p.SetTargets(targets)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { p.Run(ctx); close(done) }()
		stop[name] = func() { cancel(); <-done }
		t.Cleanup(stop[name])
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitFor := func(what string, ok func([]probes.KeyView) bool) {
		t.Helper()
		for !ok(agg.Snapshot()) {
			select {
			case <-changes:
			case <-reported:
			case <-ctx.Done():
				t.Fatalf("%s: timed out; snapshot %+v", what, agg.Snapshot())
			}
		}
	}
	view := func(kvs []probes.KeyView, key, prober string) (probes.KeyView, probes.ProberView, bool) {
		for _, kv := range kvs {
			if kv.Key == key {
				for _, pv := range kv.Probers {
					if pv.Prober == prober {
						return kv, pv, true
					}
				}
				return kv, probes.ProberView{}, false
			}
		}
		return probes.KeyView{}, probes.ProberView{}, false
	}

	// Every prober has reported both members up first: a prober that
	// sees everything down counts while it is the only one heard from (a
	// node alone), so c is cut off only once a and b are there.
	waitFor("every prober reporting", func(kvs []probes.KeyView) bool {
		for _, k := range []string{k1, k2} {
			for _, p := range []string{"a", "b", "c"} {
				if _, pv, ok := view(kvs, k, p); !ok || !pv.Up {
					return false
				}
			}
		}
		return true
	})
	// c is cut off: it sees both members down and is suspect.
	views["c"].set(true)
	waitFor("c partitioned", func(kvs []probes.KeyView) bool {
		for _, k := range []string{k1, k2} {
			_, pc, okc := view(kvs, k, "c")
			_, pa, oka := view(kvs, k, "a")
			_, pb, okb := view(kvs, k, "b")
			if !okc || !oka || !okb || !pc.Suspect || pc.Up || !pa.Up || !pb.Up {
				return false
			}
		}
		return true
	})
	for _, k := range []string{k1, k2} {
		if up, known := agg.Verdict(k); !up || !known {
			t.Errorf("%s with c partitioned: up=%v known=%v, want up", k, up, known)
		}
	}
	for _, e := range agg.Events() {
		if e.Prober == "" && e.To == "down" {
			t.Errorf("cluster verdict went down while one prober was partitioned: %+v", e)
		}
	}

	// c heals; then a and b lose s1: two of three see it down.
	views["c"].set(false)
	waitFor("c healed", func(kvs []probes.KeyView) bool {
		_, pv, ok := view(kvs, k1, "c")
		return ok && pv.Up && !pv.Suspect
	})
	views["a"].set(false, s1.Addr.Port())
	views["b"].set(false, s1.Addr.Port())
	waitFor("s1 down for a and b", func([]probes.KeyView) bool {
		up, known := agg.Verdict(k1)
		return known && !up
	})
	if up, _ := agg.Verdict(k2); !up {
		t.Error("s2 went down with s1")
	}

	// b stops reporting: after 3 report periods only a (down) and c (up)
	// count, a tie, which majority keeps up.
	stop["b"]()
	waitFor("b aged out", func(kvs []probes.KeyView) bool {
		_, pb, ok := view(kvs, k1, "b")
		up, _ := agg.Verdict(k1)
		return ok && !pb.Fresh && up
	})
}
