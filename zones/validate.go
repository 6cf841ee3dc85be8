package zones

import (
	"fmt"
	"net/netip"
	"reflect"
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
func (p *parser) validate() {
	z := p.z
	origin := Pos{z.File, 0}
	type key struct {
		name string
		t    uint16
	}
	sets := map[key][]dns.RR{}
	byName := map[string]map[uint16]bool{}
	var kept []dns.RR
	for _, rr := range z.RRs {
		h := rr.Header()
		k := key{h.Name, h.Rrtype}
		dup := false
		for _, o := range sets[k] {
			if dns.IsDuplicate(o, rr) {
				dup = true
				break
			}
		}
		if dup {
			continue // RFC 2181 §5: an RRset holds no duplicates
		}
		if prev := sets[k]; len(prev) > 0 && prev[0].Header().Ttl != h.Ttl {
			// RFC 2181 §5.2: one TTL per RRset; BIND keeps the first.
			p.warnf(p.rrPos[rr], "%s %s: TTL %d differs from the RRset's %d; using %d",
				h.Name, dns.TypeToString[h.Rrtype], h.Ttl, prev[0].Header().Ttl, prev[0].Header().Ttl)
			h.Ttl = prev[0].Header().Ttl
		}
		sets[k] = append(sets[k], rr)
		if byName[h.Name] == nil {
			byName[h.Name] = map[uint16]bool{}
		}
		byName[h.Name][h.Rrtype] = true
		kept = append(kept, rr)
	}
	z.RRs = kept

	soas := sets[key{z.Origin, dns.TypeSOA}]
	for _, rr := range kept {
		if rr.Header().Rrtype == dns.TypeSOA && rr.Header().Name != z.Origin {
			p.errorf(p.rrPos[rr], "%s: SOA record outside the zone apex %s", rr.Header().Name, z.Origin)
		}
	}
	switch len(soas) {
	case 0:
		p.errorf(origin, "zone %s has no SOA record at its apex", z.Origin)
	case 1:
		z.SOA = soas[0].(*dns.SOA)
	default:
		p.errorf(p.rrPos[soas[1]], "zone %s has more than one SOA record", z.Origin)
	}
	if len(sets[key{z.Origin, dns.TypeNS}]) == 0 {
		p.errorf(origin, "zone %s has no NS records at its apex", z.Origin)
	}

	// Delegation points (NS below the apex).
	var cuts []string
	for k := range sets {
		if k.t == dns.TypeNS && k.name != z.Origin {
			cuts = append(cuts, k.name)
		}
	}
	below := func(name string) string { // the cut at or above name, if any
		for _, c := range cuts {
			if dns.IsSubDomain(c, name) {
				return c
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
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeCNAME} {
			if byName[r.Name][t] {
				p.errorf(r.Pos, "%s: GSLB record beside static %s data at the same name", r.Name, dns.TypeToString[t])
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

	for _, rr := range kept {
		h := rr.Header()
		if h.Rrtype != dns.TypeCNAME {
			continue
		}
		pos := p.rrPos[rr]
		if len(sets[key{h.Name, dns.TypeCNAME}]) > 1 && rr != sets[key{h.Name, dns.TypeCNAME}][0] {
			p.errorf(pos, "%s: more than one CNAME record", h.Name)
			continue
		}
		if h.Name == z.Origin {
			p.errorf(pos, "%s: CNAME at the zone apex", h.Name)
			continue
		}
		for t := range byName[h.Name] {
			// RFC 2181 §10.1: nothing beside a CNAME (RFC 4034 allows
			// RRSIG and NSEC).
			if t != dns.TypeCNAME && t != dns.TypeRRSIG && t != dns.TypeNSEC {
				p.errorf(pos, "%s: CNAME and other data (%s) at the same name", h.Name, dns.TypeToString[t])
				break
			}
		}
		if r := gslbNames[h.Name]; r != nil {
			p.errorf(pos, "%s: CNAME beside a GSLB record", h.Name)
		}
	}

	// CNAME chains inside the zone: loops and overlong chains fail the load
	// (ZL-07) so the server never has to discover them per query.
	cname := map[string]string{}
	for _, rr := range kept {
		if c, ok := rr.(*dns.CNAME); ok {
			cname[c.Hdr.Name] = dns.CanonicalName(c.Target)
		}
	}
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
				p.errorf(p.rrPos[sets[key{n, dns.TypeCNAME}][0]], "%s: CNAME loop through %s", n, next)
				break
			}
			if depth > MaxCNAMEChain {
				p.errorf(p.rrPos[sets[key{n, dns.TypeCNAME}][0]], "%s: CNAME chain longer than %d", n, MaxCNAMEChain)
				break
			}
			seen[next] = true
			cur = next
		}
	}

	// Glue: in-bailiwick name servers of a delegation need addresses (ZL-08).
	for _, c := range cuts {
		for _, rr := range sets[key{c, dns.TypeNS}] {
			ns := dns.CanonicalName(rr.(*dns.NS).Ns)
			if dns.IsSubDomain(c, ns) && len(sets[key{ns, dns.TypeA}]) == 0 && len(sets[key{ns, dns.TypeAAAA}]) == 0 {
				p.warnf(p.rrPos[rr], "%s NS %s: in-bailiwick name server without glue address", c, ns)
			}
		}
	}
	for _, rr := range sets[key{z.Origin, dns.TypeNS}] {
		ns := dns.CanonicalName(rr.(*dns.NS).Ns)
		if dns.IsSubDomain(z.Origin, ns) && below(ns) == "" && len(sets[key{ns, dns.TypeA}]) == 0 &&
			len(sets[key{ns, dns.TypeAAAA}]) == 0 && gslbNames[ns] == nil {
			p.errorf(p.rrPos[rr], "%s NS %s: name server inside the zone has no address record", z.Origin, ns)
		}
	}
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
			if o, ok := regions[r.Name]; ok && !sameRegion(o, r) {
				errs = append(errs, newError(r.Pos, fmt.Sprintf("$REGION %s: defined differently at %s", r.Name, o.Pos)))
				continue
			}
			regions[r.Name] = r
		}
	}
	for _, z := range zs {
		for _, pl := range z.Pools {
			if o, ok := pools[pl.Name]; ok && !samePool(o, pl) {
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

func sameRegion(a, b *Region) bool {
	x, y := *a, *b
	x.Pos, y.Pos = Pos{}, Pos{}
	return reflect.DeepEqual(x, y)
}

func samePool(a, b *Pool) bool {
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
