package dnsserver

import (
	"github.com/miekg/dns"

	"github.com/gslbd/gslb/dnssec"
)

// DNSSEC: a reply is signed once it is assembled, before it is packed and
// truncated to the client's size (serve calls signReply), so the hot path
// of unsigned queries is untouched and signed replies are cached like
// others (the reply cache key holds the DO bit). A reply is signed when the
// query has DO=1 and its name is in a zone the Config's Signer has keys
// for; a DNSKEY, CDS or CDNSKEY query at such a zone's apex gets the key
// RRset whatever its DO bit.
//
// What is added (RFC 4035 §3.1; RFC 9824 for denial):
//   - an RRSIG after each RRset of the answer section (wildcard answers
//     are signed as the name asked, with its full label count, as an
//     online signer may: no wildcard proof is then needed);
//   - NODATA: the SOA's RRSIG, and an NSEC at the name (the last CNAME
//     target, for a chain) whose next name is "\000.name" and whose types
//     are those present less the type asked;
//   - a name that does not exist: the same NSEC with the NXNAME meta-type
//     and the response code NOERROR, not NXDOMAIN (RFC 9824 §3.3 and §4:
//     a validator that knows NXNAME reads it as NXDOMAIN; one that does
//     not validates a NODATA);
//   - a referral: the delegation's DS RRset and its RRSIG, or an NSEC at
//     the delegation with NS, RRSIG and NSEC only (no DS: an insecure
//     delegation). Glue and other additional records stay unsigned.

// isKeyType reports whether t is one of the apex key types the signer
// answers.
func isKeyType(t uint16) bool {
	return t == dns.TypeDNSKEY || t == dns.TypeCDS || t == dns.TypeCDNSKEY
}

// signReply adds the DNSSEC records to the assembled reply q.m (see
// above); do is the query's DO bit. The caller checks that a signer is
// configured.
func (s *Server) signReply(q *query, snap *Snapshot, do bool) {
	m := &q.m
	if m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError || len(m.Question) != 1 {
		return
	}
	sg := s.cfg.Signer
	origin, _, _ := snap.NameInfo(q.qname, nil)
	z := sg.Zone(origin)
	if z == nil {
		return
	}
	if q.qname == origin && isKeyType(q.qtype) && len(m.Answer) == 0 && m.Authoritative {
		// The zone file holds no keys: the signer's are the apex's.
		var keys []dns.RR
		switch q.qtype {
		case dns.TypeDNSKEY:
			keys = z.DNSKEY()
		case dns.TypeCDS:
			keys = z.CDS()
		case dns.TypeCDNSKEY:
			keys = z.CDNSKEY()
		}
		if len(keys) > 0 {
			m.Answer = append(m.Answer, keys...)
			m.Ns = m.Ns[:0]
			m.Rcode = dns.RcodeSuccess
		}
	}
	if !do {
		return
	}
	m.Answer = signSection(sg, snap, m.Answer, q.qname, origin)
	if len(m.Ns) == 0 {
		return
	}
	var soa *dns.SOA
	var cut string
	for _, rr := range m.Ns {
		switch v := rr.(type) {
		case *dns.SOA:
			soa = v
		case *dns.NS:
			cut = v.Hdr.Name
		}
	}
	switch {
	case soa != nil:
		s.signDenial(q, snap, sg, soa)
	case cut != "":
		signReferral(q, snap, sg, cut)
	default:
		m.Ns = signSection(sg, snap, m.Ns, q.qname, origin)
	}
}

// signSection returns rrs with the RRSIGs of each of its RRsets (runs of
// records of one owner and type) in a signed zone after it. known is a
// name whose zone is knownOrigin (the query name's, looked up already).
func signSection(sg *dnssec.Signer, snap *Snapshot, rrs []dns.RR, known, knownOrigin string) []dns.RR {
	out := make([]dns.RR, 0, 2*len(rrs))
	for i := 0; i < len(rrs); {
		h := rrs[i].Header()
		j := i + 1
		for j < len(rrs) && rrs[j].Header().Rrtype == h.Rrtype && equalName(rrs[j].Header().Name, h.Name) {
			j++
		}
		out = append(out, rrs[i:j]...)
		if h.Rrtype != dns.TypeRRSIG && h.Rrtype != dns.TypeOPT {
			origin := knownOrigin
			if !equalName(h.Name, known) {
				origin, _, _ = snap.NameInfo(h.Name, nil)
			}
			if z := sg.Zone(origin); z != nil {
				out = append(out, z.Sign(rrs[i:j])...)
			}
		}
		i = j
	}
	return out
}

// signDenial signs a negative reply: the SOA, and the compact-denial NSEC
// of the name the reply denies.
func (s *Server) signDenial(q *query, snap *Snapshot, sg *dnssec.Signer, soa *dns.SOA) {
	m := &q.m
	z := sg.Zone(dns.CanonicalName(soa.Hdr.Name))
	if z == nil {
		return // a CNAME chain into an unsigned zone
	}
	// The denied name: the query name, or the end of its CNAME chain.
	name := q.qname
	for _, rr := range m.Answer {
		if c, ok := rr.(*dns.CNAME); ok && equalName(c.Hdr.Name, name) {
			name = dns.CanonicalName(c.Target)
		}
	}
	if m.Rcode == dns.RcodeSuccess && q.qtype == dns.TypeNSEC && name == q.qname {
		// Every name of a signed zone has its NSEC (compact denial makes
		// it), so a question for it is answered with it, not with a
		// NODATA proof whose bitmap would list the type asked.
		nsec := z.Denial(name, nodeTypes(snap, name), q.qtype, false, soa.Hdr.Ttl)
		m.Answer = append(m.Answer, signSection(sg, snap, []dns.RR{nsec}, z.Origin, z.Origin)...)
		m.Ns = m.Ns[:0]
		return
	}
	var nsec *dns.NSEC
	if m.Rcode == dns.RcodeNameError {
		nsec = z.Denial(name, nil, q.qtype, true, soa.Hdr.Ttl)
		m.Rcode = dns.RcodeSuccess // RFC 9824 §3.3
	} else {
		nsec = z.Denial(name, nodeTypes(snap, name), q.qtype, false, soa.Hdr.Ttl)
	}
	m.Ns = append(m.Ns, nsec)
	m.Ns = signSection(sg, snap, m.Ns, z.Origin, z.Origin)
}

// nodeTypes returns the types at name, or, for a name that only a
// wildcard answers, at the wildcard (RFC 4592 §3.3.1).
func nodeTypes(snap *Snapshot, name string) []uint16 {
	_, exists, types := snap.NameInfo(name, nil)
	if exists {
		return types
	}
	origin, _, _ := snap.NameInfo(name, nil)
	for ce := parent(name); ; ce = parent(ce) {
		if _, ok, _ := snap.NameInfo(ce, nil); ok {
			_, _, types = snap.NameInfo("*."+ce, nil)
			return types
		}
		if ce == origin || ce == "." {
			return nil
		}
	}
}

// signReferral adds the proof of what the parent knows of delegation cut:
// its DS RRset, signed, or a signed NSEC that says there is none.
func signReferral(q *query, snap *Snapshot, sg *dnssec.Signer, cut string) {
	m := &q.m
	cut = dns.CanonicalName(cut)
	origin, _, types := snap.NameInfo(cut, nil)
	z := sg.Zone(origin)
	if z == nil {
		return
	}
	if ds := snap.dsAt(cut); len(ds) > 0 {
		m.Ns = append(m.Ns, ds...)
		m.Ns = append(m.Ns, z.Sign(ds)...)
		return
	}
	// RFC 4035 §3.1.4: the NSEC at the delegation, without DS. Its TTL is
	// the zone's negative TTL (RFC 9077).
	ttl := uint32(3600)
	if zn := snap.findZone(cut); zn != nil {
		ttl = zn.neg.Hdr.Ttl
	}
	nsec := z.Denial(cut, types, dns.TypeDS, false, ttl)
	m.Ns = append(m.Ns, nsec)
	m.Ns = append(m.Ns, z.Sign([]dns.RR{nsec})...)
}

// dsAt returns the DS RRset the zone file holds at delegation cut, if any.
func (s *Snapshot) dsAt(cut string) []dns.RR {
	z := s.findZone(cut)
	if z == nil {
		return nil
	}
	n := z.lookup(cut)
	if n == nil {
		return nil
	}
	return z.get(n, dns.TypeDS)
}

// equalName compares two domain names without regard to ASCII case.
func equalName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// ClearReplies empties the reply cache of the snapshot being served. While
// zones are signed it is called when the keys change and every hour: a
// cached signed reply must not outlive its signatures (which are renewed
// two days before they expire; see dnssec.Options.Refresh).
func (s *Server) ClearReplies() {
	c := s.snap.Load().cache
	for i := range c.slots {
		c.slots[i].Store(nil)
	}
}

// Signer returns the DNSSEC signer of the server (nil when none).
func (s *Server) Signer() *dnssec.Signer { return s.cfg.Signer }
