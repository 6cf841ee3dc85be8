package dnsserver

import (
	"net/netip"
	"os"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/gslb"
)

var osHostname = os.Hostname

// answer fills in the reply for an acceptable query and returns its rcode.
func (s *Server) answer(q *query, snap *Snapshot) int {
	m := &q.m
	qc := m.Question[0].Qclass
	if m.Opcode == dns.OpcodeNotify {
		return dns.RcodeRefused // DNS-46: we are nobody's secondary
	}
	switch q.qtype {
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY:
		return dns.RcodeFormatError // DNS-17: meta types are not questions
	case dns.TypeMAILA, dns.TypeMAILB:
		return dns.RcodeNotImplemented
	case dns.TypeAXFR, dns.TypeIXFR:
		return dns.RcodeRefused // zone transfers are not offered
	}
	if qc == dns.ClassCHAOS {
		return s.chaos(q)
	}
	if qc != dns.ClassINET && qc != dns.ClassANY {
		return dns.RcodeRefused // DNS-24
	}
	z := snap.findZone(q.qname)
	if z == nil {
		if snap.broken(q.qname) {
			q.ede = edeNotReady
			return dns.RcodeServerFailure // ZL-03: configured but not loaded
		}
		q.ede = edeNotAuthoritative
		return dns.RcodeRefused // DNS-06: no AA, no referral to the root
	}
	s.resolve(q, z, snap)
	return m.Rcode
}

// Extended DNS Errors (RFC 8914) of our replies, where Knot sets one too:
// REFUSED for a name in no zone of ours; and SERVFAIL for a zone that is
// configured but never loaded (Knot says 24 Invalid Data there).
var (
	edeNotAuthoritative = &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeNotAuthoritative}
	edeNotReady         = &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeNotReady}
)

// chaos answers CH TXT id.server and hostname.bind with the NSID (RFC 4892);
// version.bind and everything else is refused.
func (s *Server) chaos(q *query) int {
	if q.qtype != dns.TypeTXT || (q.qname != "id.server." && q.qname != "hostname.bind.") {
		return dns.RcodeRefused
	}
	m := &q.m
	m.Authoritative = true
	m.Answer = append(m.Answer, &dns.TXT{
		Hdr: dns.RR_Header{Name: m.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassCHAOS},
		Txt: []string{s.cfg.NSID},
	})
	return dns.RcodeSuccess
}

func addrFromECS(e *dns.EDNS0_SUBNET) netip.Addr {
	ip, _ := netip.AddrFromSlice(e.Address)
	return ip.Unmap()
}

// clientFrom is the client a GSLB answer is for.
func clientFrom(ecs *dns.EDNS0_SUBNET, src netip.Addr) gslb.Client {
	if ecs != nil {
		if ip := addrFromECS(ecs); usableECS(ip, ecs.SourceNetmask) {
			return gslb.Client{Addr: ip, Bits: ecs.SourceNetmask}
		}
	}
	return gslb.Client{Addr: src, Bits: uint8(src.BitLen())}
}
