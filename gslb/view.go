package gslb

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
)

// View is the health and RTT state that records are answered against: per
// pool member up or down, per pool what follows from it (healthy members
// by family, up per choice mode, members down), and the measured region
// order of each client network. A Set is compiled once per zone version;
// a View is built for it whenever health, overrides or RTTs change, in
// O(pools × members + measured networks), and read by the policies at
// query time, as gdnsd's plugins read its monitor state table. Nothing in
// a View is per record.
//
// A View is immutable once built and safe for concurrent use.
type View struct {
	set *Set
	seq uint64
	up  []bool // by member (pool.first + zone order): handed out (up and weight > 0)
	// pools is the state of each pool of the Set, by index; flags the
	// part the policies read for every pool of a record, packed: bit m
	// (0-3) up in choice mode m, bit 4 (flagDown) a member not handed out.
	pools []poolView
	flags []uint8
	// gen is, for each pool, the seq of the view in which the pool's state
	// last changed; latGen the same for the RTT orders.
	gen    []uint64
	latGen uint64

	lat      *LatencyTable
	nets     map[netip.Prefix]ordering // measured client network: regions by RTT, best first
	latStamp uint64                    // lat.gen the orders were read at
	latUntil time.Time                 // the first measurement in nets expires then
	loads    []uint8                   // by region: utilisation level, percent (load.go)
}

// poolView is one pool's state in a View.
type poolView struct {
	healthy  [2][]netip.Addr // by family index: members handed out
	hweights [2][]int        // weights of healthy[f]
	down     int             // members not handed out (down, or weight 0)
}

// flagDown is the flags bit of a pool with a member not handed out.
const flagDown = 1 << modes

// viewSeq numbers views across every Set, so a generation from one lineage
// of views is never mistaken for one of another.
var viewSeq atomic.Uint64

// View builds the state view of s for health h (nil: every member up) and
// the RTT table lat (nil: no measurements; latency records answer as geo).
// Cost: O(pools × members + measured networks).
func (s *Set) View(h Health, lat *LatencyTable) *View {
	if s == nil {
		return nil
	}
	return s.newView(h, lat, time.Now(), nil)
}

// DefaultView returns the view of the Env the Set was compiled with.
func (s *Set) DefaultView() *View {
	if s == nil {
		return nil
	}
	return s.view0
}

// Update returns the view for h and lat that follows v: v itself and false
// when nothing a query can see changed (no member changed state, no
// client network's region order changed, the same RTT table: a heartbeat),
// otherwise a new view and true. Pools whose state did not change keep
// their generation (see Stamp). It costs what View does, less when the RTT
// table did not change.
func (v *View) Update(h Health, lat *LatencyTable) (*View, bool) {
	n := v.set.newView(h, lat, time.Now(), v)
	return n, n != v
}

// Equal reports whether queries answered against v and o get the same
// answers: the same Set, member states, RTT orders and RTT table.
func (v *View) Equal(o *View) bool {
	if v == o {
		return true
	}
	if v == nil || o == nil || v.set != o.set || v.lat != o.lat || !slices.Equal(v.up, o.up) || !slices.Equal(v.loads, o.loads) {
		return false
	}
	return sameOrders(v.nets, o.nets)
}

// Set returns the Set the view was built for.
func (v *View) Set() *Set { return v.set }

// Seq returns the view's number: views built later have larger ones.
func (v *View) Seq() uint64 { return v.seq }

// Stamp returns the generation of what r's answers depend on in v: the
// largest generation of its pools (and of the RTT orders for a latency
// record). It grows exactly when a later view changes something r's answer
// may depend on, so a reply cache can keep entries whose stamp did not
// grow. A record of another Set gets v.Seq(), newer than any stamp before.
func (v *View) Stamp(r *Record) uint64 {
	if r.set != v.set {
		return v.seq
	}
	var g uint64
	for _, pi := range r.pools {
		g = max(g, v.gen[pi])
	}
	if _, ok := r.Policy.(*latencyPolicy); ok {
		g = max(g, v.latGen)
	}
	return g
}

// upIn reports whether pool pi can be chosen in mode m.
func (v *View) upIn(pi, m int) bool { return v.flags[pi]&(1<<m) != 0 }

func (s *Set) newView(h Health, lat *LatencyTable, now time.Time, prev *View) *View {
	if h == nil {
		h = AllUp{}
	}
	seq := viewSeq.Add(1)
	v := &View{set: s, seq: seq, latGen: seq, lat: lat, up: make([]bool, s.members),
		pools: make([]poolView, len(s.pools)), flags: make([]uint8, len(s.pools)), gen: make([]uint64, len(s.pools))}
	for pi, p := range s.pools {
		for k, m := range p.src.Members {
			// A member of weight 0 is never handed out while it could
			// be avoided: it counts as not healthy (but empty=open uses it).
			up, _ := h.Up(p.src, m.Addr)
			v.up[p.first+k] = up && m.Weight > 0
		}
		v.gen[pi] = seq
		if prev != nil && slices.Equal(v.up[p.first:p.first+len(p.src.Members)], prev.up[p.first:p.first+len(p.src.Members)]) {
			v.gen[pi] = prev.gen[pi]
		}
	}
	// The healthy lists of every pool share two arrays.
	addrs := make([]netip.Addr, 0, s.members+2*s.cnameOnly)
	weights := make([]int, 0, s.members)
	for pi, p := range s.pools {
		ps := &v.pools[pi]
		if prev != nil && v.gen[pi] == prev.gen[pi] {
			*ps, v.flags[pi] = prev.pools[pi], prev.flags[pi]
			continue
		}
		for k := range p.src.Members {
			if !v.up[p.first+k] {
				ps.down++
			}
		}
		for fi := range ps.healthy {
			start := len(addrs)
			for k, m := range p.src.Members {
				if famIndex(familyOf(m.Addr)) == fi && v.up[p.first+k] {
					addrs = append(addrs, m.Addr)
					weights = append(weights, m.Weight)
				}
			}
			ps.healthy[fi] = addrs[start:len(addrs):len(addrs)]
			ps.hweights[fi] = weights[start:len(weights):len(weights)]
		}
		if p.src.CNAME != "" && len(p.src.Members) == 0 {
			// A CNAME-only pool has nothing to check: up in both families.
			start := len(addrs)
			addrs = append(addrs, netip.IPv4Unspecified(), netip.IPv6Unspecified())
			ps.healthy = [2][]netip.Addr{addrs[start : start+1 : start+1], addrs[start+1 : start+2 : start+2]}
		}
		for m := 0; m < modes; m++ {
			if p.up(ps, m) {
				v.flags[pi] |= 1 << m
			}
		}
		if ps.down > 0 {
			v.flags[pi] |= flagDown
		}
	}
	v.readLatency(lat, now, prev)
	v.readLoads(h, prev)
	if prev != nil && lat == prev.lat && v.latGen == prev.latGen && slices.Equal(v.gen, prev.gen) {
		return prev // nothing a query can see changed
	}
	return v
}

// readLatency fills in the RTT orders, reusing prev's when the table did
// not change and none of its measurements expired.
func (v *View) readLatency(lat *LatencyTable, now time.Time, prev *View) {
	if prev != nil && lat == prev.lat && lat != nil && lat.generation() == prev.latStamp && now.Before(prev.latUntil) {
		v.nets, v.latStamp, v.latUntil, v.latGen = prev.nets, prev.latStamp, prev.latUntil, prev.latGen
		return
	}
	v.nets, v.latStamp, v.latUntil = lat.orders(v.set.regionIdx, now)
	if prev != nil && sameOrders(v.nets, prev.nets) {
		v.nets, v.latGen = prev.nets, prev.latGen
	}
}

func sameOrders(a, b map[netip.Prefix]ordering) bool {
	if len(a) != len(b) {
		return false
	}
	for p, o := range a {
		q, ok := b[p]
		if !ok || o.recordOrder != q.recordOrder || !slices.Equal(o.regions, q.regions) {
			return false
		}
	}
	return true
}

func familyOf(a netip.Addr) Family {
	if a.Is6() {
		return IPv6
	}
	return IPv4
}

// halfTTL reports whether a member of r's pools is not handed out (ST-10).
func (v *View) halfTTL(r *Record) bool {
	for _, pi := range r.pools {
		if v.flags[pi]&flagDown != 0 {
			return true
		}
	}
	return false
}
