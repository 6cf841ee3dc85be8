package dnsserver

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/zones"
)

// zone100k is a zone of n GSLB records over four pools of two members in
// two regions: failover, geo and weighted (sticky) records in turn.
func zone100k(tb testing.TB, n int) ([]*zones.Zone, *gslb.Set) {
	tb.Helper()
	var b strings.Builder
	b.WriteString(`$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 1209600 60
@ IN NS ns1
ns1 IN A 192.0.2.53
$REGION us-east lat=39.04 lon=-77.49 serves=NA
$REGION eu-west lat=53.35 lon=-6.26  serves=EU
$POOL p0 region=us-east members=192.0.2.10,192.0.2.11
$POOL p1 region=eu-west members=198.51.100.10,198.51.100.11
$POOL p2 region=us-east members=192.0.2.20,192.0.2.21
$POOL p3 region=eu-west members=198.51.100.20,198.51.100.21
`)
	for i := 0; i < n; i++ {
		a, c := i%4, (i+1)%4
		switch i % 3 {
		case 0:
			fmt.Fprintf(&b, "r%d 30 IN GSLB failover pools=p%d,p%d\n", i, a, c)
		case 1:
			fmt.Fprintf(&b, "r%d 30 IN GSLB geo pools=p%d,p%d\n", i, a, c)
		default:
			fmt.Fprintf(&b, "r%d 30 IN GSLB weighted sticky=prefix pools=p%d,p%d\n", i, a, c)
		}
	}
	return compileZone(tb, []byte(b.String()), "big.example.zone")
}

type downAddrs map[netip.Addr]bool

func (d downAddrs) Up(_ *zones.Pool, a netip.Addr) (bool, bool) { return !d[a], true }

// reportLatency adds the p50, p99 and max of d as metrics.
func reportLatency(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	if len(d) == 0 {
		return
	}
	b.ReportMetric(float64(d[len(d)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(d[len(d)*99/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(d[len(d)-1].Nanoseconds()), "max-ns")
}

// BenchmarkRefresh100k measures a verdict change on a zone with 100,000
// GSLB records: Refresh (a new health view; the zone is not recompiled)
// and the first reply that shows it, through the UDP path with a warm
// reply cache, whose entry for the name has gone stale.
func BenchmarkRefresh100k(b *testing.B) {
	zs, set := zone100k(b, 100000)
	s, err := New(Config{Addrs: []string{"127.0.0.1:0"}, NSID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	s.Swap(NewSnapshot(zs, set))
	r := &udpReader{s: s, buf: make([]byte, dns.MaxMsgSize), out: make([]byte, 0, dns.MaxMsgSize), hseed: s.hseed}
	r.q.buf = make([]byte, 0, dns.MaxMsgSize)
	r.w.r = r
	r.w.from = netip.MustParseAddrPort("192.0.2.1:5300")
	pkt, _ := benchMsg("r0.big.example.", dns.TypeA).Pack()
	static, _ := benchMsg("ns1.big.example.", dns.TypeA).Pack()
	healths := []gslb.Health{downAddrs{netip.MustParseAddr("192.0.2.10"): true, netip.MustParseAddr("192.0.2.11"): true}, gslb.AllUp{}}
	s.Refresh(gslb.AllUp{}, nil)
	prev := append([]byte(nil), r.handle(pkt)...)
	r.handle(static)
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if !s.Refresh(healths[i%2], nil) {
			b.Fatal("the verdict did not change the view")
		}
		out := r.handle(pkt)
		lat = append(lat, time.Since(t0))
		if bytes.Equal(out, prev) {
			b.Fatal("the answer did not change")
		}
		prev = append(prev[:0], out...)
	}
	b.StopTimer()
	reportLatency(b, lat)
	hits := s.CacheHits()
	r.handle(static)
	if s.CacheHits() != hits+1 {
		b.Error("the static answer left the cache")
	}
}

// BenchmarkRebuild100k is what a verdict cost before views: compiling the
// zone set again and indexing a new snapshot (with an empty reply cache).
func BenchmarkRebuild100k(b *testing.B) {
	zs, _ := zone100k(b, 100000)
	healths := []gslb.Health{downAddrs{netip.MustParseAddr("192.0.2.10"): true}, gslb.AllUp{}}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		set, err := gslb.Compile(zs, gslb.Env{Health: healths[i%2]})
		if err != nil {
			b.Fatal(err)
		}
		NewSnapshot(zs, set)
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}
