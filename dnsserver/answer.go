package dnsserver

import (
	"net/netip"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/zones"
)

// query is the per-query state, pooled and reused.
type query struct {
	m        dns.Msg
	qname    string // lower case
	question [1]dns.Question
	qtype    uint16
	client   gslb.Client
	// clientKnown is set once client has been filled in (lazily: only
	// GSLB answers need it).
	clientKnown bool
	ecs         *dns.EDNS0_SUBNET
	src         netip.Addr
	scope       uint8
	scoped      bool  // a GSLB answer was given: scope applies
	perClient   bool  // the reply depends on the client: cached per client only
	random      bool  // the reply varies between queries: never cached
	cut         *node // the delegation of a referral, if the reply is one
	cutz        *zone // the zone of cut
	addrs       []netip.Addr
	buf         []byte
	ips         []byte // backing store of synthesized addresses
	aRR         []dns.A
	aaaaRR      []dns.AAAA
	// view is the health and RTT view of the query's GSLB answers, loaded
	// once per query at the first; deps are the GSLB records the reply
	// depends on (the reply cache tags its entry with them).
	view *gslb.View
	deps []*gslb.Record
	// cookie is the query's DNS Cookie (cookie.go); ede the Extended DNS
	// Error of the reply (RFC 8914), nil for none.
	cookie cookieState
	ede    *dns.EDNS0_EDE
}

// resolve answers q from zone z (RFC 1034 §4.3.2, with RFC 4592 wildcards
// and RFC 6604 rcodes for CNAME chains).
func (s *Server) resolve(q *query, z *servedZone, snap *Snapshot) {
	m := &q.m
	m.Authoritative = true
	name := q.qname
	for depth := 0; ; depth++ {
		if depth > zones.MaxCNAMEChain {
			// Wildcard or GSLB CNAMEs can still chain; stop here with
			// what we have (DNS-12).
			return
		}
		if z.cuts {
			if cut := z.cutAbove(name, q.qtype); cut != nil {
				s.referral(q, z, cut)
				return
			}
		}
		n := z.lookup(name)
		owner := name
		if n == nil {
			n = z.encloserWild(name)
			if n == nil {
				m.Rcode = dns.RcodeNameError
				m.Ns = append(m.Ns, z.neg)
				return
			}
			// RFC 4592 §3.3.1: synthesize from the wildcard with the
			// query name as owner.
		}
		next := s.answerNode(q, z, n, owner)
		if next == "" {
			return
		}
		if !dns.IsSubDomain(z.origin, next) {
			return // the resolver follows an out-of-zone target itself
		}
		name = next
	}
}

// cutAbove returns the topmost delegation at or above name, except a DS
// query at the cut itself, which the parent side answers (RFC 4035 §3.1.4.1).
func (z *zone) cutAbove(name string, qtype uint16) *node {
	var buf [256]byte
	w, ok := toWire(&buf, name)
	if !ok {
		return nil
	}
	return z.cutAboveWire(w, qtype)
}

// cutAboveWire is cutAbove for a wire name in the zone (lower case): it
// looks up the name and each ancestor below the apex, packing none again.
func (z *zone) cutAboveWire(w []byte, qtype uint16) *node {
	var cut *node
	labels := 0
	for i := 0; i < len(w) && w[i] != 0; i += 1 + int(w[i]) {
		labels++
	}
	for s := w; labels > z.labels; labels-- {
		if nd := z.find(s); nd != nil && nd.cut() && (len(s) != len(w) || qtype != dns.TypeDS) {
			cut = nd
		}
		s = s[1+int(s[0]):]
	}
	return cut
}

// referral answers with the delegation's NS records and their glue, AA clear
// unless the answer section already holds authoritative data (a CNAME chain
// into the delegation).
func (s *Server) referral(q *query, z *servedZone, cut *node) {
	m := &q.m
	if len(m.Answer) == 0 {
		m.Authoritative = false
	}
	m.Ns = append(m.Ns, z.get(cut, dns.TypeNS)...)
	m.Extra = append(m.Extra, z.extraRRs(cut, dns.TypeNS)...)
	q.cut, q.cutz = cut, z.zone
}

// glueFits reports whether a truncated referral still carries every
// in-domain glue record (RFC 9471 §3: if it cannot, the reply is TC; sibling
// glue may be left out without TC).
func (q *query) glueFits() bool {
	need := 0
	cut := q.cutz.ownerName(q.cut)
	for _, rr := range q.cutz.extraRRs(q.cut, dns.TypeNS) {
		if dns.IsSubDomain(cut, rr.Header().Name) {
			need++
		}
	}
	have := 0
	for _, rr := range q.m.Extra {
		if t := rr.Header().Rrtype; (t == dns.TypeA || t == dns.TypeAAAA) && dns.IsSubDomain(cut, rr.Header().Name) {
			have++
		}
	}
	return have >= need
}

// answerNode answers from node n for owner name (n's own name, or the query
// name for a wildcard). It returns the CNAME target to follow, or "".
func (s *Server) answerNode(q *query, z *servedZone, n *node, owner string) string {
	m := &q.m
	qt := q.qtype
	if n.cname() && qt != dns.TypeCNAME {
		for _, rr := range z.get(n, dns.TypeCNAME) {
			m.Answer = append(m.Answer, q.rename(rr, owner))
		}
		if qt == dns.TypeANY {
			return "" // RFC 1034 §4.3.2 step 3a: ANY matches the CNAME itself
		}
		return dns.CanonicalName(z.cnameTarget(n))
	}
	if n.gslb != 0 && (qt == dns.TypeA || qt == dns.TypeAAAA || qt == dns.TypeANY) {
		return s.answerGSLB(q, z, z.record(n), owner)
	}
	if qt == dns.TypeANY {
		// RFC 8482 §4.2: one RRset is a complete answer to ANY.
		if set := z.firstSet(n); set.n > 0 {
			for _, rr := range z.rrs(set, owner) {
				m.Answer = append(m.Answer, q.rename(rr, owner))
			}
			return ""
		}
	} else if set := z.rrset(n, qt); set.n > 0 {
		rrs := z.rrs(set, owner)
		for _, rr := range rrs {
			m.Answer = append(m.Answer, q.rename(rr, owner))
		}
		m.Extra = append(m.Extra, z.extraRRs(n, qt)...)
		return ""
	}
	// NODATA (RFC 2308 §2.2).
	m.Ns = append(m.Ns, z.neg)
	return ""
}

// rename returns rr with owner name as its owner: rr itself unless it comes
// from a wildcard.
func (q *query) rename(rr dns.RR, owner string) dns.RR {
	if rr.Header().Name == owner {
		return rr
	}
	c := dns.Copy(rr)
	c.Header().Name = owner
	return c
}

// answerGSLB answers A or AAAA from a GSLB record.
func (s *Server) answerGSLB(q *query, z *servedZone, r *gslb.Record, owner string) string {
	m := &q.m
	fam := gslb.IPv4
	if q.qtype == dns.TypeAAAA {
		fam = gslb.IPv6
	}
	q.fillClient()
	if q.view == nil {
		q.view = z.snap.view.Load()
	}
	q.deps = append(q.deps, r)
	q.perClient = q.perClient || r.DependsOnClient(q.view)
	q.random = q.random || r.Random()
	a := r.Answer(q.addrs[:0], fam, &q.client, q.view)
	q.addrs = a.Addrs[:0]
	if !q.scoped || a.Scope > q.scope {
		q.scope = a.Scope
	}
	q.scoped = true
	if a.ServFail {
		m.Rcode = dns.RcodeServerFailure
		m.Authoritative = false
		return ""
	}
	if a.CNAME != "" {
		c := &dns.CNAME{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: a.TTL}, Target: a.CNAME}
		m.Answer = append(m.Answer, c)
		return a.CNAME
	}
	if len(a.Addrs) == 0 {
		m.Ns = append(m.Ns, z.neg)
		return ""
	}
	hdr := dns.RR_Header{Name: owner, Class: dns.ClassINET, Ttl: a.TTL}
	if fam == gslb.IPv4 {
		hdr.Rrtype = dns.TypeA
		base := len(q.aRR)
		for _, ip := range a.Addrs {
			v := ip.As4()
			q.ips = append(q.ips, v[:]...)
			q.aRR = append(q.aRR, dns.A{Hdr: hdr, A: q.ips[len(q.ips)-4:]})
		}
		for i := base; i < len(q.aRR); i++ {
			m.Answer = append(m.Answer, &q.aRR[i])
		}
	} else {
		hdr.Rrtype = dns.TypeAAAA
		base := len(q.aaaaRR)
		for _, ip := range a.Addrs {
			v := ip.As16()
			q.ips = append(q.ips, v[:]...)
			q.aaaaRR = append(q.aaaaRR, dns.AAAA{Hdr: hdr, AAAA: q.ips[len(q.ips)-16:]})
		}
		for i := base; i < len(q.aaaaRR); i++ {
			m.Answer = append(m.Answer, &q.aaaaRR[i])
		}
	}
	return ""
}
