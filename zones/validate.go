package zones

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sort"

	"github.com/miekg/dns"
)

// MaxCNAMEChain is the longest chain of in-zone CNAMEs a zone may hold and
// the server will follow (RFC 1034 §3.6.2 asks servers to bound it).
const MaxCNAMEChain = 16

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	return a.Unmap(), nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix", s)
	}
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("%q has bits set beyond /%d (did you mean %s?)", s, p.Bits(), p.Masked())
	}
	return p, nil
}

// validate checks one zone on its own: RFC 1035/2181 rules that BIND's
// named-checkzone also enforces, and the GSLB records' own consistency.
// It groups the packed records by owner name and type (one sort of their
// indices, no map per name: a zone may hold millions) and sets Zone.RRs.
func (p *parser) validate() {
	z := p.z
	b := &p.rrs
	origin := Pos{z.File, 0}
	ow, _ := wireName(z.Origin)

	if n := len(b.chunks); n > 0 {
		b.finish(n - 1)
	}
	order := make([]uint32, len(b.off))
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortFunc(order, func(x, y uint32) int {
		a, c := b.at(x), b.at(y)
		if k := bytes.Compare(a.NameWire(), c.NameWire()); k != 0 {
			return k
		}
		if k := cmp.Compare(a.Type(), c.Type()); k != 0 {
			return k
		}
		return cmp.Compare(x, y)
	})

	// One pass over the RRsets: drop duplicates, unify TTLs.
	type problem struct {
		r   uint32
		msg string
	}
	var warns, errs []problem
	cuts := false // NS records below the apex
	kept := order[:0]
	for i := 0; i < len(order); {
		first := b.at(order[i])
		j := i + 1
		for j < len(order) {
			o := b.at(order[j])
			if o.Type() != first.Type() || !bytes.Equal(o.NameWire(), first.NameWire()) {
				break
			}
			j++
		}
		setStart := len(kept)
		var seen map[string][]uint32 // for large sets: folded rdata to records
		for _, r := range order[i:j] {
			rr := b.at(r)
			if isDuplicate(b, r, kept[setStart:], &seen) {
				continue // RFC 2181 §5: an RRset holds no duplicates
			}
			if ttl := first.TTL(); rr.TTL() != ttl {
				// RFC 2181 §5.2: one TTL per RRset; BIND keeps the first.
				warns = append(warns, problem{r, fmt.Sprintf("%s %s: TTL %d differs from the RRset's %d; using %d",
					rr.Name(), typeString(rr.Type()), rr.TTL(), ttl, ttl)})
				rr = b.own(r)
				binary.BigEndian.PutUint32(rr.b[rr.nameLen+4:], ttl)
			}
			if rr.Type() == dns.TypeNS && !cuts && !bytes.Equal(rr.NameWire(), ow) {
				cuts = true
			}
			if rr.Type() == dns.TypeSOA && !bytes.Equal(rr.NameWire(), ow) {
				errs = append(errs, problem{r, fmt.Sprintf("%s: SOA record outside the zone apex %s", rr.Name(), z.Origin)})
			}
			kept = append(kept, r)
		}
		i = j
	}
	sortProblems := func(ps []problem) {
		slices.SortStableFunc(ps, func(a, c problem) int { return cmp.Compare(a.r, c.r) })
	}
	sortProblems(warns)
	for _, w := range warns {
		p.warnf(b.posOf(w.r), "%s", w.msg)
	}
	sortProblems(errs)
	for _, e := range errs {
		p.errorf(b.posOf(e.r), "%s", e.msg)
	}

	// findName returns where the records of name (wire name) start in
	// kept.
	findName := func(name []byte) int {
		lo, _ := slices.BinarySearchFunc(kept, 0, func(r uint32, _ int) int {
			return bytes.Compare(b.at(r).NameWire(), name)
		})
		return lo
	}
	// find returns the records of the RRset name/t (wire name) in kept.
	find := func(name []byte, t uint16) []uint32 {
		lo, _ := slices.BinarySearchFunc(kept, 0, func(r uint32, _ int) int {
			rr := b.at(r)
			if k := bytes.Compare(rr.NameWire(), name); k != 0 {
				return k
			}
			return cmp.Compare(rr.Type(), t)
		})
		hi := lo
		for hi < len(kept) {
			rr := b.at(kept[hi])
			if rr.Type() != t || !bytes.Equal(rr.NameWire(), name) {
				break
			}
			hi++
		}
		return kept[lo:hi]
	}
	var scratch [256]byte
	has := func(name string, t uint16) bool {
		w, ok := appendWireName(scratch[:0], dns.CanonicalName(name))
		return ok && len(find(w, t)) > 0
	}
	// typesAt returns the types at the name of kept[i], and the index
	// after its last record.
	typesAt := func(i int, dst []uint16) ([]uint16, int) {
		name := b.at(kept[i]).NameWire()
		for ; i < len(kept); i++ {
			rr := b.at(kept[i])
			if !bytes.Equal(rr.NameWire(), name) {
				break
			}
			if len(dst) == 0 || dst[len(dst)-1] != rr.Type() {
				dst = append(dst, rr.Type())
			}
		}
		return dst, i
	}

	soas := find(ow, dns.TypeSOA)
	switch len(soas) {
	case 0:
		p.errorf(origin, "zone %s has no SOA record at its apex", z.Origin)
	case 1:
		z.SOA = b.at(soas[0]).RR().(*dns.SOA)
	default:
		p.errorf(b.posOf(soas[1]), "zone %s has more than one SOA record", z.Origin)
	}
	if len(find(ow, dns.TypeNS)) == 0 {
		p.errorf(origin, "zone %s has no NS records at its apex", z.Origin)
	}

	// below returns the delegation point (NS below the apex) at or above
	// name, if any.
	below := func(name string) string {
		if !cuts {
			return ""
		}
		name = dns.CanonicalName(name)
		for _, i := range dns.Split(name) {
			n := name[i:]
			if n == z.Origin || !dns.IsSubDomain(z.Origin, n) {
				break
			}
			if has(n, dns.TypeNS) {
				return n
			}
		}
		return ""
	}

	gslbNames := map[string]*Record{}
	for _, r := range z.Records {
		if o, dup := gslbNames[r.Name]; dup {
			p.errorf(r.Pos, "%s: second GSLB record (first at %s)", r.Name, o.Pos)
			continue
		}
		gslbNames[r.Name] = r
		if w, ok := appendWireName(scratch[:0], r.Name); ok {
			// The types at the name: one search for all three.
			var seen [3]bool
			for _, k := range kept[findName(w):] {
				rr := b.at(k)
				if !bytes.Equal(rr.NameWire(), w) {
					break
				}
				switch rr.Type() {
				case dns.TypeA:
					seen[0] = true
				case dns.TypeAAAA:
					seen[1] = true
				case dns.TypeCNAME:
					seen[2] = true
				}
			}
			for i, t := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeCNAME} {
				if seen[i] {
					p.errorf(r.Pos, "%s: GSLB record beside static %s data at the same name", r.Name, dns.TypeToString[t])
				}
			}
		}
		if r.Name == z.Origin && r.Options["target"] == "cname" {
			p.errorf(r.Pos, "%s: GSLB target=cname at the zone apex (RFC 1912 §2.4: no CNAME at the apex)", r.Name)
		}
		if c := below(r.Name); c != "" {
			p.errorf(r.Pos, "%s: GSLB record at or below the delegation %s", r.Name, c)
		}
		if r.TTL == 0 && z.SOA != nil {
			r.TTL = z.SOA.Minttl
		}
	}

	// CNAMEs: alone at their name, not at the apex. Then glue (ZL-08).
	errs = errs[:0]
	cname := map[string]string{}
	cnamePos := map[string]uint32{}
	var types []uint16
	owners := 0
	for i := 0; i < len(kept); {
		var next int
		types, next = typesAt(i, types[:0])
		owners++
		name := b.at(kept[i]).NameWire()
		if slices.Contains(types, dns.TypeCNAME) {
			set := find(name, dns.TypeCNAME)
			owner := b.at(set[0]).Name()
			cname[owner] = dns.CanonicalName(b.at(set[0]).RR().(*dns.CNAME).Target)
			cnamePos[owner] = set[0]
			for k, r := range set {
				switch {
				case k > 0:
					errs = append(errs, problem{r, owner + ": more than one CNAME record"})
				case owner == z.Origin:
					errs = append(errs, problem{r, owner + ": CNAME at the zone apex"})
				default:
					for _, t := range types {
						// RFC 2181 §10.1: nothing beside a CNAME (RFC 4034
						// allows RRSIG and NSEC).
						if t != dns.TypeCNAME && t != dns.TypeRRSIG && t != dns.TypeNSEC {
							errs = append(errs, problem{r, fmt.Sprintf("%s: CNAME and other data (%s) at the same name", owner, typeString(t))})
							break
						}
					}
					if gslbNames[owner] != nil {
						errs = append(errs, problem{r, owner + ": CNAME beside a GSLB record"})
					}
				}
			}
		}
		if !bytes.Equal(name, ow) && slices.Contains(types, dns.TypeNS) {
			for _, r := range find(name, dns.TypeNS) {
				rr := b.at(r)
				c := rr.Name()
				ns := dns.CanonicalName(rr.RR().(*dns.NS).Ns)
				if dns.IsSubDomain(c, ns) && !has(ns, dns.TypeA) && !has(ns, dns.TypeAAAA) {
					p.warnf(b.posOf(r), "%s NS %s: in-bailiwick name server without glue address", c, ns)
				}
			}
		}
		i = next
	}
	sortProblems(errs)
	for _, e := range errs {
		p.errorf(b.posOf(e.r), "%s", e.msg)
	}

	// CNAME chains inside the zone: loops and overlong chains fail the load
	// (ZL-07) so the server never has to discover them per query.
	names := make([]string, 0, len(cname))
	for n := range cname {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		seen := map[string]bool{n: true}
		cur, depth := n, 0
		for {
			next, ok := cname[cur]
			if !ok {
				break
			}
			depth++
			if seen[next] {
				p.errorf(b.posOf(cnamePos[n]), "%s: CNAME loop through %s", n, next)
				break
			}
			if depth > MaxCNAMEChain {
				p.errorf(b.posOf(cnamePos[n]), "%s: CNAME chain longer than %d", n, MaxCNAMEChain)
				break
			}
			seen[next] = true
			cur = next
		}
	}

	for _, r := range find(ow, dns.TypeNS) {
		ns := dns.CanonicalName(b.at(r).RR().(*dns.NS).Ns)
		if dns.IsSubDomain(z.Origin, ns) && below(ns) == "" && !has(ns, dns.TypeA) &&
			!has(ns, dns.TypeAAAA) && gslbNames[ns] == nil {
			p.errorf(b.posOf(r), "%s NS %s: name server inside the zone has no address record", z.Origin, ns)
		}
	}

	for i, r := range kept {
		kept[i] = b.off[r]
	}
	if p.prev != nil && slices.Equal(kept, p.prev.RRs.off) {
		kept = p.prev.RRs.off // the same order: share it
	}
	z.RRs = RRs{chunks: b.chunks, off: kept, names: owners}
	b.off, b.lines, b.runs = nil, nil, nil
}

// isDuplicate reports whether record r equals a record of set (RFC 2181
// §5: names in rdata compare case-blind). From 64 records on, the set is
// indexed in *seen, and r is added to it when it is not a duplicate.
func isDuplicate(b *rrBuilder, r uint32, set []uint32, seen *map[string][]uint32) bool {
	const small = 64
	rr := b.at(r)
	same := func(o PackedRR) bool {
		x, y := o.Rdata(), rr.Rdata()
		if bytes.Equal(x, y) {
			return true
		}
		// Only a difference in letter case may still be a duplicate.
		return len(x) == len(y) && bytes.Equal(foldASCII(nil, x), foldASCII(nil, y)) && dns.IsDuplicate(o.RR(), rr.RR())
	}
	if *seen == nil {
		if len(set) < small {
			for _, o := range set {
				if same(b.at(o)) {
					return true
				}
			}
			return false
		}
		*seen = map[string][]uint32{}
		for _, o := range set {
			k := string(foldASCII(nil, b.at(o).Rdata()))
			(*seen)[k] = append((*seen)[k], o)
		}
	}
	k := string(foldASCII(nil, rr.Rdata()))
	for _, o := range (*seen)[k] {
		if same(b.at(o)) {
			return true
		}
	}
	(*seen)[k] = append((*seen)[k], r)
	return false
}

// foldASCII appends b with ASCII letters in lower case to dst.
func foldASCII(dst, b []byte) []byte {
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

func typeString(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE%d", t)
}

// Link checks the references between a set of zones that are served
// together: pools name regions, GSLB records name pools, and a region or pool
// defined in more than one zone must have the same definition everywhere
// (names are cluster-wide). It returns every problem found, each naming the
// zone file and line.
func Link(zs []*Zone) error {
	var errs []error
	regions := map[string]*Region{}
	pools := map[string]*Pool{}
	for _, z := range zs {
		for _, r := range z.Regions {
			if o, ok := regions[r.Name]; ok && !SameRegion(o, r) {
				errs = append(errs, newError(r.Pos, fmt.Sprintf("$REGION %s: defined differently at %s", r.Name, o.Pos)))
				continue
			}
			regions[r.Name] = r
		}
	}
	for _, z := range zs {
		for _, pl := range z.Pools {
			if o, ok := pools[pl.Name]; ok && !SamePool(o, pl) {
				errs = append(errs, newError(pl.Pos, fmt.Sprintf("$POOL %s: defined differently at %s", pl.Name, o.Pos)))
				continue
			}
			pools[pl.Name] = pl
			if regions[pl.Region] == nil {
				errs = append(errs, newError(pl.Pos, fmt.Sprintf("$POOL %s: unknown region %q", pl.Name, pl.Region)))
			}
		}
	}
	for _, z := range zs {
		for _, r := range z.Records {
			for _, ref := range r.Pools {
				if pools[ref.Name] == nil {
					errs = append(errs, newError(r.Pos, fmt.Sprintf("%s GSLB: unknown pool %q", r.Name, ref.Name)))
				}
			}
		}
	}
	return errorList(errs)
}

// SameRegion reports whether two regions are defined alike (wherever they
// are written).
func SameRegion(a, b *Region) bool {
	x, y := *a, *b
	x.Pos, y.Pos = Pos{}, Pos{}
	return reflect.DeepEqual(x, y)
}

// SamePool reports whether two pools are defined alike (wherever they are
// written).
func SamePool(a, b *Pool) bool {
	x, y := *a, *b
	x.Pos, y.Pos = Pos{}, Pos{}
	return reflect.DeepEqual(x, y)
}

// Regions returns every region defined across zs by name.
func Regions(zs []*Zone) map[string]*Region {
	m := map[string]*Region{}
	for _, z := range zs {
		for _, r := range z.Regions {
			m[r.Name] = r
		}
	}
	return m
}

// Pools returns every pool defined across zs by name.
func Pools(zs []*Zone) map[string]*Pool {
	m := map[string]*Pool{}
	for _, z := range zs {
		for _, p := range z.Pools {
			m[p.Name] = p
		}
	}
	return m
}
