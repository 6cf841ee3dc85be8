package gslb_test

import (
	"testing"

	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/zones"
)

// TestCompileFromReuses: recompiling after one zone of two changed compiles
// that zone's records only, as long as regions and pools are defined as
// before; the reused records answer as freshly compiled ones, against the
// new Set's views; a changed pool definition recompiles every zone.
func TestCompileFromReuses(t *testing.T) {
	db := geoDB(t)
	env := gslb.Env{Geo: db, GeoCache: new(gslb.GeoCache)}
	parse := func(name, body string) *zones.Zone {
		t.Helper()
		z, err := zones.Parse([]byte(header+body), name+".zone", name+".", false)
		if err != nil {
			t.Fatal(err)
		}
		return z
	}
	a := parse("a.example", "www 30 IN GSLB geo pools=web-us,web-eu,web-ap\n")
	b := parse("b.example", "www 30 IN GSLB weighted pools=web-us@3,web-eu@1\n")
	s1, err := gslb.Compile([]*zones.Zone{a, b}, env)
	if err != nil {
		t.Fatal(err)
	}
	b2 := parse("b.example", "www 30 IN GSLB geo pools=web-eu,web-us\n")
	s2, err := gslb.CompileFrom(s1, []*zones.Zone{a, b2}, env)
	if err != nil {
		t.Fatal(err)
	}
	ra1, ra2 := s1.Record(a.Records[0]), s2.Record(a.Records[0])
	if ra1 == ra2 || ra1.Policy != ra2.Policy {
		t.Errorf("a.example www: want a copy sharing the compiled policy (records %p %p, policies %p %p)", ra1, ra2, ra1.Policy, ra2.Policy)
	}
	if s2.Record(b2.Records[0]) == nil || s2.Record(b.Records[0]) != nil {
		t.Errorf("b.example: the new version's record must be compiled, the old one's gone")
	}
	for _, c := range []string{"192.0.2.1", "198.51.100.1", "203.0.113.1", "2001:db8::1"} {
		got, want := answer(ra2, gslb.IPv4, c), answer(ra1, gslb.IPv4, c)
		if addrs(got) != addrs(want) || got.Scope != want.Scope {
			t.Errorf("a.example www for %s: reused answers %s/%d, first compile %s/%d", c, addrs(got), got.Scope, addrs(want), want.Scope)
		}
	}
	// A drain in the new Set's view is seen by the reused record.
	v, _ := s2.DefaultView().Update(downSet{"10.1.0.1": true, "10.1.0.2": true, "2001:db8:1::1": true}, nil)
	if got := ra2.Answer(nil, gslb.IPv4, client("192.0.2.1"), v); addrs(got) != "10.2.0.1" {
		t.Errorf("a.example www for a US client with us-east down = %s, want 10.2.0.1", addrs(got))
	}

	// A pool defined differently: nothing is reused.
	c := parse("c.example", "$POOL web-extra region=lab members=10.9.0.1\nwww 30 IN GSLB failover pools=web-extra\n")
	s3, err := gslb.CompileFrom(s2, []*zones.Zone{a, b2, c}, env)
	if err != nil {
		t.Fatal(err)
	}
	if s3.Record(a.Records[0]).Policy == ra2.Policy {
		t.Errorf("a.example www: policy reused although the pools changed")
	}
}
