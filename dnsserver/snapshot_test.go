package dnsserver

import (
	"net"
	"os"
	"slices"
	"testing"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/zones"
)

// TestNewSnapshotFromReusesZones (ZL-02): a zone given again as the same
// *zones.Zone keeps its built form; a new pointer is built again; the GSLB
// records of a reused zone are bound to the new Set; and the previous
// snapshot still answers as before.
func TestNewSnapshotFromReusesZones(t *testing.T) {
	data, err := os.ReadFile("testdata/example.com.zone")
	if err != nil {
		t.Fatal(err)
	}
	zs, _ := compileZone(t, data, "testdata/example.com.zone")
	other, err := zones.Parse([]byte("$ORIGIN other.test.\n@ 300 IN SOA ns hm 1 3600 600 86400 60\n@ IN NS ns\nns IN A 192.0.2.1\n"), "other.zone", "", false)
	if err != nil {
		t.Fatal(err)
	}
	all := append(zs, other)
	if err := zones.Link(all); err != nil {
		t.Fatal(err)
	}
	set, err := gslb.Compile(all, gslb.Env{})
	if err != nil {
		t.Fatal(err)
	}
	prev := NewSnapshot(all, set)

	other2, err := zones.Parse([]byte("$ORIGIN other.test.\n@ 300 IN SOA ns hm 2 3600 600 86400 60\n@ IN NS ns\nns IN A 192.0.2.2\n"), "other.zone", "", false)
	if err != nil {
		t.Fatal(err)
	}
	all2 := []*zones.Zone{zs[0], other2}
	set2, err := gslb.Compile(all2, gslb.Env{})
	if err != nil {
		t.Fatal(err)
	}
	next := NewSnapshotFrom(prev, all2, set2)
	if next.zones["example.com."].zone != prev.zones["example.com."].zone {
		t.Error("the unchanged zone was built again")
	}
	if next.zones["other.test."].zone == prev.zones["other.test."].zone {
		t.Error("the changed zone was not built again")
	}
	if rec, _ := next.GSLBRecord("www.example.com."); rec == nil || rec != set2.Record(rec.Source()) {
		t.Errorf("GSLB record of the reused zone: %v, not bound to the new set", rec)
	}
	if rec, _ := prev.GSLBRecord("www.example.com."); rec == nil || rec != set.Record(rec.Source()) {
		t.Errorf("GSLB record of the previous snapshot changed: %v", rec)
	}
	s, err := New(Config{Addrs: []string{"127.0.0.1:0"}, NSID: "t"})
	if err != nil {
		t.Fatal(err)
	}
	ask := func(snap *Snapshot, name string) string {
		s.Swap(snap)
		w := &writer{remote: &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5300}}
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		s.ServeDNS(w, m)
		var r dns.Msg
		if err := r.Unpack(w.out); err != nil || len(r.Answer) != 1 {
			t.Fatalf("%s: %v %v", name, err, r.String())
		}
		return r.Answer[0].(*dns.A).A.String()
	}
	if got := ask(prev, "ns.other.test."); got != "192.0.2.1" {
		t.Errorf("previous snapshot: %s", got)
	}
	if got := ask(next, "ns.other.test."); got != "192.0.2.2" {
		t.Errorf("next snapshot: %s", got)
	}
	if got := ask(next, "mail.example.com."); got != "192.0.2.25" {
		t.Errorf("reused zone: %s", got)
	}
}

// TestNameInfo: the signer's view of a name: its zone, whether the owner
// exists (empty non-terminals do, wildcard-only names do not) and its types.
func TestNameInfo(t *testing.T) {
	snap := newTestServer(t).Snapshot()
	for _, c := range []struct {
		name   string
		origin string
		exists bool
		types  []uint16
	}{
		{"Mail.Example.COM.", "example.com.", true, []uint16{dns.TypeA, dns.TypeAAAA}},
		{"example.com.", "example.com.", true, []uint16{dns.TypeNS, dns.TypeSOA, dns.TypeMX}},
		{"pool.example.com.", "example.com.", true, nil},
		{"www.example.com.", "example.com.", true, []uint16{dns.TypeA, dns.TypeTXT, dns.TypeAAAA}},
		{"x.wild.example.com.", "example.com.", false, nil},
		{"nope.example.com.", "example.com.", false, nil},
		{"example.net.", "", false, nil},
	} {
		origin, exists, types := snap.NameInfo(c.name, nil)
		slices.Sort(types)
		if origin != c.origin || exists != c.exists || !slices.Equal(types, c.types) {
			t.Errorf("%s: %q %v %v, want %q %v %v", c.name, origin, exists, types, c.origin, c.exists, c.types)
		}
	}
}

// TestFindZoneFewAndMany (DNS-06): the closest enclosing zone is found the
// same way with a few zones (suffix tests, longest origin first) and with
// more than fewZones (the map walk over the ancestors): a child zone wins
// over its parent, a label that merely ends like an origin is not in it,
// a name in no zone gets none, and an escaped dot is not a label boundary.
func TestFindZoneFewAndMany(t *testing.T) {
	zone := func(origin string) *zones.Zone {
		z, err := zones.Parse([]byte("$ORIGIN "+origin+"\n@ 300 IN SOA ns hm 1 3600 600 86400 60\n@ IN NS ns\nns IN A 192.0.2.1\n"), origin+"zone", "", false)
		if err != nil {
			t.Fatal(err)
		}
		return z
	}
	build := func(origins ...string) *Snapshot {
		var zs []*zones.Zone
		for _, o := range origins {
			zs = append(zs, zone(o))
		}
		if err := zones.Link(zs); err != nil {
			t.Fatal(err)
		}
		set, err := gslb.Compile(zs, gslb.Env{})
		if err != nil {
			t.Fatal(err)
		}
		return NewSnapshot(zs, set)
	}
	base := []string{"example.", "sub.example.", "b.sub.example.", "other.test."}
	many := append([]string(nil), base...)
	for i := range fewZones {
		many = append(many, "filler"+string(rune('a'+i))+".test.")
	}
	cases := map[string]string{
		"example.":            "example.",
		"www.example.":        "example.",
		"sub.example.":        "sub.example.",
		"a.sub.example.":      "sub.example.",
		"x.b.sub.example.":    "b.sub.example.",
		"b.sub.example.":      "b.sub.example.",
		"xsub.example.":       "example.",
		"notexample.":         "",
		"test.":               "",
		"ns.other.test.":      "other.test.",
		`a\.sub.example.`:     "example.", // one label "a.sub" under example.
		`x\.b.sub.example.`:   "sub.example.",
		`other\.test.`:        "",
		"deep.a.b.c.example.": "example.",
	}
	for _, origins := range [][]string{base, many} {
		s := build(origins...)
		if (s.few != nil) != (len(origins) <= fewZones) {
			t.Fatalf("%d zones: suffix list used %v", len(origins), s.few != nil)
		}
		for name, want := range cases {
			got := ""
			if z := s.findZone(name); z != nil {
				got = z.origin
			}
			if got != want {
				t.Errorf("%d zones: findZone(%q) = %q, want %q", len(origins), name, got, want)
			}
		}
	}
}
