package gslb

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/gslbd/gslb/geodata"
	"github.com/gslbd/gslb/geodata/geodatatest"
	"github.com/gslbd/gslb/zones"
)

type downMembers map[netip.Addr]bool

func (d downMembers) Up(_ *zones.Pool, a netip.Addr) (bool, bool) { return !d[a], true }

// TestGeoConstant checks prefTable.constant, which decides at query time
// whether a geo answer depends on the client, against its definition: the
// same choice in every ordering, in every mode, and the same open choice.
// Random health over records listing the pools in every order (fixed seed).
func TestGeoConstant(t *testing.T) {
	path := geodatatest.Write(t, map[string]geodata.Info{
		"192.0.2.0/24":    {Country: "US", Continent: "NA", Lat: 38, Lon: -97, HasLocation: true},
		"198.51.100.0/24": {Country: "DE", Continent: "EU", Lat: 51, Lon: 9, HasLocation: true},
		"203.0.113.0/24":  {Country: "JP", Continent: "AS", Lat: 36, Lon: 138, HasLocation: true},
		"100.64.0.0/16":   {Country: "AQ", Continent: "AN", Lat: -75, Lon: 0, HasLocation: true},
	})
	db, err := geodata.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	src := internalHeader + `$REGION ap-south lat=1.35  lon=103.82 serves=AS
$REGION lab      serves=203.0.113.128/25
$POOL a region=us-east  members=10.1.0.1,2001:db8:1::1
$POOL b region=eu-west  members=10.2.0.1
$POOL c region=ap-south members=2001:db8:3::1
$POOL d region=lab      members=10.4.0.1,10.4.0.2
`
	lists := []string{"a,b", "b,a", "a,b,c", "c,b,a", "b,c,d", "d,a", "a,b,c,d", "d,c,b,a", "a", "c,d"}
	for i, l := range lists {
		src += fmt.Sprintf("r%d 30 IN GSLB geo pools=%s\n", i, l)
	}
	z, set := compileSource(t, src, Env{Geo: db})
	var members []netip.Addr
	for _, p := range set.pools {
		for _, m := range p.src.Members {
			members = append(members, m.Addr)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 300; round++ {
		down := downMembers{}
		for _, m := range members {
			if rng.IntN(3) == 0 {
				down[m] = true
			}
		}
		v := set.View(down, nil)
		for _, zr := range z.Records {
			r := set.Record(zr)
			t0 := r.Policy.(*geoPolicy).table
			want := true
			for m := 0; m < modes; m++ {
				for o := range t0.prefs {
					if t0.choose(o, v, r, m, false) != t0.choose(0, v, r, m, false) || t0.choose(o, v, r, m, true) != t0.choose(0, v, r, m, true) {
						want = false
					}
				}
			}
			if got := t0.constant(r, v); got != want {
				t.Fatalf("%s with %v down: constant %v, want %v", zr.Name, down, got, want)
			}
		}
	}
}

// compileSource parses, links and compiles one zone file's text.
func compileSource(t *testing.T, src string, env Env) (*zones.Zone, *Set) {
	t.Helper()
	z, err := zones.Parse([]byte(src), "internal.example.zone", "", false)
	if err != nil {
		t.Fatal(err)
	}
	zs := []*zones.Zone{z}
	if err := zones.Link(zs); err != nil {
		t.Fatal(err)
	}
	set, err := Compile(zs, env)
	if err != nil {
		t.Fatal(err)
	}
	return z, set
}

// internalHeader starts the zones of the internal tests: an apex and
// two regions.
const internalHeader = `$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 1209600 60
@ IN NS ns1
ns1 IN A 192.0.2.53
$REGION us-east  lat=39.04 lon=-77.49 serves=NA
$REGION eu-west  lat=53.35 lon=-6.26  serves=EU
`
