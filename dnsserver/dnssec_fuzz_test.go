package dnsserver

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/dnssec"
)

// FuzzSignedReply (DNSSEC-15) is FuzzServe with example.com signed and the
// seeds asking with DO=1 (and for the apex keys): no panic, every reply
// unpacks with the query's ID, and a UDP reply fits 1232 bytes.
func FuzzSignedReply(f *testing.F) {
	for _, pkt := range fuzzSeeds() {
		m := new(dns.Msg)
		if m.Unpack(pkt) == nil && m.IsEdns0() != nil {
			m.IsEdns0().SetDo()
			if b, err := m.Pack(); err == nil {
				pkt = b
			}
		}
		f.Add(pkt)
	}
	for _, q := range []uint16{dns.TypeDNSKEY, dns.TypeCDS, dns.TypeDS, dns.TypeNSEC} {
		m := benchMsg("example.com.", q)
		m.IsEdns0().SetDo()
		pkt, _ := m.Pack()
		f.Add(pkt)
	}
	keys, _, err := dnssec.Ensure(nil, []string{"example.com."}, dnssec.ECDSAP256SHA256, false, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	sg := dnssec.New(dnssec.Options{})
	sg.SetKeys(keys)
	s := newTestServer(f)
	s.cfg.Signer = sg
	s.rrl = nil
	r := &udpReader{s: s, buf: make([]byte, dns.MaxMsgSize), out: make([]byte, 0, dns.MaxMsgSize), hseed: s.hseed}
	r.q.buf = make([]byte, 0, dns.MaxMsgSize)
	r.w.r = r
	r.w.from = (&net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5300}).AddrPort()
	tw := &writer{remote: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5300}}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		before := s.stats.panics.Load()
		check := func(network string, out []byte) {
			if s.stats.panics.Load() != before {
				t.Fatalf("%s: the handler panicked on %x", network, pkt)
			}
			if out == nil {
				return
			}
			rep := new(dns.Msg)
			if err := rep.Unpack(out); err != nil {
				t.Fatalf("%s: reply does not unpack: %v\nquery: %x", network, err, pkt)
			}
			if len(pkt) < 12 || rep.Id != uint16(pkt[0])<<8|uint16(pkt[1]) || !rep.Response {
				t.Fatalf("%s: reply id %d QR %v to query %x", network, rep.Id, rep.Response, pkt)
			}
			if network == "udp" && len(out) > 1232 {
				t.Fatalf("UDP reply of %d bytes", len(out))
			}
		}
		check("udp", r.handle(pkt))
		q := s.pool.Get().(*query)
		out, _, _ := s.respond(q, tw, pkt, s.snap.Load())
		check("tcp", out)
		s.pool.Put(q)
	})
}
