package dnsserver_test

import (
	"os"
	"testing"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/dnsserver/dnstest"
)

const (
	soa    = "example.com. 300 IN SOA ns1.example.com. hostmaster.example.com. 2026112301 3600 600 1209600 60"
	negSOA = "example.com. 60 IN SOA ns1.example.com. hostmaster.example.com. 2026112301 3600 600 1209600 60"
)

func startExample(t *testing.T) *dnstest.Server {
	t.Helper()
	data, err := os.ReadFile("testdata/example.com.zone")
	if err != nil {
		t.Fatal(err)
	}
	return dnstest.Start(t, map[string]string{"example.com.zone": string(data)}, dnsserver.Config{})
}

// TestAnswers pins the answers BIND and Knot give for the static data, and
// the all policy's GSLB answers; each case is run over UDP and TCP (DNS-34).
func TestAnswers(t *testing.T) {
	srv := startExample(t)
	none := []string{}
	cases := []dnstest.Case{
		{Name: "DNS-01 SOA at apex", Qname: "example.com.", Qtype: dns.TypeSOA, AA: true,
			Answer: []string{soa}, Ns: none, Extra: none},
		{Name: "DNS-02 existing name and type", Qname: "mail.example.com.", Qtype: dns.TypeA, AA: true,
			Answer: []string{"mail.example.com. 300 IN A 192.0.2.25"}, Ns: none},
		{Name: "DNS-03 NODATA", Qname: "mail.example.com.", Qtype: dns.TypeTXT, AA: true,
			Answer: none, Ns: []string{negSOA}},
		{Name: "DNS-04 NXDOMAIN", Qname: "nope.example.com.", Qtype: dns.TypeA, AA: true, Rcode: dns.RcodeNameError,
			Answer: none, Ns: []string{negSOA}},
		{Name: "DNS-05 empty non-terminal is NODATA", Qname: "pool.example.com.", Qtype: dns.TypeA, AA: true,
			Answer: none, Ns: []string{negSOA}},
		{Name: "DNS-06 name in no zone is REFUSED", Qname: "example.org.", Qtype: dns.TypeA, Rcode: dns.RcodeRefused,
			Answer: none, Ns: none},
		{Name: "DNS-06 parent of the zone is REFUSED", Qname: "com.", Qtype: dns.TypeNS, Rcode: dns.RcodeRefused,
			Answer: none, Ns: none},
		{Name: "DNS-07 referral at the cut", Qname: "sub.example.com.", Qtype: dns.TypeNS,
			Answer: none, Ns: []string{"sub.example.com. 300 IN NS ns.sub.example.com.", "sub.example.com. 300 IN NS ns.elsewhere.net."},
			Extra: []string{"ns.sub.example.com. 300 IN A 192.0.2.99"}},
		{Name: "DNS-08 referral below the cut", Qname: "a.b.sub.example.com.", Qtype: dns.TypeA,
			Answer: none, Ns: []string{"sub.example.com. 300 IN NS ns.sub.example.com.", "sub.example.com. 300 IN NS ns.elsewhere.net."},
			Extra: []string{"ns.sub.example.com. 300 IN A 192.0.2.99"}},
		{Name: "DNS-08 glue is never authoritative", Qname: "ns.sub.example.com.", Qtype: dns.TypeA,
			Answer: none, Ns: []string{"sub.example.com. 300 IN NS ns.sub.example.com.", "sub.example.com. 300 IN NS ns.elsewhere.net."}},
		{Name: "DNS-09 DS at a cut from the parent", Qname: "sec.example.com.", Qtype: dns.TypeDS, AA: true,
			Answer: []string{"sec.example.com. 300 IN DS 60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118"}, Ns: none},
		{Name: "DNS-09 no DS at a cut is NODATA", Qname: "sub.example.com.", Qtype: dns.TypeDS, AA: true,
			Answer: none, Ns: []string{negSOA}},
		{Name: "DNS-11 CNAME to in-zone A", Qname: "alias.example.com.", Qtype: dns.TypeA, AA: true,
			Answer: []string{"alias.example.com. 300 IN CNAME www.pool.example.com.", "www.pool.example.com. 300 IN A 192.0.2.80"}},
		{Name: "DNS-11 CNAME chain", Qname: "chain1.example.com.", Qtype: dns.TypeA, AA: true,
			Answer: []string{"chain1.example.com. 300 IN CNAME chain2.example.com.", "chain2.example.com. 300 IN CNAME alias.example.com.",
				"alias.example.com. 300 IN CNAME www.pool.example.com.", "www.pool.example.com. 300 IN A 192.0.2.80"}},
		{Name: "DNS-11 CNAME out of zone", Qname: "ext.example.com.", Qtype: dns.TypeA, AA: true,
			Answer: []string{"ext.example.com. 300 IN CNAME www.example.net."}, Ns: none},
		{Name: "DNS-11 CNAME to NODATA", Qname: "alias.example.com.", Qtype: dns.TypeMX, AA: true,
			Answer: []string{"alias.example.com. 300 IN CNAME www.pool.example.com."}, Ns: []string{negSOA}},
		{Name: "DNS-11 CNAME to NXDOMAIN (RFC 6604)", Qname: "tonx.example.com.", Qtype: dns.TypeA, AA: true, Rcode: dns.RcodeNameError,
			Answer: []string{"tonx.example.com. 300 IN CNAME missing.example.com."}, Ns: []string{negSOA}},
		{Name: "DNS-11 CNAME to a delegation", Qname: "todeleg.example.com.", Qtype: dns.TypeA, AA: true,
			Answer: []string{"todeleg.example.com. 300 IN CNAME host.sub.example.com."},
			Ns:     []string{"sub.example.com. 300 IN NS ns.sub.example.com.", "sub.example.com. 300 IN NS ns.elsewhere.net."}},
		{Name: "DNS-11 CNAME to a wildcard", Qname: "towild.example.com.", Qtype: dns.TypeA, AA: true,
			Answer: []string{"towild.example.com. 300 IN CNAME x.wild.example.com.", "x.wild.example.com. 300 IN A 192.0.2.7"}},
		{Name: "CNAME query type gets the CNAME alone", Qname: "alias.example.com.", Qtype: dns.TypeCNAME, AA: true,
			Answer: []string{"alias.example.com. 300 IN CNAME www.pool.example.com."}},
		{Name: "DNS-13 wildcard", Qname: "a.wild.example.com.", Qtype: dns.TypeA, AA: true,
			Answer: []string{"a.wild.example.com. 300 IN A 192.0.2.7"}},
		{Name: "DNS-13 wildcard several labels deep", Qname: "a.a.a.wild.example.com.", Qtype: dns.TypeA, AA: true,
			Answer: []string{"a.a.a.wild.example.com. 300 IN A 192.0.2.7"}},
		{Name: "DNS-13 literal star", Qname: "*.wild.example.com.", Qtype: dns.TypeTXT, AA: true,
			Answer: []string{`*.wild.example.com. 300 IN TXT "wild"`}},
		{Name: "DNS-13 NODATA at a wildcard name", Qname: "a.wild.example.com.", Qtype: dns.TypeMX, AA: true,
			Answer: none, Ns: []string{negSOA}},
		{Name: "DNS-13 existing sibling is not a wildcard match", Qname: "exists.wild.example.com.", Qtype: dns.TypeTXT, AA: true,
			Answer: none, Ns: []string{negSOA}},
		{Name: "DNS-13 below an existing name the wildcard does not apply", Qname: "x.exists.wild.example.com.", Qtype: dns.TypeA, AA: true,
			Rcode: dns.RcodeNameError, Answer: none, Ns: []string{negSOA}},
		{Name: "DNS-13 wildcard blocked by an empty non-terminal", Qname: "y.ent.wild.example.com.", Qtype: dns.TypeA, AA: true,
			Rcode: dns.RcodeNameError, Answer: none, Ns: []string{negSOA}},
		{Name: "DNS-13 wildcard CNAME", Qname: "q.cw.example.com.", Qtype: dns.TypeA, AA: true,
			Answer: []string{"q.cw.example.com. 300 IN CNAME www.pool.example.com.", "www.pool.example.com. 300 IN A 192.0.2.80"}},
		{Name: "DNS-14 ANY is one RRset (RFC 8482)", Qname: "mail.example.com.", Qtype: dns.TypeANY, AA: true,
			Answer: []string{"mail.example.com. 300 IN A 192.0.2.25"}},
		{Name: "ANY at a CNAME owner is the CNAME (RFC 1034 §4.3.2), as Knot", Qname: "chain1.example.com.", Qtype: dns.TypeANY, AA: true,
			Answer: []string{"chain1.example.com. 300 IN CNAME chain2.example.com."}},
		{Name: "DNS-15 unknown type at a GSLB name", Qname: "www.example.com.", Qtype: 1000, AA: true,
			Answer: none, Ns: []string{negSOA}},
		{Name: "DNS-16 AAAA at an IPv4-only GSLB name", Qname: "v4only.example.com.", Qtype: dns.TypeAAAA, AA: true,
			Answer: none, Ns: []string{negSOA}},
		{Name: "GSLB all policy, A", Qname: "www.example.com.", Qtype: dns.TypeA, AA: true,
			Answer: []string{"www.example.com. 30 IN A 192.0.2.100", "www.example.com. 30 IN A 192.0.2.101"}, Ns: none},
		{Name: "GSLB all policy, AAAA", Qname: "www.example.com.", Qtype: dns.TypeAAAA, AA: true,
			Answer: []string{"www.example.com. 30 IN AAAA 2001:db8::100"}},
		{Name: "GSLB name carries other types", Qname: "www.example.com.", Qtype: dns.TypeTXT, AA: true,
			Answer: []string{`www.example.com. 300 IN TXT "gslb names may carry other types"`}},
		{Name: "GSLB wildcard", Qname: "x.y.gw.example.com.", Qtype: dns.TypeA, AA: true,
			Answer: []string{"x.y.gw.example.com. 30 IN A 192.0.2.110"}},
		{Name: "additional: MX target addresses", Qname: "example.com.", Qtype: dns.TypeMX, AA: true,
			Answer: []string{"example.com. 300 IN MX 10 mail.example.com."},
			Extra:  []string{"mail.example.com. 300 IN A 192.0.2.25", "mail.example.com. 300 IN AAAA 2001:db8::25"}},
		{Name: "additional: NS addresses", Qname: "example.com.", Qtype: dns.TypeNS, AA: true,
			Answer: []string{"example.com. 300 IN NS ns1.example.com.", "example.com. 300 IN NS ns2.example.com."},
			Extra:  []string{"ns1.example.com. 300 IN A 192.0.2.53", "ns2.example.com. 300 IN AAAA 2001:db8::53"}},
		{Name: "additional: SRV target", Qname: "_sip._tcp.example.com.", Qtype: dns.TypeSRV, AA: true,
			Answer: []string{"_sip._tcp.example.com. 300 IN SRV 0 5 5060 sip.example.com."},
			Extra:  []string{"sip.example.com. 300 IN A 192.0.2.60"}},
		{Name: "DNS-25 0x20: answer owner mirrors the question, as BIND and Knot do", Qname: "MaIl.ExAmPlE.cOm.", Qtype: dns.TypeA, AA: true,
			Answer: []string{"MaIl.ExAmPlE.cOm. 300 IN A 192.0.2.25"}},
		{Name: "DNS-06 case variants of a foreign name", Qname: "ANOTHER.world.", Qtype: dns.TypeA, Rcode: dns.RcodeRefused},
	}
	t.Run("udp", func(t *testing.T) { dnstest.Run(t, srv.Addr, cases) })
	for i := range cases {
		cases[i].TCP = true
	}
	t.Run("tcp", func(t *testing.T) { dnstest.Run(t, srv.Addr, cases) })
}
