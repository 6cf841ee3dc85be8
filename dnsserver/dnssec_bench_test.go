package dnsserver

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/dnssec"
)

// benchSigned is benchQuery with example.com signed (ECDSA P-256 CSK) and
// DO set: the handler path of a signed reply, signatures from the warm
// signature cache.
func benchSigned(b *testing.B, m *dns.Msg) {
	keys, _, err := dnssec.Ensure(nil, []string{"example.com."}, dnssec.ECDSAP256SHA256, false, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	sg := dnssec.New(dnssec.Options{})
	sg.SetKeys(keys)
	s := newTestServer(b)
	s.cfg.Signer = sg
	m.IsEdns0().SetDo()
	w := &writer{remote: &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5300}}
	s.ServeDNS(w, m)
	r := new(dns.Msg)
	if err := r.Unpack(w.out); err != nil || len(r.Answer)+len(r.Ns) < 2 {
		b.Fatalf("no signed reply: %v\n%v", err, r)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.ServeDNS(w, m)
	}
}

// BenchmarkServeSignedStatic: a static A record, signed (compare
// BenchmarkServeStatic).
func BenchmarkServeSignedStatic(b *testing.B) {
	benchSigned(b, benchMsg("mail.example.com.", dns.TypeA))
}

// BenchmarkServeSignedNXDOMAIN: a name that does not exist, with compact
// denial (compare BenchmarkServeNXDOMAIN).
func BenchmarkServeSignedNXDOMAIN(b *testing.B) {
	benchSigned(b, benchMsg("nope.example.com.", dns.TypeA))
}

// BenchmarkServeSignedGSLBECS: a GSLB record for a query with ECS, signed
// (compare BenchmarkServeGSLBECS).
func BenchmarkServeSignedGSLBECS(b *testing.B) {
	m := benchMsg("www.example.com.", dns.TypeA)
	p := netip.MustParsePrefix("198.51.100.0/24")
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: p.Addr().AsSlice()})
	benchSigned(b, m)
}
