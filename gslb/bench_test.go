package gslb_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/gslbd/gslb/geodata"
	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/zones"
)

const benchRecords = `www-all      30 IN GSLB all      pools=web-us,web-eu,web-ap
www-failover 30 IN GSLB failover pools=web-eu,web-us,web-ap
www-weighted 30 IN GSLB weighted pools=web-us@3,web-eu@1
www-sticky   30 IN GSLB weighted pools=web-us@3,web-eu@1 sticky=prefix
www-geo      30 IN GSLB geo      pools=web-us,web-eu,web-ap
www-latency  30 IN GSLB latency  pools=web-us,web-eu,web-ap
`

// BenchmarkPolicy measures one decision per policy with the embedded
// country database (about a million networks) and rotating clients.
func BenchmarkPolicy(b *testing.B) {
	z, set, _ := benchCompile(b, benchRecords, gslb.Env{Latency: &gslb.LatencyTable{}})
	clients := []gslb.Client{}
	for _, s := range []string{"8.8.8.0/24", "81.2.69.0/24", "1.1.1.0/24", "203.0.113.0/24", "2a00:1450:4001::/48", "200.160.2.0/24", "41.63.0.0/24", "133.11.0.0/24"} {
		p := netip.MustParsePrefix(s)
		clients = append(clients, gslb.Client{Addr: p.Addr(), Bits: uint8(p.Bits())})
	}
	for _, r := range z.Records {
		rec := set.Record(r)
		v := set.DefaultView()
		b.Run(r.Policy+"/"+r.Name[:len(r.Name)-len(".bench.example.")], func(b *testing.B) {
			dst := make([]netip.Addr, 0, 16)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				c := &clients[i%len(clients)]
				a := rec.Answer(dst[:0], gslb.IPv4, c, v)
				dst = a.Addrs
			}
		})
	}
}

// BenchmarkGeoMapBuild measures merging the embedded database with three
// regions into the per-snapshot geo tree (done once per zone reload that
// changes regions, never per query).
func BenchmarkGeoMapBuild(b *testing.B) {
	z, _, db := benchCompile(b, "www 30 IN GSLB geo pools=web-us,web-eu,web-ap\n", gslb.Env{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := gslb.Compile([]*zones.Zone{z}, gslb.Env{Geo: db}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPolicyManyRecords answers 50,000 geo records (the same pools,
// as a zone of many names served by the same regions has) in a shuffled
// order, one client: the cost of a decision when the record is not in the
// cache, as in a server answering many names.
func BenchmarkPolicyManyRecords(b *testing.B) {
	var src strings.Builder
	const n = 50000
	for i := 0; i < n; i++ {
		fmt.Fprintf(&src, "g%d 30 IN GSLB geo pools=web-us,web-eu,web-ap\n", i)
	}
	z, set, _ := benchCompile(b, src.String(), gslb.Env{})
	recs := make([]*gslb.Record, 0, n)
	for _, r := range z.Records {
		recs = append(recs, set.Record(r))
	}
	rand.New(rand.NewPCG(14, 14)).Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	c := &gslb.Client{Addr: netip.MustParseAddr("81.2.69.0"), Bits: 24}
	v := set.DefaultView()
	dst := make([]netip.Addr, 0, 16)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a := recs[i%n].Answer(dst[:0], gslb.IPv4, c, v)
		dst = a.Addrs
	}
}

// BenchmarkPolicyManyClients decides one geo record for 65,536 random
// IPv4 /24 client networks in turn, as a server asked by resolvers from
// everywhere is: the walk of the geo trie (several MB for the embedded
// database) mostly misses the cache.
func BenchmarkPolicyManyClients(b *testing.B) {
	z, set, _ := benchCompile(b, "www 30 IN GSLB geo pools=web-us,web-eu,web-ap\n", gslb.Env{})
	rec, v := set.Record(z.Records[0]), set.DefaultView()
	rng := rand.New(rand.NewPCG(14, 15))
	clients := make([]gslb.Client, 1<<16)
	for i := range clients {
		clients[i] = gslb.Client{Addr: netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), 0}), Bits: 24}
	}
	dst := make([]netip.Addr, 0, 16)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a := rec.Answer(dst[:0], gslb.IPv4, &clients[i&(1<<16-1)], v)
		dst = a.Addrs
	}
}

// benchCompile parses records after the test header and compiles them
// against the embedded country database (and env's other parts).
func benchCompile(b *testing.B, records string, env gslb.Env) (*zones.Zone, *gslb.Set, *geodata.DB) {
	b.Helper()
	db, err := geodata.Default()
	if err != nil {
		b.Fatal(err)
	}
	z, err := zones.Parse([]byte(header+records), "bench.example.zone", "", false)
	if err != nil {
		b.Fatal(err)
	}
	env.Geo = db
	set, err := gslb.Compile([]*zones.Zone{z}, env)
	if err != nil {
		b.Fatal(err)
	}
	return z, set, db
}
