package dnsserver

import (
	"net"
	"testing"

	"github.com/miekg/dns"
)

// FuzzServe (DNS-50) feeds arbitrary packets through the path miekg/dns's
// server takes (header, accept, unpack) into ServeDNS: no panic, and every
// reply unpacks.
func FuzzServe(f *testing.F) {
	for _, m := range []*dns.Msg{
		benchMsg("www.example.com.", dns.TypeA),
		benchMsg("a.b.sub.example.com.", dns.TypeA),
		benchMsg("x.wild.example.com.", dns.TypeTXT),
		benchMsg("chain1.example.com.", dns.TypeA),
		benchMsg("big.example.com.", dns.TypeTXT),
		benchMsg("example.com.", dns.TypeANY),
	} {
		pkt, _ := m.Pack()
		f.Add(pkt)
	}
	ecs := benchMsg("www.example.com.", dns.TypeAAAA)
	ecs.IsEdns0().Option = append(ecs.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(198, 51, 100, 0).To4()},
		&dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	pkt, _ := ecs.Pack()
	f.Add(pkt)
	f.Add([]byte{0xbe, 0xef, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1})

	s := newTestServer(f)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		m := new(dns.Msg)
		if len(pkt) < 12 || m.Unpack(pkt) != nil {
			return // the server answers FORMERR or drops, without ServeDNS
		}
		h := dns.Header{Id: m.Id, Qdcount: uint16(len(m.Question)), Ancount: uint16(len(m.Answer)), Nscount: uint16(len(m.Ns)), Arcount: uint16(len(m.Extra))}
		h.Bits = uint16(m.Opcode) << 11
		if m.Response {
			h.Bits |= 1 << 15
		}
		if accept(h) != dns.MsgAccept {
			return
		}
		for _, network := range []string{"udp", "tcp"} {
			var remote net.Addr = &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5300}
			if network == "tcp" {
				remote = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5300}
			}
			w := &writer{remote: remote}
			s.ServeDNS(w, m)
			if len(w.out) == 0 {
				t.Fatalf("%s: no reply to %v", network, m)
			}
			r := new(dns.Msg)
			if err := r.Unpack(w.out); err != nil {
				t.Fatalf("%s: reply does not unpack: %v\nquery: %v", network, err, m)
			}
			if r.Id != m.Id || !r.Response {
				t.Fatalf("%s: reply id %d QR %v for query id %d", network, r.Id, r.Response, m.Id)
			}
			if network == "udp" && len(w.out) > 1232 {
				t.Fatalf("UDP reply of %d bytes", len(w.out))
			}
		}
	})
}
