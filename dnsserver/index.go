package dnsserver

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"sort"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/zones"
)

// The built zone is an index over the zone's packed records (zones.RRs),
// not a copy of them: one node per owner name (24 bytes: where its name
// is, the range of its records, its flags), an open-addressed hash table
// of the nodes keyed by the owner name in wire form (8 bytes a slot, at
// most 3/4 full), and the additional-section records of the NS, MX and SRV
// RRsets that have in-zone targets. A lookup hashes the name once and
// compares it with the name stored in the records; answers copy the
// records' wire bytes. A million A records cost some 40 bytes each beside
// their 41 packed bytes, where a map of nodes holding copies cost 210.

// node is one owner name of a built zone: the owner of records, the name
// of a GSLB record, or an empty non-terminal (RFC 4592 §2.2.2). Nodes live
// in zone.nodes; a *node points into that slice and is valid as long as
// the zone.
type node struct {
	// name locates the owner name in wire form: in the owner of record
	// name of the zone's RRs, skip bytes in (an ancestor of that owner);
	// or, with arenaBit set, at offset name&^arenaBit of zone.arena.
	name uint32
	// first and n are the node's records in the zone's RRs: records
	// first to first+n-1, grouped by type.
	first, n uint32
	// gslb is 1 + the index of the node's GSLB record in zones.Zone.Records
	// (0: none); servedZone.record binds it to the snapshot's compiled one.
	gslb int32
	// wild is 1 + the index in zone.nodes of the "*" child, for RFC 4592
	// synthesis (0: none).
	wild  uint32
	skip  uint8
	flags uint8
}

const (
	arenaBit = 1 << 31

	nodeCut   = 1 << iota // NS records below the apex: a delegation point
	nodeCNAME             // a CNAME (cnameTarget)
)

func (n *node) cut() bool   { return n.flags&nodeCut != 0 }
func (n *node) cname() bool { return n.flags&nodeCNAME != 0 }

// rrset is one RRset of a node: records first to first+n-1 of the zone's
// RRs. x holds the nx records of its additional section whole (owner
// names uncompressed): the in-zone addresses of NS, MX and SRV targets
// (RFC 1035 §3.3.9, §4.3.2; RFC 2782). The zero rrset is no RRset.
type rrset struct {
	t        uint16
	nx       uint16
	first, n uint32
	x        []byte
}

// xset is the additional section of one RRset (rrset.x, rrset.nx).
type xset struct {
	b []byte
	n uint16
}

// index is the lookup structure of a zone (see above).
type index struct {
	recs  *zones.RRs
	nodes []node
	// table holds 1 + a node's index in its low 32 bits and the high 32
	// bits of the name's hash in its high ones; 0 is an empty slot.
	table []uint64
	seed  maphash.Seed
	arena []byte // wire names that are in no record (GSLB names, the origin)
	// extra is the additional section of the NS, MX and SRV RRsets that
	// have one, by the RRset's first record.
	extra map[uint32]xset
}

// nameOf returns the owner name of n in wire form (lower case).
func (ix *index) nameOf(n *node) []byte {
	b := ix.nameAt(n)
	return b[:wireLen(b)]
}

// nameAt returns the bytes that start with n's name in wire form.
func (ix *index) nameAt(n *node) []byte {
	if n.name&arenaBit != 0 {
		return ix.arena[n.name&^arenaBit:]
	}
	return ix.recs.Raw(int(n.name))[n.skip:]
}

// ownerName returns the owner name of n as a lower-case FQDN (allocates).
func (ix *index) ownerName(n *node) string {
	s, _, err := dns.UnpackDomainName(ix.nameOf(n), 0)
	if err != nil {
		return "."
	}
	return s
}

// wireLen returns the length of the wire name at the start of b.
func wireLen(b []byte) int {
	i := 0
	for b[i] != 0 {
		i += int(b[i]) + 1
	}
	return i + 1
}

// find returns the node of wire name w (lower case), or nil.
func (ix *index) find(w []byte) *node {
	if len(ix.table) == 0 || len(w) == 0 {
		return nil // no name (one that did not pack) is a prefix of every name
	}
	h := maphash.Bytes(ix.seed, w)
	mask := uint64(len(ix.table) - 1)
	tag := h >> 32
	for i := h & mask; ; i = (i + 1) & mask {
		e := ix.table[i]
		if e == 0 {
			return nil
		}
		if e>>32 == tag {
			// Wire names are prefix-free: bytes that start with all of
			// w, its root label included, hold w.
			if n := &ix.nodes[uint32(e)-1]; bytes.HasPrefix(ix.nameAt(n), w) {
				return n
			}
		}
	}
}

// lookup returns the node of name (a lower-case FQDN in presentation
// form), or nil.
func (ix *index) lookup(name string) *node {
	var buf [256]byte
	w, ok := toWire(&buf, name)
	if !ok {
		return nil
	}
	return ix.find(w)
}

// toWire packs name (presentation form, an FQDN) into buf in lower case.
// ok is false for a name that does not pack.
func toWire(buf *[256]byte, name string) (_ []byte, ok bool) {
	if name == "." {
		buf[0] = 0
		return buf[:1], true
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '\\' {
			// Escapes: miekg/dns decodes them.
			n, err := dns.PackDomainName(name, buf[:], 0, nil, false)
			if err != nil {
				return nil, false
			}
			lower(buf[:n])
			return buf[:n], true
		}
	}
	if len(name) > 254 || len(name) == 0 || name[len(name)-1] != '.' {
		return nil, false
	}
	// Each label's dot becomes the length byte before it.
	start := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '.' {
			l := i - start
			if l == 0 || l > 63 {
				return nil, false
			}
			buf[start] = byte(l)
			start = i + 1
			continue
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i+1] = c
	}
	buf[len(name)] = 0
	return buf[:len(name)+1], true
}

// lower lowers the ASCII letters of wire name b.
func lower(b []byte) {
	for i := 0; i < len(b) && b[i] != 0; i += int(b[i]) + 1 {
		for j := i + 1; j <= i+int(b[i]) && j < len(b); j++ {
			if c := b[j]; c >= 'A' && c <= 'Z' {
				b[j] = c + 'a' - 'A'
			}
		}
	}
}

// encloserWild returns the wildcard node that synthesizes answers for
// name, which has no node (RFC 4592 §3.3.1: the "*" child of its closest
// encloser), or nil.
func (ix *index) encloserWild(name string) *node {
	var buf [256]byte
	w, ok := toWire(&buf, name)
	if !ok {
		return nil
	}
	return ix.encloserWildWire(w)
}

// encloserWildWire is encloserWild for a wire name (lower case).
func (ix *index) encloserWildWire(w []byte) *node {
	if len(w) <= 1 {
		return nil
	}
	for w = w[1+int(w[0]):]; ; w = w[1+int(w[0]):] {
		if n := ix.find(w); n != nil {
			return ix.wildOf(n)
		}
		if len(w) <= 1 {
			return nil
		}
	}
}

// wildOf returns n's "*" child, or nil.
func (ix *index) wildOf(n *node) *node {
	if n.wild == 0 {
		return nil
	}
	return &ix.nodes[n.wild-1]
}

// rec returns record i of the zone's RRs without its owner: type, class,
// TTL, RDLENGTH and RDATA (names in it uncompressed).
func (ix *index) rec(i uint32) []byte {
	p := ix.recs.At(int(i))
	return p.Wire()[len(p.NameWire()):]
}

// recAt returns record i of the zone's RRs, whose owner name is l bytes
// long, without its owner (as rec).
func (ix *index) recAt(i uint32, l int) []byte {
	b := ix.recs.Raw(int(i))
	return b[l : l+10+int(binary.BigEndian.Uint16(b[l+8:]))]
}

// rrset returns n's RRset of type t (n == 0: none).
func (ix *index) rrset(n *node, t uint16) rrset {
	if n.n == 0 {
		return rrset{}
	}
	l := wireLen(ix.recs.Raw(int(n.first))) // every record of n has its name
	for i, end := n.first, n.first+n.n; i < end; i++ {
		if binary.BigEndian.Uint16(ix.recAt(i, l)) != t {
			continue
		}
		j := i + 1
		for j < end && binary.BigEndian.Uint16(ix.recAt(j, l)) == t {
			j++
		}
		set := rrset{t: t, first: i, n: j - i}
		if t == dns.TypeNS || t == dns.TypeMX || t == dns.TypeSRV {
			if x, ok := ix.extra[i]; ok {
				set.x, set.nx = x.b, x.n
			}
		}
		return set
	}
	return rrset{}
}

// firstSet returns n's first RRset (n == 0: none).
func (ix *index) firstSet(n *node) rrset {
	if n.n == 0 {
		return rrset{}
	}
	return ix.rrset(n, binary.BigEndian.Uint16(ix.rec(n.first)))
}

// types appends the types of n's RRsets to dst.
func (ix *index) types(n *node, dst []uint16) []uint16 {
	last := -1
	for i := n.first; i < n.first+n.n; i++ {
		if t := int(binary.BigEndian.Uint16(ix.rec(i))); t != last {
			dst = append(dst, uint16(t))
			last = t
		}
	}
	return dst
}

// rrs returns the records of set, owned by owner, unpacked.
func (ix *index) rrs(set rrset, owner string) []dns.RR {
	var buf [256]byte
	ol, err := dns.PackDomainName(owner, buf[:], 0, nil, false)
	if err != nil {
		return nil
	}
	out := make([]dns.RR, 0, set.n)
	for i := set.first; i < set.first+set.n; i++ {
		rr, _, err := dns.UnpackRR(append(buf[:ol:ol], ix.rec(i)...), 0)
		if err == nil {
			out = append(out, rr)
		}
	}
	return out
}

// get returns n's records of type t, unpacked (nil: none).
func (ix *index) get(n *node, t uint16) []dns.RR {
	if set := ix.rrset(n, t); set.n != 0 {
		return ix.rrs(set, ix.ownerName(n))
	}
	return nil
}

// extraRRs returns the additional-section records for type t at n,
// unpacked.
func (ix *index) extraRRs(n *node, t uint16) []dns.RR {
	set := ix.rrset(n, t)
	if set.nx == 0 {
		return nil
	}
	out := make([]dns.RR, 0, set.nx)
	for off := 0; off < len(set.x); {
		rr, next, err := dns.UnpackRR(set.x, off)
		if err != nil {
			break
		}
		out = append(out, rr)
		off = next
	}
	return out
}

// cnameTarget returns the target of n's CNAME ("" if none).
func (ix *index) cnameTarget(n *node) string {
	set := ix.rrset(n, dns.TypeCNAME)
	if set.n == 0 {
		return ""
	}
	w := ix.rec(set.first)
	if len(w) < 11 {
		return ""
	}
	t, _, _ := dns.UnpackDomainName(w[10:], 0)
	return t
}

// indexBuilder builds an index.
type indexBuilder struct {
	ix    *index
	count int // nodes in the table
}

// buildIndex indexes the records of z, its GSLB names and the empty
// non-terminals above them.
func buildIndex(z *zones.Zone) (*index, bool) {
	ix := &index{recs: &z.RRs, seed: maphash.MakeSeed()}
	b := &indexBuilder{ix: ix}
	want := z.RRs.Names() + len(z.Records) + 1
	ix.nodes = make([]node, 0, want+want/64+8)
	b.grow(want)
	ow, ok := b.arenaName(z.Origin)
	if !ok {
		return nil, false
	}
	b.ensure(ow, arenaBit|uint32(len(ix.arena)-len(ow)), 0)
	var cuts bool
	var parentOf []byte // the parent of the last owner, known to exist
	for i, end := 0, z.RRs.Len(); i < end; {
		p := z.RRs.At(i)
		name := p.NameWire()
		j := i + 1
		var flags uint8
		for ; ; j++ {
			switch p.Type() {
			case dns.TypeNS:
				if !bytes.Equal(name, ow) {
					flags |= nodeCut
				}
			case dns.TypeCNAME:
				flags |= nodeCNAME
			}
			if j == end {
				break
			}
			p = z.RRs.At(j)
			if !bytes.Equal(p.NameWire(), name) {
				break
			}
		}
		n := b.node(name, uint32(i), 0, ow, &parentOf)
		n.first, n.n, n.flags = uint32(i), uint32(j-i), n.flags|flags
		cuts = cuts || flags&nodeCut != 0
		i = j
	}
	for i, r := range z.Records {
		w, ok := b.arenaName(r.Name)
		if !ok {
			continue
		}
		b.node(w, arenaBit|uint32(len(ix.arena)-len(w)), 0, ow, &parentOf).gslb = int32(i + 1)
	}
	for k := range ix.nodes {
		w := ix.nameOf(&ix.nodes[k])
		if len(w) > 2 && w[0] == 1 && w[1] == '*' {
			if p := ix.find(w[2:]); p != nil {
				p.wild = uint32(k + 1)
			}
		}
	}
	b.additional()
	return ix, cuts
}

// arenaName packs name into the arena and returns it there.
func (b *indexBuilder) arenaName(name string) ([]byte, bool) {
	var buf [256]byte
	w, ok := toWire(&buf, name)
	if !ok {
		return nil, false
	}
	b.ix.arena = append(b.ix.arena, w...)
	return b.ix.arena[len(b.ix.arena)-len(w):], true
}

// node returns the node of wire name w, adding it (its name at ref, skip)
// and every missing ancestor up to the origin ow (as empty non-terminals,
// their names suffixes of w) if it has none. parentOf caches the parent of
// the last name added, which exists.
func (b *indexBuilder) node(w []byte, ref uint32, skip uint8, ow []byte, parentOf *[]byte) *node {
	if n := b.ix.find(w); n != nil {
		return n
	}
	k := b.ensure(w, ref, skip)
	// Ancestors, up to the first that exists.
	for s := 0; len(w)-s > len(ow); {
		s += 1 + int(w[s])
		pw := w[s:]
		if bytes.Equal(pw, *parentOf) || b.ix.find(pw) != nil {
			break
		}
		pref := ref
		if ref&arenaBit != 0 {
			pref += uint32(s)
			b.ensure(pw, pref, 0)
		} else {
			b.ensure(pw, pref, skip+uint8(s))
		}
	}
	if len(w) > 1 {
		*parentOf = w[1+int(w[0]):]
	}
	return &b.ix.nodes[k]
}

// ensure adds a node for wire name w (not in the table) and returns its
// index.
func (b *indexBuilder) ensure(w []byte, ref uint32, skip uint8) int {
	ix := b.ix
	if (b.count+1)*4 > len(ix.table)*3 {
		b.grow(b.count + 1)
	}
	k := len(ix.nodes)
	ix.nodes = append(ix.nodes, node{name: ref, skip: skip})
	b.insert(w, k)
	b.count++
	return k
}

// insert puts node k, named w, into the table.
func (b *indexBuilder) insert(w []byte, k int) {
	ix := b.ix
	h := maphash.Bytes(ix.seed, w)
	mask := uint64(len(ix.table) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		if ix.table[i] == 0 {
			ix.table[i] = h>>32<<32 | uint64(k+1)
			return
		}
	}
}

// grow sizes the table for n nodes (at most 3/4 full) and re-inserts the
// nodes it holds.
func (b *indexBuilder) grow(n int) {
	size := 16
	for size*3 < n*4 {
		size *= 2
	}
	if size <= len(b.ix.table) {
		size = 2 * len(b.ix.table)
	}
	b.ix.table = make([]uint64, size)
	for k := range b.ix.nodes {
		b.insert(b.ix.nameOf(&b.ix.nodes[k]), k)
	}
}

// additional precomputes the additional section of every NS, MX and SRV
// RRset with in-zone targets (their A and AAAA records, whole).
func (b *indexBuilder) additional() {
	ix := b.ix
	for k := range ix.nodes {
		n := &ix.nodes[k]
		for i, end := n.first, n.first+n.n; i < end; {
			t := binary.BigEndian.Uint16(ix.rec(i))
			j := i + 1
			for j < end && binary.BigEndian.Uint16(ix.rec(j)) == t {
				j++
			}
			skip := 0 // RDATA before the target name
			switch t {
			case dns.TypeNS:
			case dns.TypeMX:
				skip = 2
			case dns.TypeSRV:
				skip = 6
			default:
				i = j
				continue
			}
			var targets []*node
		next:
			for r := i; r < j; r++ {
				rd := ix.rec(r)[10:]
				if len(rd) <= skip {
					continue
				}
				tw := rd[skip:]
				if l := nameEnd(tw); l > 0 {
					tw = tw[:l]
				} else {
					continue
				}
				var buf [256]byte
				copy(buf[:], tw)
				lower(buf[:len(tw)])
				tn := ix.find(buf[:len(tw)])
				if tn == nil {
					continue
				}
				for _, d := range targets {
					if d == tn {
						continue next
					}
				}
				targets = append(targets, tn)
			}
			if t == dns.TypeNS && n.cut() {
				// In-domain glue first: truncation drops from the end, and
				// only sibling glue may go without TC (RFC 9471).
				cw := ix.nameOf(n)
				sort.SliceStable(targets, func(a, c int) bool {
					return below(ix.nameOf(targets[a]), cw) && !below(ix.nameOf(targets[c]), cw)
				})
			}
			var x xset
			for _, tn := range targets {
				x = ix.appendWhole(x, tn, dns.TypeA)
				x = ix.appendWhole(x, tn, dns.TypeAAAA)
			}
			if x.n > 0 {
				if ix.extra == nil {
					ix.extra = map[uint32]xset{}
				}
				ix.extra[i] = x
			}
			i = j
		}
	}
}

// nameEnd returns the length of the uncompressed wire name at the start of
// b, or 0 if b does not start with one.
func nameEnd(b []byte) int {
	i := 0
	for i < len(b) {
		l := int(b[i])
		if l == 0 {
			return i + 1
		}
		if l > 63 {
			return 0
		}
		i += 1 + l
	}
	return 0
}

// below reports whether wire name w is at or below wire name p (both lower
// case).
func below(w, p []byte) bool {
	for i := 0; len(w)-i >= len(p); i += 1 + int(w[i]) {
		if bytes.Equal(w[i:], p) {
			return true
		}
		if w[i] == 0 {
			break
		}
	}
	return false
}

// appendWhole appends n's records of type t to x, each whole: owner name
// (uncompressed) and the rest.
func (ix *index) appendWhole(x xset, n *node, t uint16) xset {
	set := ix.rrset(n, t)
	ow := ix.nameOf(n)
	for i := set.first; i < set.first+set.n; i++ {
		x.b = append(x.b, ow...)
		x.b = append(x.b, ix.rec(i)...)
		x.n++
	}
	return x
}
