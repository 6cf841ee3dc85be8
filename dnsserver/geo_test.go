package dnsserver_test

import (
	"testing"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/dnsserver/dnstest"
	"github.com/gslbd/gslb/geodata"
	"github.com/gslbd/gslb/geodata/geodatatest"
	"github.com/gslbd/gslb/gslb"
)

const geoZone = `$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 1209600 60
@ IN NS ns1
ns1 IN A 192.0.2.53
$REGION us-east lat=39.04 lon=-77.49 serves=NA
$REGION eu-west lat=53.35 lon=-6.26  serves=EU
$POOL web-us region=us-east members=192.0.2.10
$POOL web-eu region=eu-west members=198.51.100.10
www   30 IN GSLB geo pools=web-us,web-eu
alias    IN CNAME www
`

// TestGeoECS covers DNS-40 and DNS-44 through the server: each ECS subnet
// gets its region, the reply's scope is the geo network's prefix length,
// and a CNAME to a geo record carries the geo scope; on the wire fast path
// (round 0) and on the general path (rounds 1 and 2, generalPath), whose
// repeated questions come from the per-client reply cache with the right
// answer.
func TestGeoECS(t *testing.T) {
	path := geodatatest.Write(t, map[string]geodata.Info{
		"198.51.100.0/24": {Country: "DE", Continent: "EU", Lat: 51, Lon: 9, HasLocation: true},
		"203.0.113.0/25":  {Country: "US", Continent: "NA", Lat: 38, Lon: -97, HasLocation: true},
	})
	db, err := geodata.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dir := t.TempDir()
	writeZone(t, dir, "geo.example.zone", geoZone)
	srv := dnstest.StartDir(t, dir, dnsserver.Config{}, gslb.Env{Geo: db}, true)
	for round := 0; round < 3; round++ {
		for _, tc := range []struct {
			qname, subnet, want string
			scope               uint8
		}{
			{"www.geo.example.", "198.51.100.0/24", "198.51.100.10", 24},
			{"www.geo.example.", "203.0.113.0/24", "192.0.2.10", 24}, // /25 network capped at the /24 source
			{"www.geo.example.", "203.0.113.0/25", "192.0.2.10", 25},
			{"alias.geo.example.", "198.51.100.0/24", "198.51.100.10", 24},
		} {
			m := ecsQuery(tc.qname, dns.TypeA, tc.subnet)
			if round > 0 {
				generalPath(m)
			}
			r := dnstest.Exchange(t, srv.Addr, "udp", m)
			a, ok := r.Answer[len(r.Answer)-1].(*dns.A)
			if !ok || a.A.String() != tc.want {
				t.Fatalf("round %d %s from %s: %v, want %s", round, tc.qname, tc.subnet, r.Answer, tc.want)
			}
			if e := ecsOf(r); e == nil || e.SourceScope != tc.scope {
				t.Fatalf("round %d %s from %s: ECS %v, want scope %d", round, tc.qname, tc.subnet, e, tc.scope)
			}
		}
	}
	if srv.CacheHits() < 4 {
		t.Errorf("%d cache hits; the third round should come from the cache", srv.CacheHits())
	}
}
