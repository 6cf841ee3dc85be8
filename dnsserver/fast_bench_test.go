package dnsserver

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/geodata"
	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/zones"
)

// benchZone is the zone of bench/dnscost.sh, smaller: static names s0..,
// GSLB geo names g0.. over three regions.
func benchZone(static, geo int) string {
	var b strings.Builder
	b.WriteString("$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 1209600 60\n@ IN NS ns1\n@ IN NS ns2\nns1 IN A 192.0.2.53\nns2 IN A 192.0.2.54\n")
	b.WriteString("$REGION us-east lat=39.04 lon=-77.49 serves=NA,SA\n$REGION eu-west lat=53.35 lon=-6.26 serves=EU,AF\n$REGION ap-south lat=1.35 lon=103.82 serves=AS,OC\n")
	b.WriteString("$POOL geo-us region=us-east members=192.0.2.10\n$POOL geo-eu region=eu-west members=198.51.100.10\n$POOL geo-ap region=ap-south members=203.0.113.10\n")
	for i := 0; i < static; i++ {
		fmt.Fprintf(&b, "s%d IN A 10.%d.%d.%d\n", i, i>>16&255, i>>8&255, i&255)
	}
	for i := 0; i < geo; i++ {
		fmt.Fprintf(&b, "g%d 30 IN GSLB geo pools=geo-us,geo-eu,geo-ap\n", i)
	}
	return b.String()
}

// benchReader is a UDP reader of a server answering benchZone, without a
// socket: handle is called on packets directly.
func benchReader(tb testing.TB, static, geo int) *udpReader {
	tb.Helper()
	db, err := geodata.Default()
	if err != nil {
		tb.Fatal(err)
	}
	z, err := zones.Parse([]byte(benchZone(static, geo)), "bench.zone", "", false)
	if err != nil {
		tb.Fatal(err)
	}
	zs := []*zones.Zone{z}
	if err := zones.Link(zs); err != nil {
		tb.Fatal(err)
	}
	set, err := gslb.Compile(zs, gslb.Env{Geo: db})
	if err != nil {
		tb.Fatal(err)
	}
	s, err := New(Config{Addrs: []string{"127.0.0.1:0"}, NSID: "bench"})
	if err != nil {
		tb.Fatal(err)
	}
	s.Swap(NewSnapshot(zs, set))
	return testReader(s, "127.0.0.1:5300") // as from dnsperf: RRL exempts loopback
}

// benchPackets packs n queries for A records of prefix0.. (prefix "" for
// random names that do not exist: every fifth one), with ECS 81.2.69.0/24.
func benchPackets(tb testing.TB, prefix string, names, n int) [][]byte {
	tb.Helper()
	pkts := make([][]byte, n)
	for i := range pkts {
		name := fmt.Sprintf("%s%d.example.com.", prefix, (i*7919)%names)
		if i%5 == 4 {
			name = fmt.Sprintf("nx%08x.example.com.", uint32(i)*2654435761)
		}
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: netip.MustParseAddr("81.2.69.0").AsSlice()})
		b, err := m.Pack()
		if err != nil {
			tb.Fatal(err)
		}
		pkts[i] = b
	}
	return pkts
}

func benchHandle(b *testing.B, prefix string, names, distinct int) {
	r := benchReader(b, 20000, 20000)
	pkts := benchPackets(b, prefix, names, distinct)
	for _, p := range pkts {
		if r.handle(p) == nil {
			b.Fatal("no reply")
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.handle(pkts[i%len(pkts)])
	}
}

// BenchmarkUDPStaticMany: A queries over 20k static names, a fifth of them
// NXDOMAIN, with ECS, from the packet to the reply (no socket): the
// uncached path of a real authoritative server's traffic.
func BenchmarkUDPStaticMany(b *testing.B) { benchHandle(b, "s", 20000, 50000) }

// BenchmarkUDPGeoMany: the same over 20k GSLB geo names.
func BenchmarkUDPGeoMany(b *testing.B) { benchHandle(b, "g", 20000, 50000) }

// BenchmarkUDPStaticOne: one static name, repeated.
func BenchmarkUDPStaticOne(b *testing.B) { benchHandle(b, "s", 1, 1) }

// BenchmarkUDPGeoOne: one geo name with ECS, repeated.
func BenchmarkUDPGeoOne(b *testing.B) { benchHandle(b, "g", 1, 1) }
