package dnsserver

import (
	"fmt"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/zones"
)

// TestIndexNames (ZL-02, DNS-13): the built zone's index finds every owner
// name, every empty non-terminal above one (also above a GSLB-only name),
// in any case and with escapes, and nothing else; deep names make it grow
// past its first size; types and wildcard children are the zone's.
func TestIndexNames(t *testing.T) {
	var b strings.Builder
	b.WriteString("$ORIGIN ix.test.\n@ 300 IN SOA ns hm 1 3600 600 86400 60\n@ IN NS ns\nns IN A 192.0.2.1\n")
	var want []string
	for i := range 200 {
		// Six empty non-terminals above each name: more than the index
		// is sized for at first.
		n := fmt.Sprintf("h%d.a.b.c.d.e.f%d", i, i)
		fmt.Fprintf(&b, "%s IN A 192.0.2.%d\n", n, i%250)
		want = append(want, n+".ix.test.")
		for p := n; strings.Contains(p, "."); {
			p = p[strings.Index(p, ".")+1:]
			want = append(want, p+".ix.test.")
		}
	}
	b.WriteString("*.w IN TXT \"wild\"\nx.w IN MX 10 ns\nesc\\.aped IN A 192.0.2.9\n")
	b.WriteString("$REGION r1 lat=1 lon=1 serves=EU\n$POOL p1 region=r1 members=192.0.2.10\n")
	b.WriteString("www.g1.g2 30 IN GSLB failover pools=p1\n")
	want = append(want, "ix.test.", "ns.ix.test.", "*.w.ix.test.", "w.ix.test.", "x.w.ix.test.",
		`esc\.aped.ix.test.`, "www.g1.g2.ix.test.", "g1.g2.ix.test.", "g2.ix.test.")
	z, err := zones.Parse([]byte(b.String()), "ix.zone", "", false)
	if err != nil {
		t.Fatal(err)
	}
	zn := buildZone(z)
	if got := len(zn.nodes); got != len(uniq(want)) {
		t.Errorf("%d nodes, want %d", got, len(uniq(want)))
	}
	for _, n := range want {
		for _, v := range []string{n, strings.ToUpper(n)} {
			nd := zn.lookup(v)
			if nd == nil {
				t.Errorf("%s: not found", v)
				continue
			}
			if got := zn.ownerName(nd); !strings.EqualFold(got, n) {
				t.Errorf("%s: found %s", v, got)
			}
		}
	}
	for _, n := range []string{"h1.ix.test.", "b.f1.ix.test.", "h1.b.c.d.e.f1.ix.test.", "zz.ix.test.", "test.", ".", "esc.aped.ix.test.", "www.g1.g2.ix.test.x.", "h1..ix.test."} {
		if nd := zn.lookup(n); nd != nil {
			t.Errorf("%s: found %s", n, zn.ownerName(nd))
		}
	}
	if nd := zn.lookup(`\069SC\.aped.ix.test.`); nd == nil {
		t.Errorf(`\069SC\.aped: not found`)
	}
	w := zn.lookup("w.ix.test.")
	if wc := zn.wildOf(w); wc == nil || zn.ownerName(wc) != "*.w.ix.test." {
		t.Errorf("wildcard child of w: %v", wc)
	}
	if wc := zn.encloserWild("q.w.ix.test."); wc == nil || zn.ownerName(wc) != "*.w.ix.test." {
		t.Errorf("wildcard for q.w: %v", wc)
	}
	if wc := zn.encloserWild("q.x.w.ix.test."); wc != nil {
		t.Errorf("wildcard for q.x.w (below an existing name): %v", zn.ownerName(wc))
	}
	apex := zn.lookup("ix.test.")
	if got := zn.types(apex, nil); fmt.Sprint(got) != fmt.Sprint([]uint16{dns.TypeNS, dns.TypeSOA}) {
		t.Errorf("apex types %v", got)
	}
	if g := zn.lookup("www.g1.g2.ix.test."); g == nil || g.gslb != 1 || g.n != 0 {
		t.Errorf("GSLB node %+v", g)
	}
	mx := zn.rrset(zn.lookup("x.w.ix.test."), dns.TypeMX)
	if mx.n != 1 || mx.nx != 1 {
		t.Errorf("MX rrset %+v: want one record, one additional", mx)
	}
}

func uniq(s []string) map[string]bool {
	m := map[string]bool{}
	for _, x := range s {
		m[x] = true
	}
	return m
}

// TestIndexSharedOnReload (ZL-02): a new version of a zone with the same
// names and types reuses the previous version's index, with its records
// and additional sections (glue) from the new version; a new name builds
// a new index; the previous snapshot keeps answering its own data.
func TestIndexSharedOnReload(t *testing.T) {
	text := func(serial int, glue, extra string) []byte {
		return []byte(fmt.Sprintf("$ORIGIN r.test.\n@ 300 IN SOA ns hm %d 3600 600 86400 60\n@ IN NS ns\nns IN A %s\nwww IN A 192.0.2.5\n%s\n", serial, glue, extra))
	}
	v1, err := zones.Parse(text(1, "192.0.2.1", ""), "r.zone", "", false)
	if err != nil {
		t.Fatal(err)
	}
	s1 := NewSnapshot([]*zones.Zone{v1}, nil)
	v2, err := zones.ParseFrom(v1, text(2, "192.0.2.2", ""), "r.zone", "", false)
	if err != nil {
		t.Fatal(err)
	}
	s2 := NewSnapshotFrom(s1, []*zones.Zone{v2}, nil)
	z1, z2 := s1.zones["r.test."].zone, s2.zones["r.test."].zone
	if &z1.nodes[0] != &z2.nodes[0] {
		t.Error("same names and types: the index was built again")
	}
	glue := func(z *zone) string {
		rrs := z.extraRRs(z.lookup("r.test."), dns.TypeNS)
		if len(rrs) != 1 {
			return fmt.Sprint(rrs)
		}
		return rrs[0].(*dns.A).A.String()
	}
	if g := glue(z2); g != "192.0.2.2" {
		t.Errorf("new version's glue %s", g)
	}
	if g := glue(z1); g != "192.0.2.1" {
		t.Errorf("previous version's glue %s", g)
	}
	if rrs := z2.get(z2.lookup("ns.r.test."), dns.TypeA); len(rrs) != 1 || rrs[0].(*dns.A).A.String() != "192.0.2.2" {
		t.Errorf("new version's ns A %v", rrs)
	}
	v3, err := zones.ParseFrom(v2, text(3, "192.0.2.2", "new IN A 192.0.2.7"), "r.zone", "", false)
	if err != nil {
		t.Fatal(err)
	}
	s3 := NewSnapshotFrom(s2, []*zones.Zone{v3}, nil)
	z3 := s3.zones["r.test."].zone
	if &z3.nodes[0] == &z2.nodes[0] {
		t.Error("a new name: the index was shared")
	}
	if z3.lookup("new.r.test.") == nil || z2.lookup("new.r.test.") != nil {
		t.Error("the new name is not (only) in the new version")
	}
}
