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
