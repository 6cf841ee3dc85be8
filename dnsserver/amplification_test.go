package dnsserver

import (
	"testing"

	"github.com/miekg/dns"
)

// TestAmplification covers DNS-49: over UDP, a reply that does not fit is
// no larger than the query (TC, question and OPT), so the bytes a query can
// fetch are bounded by the client's buffer only for replies that fit whole.
// It logs the worst ratio of reply to query bytes over the test zone.
func TestAmplification(t *testing.T) {
	s := newTestServer(t)
	s.rrl = nil
	r := testReader(s, "192.0.2.1:5300")
	names := []string{"example.com.", "www.example.com.", "mail.example.com.", "big.example.com.", "x.big-deleg.example.com.", "x.wild.example.com.", "chain1.example.com."}
	types := []uint16{dns.TypeANY, dns.TypeTXT, dns.TypeNS, dns.TypeMX, dns.TypeA, dns.TypeAAAA, dns.TypeDNSKEY, dns.TypeSOA}
	worst, worstQ := 0.0, ""
	for _, name := range names {
		for _, qt := range types {
			for _, size := range []uint16{0, 512, 1232, 4096} {
				m := new(dns.Msg)
				m.SetQuestion(name, qt)
				if size > 0 {
					m.SetEdns0(size, false)
				}
				pkt, _ := m.Pack()
				out := r.handle(pkt)
				rep := new(dns.Msg)
				if err := rep.Unpack(out); err != nil {
					t.Fatalf("%s/%s: %v", name, dns.TypeToString[qt], err)
				}
				if rep.Truncated && len(out) > len(pkt) {
					t.Errorf("%s/%s bufsize %d: TC reply of %d bytes to a %d-byte query", name, dns.TypeToString[qt], size, len(out), len(pkt))
				}
				if f := float64(len(out)) / float64(len(pkt)); f > worst {
					worst, worstQ = f, name+"/"+dns.TypeToString[qt]
				}
			}
		}
	}
	t.Logf("worst amplification: %.1fx (%s)", worst, worstQ)
}
