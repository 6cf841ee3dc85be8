package gslb_test

import (
	"testing"

	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/zones"
)

// TestCompileFromSharedRecords (ZL-02): a changed zone parsed from its
// previous version (zones.ParseFrom) shares the GSLB records written the
// same; CompileFrom copies their compiled form (the same policy) instead
// of compiling them again, and compiles the records that changed.
func TestCompileFromSharedRecords(t *testing.T) {
	env := gslb.Env{Geo: geoDB(t), GeoCache: new(gslb.GeoCache)}
	text := func(serial, policy string) []byte {
		return []byte(header + "www 30 IN GSLB geo pools=web-us,web-eu,web-ap\napi 30 IN GSLB " + policy + "\nstatic IN A 192.0.2." + serial + "\n")
	}
	v1, err := zones.Parse(text("1", "failover pools=web-eu,web-us"), "s.example.zone", "s.example.", false)
	if err != nil {
		t.Fatal(err)
	}
	s1, err := gslb.Compile([]*zones.Zone{v1}, env)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := zones.ParseFrom(v1, text("2", "weighted pools=web-us@3,web-eu@1"), "s.example.zone", "s.example.", false)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Records[0] != v1.Records[0] || v2.Records[1] == v1.Records[1] {
		t.Fatal("the parser did not share www alone")
	}
	s2, err := gslb.CompileFrom(s1, []*zones.Zone{v2}, env)
	if err != nil {
		t.Fatal(err)
	}
	w1, w2 := s1.Record(v1.Records[0]), s2.Record(v2.Records[0])
	if w1 == w2 || w1.Policy != w2.Policy {
		t.Errorf("www: want a copy sharing the compiled policy (records %p %p, policies %p %p)", w1, w2, w1.Policy, w2.Policy)
	}
	a1, a2 := s1.Record(v1.Records[1]), s2.Record(v2.Records[1])
	if a2 == nil || a1.Policy == a2.Policy {
		t.Errorf("api changed: want it compiled again")
	}
	for _, c := range []string{"192.0.2.1", "198.51.100.1", "203.0.113.1"} {
		got, want := answer(w2, gslb.IPv4, c), answer(w1, gslb.IPv4, c)
		if addrs(got) != addrs(want) || got.Scope != want.Scope {
			t.Errorf("www for %s: shared %s/%d, first compile %s/%d", c, addrs(got), got.Scope, addrs(want), want.Scope)
		}
	}
}
