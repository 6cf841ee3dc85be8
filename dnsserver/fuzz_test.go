package dnsserver

import (
	"net"
	"testing"

	"github.com/miekg/dns"
)

// fuzzSeeds are real queries and known-bad packets: the header that lies
// about its question count (it used to panic the handler), a pointer loop,
// a truncated question, two OPTs, ECS and NSID.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	for _, m := range []*dns.Msg{
		benchMsg("www.example.com.", dns.TypeA),
		benchMsg("a.b.sub.example.com.", dns.TypeA),
		benchMsg("x.wild.example.com.", dns.TypeTXT),
		benchMsg("chain1.example.com.", dns.TypeA),
		benchMsg("big.example.com.", dns.TypeTXT),
		benchMsg("example.com.", dns.TypeANY),
		benchMsg("x.big-deleg.example.com.", dns.TypeA),
	} {
		pkt, _ := m.Pack()
		seeds = append(seeds, pkt)
	}
	ecs := benchMsg("www.example.com.", dns.TypeAAAA)
	ecs.IsEdns0().Option = append(ecs.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(198, 51, 100, 0).To4()},
		&dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	pkt, _ := ecs.Pack()
	seeds = append(seeds, pkt)
	cookie := benchMsg("www.example.com.", dns.TypeA)
	cookie.IsEdns0().Option = append(cookie.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "2464c4abcf10c957010000005cf79f111f8130c3eee29480"})
	pkt, _ = cookie.Pack()
	seeds = append(seeds, pkt)
	cookieOnly := new(dns.Msg)
	cookieOnly.SetEdns0(1232, false)
	cookieOnly.IsEdns0().Option = append(cookieOnly.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "2464c4abcf10c957"})
	pkt, _ = cookieOnly.Pack()
	seeds = append(seeds, pkt)
	twoOPT := benchMsg("www.example.com.", dns.TypeA)
	twoOPT.Extra = append(twoOPT.Extra, twoOPT.Extra[0])
	pkt, _ = twoOPT.Pack()
	seeds = append(seeds, pkt)
	return append(seeds,
		[]byte{0xbe, 0xef, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0},                         // QDCOUNT=1, no question
		[]byte{0xbe, 0xef, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1},                         // and an OPT promised
		[]byte{0xbe, 0xef, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1},   // pointer loop
		[]byte{0xbe, 0xef, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'c', 'o', 'm', 0, 0}, // truncated question
		[]byte{0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},                         // no question at all
	)
}

// FuzzServe (DNS-50) feeds arbitrary packets to the UDP reader (reply cache
// and all) and to the TCP path, as they come off the wire: no panic
// (recovered ones count too), and every reply unpacks, keeps the ID, has
// QR set and fits a UDP reply into 1232 bytes; the RRL slip reply made of
// it unpacks too.
func FuzzServe(f *testing.F) {
	for _, pkt := range fuzzSeeds() {
		f.Add(pkt)
	}
	s := newTestServer(f)
	// Every reply is checked whole; the limiter's reading of replies and
	// its slip replies are fuzzed on each reply below.
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
		out := r.handle(pkt)
		check("udp", out)
		if out != nil {
			rrlClassify(out)
			for _, bad := range []bool{false, true} {
				slip := slipReply(nil, out, bad)
				m := new(dns.Msg)
				if err := m.Unpack(slip); err != nil || m.Id != uint16(pkt[0])<<8|uint16(pkt[1]) || len(m.Answer)+len(m.Ns) != 0 {
					t.Fatalf("slip reply %x to %x: %v", slip, out, err)
				}
			}
		}
		q := s.pool.Get().(*query)
		out, _, _ = s.respond(q, tw, pkt, s.snap.Load())
		check("tcp", out)
		s.pool.Put(q)
	})
}
