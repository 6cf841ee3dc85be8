package dnsserver

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/zones"
)

// The wire fast path answers the common UDP query straight from the packet
// and the snapshot's pre-packed RRsets, with no dns.Msg and no allocation:
// parseWire reads the header, the one question and the OPT record (ECS,
// COOKIE, NSID, DO, padding and options it need not read) into a
// wireQuery; fastAnswer looks the name up and assembles the reply by
// copying the question and the packed records, their owner a pointer to
// the question name. Everything else (other opcodes and classes, several
// questions or records, compression in the question, names that need
// escapes, malformed or unusual EDNS, CNAME chains, referrals, ANY, names
// in no zone, replies that do not fit) is left to the miekg/dns path
// (respond), which answers exactly as before: the fast path declines
// rather than guess, and gives the same replies as that path for what it
// accepts (TestFastPathDifferential, FuzzWireParse).

// wireQuery is a query of the common shape, parsed from the wire. Its
// slices point into the packet.
type wireQuery struct {
	qend  int // offset just past QTYPE and QCLASS
	qtype uint16
	// name is the query name in lower case and presentation form
	// ("www.example.com."), nlen bytes long; label holds the offset in
	// the packet of each of its nlab labels.
	name  [256]byte
	nlen  int
	label [128]uint16
	nlab  int
	// target is the name a CNAME points to, in the form of name (lowerName).
	target [256]byte
	// wire is the query name in lower case and wire form, wlen bytes.
	wire [256]byte
	wlen int
	// The names written into the reply so far (appendName), for
	// compression: where each starts, its uncompressed form, and how
	// much of it is written out (the rest is a pointer).
	names  [16]writtenName
	nnames int

	edns bool
	do   bool
	size uint16 // the requester's UDP payload size
	// ecs is the Client Subnet option's data (family, source and scope,
	// address), nil for none; ecsAddr and ecsBits are the address and
	// source prefix length it gives.
	ecs     []byte
	ecsAddr netip.Addr
	ecsBits uint8
	cookie  []byte // the COOKIE option's data, nil for none
	nsid    bool
	// nsidFirst: NSID came before ECS in the query (the reply echoes
	// them in the query's order).
	nsidFirst bool
}

type writtenName struct {
	off int
	nm  []byte
	lit int
}

// parseWire parses pkt into wq if it has the common shape the fast path
// answers; ok is false otherwise (the packet may still be a fine query,
// or malformed: the miekg/dns path decides).
func parseWire(pkt []byte, wq *wireQuery) (ok bool) {
	if len(pkt) < 17 || pkt[2]&0xf8 != 0 || // a query, opcode QUERY
		binary.BigEndian.Uint16(pkt[4:]) != 1 || binary.BigEndian.Uint16(pkt[6:]) != 0 ||
		binary.BigEndian.Uint16(pkt[8:]) != 0 || binary.BigEndian.Uint16(pkt[10:]) > 1 {
		return false
	}
	i, n, nl := 12, 0, 0
	for {
		if i >= len(pkt) {
			return false
		}
		l := int(pkt[i])
		if l == 0 {
			i++
			break
		}
		if l > 63 || i+1+l > len(pkt) || i+1+l-12 >= 255 {
			return false // compression, a truncated or too long name
		}
		wq.label[nl] = uint16(i)
		nl++
		wq.wire[i-12] = byte(l)
		for k, c := range pkt[i+1 : i+1+l] {
			c, ok := nameByte(c)
			if !ok {
				return false // a name that needs escapes in presentation form
			}
			wq.name[n] = c
			wq.wire[i-12+1+k] = c
			n++
		}
		wq.name[n] = '.'
		n++
		i += 1 + l
	}
	if nl == 0 || i+4 > len(pkt) || binary.BigEndian.Uint16(pkt[i+2:]) != dns.ClassINET {
		return false // the root, no room for QTYPE and QCLASS, a class not IN
	}
	wq.nlen, wq.nlab = n, nl
	wq.wire[i-1-12] = 0
	wq.wlen = i - 12
	wq.qtype = binary.BigEndian.Uint16(pkt[i:])
	switch wq.qtype {
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeMAILA, dns.TypeMAILB, dns.TypeAXFR, dns.TypeIXFR, dns.TypeANY:
		return false
	}
	i += 4
	wq.qend = i
	wq.edns, wq.do, wq.size, wq.ecs, wq.cookie, wq.nsid, wq.nsidFirst = false, false, 0, nil, nil, false, false
	if pkt[11] == 0 {
		return i == len(pkt) // nothing may follow the question
	}
	// The OPT record: root owner, type OPT, class = payload size, TTL =
	// extended rcode (0), version (0) and flags; then its options, up to
	// the end of the packet.
	if i+11 > len(pkt) || pkt[i] != 0 || binary.BigEndian.Uint16(pkt[i+1:]) != dns.TypeOPT || pkt[i+5] != 0 || pkt[i+6] != 0 {
		return false
	}
	wq.edns = true
	wq.size = binary.BigEndian.Uint16(pkt[i+3:])
	wq.do = pkt[i+7]&0x80 != 0
	j := i + 11
	if j+int(binary.BigEndian.Uint16(pkt[i+9:])) != len(pkt) {
		return false
	}
	for j < len(pkt) {
		if j+4 > len(pkt) {
			return false
		}
		code := binary.BigEndian.Uint16(pkt[j:])
		olen := int(binary.BigEndian.Uint16(pkt[j+2:]))
		if j+4+olen > len(pkt) {
			return false
		}
		data := pkt[j+4 : j+4+olen]
		switch code {
		case dns.EDNS0NSID:
			if wq.nsid {
				return false
			}
			wq.nsid, wq.nsidFirst = true, wq.ecs == nil
		case dns.EDNS0SUBNET:
			if wq.ecs != nil || !wq.parseECS(data) {
				return false
			}
		case dns.EDNS0COOKIE:
			if wq.cookie != nil || olen < clientCookieLen || olen > 40 || olen > clientCookieLen && olen < 16 {
				return false // a second or malformed COOKIE: FORMERR there
			}
			wq.cookie = data
		case dns.EDNS0PADDING:
		case dns.EDNS0LLQ, dns.EDNS0UL, dns.EDNS0ESU, dns.EDNS0DAU, dns.EDNS0DHU, dns.EDNS0N3U,
			dns.EDNS0EXPIRE, dns.EDNS0TCPKEEPALIVE, dns.EDNS0EDE, dns.EDNS0REPORTING, dns.EDNS0ZONEVERSION:
			// Options miekg/dns parses (and may reject): its path decides.
			return false
		default:
			// Unknown options are ignored, and not echoed (RFC 6891 §6.1.2).
		}
		j += 4 + olen
	}
	return true
}

// parseECS reads a Client Subnet option that checkEDNS would accept as it
// is (RFC 7871 §7.1.2: a known family, a source prefix length within it,
// scope 0, exactly the address bytes the prefix needs, no bit set beyond
// it); anything else is left to that path.
func (wq *wireQuery) parseECS(b []byte) bool {
	if len(b) < 4 || b[3] != 0 {
		return false
	}
	fam, bits, addr := binary.BigEndian.Uint16(b), int(b[2]), b[4:]
	if len(addr) != (bits+7)/8 {
		return false
	}
	var ip netip.Addr
	switch fam {
	case 1:
		if bits > 32 {
			return false
		}
		var a [4]byte
		copy(a[:], addr)
		ip = netip.AddrFrom4(a)
	case 2:
		if bits > 128 {
			return false
		}
		var a [16]byte
		copy(a[:], addr)
		ip = netip.AddrFrom16(a)
	default:
		return false
	}
	if p, _ := ip.Prefix(bits); p.Addr() != ip {
		return false
	}
	wq.ecs, wq.ecsAddr, wq.ecsBits = b, ip.Unmap(), uint8(bits)
	return true
}

// fast answers pkt on the wire fast path into r.out. ok is false when the
// fast path does not answer it (see above); then nothing was counted.
func (r *udpReader) fast(pkt []byte, snap *Snapshot) (out []byte, ok bool) {
	defer func() {
		if p := recover(); p != nil {
			// A bug here must not cost the process: count and log it,
			// and let the miekg/dns path answer.
			r.s.recovered(p, nil)
			out, ok = nil, false
		}
	}()
	wq := &r.wq
	if !parseWire(pkt, wq) {
		return nil, false
	}
	// DNSSEC: a reply that may be signed (DO set or a key type asked,
	// and a signer configured) is made on the miekg/dns path, where
	// replies are signed (serve).
	s := r.s
	if s.cfg.Signer != nil && (wq.do || isKeyType(wq.qtype)) {
		return nil, false
	}
	limit := dns.MinMsgSize
	if wq.edns {
		limit = int(max(dns.MinMsgSize, min(wq.size, s.cfg.UDPSize)))
	}
	// The name is only looked up, never kept: a string over the reader's
	// buffer saves copying it.
	name := unsafe.String(&wq.name[0], wq.nlen)
	z := snap.findZone(name)
	if z == nil {
		return nil, false // REFUSED, or SERVFAIL for a broken zone
	}
	wq.nnames = 0
	out = r.out[:0]
	out = append(out, pkt[0], pkt[1], 0x84|pkt[2]&0x01, pkt[3]&0x10, 0, 1, 0, 0, 0, 0, 0, 0)
	out = append(out, pkt[12:wq.qend]...) // the question as asked (DNS-25)
	rcode := dns.RcodeSuccess
	var an, ns, ar uint16
	var scope uint8
	scoped := false
	// owner is where the owner name of the answers is in the reply: the
	// question, then the target of each CNAME followed (RFC 1034 §4.3.2).
	owner := 12
	for depth := 0; ; depth++ {
		if depth > zones.MaxCNAMEChain {
			return nil, false // a chain that long
		}
		var buf [256]byte
		w := wq.wire[:wq.wlen] // the question's name, in wire form already
		if depth > 0 {
			var packed bool
			if w, packed = toWire(&buf, name); !packed { // a CNAME's target
				return nil, false
			}
		}
		if z.cuts && z.cutAboveWire(w, wq.qtype) != nil {
			return nil, false // a referral
		}
		n := z.find(w)
		if n == nil {
			n = z.encloserWildWire(w) // RFC 4592 §3.3.1, the name asked as owner
		}
		switch {
		case n == nil:
			rcode = dns.RcodeNameError // after a CNAME too (RFC 6604)
			if out, ok = wq.appendNeg(out, z); !ok {
				return nil, false
			}
			ns = 1
		case n.cname() && wq.qtype != dns.TypeCNAME:
			set := z.rrset(n, dns.TypeCNAME)
			w := z.rec(set.first)
			l := len(w)
			out = append(out, 0xc0|byte(owner>>8), byte(owner))
			target := len(out) + 10 // where appendRR writes the target
			out = wq.appendRR(out, w[:l])
			an++
			next, ok := wq.lowerName(w[10:l])
			if !ok || target >= 0x3fff {
				return nil, false
			}
			if !inZone(next, z.origin) {
				break // the resolver follows an out-of-zone target itself
			}
			name, owner = next, target
			continue
		case n.gslb != 0 && (wq.qtype == dns.TypeA || wq.qtype == dns.TypeAAAA):
			var servfail bool
			var k uint16
			out, k, scope, servfail, ok = r.fastGSLB(out, owner, z.record(n), snap)
			if !ok {
				return nil, false
			}
			an += k
			scoped = true
			switch {
			case servfail:
				rcode = dns.RcodeServerFailure
				out[2] &^= 0x04 // AA
			case k == 0:
				if out, ok = wq.appendNeg(out, z); !ok {
					return nil, false
				}
				ns = 1
			}
		default:
			set := z.rrset(n, wq.qtype)
			if set.n == 0 {
				if out, ok = wq.appendNeg(out, z); !ok { // NODATA (RFC 2308 §2.2)
					return nil, false
				}
				ns = 1
				break
			}
			// Every record: a pointer to its owner name, then the rest.
			for k := set.first; k < set.first+set.n; k++ {
				out = append(out, 0xc0|byte(owner>>8), byte(owner))
				out = wq.appendRR(out, z.rec(k))
			}
			// The additional records: their owner, then the rest.
			w := set.x
			for k := uint16(0); k < set.nx; k++ {
				o := nameLen(w)
				l := o + 10 + int(binary.BigEndian.Uint16(w[o+8:]))
				out = wq.appendName(out, w[:o])
				out = wq.appendRR(out, w[o:l])
				w = w[l:]
			}
			an += uint16(set.n)
			ar = set.nx
		}
		break
	}
	out[3] |= byte(rcode)
	if wq.edns {
		out = r.appendOPT(out, scoped, scope)
		ar++
	}
	if len(out) > limit {
		return nil, false // truncation is decided on the miekg/dns path
	}
	binary.BigEndian.PutUint16(out[6:], an)
	binary.BigEndian.PutUint16(out[8:], ns)
	binary.BigEndian.PutUint16(out[10:], ar)
	r.out = out
	s.stats.count(false, wq.qtype, rcode)
	return out, true
}

// lowerName writes wire name nm in lower case and presentation form into
// wq.target and returns it as a string over that buffer (valid until the
// next call); ok is false for a name that needs escapes.
func (wq *wireQuery) lowerName(nm []byte) (_ string, ok bool) {
	n := 0
	for i := 0; i < len(nm) && nm[i] != 0; i += 1 + int(nm[i]) {
		l := int(nm[i])
		if i+1+l > len(nm) || n+l+1 > len(wq.target) {
			return "", false
		}
		for _, c := range nm[i+1 : i+1+l] {
			c, ok := nameByte(c)
			if !ok {
				return "", false
			}
			wq.target[n] = c
			n++
		}
		wq.target[n] = '.'
		n++
	}
	if n == 0 {
		return "", false // the root
	}
	return unsafe.String(&wq.target[0], n), true
}

// nameByte returns the byte of a name label in lower case; ok is false for
// a byte that presentation form escapes (the fast path leaves such names).
func nameByte(c byte) (_ byte, ok bool) {
	l := nameBytes[c]
	return l, l != 0
}

// nameBytes maps each byte a name label may hold unescaped to its lower
// case; every other byte to 0.
var nameBytes = func() (t [256]byte) {
	for c := range 256 {
		b := byte(c)
		switch {
		case b >= 'a' && b <= 'z', b >= '0' && b <= '9', b == '-', b == '_', b == '*':
			t[c] = b
		case b >= 'A' && b <= 'Z':
			t[c] = b + 'a' - 'A'
		}
	}
	return t
}()

// inZone reports whether name is origin or below it (both lower case).
func inZone(name, origin string) bool {
	if origin == "." || name == origin {
		return true
	}
	return len(name) > len(origin) && name[len(name)-len(origin)-1] == '.' && name[len(name)-len(origin):] == origin
}

// appendNeg appends the zone's SOA for a negative answer, its owner a
// pointer to the zone's origin in the question name.
func (wq *wireQuery) appendNeg(out []byte, z *servedZone) ([]byte, bool) {
	if len(z.negWire) == 0 {
		return out, false
	}
	if z.labels == 0 {
		out = append(out, 0)
	} else {
		off := wq.label[wq.nlab-z.labels]
		out = append(out, 0xc0|byte(off>>8), byte(off))
	}
	return wq.appendRR(out, z.negWire), true
}

// appendRR appends a pre-packed record without its owner (type, class,
// TTL, RDLENGTH, RDATA with its names uncompressed), compressing the
// names in the RDATA of the types miekg/dns compresses against the
// question name, as it would: so a name in the question's zone comes out
// with the question's letter case, whichever path answers.
func (wq *wireQuery) appendRR(out, w []byte) []byte {
	var names, tail int // names at the start of RDATA, and what follows them
	switch binary.BigEndian.Uint16(w) {
	case dns.TypeNS, dns.TypeCNAME, dns.TypePTR, dns.TypeMB, dns.TypeMD, dns.TypeMF, dns.TypeMG, dns.TypeMR:
		names = 1
	case dns.TypeSOA, dns.TypeMINFO:
		names = 2
	case dns.TypeSRV:
		// Priority, weight and port, then the target: not compressed
		// (RFC 2782), but later names may point to it, as miekg/dns's do.
		out = append(out, w...)
		if wq.nnames < len(wq.names) && len(out)-len(w)+16 < 0x3fff {
			nm := w[16:]
			wq.names[wq.nnames] = writtenName{off: len(out) - len(nm), nm: nm, lit: len(nm) - 1}
			wq.nnames++
		}
		return out
	case dns.TypeMX:
		// The preference, then the name.
		out = append(out, w[:12]...)
		start := len(out) - 2
		out = wq.appendName(out, w[12:])
		binary.BigEndian.PutUint16(out[start-2:], uint16(len(out)-start))
		return out
	default:
		return append(out, w...)
	}
	out = append(out, w[:10]...)
	start := len(out)
	rd := w[10:]
	for ; names > 0; names-- {
		l := nameLen(rd)
		out = wq.appendName(out, rd[:l])
		rd = rd[l:]
		tail = len(rd)
	}
	out = append(out, rd[:tail]...)
	binary.BigEndian.PutUint16(out[start-2:], uint16(len(out)-start))
	return out
}

// nameLen returns the length of the uncompressed wire name at the start
// of b.
func nameLen(b []byte) int {
	i := 0
	for b[i] != 0 {
		i += 1 + int(b[i])
	}
	return i + 1
}

// appendName appends wire name nm (uncompressed), compressed as miekg/dns
// compresses: its longest suffix (the root aside) that is written already,
// in the question or in a name appended before, is a pointer to it.
func (wq *wireQuery) appendName(out, nm []byte) []byte {
	start := len(out)
	lit := len(nm) - 1
	for i := 0; nm[i] != 0; i += 1 + int(nm[i]) {
		if p := wq.find(nm[i:]); p > 0 {
			out = append(out, nm[:i]...)
			out = append(out, 0xc0|byte(p>>8), byte(p))
			lit = i
			break
		}
	}
	if lit == len(nm)-1 {
		out = append(out, nm...)
	}
	if wq.nnames < len(wq.names) && start < 0x3fff && lit > 0 {
		wq.names[wq.nnames] = writtenName{off: start, nm: nm, lit: lit}
		wq.nnames++
	}
	return out
}

// find returns the offset in the reply of name suffix suf, written in the
// question or in a name appended before, or 0.
func (wq *wireQuery) find(suf []byte) int {
	if qo := wq.wlen - len(suf); qo >= 0 {
		for k := 0; k < wq.nlab; k++ {
			if int(wq.label[k]) == 12+qo {
				if string(suf) == string(wq.wire[qo:wq.wlen]) {
					return 12 + qo
				}
				break
			}
		}
	}
	for k := 0; k < wq.nnames; k++ {
		w := &wq.names[k]
		r := len(w.nm) - len(suf)
		if r < 0 || r >= w.lit {
			continue
		}
		for i := 0; i <= r; i += 1 + int(w.nm[i]) {
			if i == r && string(w.nm[r:]) == string(suf) {
				return w.off + r
			}
		}
	}
	return 0
}

// fastGSLB appends the answer of GSLB record rec to the A or AAAA question:
// an, the number of addresses; scope, the ECS scope of the answer;
// servfail when the record says so. ok is false for an answer the fast
// path does not give (a CNAME).
func (r *udpReader) fastGSLB(out []byte, owner int, rec *gslb.Record, snap *Snapshot) (_ []byte, an uint16, scope uint8, servfail, ok bool) {
	wq, q := &r.wq, &r.q
	fam, rrtype, rdlen := gslb.IPv4, dns.TypeA, 4
	if wq.qtype == dns.TypeAAAA {
		fam, rrtype, rdlen = gslb.IPv6, dns.TypeAAAA, 16
	}
	src := r.w.from.Addr().Unmap()
	client := gslb.Client{Addr: src, Bits: uint8(src.BitLen())}
	if wq.ecs != nil && usableECS(wq.ecsAddr, wq.ecsBits) {
		client = gslb.Client{Addr: wq.ecsAddr, Bits: wq.ecsBits}
	}
	q.client = client
	a := rec.Answer(q.addrs[:0], fam, &q.client, snap.view.Load())
	q.addrs = a.Addrs[:0]
	switch {
	case a.ServFail:
		return out, 0, a.Scope, true, true
	case a.CNAME != "":
		return out, 0, 0, false, false
	}
	for _, ip := range a.Addrs {
		out = append(out, 0xc0|byte(owner>>8), byte(owner), byte(rrtype>>8), byte(rrtype), 0, 1, 0, 0, 0, 0, 0, byte(rdlen))
		binary.BigEndian.PutUint32(out[len(out)-6:], a.TTL)
		if fam == gslb.IPv4 {
			v := ip.As4()
			out = append(out, v[:]...)
		} else {
			v := ip.As16()
			out = append(out, v[:]...)
		}
	}
	return out, uint16(len(a.Addrs)), a.Scope, false, true
}

// appendOPT appends the reply's OPT record as replyOPT makes it: our
// payload size, DO copied, then the COOKIE, and NSID and ECS (with the
// answer's scope if it depended on the client) in the query's order.
func (r *udpReader) appendOPT(out []byte, scoped bool, scope uint8) []byte {
	s, wq := r.s, &r.wq
	do := byte(0)
	if wq.do {
		do = 0x80
	}
	out = append(out, 0, 0, 41, byte(s.cfg.UDPSize>>8), byte(s.cfg.UDPSize), 0, 0, do, 0, 0, 0)
	start := len(out)
	if wq.cookie != nil {
		c := &r.q.cookie
		c.n = copy(c.buf[:], wq.cookie)
		now := cookieNow()
		src := r.w.from.Addr().Unmap()
		s.cookies.check(c, src, now)
		out = append(out, cookieTail[:]...)
		var v [clientCookieLen + serverCookieLen]byte
		s.cookies.fill(&v, c, src, now)
		out = append(out, v[:]...)
	}
	nsid := func(out []byte) []byte {
		if !wq.nsid {
			return out
		}
		l := len(s.cfg.NSID)
		out = append(out, 0, dns.EDNS0NSID, byte(l>>8), byte(l))
		return append(out, s.cfg.NSID...)
	}
	if wq.nsidFirst {
		out = nsid(out)
	}
	if wq.ecs != nil {
		sc := uint8(0)
		if scoped && usableECS(wq.ecsAddr, wq.ecsBits) {
			sc = min(scope, wq.ecsBits)
		}
		out = append(out, 0, dns.EDNS0SUBNET, byte(len(wq.ecs)>>8), byte(len(wq.ecs)))
		out = append(out, wq.ecs...)
		out[len(out)-len(wq.ecs)+3] = sc
	}
	if !wq.nsidFirst {
		out = nsid(out)
	}
	binary.BigEndian.PutUint16(out[start-2:], uint16(len(out)-start))
	return out
}
