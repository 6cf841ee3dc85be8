package dnsserver

import (
	"sort"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/zones"
)

// Snapshot is everything the server answers from. It is built off the query
// path by NewSnapshot and never modified afterwards, except through two
// atomic slots: the health and RTT view of its GSLB set (Server.Refresh
// replaces it, so a verdict never rebuilds the zones) and the reply cache.
// The server swaps the whole Snapshot atomically when the zones change.
type Snapshot struct {
	zones map[string]*servedZone // by lower-case origin
	// few holds the zones longest origin first when there are at most
	// fewZones of them: findZone then tests each origin as a suffix of the
	// name instead of hashing the name and each of its ancestors.
	few []*servedZone
	// Index is the state index the snapshot was built from (0 on a node
	// without a replicated store), for status and metrics.
	Index uint64
	set   *gslb.Set
	// failed are the origins of zones that are configured but have never
	// loaded: queries for them get SERVFAIL, not REFUSED.
	failed map[string]bool
	// view is the health and RTT view GSLB records are answered with. It
	// lives here, not beside the snapshot pointer, so a query that loads a
	// snapshot always finds a view of that snapshot's set.
	view atomic.Pointer[gslb.View]
	// cache holds packed replies to repeated questions (see udp.go); it
	// lives and dies with the snapshot, so a swap never serves stale data,
	// and its entries that depend on health carry the generation of what
	// they depended on (a new view makes only those go stale).
	cache *answerCache
}

// servedZone is a built zone as one snapshot serves it: the built form,
// which snapshots built from one another share, and what belongs to this
// snapshot alone (the compiled GSLB records its nodes refer to by index).
type servedZone struct {
	*zone
	// gslb are the compiled forms of the zone's GSLB records, in the order
	// of zones.Zone.Records: node.gslb-1 indexes it (gslb.Set.ZoneRecords:
	// the records themselves, one memory access from the node).
	gslb []gslb.Record
	snap *Snapshot // the snapshot the zone is part of (for its view)
}

// record returns the GSLB record of node n in this snapshot, or nil.
func (z *servedZone) record(n *node) *gslb.Record {
	if n.gslb == 0 || int(n.gslb) > len(z.gslb) {
		return nil
	}
	return &z.gslb[n.gslb-1]
}

// zone is one built zone, indexed by owner name (index.go). It is
// immutable once built and may be shared by several snapshots
// (NewSnapshotFrom): nothing in it points at a snapshot or at a compiled
// GSLB record.
type zone struct {
	index
	src    *zones.Zone // what it was built from (NewSnapshotFrom reuses it for the same pointer)
	origin string
	file   string
	soa    *dns.SOA
	neg    *dns.SOA // the SOA for negative answers: TTL min(SOA TTL, MINIMUM), RFC 2308 §3
	cuts   bool     // any delegation below the apex
	// negWire is neg packed for the wire fast path (fast.go): type,
	// class, TTL, RDLENGTH and RDATA, without the owner (the origin,
	// written as a pointer into the question); labels counts the origin's
	// labels.
	negWire []byte
	labels  int
}

// NewSnapshot indexes linked zones and their compiled GSLB set. failed
// names zones that are configured but could not be loaded.
func NewSnapshot(zs []*zones.Zone, set *gslb.Set, failed ...string) *Snapshot {
	return NewSnapshotFrom(nil, zs, set, failed...)
}

// NewSnapshotFrom is NewSnapshot that reuses the built form of every zone
// of prev (nil: none) whose *zones.Zone is pointer-identical to one in zs:
// only new or changed zones are indexed again, so a change to one zone of
// many costs that zone's size, not the total. A reused zone's GSLB records
// are bound afresh to set (by their index in zones.Zone.Records, through
// set.Record), so set may be recompiled; prev and every snapshot sharing
// a built zone stay valid and unchanged. The caller must therefore never
// modify a *zones.Zone after giving it to a snapshot: a changed zone is a
// new pointer.
func NewSnapshotFrom(prev *Snapshot, zs []*zones.Zone, set *gslb.Set, failed ...string) *Snapshot {
	s := &Snapshot{zones: make(map[string]*servedZone, len(zs)), set: set, failed: map[string]bool{}}
	s.cache = &answerCache{view: &s.view}
	s.view.Store(set.DefaultView())
	for _, f := range failed {
		s.failed[dns.CanonicalName(f)] = true
	}
	for _, z := range zs {
		var zn, old *zone
		if prev != nil {
			if o := prev.zones[z.Origin]; o != nil {
				old = o.zone
			}
		}
		if old != nil && old.src == z {
			zn = old
		} else {
			zn = buildZoneFrom(old, z)
		}
		s.zones[z.Origin] = &servedZone{zone: zn, snap: s, gslb: set.ZoneRecords(z)}
	}
	if len(s.zones) <= fewZones {
		for _, z := range s.zones {
			s.few = append(s.few, z)
		}
		sort.Slice(s.few, func(i, j int) bool { return len(s.few[i].origin) > len(s.few[j].origin) })
	}
	return s
}

// fewZones is the number of zones up to which findZone tests suffixes.
const fewZones = 8

func buildZone(z *zones.Zone) *zone { return buildZoneFrom(nil, z) }

// buildZoneFrom builds z, sharing the index of old (a built version of the
// zone, nil for none) when z has the same owner names and RRset types in
// the same places (zones.RRs.SameShape; a reload that changed some rdata
// and the serial): only the additional sections are made again.
func buildZoneFrom(old *zone, z *zones.Zone) *zone {
	zn := &zone{src: z, origin: z.Origin, file: z.File, soa: z.SOA}
	neg := dns.Copy(z.SOA).(*dns.SOA)
	neg.Hdr.Ttl = min(z.SOA.Hdr.Ttl, z.SOA.Minttl)
	zn.neg = neg
	if old != nil && old.origin == z.Origin && len(old.table) > 0 && sameNames(old.src.Records, z.Records) && z.RRs.SameShape(&old.src.RRs) {
		zn.index = old.index
		zn.recs, zn.extra = &z.RRs, nil
		(&indexBuilder{ix: &zn.index}).additional()
		zn.cuts = old.cuts
	} else if ix, cuts := buildIndex(z); ix != nil {
		zn.index, zn.cuts = *ix, cuts
	}
	zn.negWire, _ = packRR(nil, zn.neg)
	zn.labels = dns.CountLabel(zn.origin)
	return zn
}

// sameNames reports whether two lists of GSLB records name the same names
// in the same order.
func sameNames(a, b []*zones.Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name {
			return false
		}
	}
	return true
}

// packRR appends rr in wire form, without its owner name and without
// compression, to dst. ok is false if rr does not pack.
func packRR(dst []byte, rr dns.RR) (_ []byte, ok bool) {
	buf := make([]byte, dns.Len(rr)+256)
	off, err := dns.PackRR(rr, buf, 0, nil, false)
	if err != nil {
		return dst, false
	}
	buf = buf[:off]
	i := 0
	for buf[i] != 0 {
		i += 1 + int(buf[i])
	}
	return append(dst, buf[i+1:]...), true
}

// parent returns the name one label up ("a.b." gives "b.").
func parent(name string) string {
	for i := 0; i < len(name)-1; i++ {
		if name[i] == '\\' {
			i++
			continue
		}
		if name[i] == '.' {
			return name[i+1:]
		}
	}
	return "."
}

// findZone returns the zone with the longest origin that name is in.
func (s *Snapshot) findZone(name string) *servedZone {
	if s.few != nil && strings.IndexByte(name, '\\') < 0 {
		// Without escapes, a suffix at a label boundary is an ancestor;
		// the longest origin that is one is the closest zone.
		for _, z := range s.few {
			if inZone(name, z.origin) {
				return z
			}
		}
		return nil
	}
	for n := name; ; n = parent(n) {
		if z := s.zones[n]; z != nil {
			return z
		}
		if n == "." {
			return nil
		}
	}
}

// broken reports whether name is in a zone that failed to load.
func (s *Snapshot) broken(name string) bool {
	if len(s.failed) == 0 {
		return false
	}
	for n := name; ; n = parent(n) {
		if s.failed[n] {
			return true
		}
		if n == "." {
			return false
		}
	}
}

// Zones returns the origin and SOA serial of every zone served.
func (s *Snapshot) Zones() map[string]uint32 {
	m := make(map[string]uint32, len(s.zones))
	for o, z := range s.zones {
		m[o] = z.soa.Serial
	}
	return m
}

// Set returns the compiled GSLB set the snapshot answers from.
func (s *Snapshot) Set() *gslb.Set { return s.set }

// View returns the health and RTT view the snapshot answers GSLB records
// with now (nil without a GSLB set).
func (s *Snapshot) View() *gslb.View { return s.view.Load() }

// GSLBRecord finds the GSLB record that answers A/AAAA queries for name,
// following in-zone CNAMEs (at most zones.MaxCNAMEChain) and wildcards as
// the server does. chain lists the names passed through, the query name
// first. rec is nil when the name does not lead to a GSLB record.
func (s *Snapshot) GSLBRecord(name string) (rec *gslb.Record, chain []string) {
	name = dns.CanonicalName(name)
	for depth := 0; depth <= zones.MaxCNAMEChain; depth++ {
		chain = append(chain, name)
		z := s.findZone(name)
		if z == nil || z.cuts && z.cutAbove(name, dns.TypeA) != nil {
			return nil, chain
		}
		n := z.lookup(name)
		if n == nil {
			if n = z.encloserWild(name); n == nil {
				return nil, chain
			}
		}
		switch {
		case n.cname():
			name = dns.CanonicalName(z.cnameTarget(n))
		case n.gslb != 0:
			return z.record(n), chain
		default:
			return nil, chain
		}
	}
	return nil, chain
}

// NameInfo describes name (any case) for the DNSSEC signer: the origin of
// the zone that holds it ("" if none), whether the owner name exists in
// that zone (an empty non-terminal exists; a name only a wildcard would
// answer does not), and the RR types present at it, appended to dst. A
// name with a GSLB record reports A and AAAA (which of them has addresses
// depends on the pools and their health at query time). It reads the
// snapshot only and is safe for concurrent use.
func (s *Snapshot) NameInfo(name string, dst []uint16) (origin string, exists bool, types []uint16) {
	name = dns.CanonicalName(name)
	z := s.findZone(name)
	if z == nil {
		return "", false, dst
	}
	n := z.lookup(name)
	if n == nil {
		return z.origin, false, dst
	}
	dst = z.types(n, dst)
	if n.gslb != 0 {
		dst = append(dst, dns.TypeA, dns.TypeAAAA)
	}
	return z.origin, true, dst
}
