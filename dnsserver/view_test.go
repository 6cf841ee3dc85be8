package dnsserver_test

import (
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/dnsserver/dnstest"
	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/zones"
)

const viewZone = `$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 1209600 60
@ IN NS ns1
ns1 IN A 192.0.2.53
static IN A 192.0.2.1
$REGION us-east lat=39.04 lon=-77.49 serves=NA
$REGION eu-west lat=53.35 lon=-6.26  serves=EU
$POOL web-us region=us-east members=192.0.2.10
$POOL web-eu region=eu-west members=198.51.100.10
$POOL api-a  region=us-east members=192.0.2.20
$POOL api-b  region=eu-west members=198.51.100.20
www   30 IN GSLB failover pools=web-us,web-eu
alias    IN CNAME www
api   30 IN GSLB failover pools=api-a,api-b
near  30 IN GSLB latency pools=web-us,web-eu
`

// down is a Health with the listed members down (a verdict or an
// override: the server cannot tell them apart).
type down map[string]bool

func (d down) Up(_ *zones.Pool, a netip.Addr) (bool, bool) { return !d[a.String()], true }

// cacheCounts are the reply cache's counters.
type cacheCounts struct{ hits, misses, stale uint64 }

func countsOf(s *dnsserver.Server) cacheCounts {
	return cacheCounts{s.CacheHits(), s.CacheMisses(), s.CacheStale()}
}

// ask sends qname/A over UDP and returns the answer as "rdata/ttl" of the
// last record (a CNAME chain's end), or the rcode's name.
func ask(t *testing.T, addr, qname string) string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(qname, dns.TypeA)
	return answerOf(dnstest.Exchange(t, addr, "udp", m))
}

// askGeneral is ask on the general (miekg/dns) path, whose replies the
// reply cache keeps (generalPath).
func askGeneral(t *testing.T, addr, qname string) string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(qname, dns.TypeA)
	return answerOf(dnstest.Exchange(t, addr, "udp", generalPath(m)))
}

// answerOf is ask's summary of reply r.
func answerOf(r *dns.Msg) string {
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
		return dns.RcodeToString[r.Rcode]
	}
	a, ok := r.Answer[len(r.Answer)-1].(*dns.A)
	if !ok {
		return r.Answer[len(r.Answer)-1].String()
	}
	return a.A.String() + "/" + itoa(a.Hdr.Ttl)
}

func itoa(n uint32) string {
	var b [10]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// TestRefresh: verdicts and overrides change the answers through Refresh
// with the same Snapshot; a heartbeat changes nothing; the reply cache
// keeps the static answers, NXDOMAIN and the GSLB answers whose pools did
// not change, and lets only the others go stale (CNAME chains included).
// The queries take the general path (generalPath): the wire fast path
// answers afresh each time and keeps no cache.
func TestRefresh(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "view.example.zone", viewZone)
	srv := dnstest.StartDir(t, dir, dnsserver.Config{}, gslb.Env{}, true)
	snap := srv.Snapshot()
	names := []string{"static", "nope", "www", "alias", "api"}
	want := map[string]string{"static": "192.0.2.1/300", "nope": "NXDOMAIN", "www": "192.0.2.10/30", "alias": "192.0.2.10/30", "api": "192.0.2.20/30"}
	check := func(t *testing.T, step string) {
		t.Helper()
		for _, n := range names {
			if got := askGeneral(t, srv.Addr, n+".view.example."); got != want[n] {
				t.Errorf("%s: %s.view.example./A: %s, want %s", step, n, got, want[n])
			}
		}
	}
	check(t, "start")
	check(t, "start, from the cache")
	for _, tc := range []struct {
		name    string
		health  gslb.Health
		changed bool
		answers map[string]string // what changes
		stale   []string          // cached names that go stale
	}{
		{"heartbeat", nil, false, nil, nil},
		{"verdict: web-us down", down{"192.0.2.10": true}, true,
			map[string]string{"www": "198.51.100.10/15", "alias": "198.51.100.10/15"}, []string{"www", "alias"}},
		{"heartbeat with the same verdict", down{"192.0.2.10": true}, false, nil, nil},
		{"override: api-a forced down", down{"192.0.2.10": true, "192.0.2.20": true}, true,
			map[string]string{"api": "198.51.100.20/15"}, []string{"api"}},
		{"everything back", gslb.AllUp{}, true,
			map[string]string{"www": "192.0.2.10/30", "alias": "192.0.2.10/30", "api": "192.0.2.20/30"}, []string{"www", "alias", "api"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := srv.View()
			if got := srv.Refresh(tc.health, nil); got != tc.changed {
				t.Fatalf("Refresh = %v, want %v", got, tc.changed)
			}
			if srv.Snapshot() != snap {
				t.Fatal("Refresh made a new snapshot")
			}
			if (srv.View() == v) == tc.changed {
				t.Fatalf("view replaced = %v, want %v", srv.View() != v, tc.changed)
			}
			for n, a := range tc.answers {
				want[n] = a
			}
			before := countsOf(srv.Server)
			check(t, tc.name)
			got := countsOf(srv.Server)
			stale := uint64(len(tc.stale))
			if got.stale-before.stale != stale || got.misses-before.misses != stale || got.hits-before.hits != uint64(len(names))-stale {
				t.Errorf("cache after %s: %d hits, %d misses, %d stale; want %d, %d, %d (stale: %v)", tc.name,
					got.hits-before.hits, got.misses-before.misses, got.stale-before.stale, uint64(len(names))-stale, stale, stale, tc.stale)
			}
			check(t, tc.name+", again")
			if again := countsOf(srv.Server); again.hits-got.hits != uint64(len(names)) {
				t.Errorf("%d of %d answers from the cache the second time", again.hits-got.hits, len(names))
			}
		})
	}
}

// TestRefreshLatency: new RTTs move a latency record through Refresh; a
// Refresh with the same table changes nothing.
func TestRefreshLatency(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "view.example.zone", viewZone)
	srv := dnstest.StartDir(t, dir, dnsserver.Config{}, gslb.Env{}, true)
	lat := &gslb.LatencyTable{}
	near := func() (string, uint8) {
		r := dnstest.Exchange(t, srv.Addr, "udp", ecsQuery("near.view.example.", dns.TypeA, "198.51.100.0/24"))
		if len(r.Answer) != 1 {
			t.Fatalf("near.view.example./A: %v", r.Answer)
		}
		var scope uint8
		if e := ecsOf(r); e != nil {
			scope = e.SourceScope
		}
		return r.Answer[0].(*dns.A).A.String(), scope
	}
	if a, _ := near(); a != "192.0.2.10" {
		t.Fatalf("unmeasured, no geo database: %s, want the record order's us-east", a)
	}
	if !srv.Refresh(nil, lat) {
		t.Error("a new RTT table (where unmeasured networks are queued) did not change the view")
	}
	if srv.Refresh(nil, lat) {
		t.Error("the same empty RTT table changed the view")
	}
	lat.Set(netip.MustParsePrefix("198.51.100.0/24"), map[string]time.Duration{"eu-west": 8 * time.Millisecond, "us-east": 90 * time.Millisecond}, time.Now())
	if !srv.Refresh(nil, lat) {
		t.Fatal("a measured network did not change the view")
	}
	if a, scope := near(); a != "198.51.100.10" || scope != 24 {
		t.Errorf("measured: %s scope %d, want eu-west scope 24", a, scope)
	}
	if srv.Refresh(nil, lat) {
		t.Error("the same RTTs changed the view")
	}
}

// TestSwapKeepsRefreshedHealth: a zone reload (Swap) answers with the
// health last given to Refresh, not the Loader's Env.
func TestSwapKeepsRefreshedHealth(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "view.example.zone", viewZone)
	srv := dnstest.StartDir(t, dir, dnsserver.Config{}, gslb.Env{}, true)
	srv.Refresh(down{"192.0.2.10": true}, nil)
	writeZone(t, dir, "view.example.zone", strings.Replace(viewZone, " 1 3600", " 2 3600", 1)+"www2 30 IN GSLB failover pools=web-us,web-eu\n")
	snap, errs := srv.Loader.Load()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	srv.Swap(snap)
	for _, n := range []string{"www", "www2"} {
		if got := ask(t, srv.Addr, n+".view.example."); got != "198.51.100.10/15" {
			t.Errorf("%s after the reload: %s, want eu-west (web-us still down)", n, got)
		}
	}
}

// TestRefreshConcurrent: queries racing with Refresh and Swap always get
// one of the answers a published view gives (run with -race).
func TestRefreshConcurrent(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, "view.example.zone", viewZone)
	srv := dnstest.StartDir(t, dir, dnsserver.Config{}, gslb.Env{}, true)
	valid := map[string]bool{"192.0.2.10/30": true, "198.51.100.10/15": true}
	done := make(chan struct{})
	errs := make(chan string, 4)
	var answered atomic.Int64
	for g := 0; g < 4; g++ {
		go func() {
			c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
			m := new(dns.Msg)
			m.SetQuestion("alias.view.example.", dns.TypeA)
			for {
				select {
				case <-done:
					errs <- ""
					return
				default:
				}
				r, _, err := c.Exchange(m, srv.Addr)
				if err != nil {
					errs <- err.Error()
					return
				}
				var got string
				if len(r.Answer) > 0 {
					got = r.Answer[len(r.Answer)-1].String()
					if a, ok := r.Answer[len(r.Answer)-1].(*dns.A); ok {
						got = a.A.String() + "/" + itoa(a.Hdr.Ttl)
					}
				}
				if !valid[got] {
					errs <- "alias.view.example./A: " + got
					return
				}
				answered.Add(1)
			}
		}()
	}
	healths := []gslb.Health{down{"192.0.2.10": true}, gslb.AllUp{}}
	// Flip until the queriers have seen plenty of flips (or one failed).
	for i := 0; answered.Load() < 400 && len(errs) == 0; i++ {
		srv.Refresh(healths[i%2], nil)
		runtime.Gosched()
		if i%50 == 0 {
			snap, _ := srv.Loader.Load()
			srv.Swap(snap)
		}
	}
	close(done)
	for g := 0; g < 4; g++ {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
}
