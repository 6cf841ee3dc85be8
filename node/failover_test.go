package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/probes"
	"github.com/gslbd/gslb/store"
)

const failoverZone = `$ORIGIN example.com.
@ IN SOA ns1 hostmaster 1 3600 600 1209600 60
@ IN NS ns1
ns1 IN A 192.0.2.53
$REGION us-east lat=39 lon=-77
$REGION eu-west lat=53 lon=-6
$POOL web-us region=us-east members=192.0.2.10,192.0.2.11 check=http://:80/health
$POOL web-eu region=eu-west members=198.51.100.10 check=http://:80/health
$POOL proxy-eu region=us-east members=127.0.0.32 check=tcp://:8080
$POOL plain region=eu-west members=198.51.100.20
www 30 IN GSLB failover pools=web-eu,web-us
`

// failoverNode is a Node with just what the failover hints use: zones, a
// prober whose probes the test answers, and a cluster config.
func failoverNode(t *testing.T, probe func(context.Context, probes.Target) probes.Result) *Node {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n := &Node{name: "us-east", log: log, cfg: &Config{Region: "us-east", Cluster: &ClusterConfig{Peers: []PeerConfig{
		{ID: "us-east", Raft: "127.0.0.31:7000", Region: "us-east"},
		{ID: "eu-west", Raft: "127.0.0.32:7000", Region: "eu-west", DNS: "127.0.0.32:53"},
	}}}}
	n.loader = &dnsserver.Loader{Log: log}
	if _, errs := n.loader.LoadSources([]dnsserver.Source{{Name: "test", Origin: "example.com.", Data: []byte(failoverZone)}}); len(errs) > 0 {
		t.Fatal(errs)
	}
	agg := probes.NewAggregator(probes.AggregatorConfig{Logger: log})
	t.Cleanup(agg.Close)
	n.health = &health{agg: agg, prober: probes.NewProber(probes.ProberConfig{Name: n.name, Probe: probe, Sink: agg, Logger: log})}
	n.health.prober.SetTargets(probes.TargetsFromZones(n.loader.Zones()...))
	return n
}

func keyOf(n *Node, pool string, member string) string {
	for _, z := range n.loader.Zones() {
		for _, p := range z.Pools {
			if p.Name == pool {
				return probes.Target{Check: p.Check, Addr: netip.MustParseAddr(member)}.Key()
			}
		}
	}
	return ""
}

func TestFrontedKeys(t *testing.T) {
	n := failoverNode(t, nil)
	for _, tc := range []struct {
		name   string
		region string
		addrs  []string
		want   []string // pool/member
	}{
		{"a region's pools", "eu-west", nil, []string{"web-eu/198.51.100.10"}},
		{"pools with a member at the node's address", "", []string{"127.0.0.32"}, []string{"proxy-eu/127.0.0.32"}},
		{"both", "eu-west", []string{"127.0.0.32"}, []string{"web-eu/198.51.100.10", "proxy-eu/127.0.0.32"}},
		{"unchecked pools are left out", "", []string{"198.51.100.20"}, nil},
		{"nothing fronted", "ap-south", []string{"203.0.113.1"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addrs := map[netip.Addr]bool{}
			for _, a := range tc.addrs {
				addrs[netip.MustParseAddr(a)] = true
			}
			var want []string
			for _, pm := range tc.want {
				pool, member, _ := strings.Cut(pm, "/")
				want = append(want, keyOf(n, pool, member))
			}
			got := n.frontedKeys(tc.region, addrs)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("frontedKeys(%q, %v) = %v, want %v", tc.region, tc.addrs, got, want)
			}
		})
	}
}

func TestDisagreeingTransitions(t *testing.T) {
	// Another prober's committed transition re-checks a member when it
	// disagrees with this prober's view, once per transition; this node's
	// own transitions never do.
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		checks := map[string]int{}
		n := failoverNode(t, func(_ context.Context, tg probes.Target) probes.Result {
			mu.Lock()
			defer mu.Unlock()
			checks[tg.Key()]++
			return probes.Result{Up: true, Reason: "HTTP 200"}
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.health.prober.Run(ctx) }()
		defer func() { cancel(); <-done }()
		time.Sleep(time.Second) // every target's first check
		synctest.Wait()
		k := keyOf(n, "web-eu", "198.51.100.10")
		t0 := time.Now()
		down := store.Transition{Prober: "eu-west", Key: k, Up: false, At: t0}
		for _, tc := range []struct {
			name string
			ts   []store.Transition
			want []string
		}{
			{"down where this prober sees up", []store.Transition{down}, []string{k}},
			{"the same transition again", []store.Transition{down}, nil},
			{"this node's own", []store.Transition{{Prober: "us-east", Key: k, Up: false, At: t0.Add(time.Second)}}, nil},
			{"up, as this prober sees it", []store.Transition{{Prober: "eu-west", Key: k, Up: true, At: t0.Add(2 * time.Second)}}, nil},
			{"down again, later", []store.Transition{{Prober: "eu-west", Key: k, Up: false, At: t0.Add(3 * time.Second)}}, []string{k}},
			{"a member this prober has no view of", []store.Transition{{Prober: "eu-west", Key: "unknown", Up: true, At: t0}}, []string{"unknown"}},
		} {
			var got []string
			for _, tr := range n.disagreeing(tc.ts) {
				got = append(got, tr.Key)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s: disagreeing = %v, want %v", tc.name, got, tc.want)
			}
		}
		// And the hint is a check at once.
		mu.Lock()
		before := checks[k]
		mu.Unlock()
		if got := n.disagreeing([]store.Transition{{Prober: "eu-west", Key: k, Up: false, At: t0.Add(4 * time.Second)}}); len(got) != 1 {
			t.Fatalf("a newer disagreeing transition: %v", got)
		}
		n.health.prober.CheckNow(k)
		synctest.Wait()
		mu.Lock()
		after := checks[k]
		mu.Unlock()
		if after != before+1 {
			t.Errorf("checks of %s after the hint: %d, want %d", k, after, before+1)
		}
	})
}

func TestToldCountsBeforeCommit(t *testing.T) {
	// CH-05, PR-05 (issue 16): the survivors of a dead Raft leader's region hear each
	// other's transitions straight (store.Tell) while nothing commits. A
	// told transition counts in this node's verdicts at once and re-checks
	// the member when it disagrees; this node's own batch, echoed back,
	// changes nothing.
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		checks := map[string]int{}
		var k string
		n := failoverNode(t, func(_ context.Context, tg probes.Target) probes.Result {
			mu.Lock()
			defer mu.Unlock()
			checks[tg.Key()]++
			if tg.Key() == k {
				return probes.Result{Reason: "connection refused", Refused: true}
			}
			return probes.Result{Up: true, Reason: "HTTP 200"}
		})
		mu.Lock()
		k = keyOf(n, "web-eu", "198.51.100.10")
		mu.Unlock()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.health.prober.Run(ctx) }()
		defer func() { cancel(); <-done }()
		time.Sleep(time.Second) // every target's first checks
		synctest.Wait()
		if own, ok := n.health.prober.Status(k); !ok || own.Up {
			t.Fatalf("this prober's view of %s: %+v, want down", k, own)
		}
		// Two other probers, committed, see it up.
		now := time.Now()
		other := keyOf(n, "web-us", "192.0.2.11")
		for _, p := range []string{"eu-west", "ap-south"} {
			n.health.agg.Report(probes.Report{Prober: p, Region: p, Time: now.Add(-time.Second), Every: defaultEvery, Full: true,
				Statuses: []probes.Status{{Key: k, Up: true}, {Key: other, Up: true}}})
		}
		if up, known := n.health.agg.Verdict(k); !known || !up {
			t.Fatalf("verdict with one of three probers down: up=%v known=%v, want up", up, known)
		}
		n.told(&store.ReportBatch{Prober: n.name, Transitions: []store.Transition{{Prober: n.name, Key: k, Up: true, At: now}}})
		if up, _ := n.health.agg.Verdict(k); !up {
			t.Fatalf("this node's own batch, told back, changed the verdict")
		}
		mu.Lock()
		before := checks[k]
		mu.Unlock()
		n.told(&store.ReportBatch{Prober: "eu-west", Transitions: []store.Transition{
			{Prober: "eu-west", Region: "eu-west", Key: k, Up: false, At: now, Reason: "connection refused"}}})
		if up, known := n.health.agg.Verdict(k); !known || up {
			t.Errorf("verdict after eu-west told it down: up=%v known=%v, want down (two of three)", up, known)
		}
		synctest.Wait()
		mu.Lock()
		after := checks[k]
		mu.Unlock()
		if after != before {
			t.Errorf("a told transition that agrees with this prober checked it again (%d checks, was %d)", after, before)
		}
		n.told(&store.ReportBatch{Prober: "eu-west", Transitions: []store.Transition{
			{Prober: "eu-west", Region: "eu-west", Key: keyOf(n, "web-us", "192.0.2.10"), Up: false, At: now.Add(time.Millisecond)}}})
		synctest.Wait()
		mu.Lock()
		after = checks[keyOf(n, "web-us", "192.0.2.10")]
		mu.Unlock()
		if after < 2 {
			t.Errorf("a told transition that disagrees with this prober: %d checks of the member, want the first and one at once", after)
		}
		time.Sleep(2 * recheckFor) // the re-checks while it disagrees end
	})
}

func TestTellBatches(t *testing.T) {
	// Transitions that queue up while a batch is being told go out
	// together, at most tellMax in one request, in order, each once: a
	// thousand targets starting make a few requests, not a thousand.
	synctest.Test(t, func(t *testing.T) {
		n := &Node{name: "us-east", log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		f := &reportForwarder{n: n, sent: map[string]bool{}, wake: make(chan struct{}, 1), tellWake: make(chan struct{}, 1)}
		var mu sync.Mutex
		var sizes []int
		var keys []string
		f.tell = func(ctx context.Context, b *store.ReportBatch) error {
			time.Sleep(10 * time.Millisecond) // a round trip
			mu.Lock()
			defer mu.Unlock()
			sizes = append(sizes, len(b.Transitions))
			for _, tr := range b.Transitions {
				keys = append(keys, tr.Key)
			}
			return nil
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { f.tellLoop(ctx); close(done) }()
		var want []string
		report := func(from, to int) {
			r := probes.Report{Prober: n.name, Time: time.Now()}
			for i := from; i < to; i++ {
				k := fmt.Sprintf("k%04d", i)
				r.Statuses = append(r.Statuses, probes.Status{Key: k, Up: true})
				want = append(want, k)
			}
			f.Report(r)
		}
		report(0, 1)
		for i := 1; i < 1200; i += 10 { // while the first one is told
			report(i, i+10)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(keys, want) {
			t.Errorf("told %d keys (first %v), want the %d reported, in order, once", len(keys), keys[:min(3, len(keys))], len(want))
		}
		if len(sizes) > 4 || slices.Max(sizes) > tellMax {
			t.Errorf("requests of %v transitions, want at most 4 of at most %d for %d reports", sizes, tellMax, len(want)/10+1)
		}
	})
}
