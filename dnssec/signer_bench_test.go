package dnssec

import (
	"testing"
	"time"

	"github.com/miekg/dns"
)

// benchSignUncached signs a two-address A RRset whose content changes
// every time (no cache hit): the cost of one fresh signature, cache key
// and cache store included.
func benchSignUncached(b *testing.B, alg uint8) {
	keys, _, err := Ensure(nil, []string{"example.com."}, alg, false, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	s := New(Options{})
	s.SetKeys(keys)
	z := s.Zone("example.com.")
	set := []dns.RR{
		&dns.A{Hdr: dns.RR_Header{Name: "www.example.com.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: []byte{192, 0, 2, 10}},
		&dns.A{Hdr: dns.RR_Header{Name: "www.example.com.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: []byte{192, 0, 2, 11}},
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		set[0].Header().Ttl = uint32(i) // new content: a cache miss
		if len(z.Sign(set)) != 1 {
			b.Fatal("not signed")
		}
	}
}

// BenchmarkSignUncachedECDSAP256 is one fresh ECDSA P-256 signature.
func BenchmarkSignUncachedECDSAP256(b *testing.B) { benchSignUncached(b, ECDSAP256SHA256) }

// BenchmarkSignUncachedEd25519 is one fresh Ed25519 signature.
func BenchmarkSignUncachedEd25519(b *testing.B) { benchSignUncached(b, ED25519) }

// BenchmarkSignCached is a signature cache hit.
func BenchmarkSignCached(b *testing.B) {
	keys, _, _ := Ensure(nil, []string{"example.com."}, ECDSAP256SHA256, false, time.Now())
	s := New(Options{})
	s.SetKeys(keys)
	z := s.Zone("example.com.")
	set := []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "www.example.com.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: []byte{192, 0, 2, 10}}}
	z.Sign(set)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		z.Sign(set)
	}
}
