package gslb_test

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gslbd/gslb/geodata"
	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/zones"
)

// countryRegion adds a region that serves one country, so a Japanese
// client has a country tier (which beats ap-south's continent).
const countryRegion = `$REGION jp-only lat=35.68 lon=139.69 serves=JP
$POOL web-jp region=jp-only members=10.5.0.1
`

// TestExplain checks, for every policy, that the explanation's choice and
// answer are Record.Answer's (same addresses, TTL, scope, SERVFAIL, CNAME),
// that the chosen pool's healthy members are the answer, and the region
// order, its reasons and the scope's reason (ST-01, ST-02, ST-03, ST-05,
// ST-06, ST-07, ST-10, ST-14, DNS-40).
func TestExplain(t *testing.T) {
	db := geoDB(t)
	euDown := downSet{"10.2.0.1": true, "2001:db8:2::1": true}
	allDown := downSet{"10.1.0.1": true, "10.1.0.2": true, "2001:db8:1::1": true, "10.2.0.1": true, "2001:db8:2::1": true,
		"10.3.0.1": true, "10.4.0.1": true, "10.2.9.9": true, "10.1.9.9": true}
	measured := func() *gslb.LatencyTable {
		lt := &gslb.LatencyTable{}
		lt.Set(netip.MustParsePrefix("198.51.100.0/24"), map[string]time.Duration{
			"eu-west": 40 * time.Millisecond, "us-east": 20 * time.Millisecond, "ap-south": 200 * time.Millisecond}, time.Now())
		return lt
	}
	hysteresis := func() *gslb.LatencyTable {
		lt := measured()
		lt.Set(netip.MustParsePrefix("198.51.100.0/24"), map[string]time.Duration{
			"eu-west": 18 * time.Millisecond, "us-east": 20 * time.Millisecond}, time.Now())
		return lt
	}
	for _, tc := range []struct {
		name    string
		record  string
		health  gslb.Health
		latency func() *gslb.LatencyTable
		fam     gslb.Family
		client  string
		// want
		pool, rule string
		order      []string // region order, nil: not checked, [] none
		why0       string   // substring of the first region's reason
		scope      uint8
		scopeWhy   string
		addrs      string // "" not checked
		random     bool
		servfail   bool
		cname      string
		ttl        uint32
		notMeasure bool // a latency record answering as geo
	}{
		{name: "geo continent", record: "www 30 IN GSLB geo pools=web-eu,web-us,web-ap,web-lab\n", fam: gslb.IPv4, client: "198.51.100.7",
			pool: "web-eu", rule: "first healthy in region order", order: []string{"eu-west", "us-east", "ap-south"},
			why0: "first: serves=EU (continent)", scope: 24, scopeWhy: "geo map network 198.51.100.0/24", addrs: "10.2.0.1", ttl: 30},
		{name: "geo nearest region down", record: "www 30 IN GSLB geo pools=web-eu,web-us,web-ap\n", health: euDown, fam: gslb.IPv4, client: "198.51.100.7",
			pool: "web-us", rule: "first healthy in region order", order: []string{"eu-west", "us-east", "ap-south"},
			why0: "serves=EU", scope: 24, addrs: "10.1.0.1,10.1.0.2", ttl: 15},
		{name: "geo serves= prefix beats the country", record: "www 30 IN GSLB geo pools=web-eu,web-us,web-ap,web-lab\n", fam: gslb.IPv4, client: "203.0.113.200",
			pool: "web-lab", rule: "first healthy in region order", why0: "first: serves=203.0.113.128/25 (client prefix)",
			scope: 25, addrs: "10.4.0.1", ttl: 30},
		{name: "geo country beats the continent", record: countryRegion + "www 30 IN GSLB geo pools=web-ap,web-jp\n", fam: gslb.IPv4, client: "203.0.113.5",
			pool: "web-jp", rule: "first healthy in region order", why0: "first: serves=JP (country)", addrs: "10.5.0.1", ttl: 30},
		{name: "geo nothing serves the continent: nearest", record: "www 30 IN GSLB geo pools=web-eu,web-us,web-ap\n", fam: gslb.IPv4, client: "100.64.1.1",
			pool: "web-ap", rule: "first healthy in region order", order: []string{"ap-south", "us-east", "eu-west"}, why0: "first: nearest",
			scope: 16, addrs: "10.3.0.1", ttl: 30},
		{name: "geo unknown client: record order", record: "www 30 IN GSLB geo pools=web-eu,web-us,web-ap\n", fam: gslb.IPv4, client: "8.8.8.8",
			pool: "web-eu", rule: "first healthy in region order", order: []string{}, addrs: "10.2.0.1", ttl: 30},
		{name: "geo AAAA", record: "www 30 IN GSLB geo pools=web-eu,web-us,web-ap\n", fam: gslb.IPv6, client: "2001:db8::1",
			pool: "web-us", rule: "first healthy in region order", why0: "first: serves=SA (continent)", scope: 32, addrs: "2001:db8:1::1", ttl: 30},
		{name: "geo ECS /16 caps the scope", record: "www 30 IN GSLB geo pools=web-eu,web-us,web-ap\n", fam: gslb.IPv4, client: "198.51.0.0/16",
			pool: "web-eu", rule: "first healthy in region order", scope: 16, scopeWhy: "ECS source prefix", addrs: "10.2.0.1", ttl: 30},
		{name: "latency not measured: geo", record: "www 30 IN GSLB latency pools=web-eu,web-us,web-ap\n", latency: func() *gslb.LatencyTable { return &gslb.LatencyTable{} },
			fam: gslb.IPv4, client: "198.51.100.9", pool: "web-eu", rule: "first healthy in region order", why0: "serves=EU", scope: 24,
			addrs: "10.2.0.1", ttl: 30, notMeasure: true},
		{name: "latency measured", record: "www 30 IN GSLB latency pools=web-eu,web-us,web-ap\n", latency: measured,
			fam: gslb.IPv4, client: "198.51.100.9", pool: "web-us", rule: "first healthy in region order", order: []string{"us-east", "eu-west", "ap-south"},
			why0: "first: lowest RTT", scope: 24, scopeWhy: "client network RTTs are kept for", addrs: "10.1.0.1,10.1.0.2", ttl: 30},
		{name: "latency hysteresis keeps the best", record: "www 30 IN GSLB latency pools=web-eu,web-us,web-ap\n", latency: hysteresis,
			fam: gslb.IPv4, client: "198.51.100.9", pool: "web-us", rule: "first healthy in region order", order: []string{"us-east", "eu-west"},
			why0: "kept by hysteresis (eu-west is lower", scope: 24, addrs: "10.1.0.1,10.1.0.2", ttl: 30},
		{name: "failover", record: "www 30 IN GSLB failover pools=web-eu,web-us,web-ap\n", health: euDown, fam: gslb.IPv4, client: "198.51.100.9",
			pool: "web-us", rule: "first healthy in record order", scope: 0, scopeWhy: "does not depend on the client", addrs: "10.1.0.1,10.1.0.2", ttl: 15},
		{name: "weighted draw", record: "www 30 IN GSLB weighted pools=web-us@3,web-eu@1,web-ap@0\n", fam: gslb.IPv4, client: "192.0.2.1",
			rule: "weighted draw", random: true, ttl: 30},
		{name: "weighted sticky", record: "www 30 IN GSLB weighted pools=web-us@3,web-eu@1,web-ap@1 sticky=prefix\n", fam: gslb.IPv4, client: "192.0.2.1",
			pool: "web-eu", rule: "rendezvous hash", scope: 24, scopeWhy: "sticky=prefix", ttl: 30},
		{name: "all", record: "www 30 IN GSLB all pools=web-eu,web-us\n", health: downSet{"10.1.0.1": true}, fam: gslb.IPv4, client: "192.0.2.1",
			rule: "every healthy pool", addrs: "10.2.0.1,10.1.0.2", ttl: 15},
		{name: "empty=servfail", record: "www 30 IN GSLB failover pools=web-eu,web-us empty=servfail\n", health: allDown, fam: gslb.IPv4, client: "192.0.2.1",
			rule: "empty=servfail", servfail: true, ttl: 15},
		{name: "empty=pool", record: "www 30 IN GSLB failover pools=web-eu,web-us empty=pool:web-ap\n", health: allDown, fam: gslb.IPv4, client: "192.0.2.1",
			pool: "web-ap", rule: "empty=pool", addrs: "10.3.0.1", ttl: 15},
		{name: "empty=addr", record: "www 30 IN GSLB failover pools=web-eu,web-us empty=addr:192.0.2.99\n", health: allDown, fam: gslb.IPv4, client: "192.0.2.1",
			rule: "empty=addr", addrs: "192.0.2.99", ttl: 15},
		{name: "fail open", record: "www 30 IN GSLB geo pools=web-eu,web-us\n", health: allDown, fam: gslb.IPv4, client: "192.0.2.1",
			pool: "web-us", rule: "empty=open", addrs: "10.1.0.1,10.1.0.2", scope: 0, ttl: 15},
		{name: "target=cname", record: "www 30 IN GSLB failover pools=cdn-eu,cdn-us target=cname\n", health: downSet{"10.2.9.9": true}, fam: gslb.IPv4, client: "192.0.2.1",
			pool: "cdn-us", rule: "first healthy in record order", cname: "us.cdn.example.net.", ttl: 15},
		{name: "answers=1 draws a member", record: "www 30 IN GSLB failover pools=web-us answers=1\n", fam: gslb.IPv4, client: "192.0.2.1",
			pool: "web-us", rule: "first healthy in record order", random: true, ttl: 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := gslb.Env{Geo: db, Health: tc.health}
			if tc.latency != nil {
				env.Latency = tc.latency()
			}
			r := compile(t, tc.record, env)
			c := *client(tc.client)
			e := r.Explain(tc.fam, c, db)
			q := tc.client + "/" + e.Type
			a := r.Answer(nil, tc.fam, &c, nil)

			if e.Choice.Pool != tc.pool || e.Choice.Rule != tc.rule {
				t.Errorf("%s: choice %q by %q (%s), want %q by %q", q, e.Choice.Pool, e.Choice.Rule, e.Choice.Why, tc.pool, tc.rule)
			}
			if e.Answer.TTL != a.TTL || e.Answer.TTL != tc.ttl {
				t.Errorf("%s: TTL %d, Answer's %d, want %d", q, e.Answer.TTL, a.TTL, tc.ttl)
			}
			if e.Answer.Scope != a.Scope || e.Answer.Scope != tc.scope && tc.scope != 0 {
				t.Errorf("%s: scope %d, Answer's %d, want %d", q, e.Answer.Scope, a.Scope, tc.scope)
			}
			if e.Answer.ServFail != a.ServFail || e.Answer.ServFail != tc.servfail {
				t.Errorf("%s: servfail %v, Answer's %v, want %v", q, e.Answer.ServFail, a.ServFail, tc.servfail)
			}
			if e.Answer.CNAME != a.CNAME || e.Answer.CNAME != tc.cname {
				t.Errorf("%s: cname %q, Answer's %q, want %q", q, e.Answer.CNAME, a.CNAME, tc.cname)
			}
			if !strings.Contains(e.Answer.ScopeWhy, tc.scopeWhy) {
				t.Errorf("%s: scope reason %q, want it to contain %q", q, e.Answer.ScopeWhy, tc.scopeWhy)
			}
			if e.Answer.Random != tc.random {
				t.Errorf("%s: random %v, want %v", q, e.Answer.Random, tc.random)
			}
			if !tc.random {
				if got, want := join(e.Answer.Addrs), join(a.Addrs); got != want {
					t.Errorf("%s: explained answer %s, Answer %s", q, got, want)
				}
				if tc.addrs != "" && join(e.Answer.Addrs) != tc.addrs {
					t.Errorf("%s: answer %s, want %s", q, join(e.Answer.Addrs), tc.addrs)
				}
			}
			// The chosen pool's healthy members of the family are the answer.
			if e.Choice.Pool != "" && tc.cname == "" && tc.rule != "empty=pool" && tc.rule != "empty=open" {
				var healthy []netip.Addr
				for _, p := range e.Pools {
					if p.Pool != e.Choice.Pool {
						continue
					}
					if !p.Up || !p.Candidate {
						t.Errorf("%s: chosen pool %s up=%v candidate=%v", q, p.Pool, p.Up, p.Candidate)
					}
					for _, m := range p.Members {
						if m.Up && m.Family {
							healthy = append(healthy, m.Addr)
						}
					}
				}
				if tc.random {
					if len(a.Addrs) != 1 || !slices.Contains(healthy, a.Addrs[0]) {
						t.Errorf("%s: answer %s is not one of the chosen pool's healthy members %s", q, join(a.Addrs), join(healthy))
					}
				} else if join(healthy) != join(a.Addrs) {
					t.Errorf("%s: chosen pool's healthy members %s, answer %s", q, join(healthy), join(a.Addrs))
				}
			}
			if tc.order != nil || tc.why0 != "" {
				if e.Order == nil {
					t.Fatalf("%s: no region order", q)
				}
				var got []string
				for _, rs := range e.Order.Regions {
					got = append(got, rs.Region)
				}
				if tc.order != nil && strings.Join(got, ",") != strings.Join(tc.order, ",") {
					t.Errorf("%s: region order %v, want %v", q, got, tc.order)
				}
				if tc.why0 != "" && (len(e.Order.Regions) == 0 || !strings.Contains(e.Order.Regions[0].Why, tc.why0)) {
					t.Errorf("%s: first region's reason %+v, want it to contain %q", q, e.Order.Regions, tc.why0)
				}
			}
			if e.Latency != nil && e.Latency.Measured == tc.notMeasure {
				t.Errorf("%s: latency measured %v: %+v", q, e.Latency.Measured, e.Latency)
			}
			if len(e.Notes) > 0 {
				t.Errorf("%s: notes %q", q, e.Notes)
			}
		})
	}
}

// TestExplainDistances: a located client gets each region's great-circle
// distance, sorted; the ordering reasons name the tier.
func TestExplainDistances(t *testing.T) {
	db := geoDB(t)
	r := compile(t, "www 30 IN GSLB geo pools=web-eu,web-us,web-ap,web-lab\n", gslb.Env{Geo: db})
	e := r.Explain(gslb.IPv4, *client("192.0.2.7"), db)
	if e.Client.Country != "US" || e.Client.Continent != "NA" || !e.Client.Located || e.Client.Network != "192.0.2.0/24" {
		t.Errorf("client facts %+v", e.Client)
	}
	var last float64
	for i, rs := range e.Order.Regions {
		if rs.DistanceKm <= last {
			t.Errorf("region %d %s: distance %.1f km after %.1f", i, rs.Region, rs.DistanceKm, last)
		}
		last = rs.DistanceKm
	}
	// Kansas (38,-97) to Ashburn (39.04,-77.49): about 1,690 km.
	if d := e.Order.Regions[0].DistanceKm; e.Order.Regions[0].Region != "us-east" || d < 1600 || d > 1800 {
		t.Errorf("first region %+v, want us-east at about 1690 km", e.Order.Regions[0])
	}
	for _, p := range e.Pools {
		if p.Pool == "web-lab" && (p.Candidate || !strings.Contains(p.Why, "not in its order")) {
			t.Errorf("web-lab (no coordinates, does not serve the client): %+v", p)
		}
	}
}

// TestExplainWeighted: a random weighted record states each pool's
// probability instead of one draw; a weight-0 pool is a backup.
func TestExplainWeighted(t *testing.T) {
	r := compile(t, "www 30 IN GSLB weighted pools=web-us@3,web-eu@1,web-ap@0\n", gslb.Env{})
	e := r.Explain(gslb.IPv4, *client("192.0.2.1"), nil)
	got := map[string]float64{}
	for _, p := range e.Pools {
		got[p.Pool] = p.Probability
	}
	if want := map[string]float64{"web-us": 0.75, "web-eu": 0.25, "web-ap": 0}; !reflect.DeepEqual(got, want) {
		t.Errorf("probabilities %v, want %v", got, want)
	}
	if len(e.Answer.Addrs) != 0 || !e.Answer.Random || !strings.Contains(e.Choice.Why, "web-us 75.0%, web-eu 25.0%") {
		t.Errorf("random answer: %+v, choice %+v", e.Answer, e.Choice)
	}
	r = compile(t, "www 30 IN GSLB weighted pools=web-us@3,web-eu@1,web-ap@0\n", gslb.Env{Health: downSet{"10.1.0.1": true, "10.1.0.2": true, "10.2.0.1": true}})
	e = r.Explain(gslb.IPv4, *client("192.0.2.1"), nil)
	for _, p := range e.Pools {
		if p.Pool == "web-ap" && (p.Probability != 1 || !strings.Contains(p.Why, "backup")) {
			t.Errorf("web-ap as the only up pool: %+v", p)
		}
	}
	// Deterministic: two explanations of a sticky record are equal.
	r = compile(t, "www 30 IN GSLB weighted pools=web-us@3,web-eu@1 sticky=prefix\n", gslb.Env{})
	a, b := r.Explain(gslb.IPv4, *client("198.51.100.77"), nil), r.Explain(gslb.IPv4, *client("198.51.100.77"), nil)
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Errorf("sticky explanation differs between calls:\n%s\n%s", ja, jb)
	}
	if !strings.Contains(a.Choice.Why, "198.51.100.0/24") {
		t.Errorf("sticky choice does not name the hashed network: %s", a.Choice.Why)
	}
}

// TestExplainWeightedFallbackAAAA: the AAAA question of a weighted
// family=fallback record is explained without a panic, whatever the
// policy answers.
func TestExplainWeightedFallbackAAAA(t *testing.T) {
	r := compile(t, "www 30 IN GSLB weighted pools=web-us@3,web-eu@1 family=fallback\n", gslb.Env{})
	e := r.Explain(gslb.IPv6, *client("2001:db8::1"), nil)
	if len(e.Notes) == 0 && e.Choice.Rule != "weighted draw" {
		t.Errorf("choice %+v", e.Choice)
	}
}

func join(a []netip.Addr) string {
	var s []string
	for _, x := range a {
		s = append(s, x.String())
	}
	return strings.Join(s, ",")
}

// TestExplainLatencyRow: the RTT row is the table's now; when it moved on
// after the Set was built, the order (the Set's) says so (ST-06).
func TestExplainLatencyRow(t *testing.T) {
	db := geoDB(t)
	lt := &gslb.LatencyTable{}
	net := netip.MustParsePrefix("198.51.100.0/24")
	lt.Set(net, map[string]time.Duration{"eu-west": 40 * time.Millisecond, "us-east": 20 * time.Millisecond}, time.Now())
	r := compile(t, "www 30 IN GSLB latency pools=web-eu,web-us,web-ap\n", gslb.Env{Geo: db, Latency: lt})
	e := r.Explain(gslb.IPv4, *client("198.51.100.9"), db)
	if l := e.Latency; !l.Measured || l.Best != "us-east" || len(l.RTTs) != 2 || l.RTTs[0] != (gslb.RegionRTT{Region: "us-east", RTT: 20 * time.Millisecond}) || l.Network != "198.51.100.0/24" {
		t.Errorf("latency row %+v", l)
	}
	if e.Order.Regions[0].RTT != 20*time.Millisecond || e.Order.Regions[1].RTT != 40*time.Millisecond {
		t.Errorf("order RTTs %+v", e.Order.Regions)
	}
	lt.Set(net, map[string]time.Duration{"eu-west": 5 * time.Millisecond, "us-east": 20 * time.Millisecond}, time.Now())
	e = r.Explain(gslb.IPv4, *client("198.51.100.9"), db)
	if e.Choice.Pool != "web-us" || !strings.Contains(e.Order.Regions[0].Why, "the table's best is now eu-west") {
		t.Errorf("after the table moved on: choice %s, first region %+v", e.Choice.Pool, e.Order.Regions[0])
	}
}

// TestExplainWeightedOneUp: a weighted record with one pool up answers
// the same every time, and the explanation says which.
func TestExplainWeightedOneUp(t *testing.T) {
	r := compile(t, "www 30 IN GSLB weighted pools=web-us@3,web-eu@1\n", gslb.Env{Health: downSet{"10.2.0.1": true}})
	e := r.Explain(gslb.IPv4, *client("192.0.2.1"), nil)
	if e.Answer.Random || join(e.Answer.Addrs) != "10.1.0.1,10.1.0.2" || e.Choice.Pool != "web-us" || !strings.Contains(e.Choice.Why, "only web-us is up") {
		t.Errorf("answer %+v choice %+v", e.Answer, e.Choice)
	}
	if got := join(r.Answer(nil, gslb.IPv4, client("192.0.2.1"), nil).Addrs); got != join(e.Answer.Addrs) {
		t.Errorf("Answer %s, explained %s", got, join(e.Answer.Addrs))
	}
}

// BenchmarkExplain: one explanation of a geo record with the embedded
// country database (the admin API's cost; DNS never calls it).
func BenchmarkExplain(b *testing.B) {
	db, err := geodata.Default()
	if err != nil {
		b.Fatal(err)
	}
	z, err := zones.Parse([]byte(header+"www 30 IN GSLB geo pools=web-eu,web-us,web-ap,web-lab\n"), "bench.example.zone", "", false)
	if err != nil {
		b.Fatal(err)
	}
	set, err := gslb.Compile([]*zones.Zone{z}, gslb.Env{Geo: db, Health: downSet{"10.2.0.1": true}})
	if err != nil {
		b.Fatal(err)
	}
	r := set.Record(z.Records[0])
	c := gslb.Client{Addr: netip.MustParseAddr("81.2.69.142"), Bits: 32}
	b.ReportAllocs()
	for b.Loop() {
		r.Explain(gslb.IPv4, c, db)
	}
}
