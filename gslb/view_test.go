package gslb_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/zones"
)

// compileSet builds a Set for records and returns it with its records by
// first label.
func compileSet(t testing.TB, records string, env gslb.Env) (*gslb.Set, map[string]*gslb.Record) {
	t.Helper()
	z, err := zones.Parse([]byte(header+records), "test.example.zone", "", false)
	if err != nil {
		t.Fatal(err)
	}
	zs := []*zones.Zone{z}
	if err := zones.Link(zs); err != nil {
		t.Fatal(err)
	}
	set, err := gslb.Compile(zs, env)
	if err != nil {
		t.Fatal(err)
	}
	recs := map[string]*gslb.Record{}
	for _, r := range z.Records {
		label := r.Name
		for i := range label {
			if label[i] == '.' {
				label = label[:i]
				break
			}
		}
		recs[label] = set.Record(r)
	}
	return set, recs
}

func answerIn(r *gslb.Record, v *gslb.View, f gslb.Family, c string) gslb.Answer {
	return r.Answer(nil, f, client(c), v)
}

// TestViewVerdicts: a verdict, an override or a recovery changes the
// answers through a new View of the same Set, and only the stamps of the
// records whose pools changed; the same health again changes nothing.
func TestViewVerdicts(t *testing.T) {
	set, rec := compileSet(t, `www 30 IN GSLB failover pools=web-eu,web-us,web-ap
api 30 IN GSLB failover pools=cdn-eu,cdn-us
`, gslb.Env{})
	www, api := rec["www"], rec["api"]
	v := set.View(nil, nil)
	if !v.Equal(set.DefaultView()) {
		t.Fatal("a view of an all-up health differs from the default view")
	}
	steps := []struct {
		name      string
		health    gslb.Health
		changed   bool
		www       string
		ttl       uint32
		apiStamps bool // api's stamp stays
	}{
		{"heartbeat: nothing changed", nil, false, "10.2.0.1", 30, true},
		{"verdict: web-eu down", downSet{"10.2.0.1": true, "2001:db8:2::1": true}, true, "10.1.0.1,10.1.0.2", 15, true},
		{"heartbeat with the same verdicts", downSet{"10.2.0.1": true, "2001:db8:2::1": true}, false, "10.1.0.1,10.1.0.2", 15, true},
		{"override: web-us forced down too", downSet{"10.2.0.1": true, "2001:db8:2::1": true, "10.1.0.1": true, "10.1.0.2": true, "2001:db8:1::1": true}, true, "10.3.0.1", 15, true},
		{"cdn-eu down: api moves, www stays", downSet{"10.2.0.1": true, "2001:db8:2::1": true, "10.1.0.1": true, "10.1.0.2": true, "2001:db8:1::1": true, "10.2.9.9": true}, true, "10.3.0.1", 15, false},
		{"recovery", gslb.AllUp{}, true, "10.2.0.1", 30, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			wwwStamp, apiStamp := v.Stamp(www), v.Stamp(api)
			next, changed := v.Update(st.health, nil)
			if changed != st.changed || (next == v) == changed {
				t.Fatalf("Update changed=%v (same view %v), want %v", changed, next == v, st.changed)
			}
			if next.Set() != set {
				t.Fatal("the view is of another Set")
			}
			if got := answerIn(www, next, gslb.IPv4, "192.0.2.1"); addrs(got) != st.www || got.TTL != st.ttl {
				t.Errorf("www/A: %s TTL %d, want %s TTL %d", addrs(got), got.TTL, st.www, st.ttl)
			}
			if (next.Stamp(api) == apiStamp) != st.apiStamps {
				t.Errorf("api stamp %d -> %d: want it kept = %v", apiStamp, next.Stamp(api), st.apiStamps)
			}
			if changed && next.Stamp(www) == wwwStamp && st.apiStamps {
				t.Errorf("www stamp kept at %d though its pools changed", wwwStamp)
			}
			if !changed && (next.Stamp(www) != wwwStamp || !next.Equal(v)) {
				t.Error("an unchanged view changed its stamps")
			}
			v = next
		})
	}
	// The old view still answers as it did: views are immutable.
	if got := answerIn(www, set.DefaultView(), gslb.IPv4, "192.0.2.1"); addrs(got) != "10.2.0.1" {
		t.Errorf("default view: %s", addrs(got))
	}
}

// TestViewLatency: new RTTs move a latency record through a new View;
// reading the same table again changes nothing; a measurement older than
// MaxAge is dropped.
func TestViewLatency(t *testing.T) {
	db := geoDB(t)
	lt := &gslb.LatencyTable{MaxAge: time.Hour}
	set, rec := compileSet(t, "www 30 IN GSLB latency pools=web-eu,web-us,web-ap\n", gslb.Env{Geo: db, Latency: lt})
	r := rec["www"]
	v := set.DefaultView()
	if got := addrs(answerIn(r, v, gslb.IPv4, "198.51.100.9")); got != "10.2.0.1" {
		t.Fatalf("unmeasured DE client: %s, want geo's eu-west", got)
	}
	if next, changed := v.Update(nil, lt); changed || next != v {
		t.Fatal("an unchanged RTT table made a new view")
	}
	net := netip.MustParsePrefix("198.51.100.0/24")
	lt.Set(net, map[string]time.Duration{"eu-west": 40 * time.Millisecond, "us-east": 20 * time.Millisecond}, time.Now())
	next, changed := v.Update(nil, lt)
	if !changed {
		t.Fatal("a new best region did not change the view")
	}
	if next.Stamp(r) <= v.Stamp(r) {
		t.Error("the latency record's stamp did not grow")
	}
	if a := answerIn(r, next, gslb.IPv4, "198.51.100.9"); addrs(a) != "10.1.0.1,10.1.0.2" || a.Scope != 24 {
		t.Fatalf("measured: %s scope %d, want us-east scope 24", addrs(a), a.Scope)
	}
	if a := answerIn(r, v, gslb.IPv4, "198.51.100.9"); addrs(a) != "10.2.0.1" {
		t.Errorf("the old view changed: %s", addrs(a))
	}
	// Same RTTs again: the table moved, the orders did not.
	lt.Set(net, map[string]time.Duration{"eu-west": 40 * time.Millisecond, "us-east": 20 * time.Millisecond}, time.Now())
	if again, changed := next.Update(nil, lt); changed || again != next {
		t.Error("the same RTTs made a new view")
	}
	// Expired: geo again.
	lt.Set(net, map[string]time.Duration{"eu-west": 40 * time.Millisecond, "us-east": 20 * time.Millisecond}, time.Now().Add(-2*time.Hour))
	old, changed := next.Update(nil, lt)
	if !changed || addrs(answerIn(r, old, gslb.IPv4, "198.51.100.9")) != "10.2.0.1" {
		t.Errorf("an expired measurement still answers: changed=%v %s", changed, addrs(answerIn(r, old, gslb.IPv4, "198.51.100.9")))
	}
}

// TestAnswerAllocs: answering allocates nothing, whatever the policy, with
// a view where some members are down.
func TestAnswerAllocs(t *testing.T) {
	db := geoDB(t)
	lt := &gslb.LatencyTable{}
	lt.Set(netip.MustParsePrefix("198.51.100.0/24"), map[string]time.Duration{"eu-west": 9 * time.Millisecond}, time.Now())
	set, rec := compileSet(t, benchRecords, gslb.Env{Geo: db, Latency: lt})
	dst := make([]netip.Addr, 0, 16)
	for _, h := range []downSet{{"10.1.0.2": true}, {"10.2.0.1": true, "2001:db8:2::1": true}} {
		v := set.View(h, lt)
		for name, r := range rec {
			for _, c := range []string{"198.51.100.7", "192.0.2.1", "2001:db8::1"} {
				cl := client(c)
				if n := testing.AllocsPerRun(100, func() { r.Answer(dst[:0], gslb.IPv4, cl, v) }); n != 0 {
					t.Errorf("%s for %s with %v down: %.1f allocations per answer", name, c, h, n)
				}
			}
		}
	}
}

// BenchmarkView measures building a view and an Update that finds nothing
// changed (a heartbeat), for the benchmark zone.
func BenchmarkView(b *testing.B) {
	set, _ := compileSet(b, benchRecords, gslb.Env{})
	h := downSet{"10.1.0.2": true}
	b.Run("build", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			set.View(h, nil)
		}
	})
	b.Run("heartbeat", func(b *testing.B) {
		v := set.View(h, nil)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, changed := v.Update(h, nil); changed {
				b.Fatal("changed")
			}
		}
	})
}
