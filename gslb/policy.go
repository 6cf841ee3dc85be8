package gslb

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"

	"github.com/gslbd/gslb/internal/balance"
)

// allPolicy answers every healthy member of every pool of the record.
type allPolicy struct{}

func newAll(*Record, map[string]string, *compileCtx) (Policy, error) { return allPolicy{}, nil }

func (allPolicy) DependsOnClient(*Record, *View) bool { return false }
func (allPolicy) Random() bool                        { return false }

func (allPolicy) Choose(r *Record, v *View, mode int, _ *Client, open bool) (int, uint8) {
	if open {
		return allPools, 0
	}
	for _, pi := range r.pools {
		if v.upIn(pi, mode) {
			return allPools, 0
		}
	}
	return -1, 0
}

// failoverPolicy answers from the first pool, in record order, that has a
// healthy member (active-passive, any depth: ST-03).
type failoverPolicy struct{}

func newFailover(*Record, map[string]string, *compileCtx) (Policy, error) {
	return &failoverPolicy{}, nil
}

func (*failoverPolicy) DependsOnClient(*Record, *View) bool { return false }
func (*failoverPolicy) Random() bool                        { return false }

func (*failoverPolicy) Choose(r *Record, v *View, mode int, _ *Client, open bool) (int, uint8) {
	if open {
		return 0, 0
	}
	for i, pi := range r.pools {
		if v.upIn(pi, mode) {
			return i, 0
		}
	}
	return -1, 0
}

// weightedPolicy picks a pool at random by the record's weights among the
// pools with a healthy member (ST-05), or, with sticky=prefix, by weighted
// rendezvous hashing of the client's network, so a client keeps its pool and
// removing one of N pools moves only about 1/N of clients (ST-14). Pools
// of weight 0 are used only when no pool of positive weight is up.
type weightedPolicy struct {
	sticky bool
	bits4  int
	bits6  int
	ids    []uint64
	// allW are the weights while every pool is up (and for open), allTotal
	// their sum: the common case needs no weighing per query.
	allW     []int
	allTotal int
}

func newWeighted(r *Record, opts map[string]string, cx *compileCtx) (Policy, error) {
	p := &weightedPolicy{bits4: 24, bits6: 56}
	if v, ok := opts["sticky"]; ok {
		delete(opts, "sticky")
		switch v {
		case "prefix":
			p.sticky = true
		case "none":
		default:
			return nil, fmt.Errorf("sticky=%q: want prefix or none", v)
		}
	}
	for _, k := range []string{"prefix4", "prefix6"} {
		v, ok := opts[k]
		if !ok {
			continue
		}
		delete(opts, k)
		n, err := strconv.Atoi(v)
		limit := 32
		if k == "prefix6" {
			limit = 128
		}
		if err != nil || n < 1 || n > limit {
			return nil, fmt.Errorf("%s=%q: want 1 to %d", k, v, limit)
		}
		if k == "prefix4" {
			p.bits4 = n
		} else {
			p.bits6 = n
		}
	}
	positive := false
	for i, pi := range r.pools {
		p.ids = append(p.ids, balance.Hash64(cx.set.pools[pi].name))
		if r.pw[i] > 0 {
			positive = true
		}
	}
	if !positive {
		return nil, fmt.Errorf("every pool has weight 0")
	}
	p.allW = make([]int, len(r.pools))
	p.allTotal = weights(r, nil, 0, true, p.allW)
	return p, nil
}

func (p *weightedPolicy) DependsOnClient(*Record, *View) bool { return p.sticky }
func (p *weightedPolicy) Random() bool                        { return !p.sticky }

// stackPools is how many pools a weighted record weighs without allocating.
const stackPools = 16

// weighing returns the total weight of r's pools in mode (open: every
// pool counts as up): the record's weights of the up pools, or, when no
// pool of positive weight is up, 1 for each up pool of weight 0 (backups).
func weighing(r *Record, v *View, mode int, open bool) (total int, backups bool) {
	for i, pi := range r.pools {
		if r.pw[i] > 0 && (open || v.upIn(pi, mode)) {
			total += r.pw[i]
		}
	}
	if total > 0 {
		return total, false
	}
	for i, pi := range r.pools {
		if r.pw[i] == 0 && (open || v.upIn(pi, mode)) {
			total++
		}
	}
	return total, true
}

// weightAt is the weight of r's pool i in a weighing.
func weightAt(r *Record, v *View, i, mode int, open, backups bool) int {
	if !open && !v.upIn(r.pools[i], mode) || (r.pw[i] == 0) != backups {
		return 0
	}
	if backups {
		return 1
	}
	return r.pw[i]
}

// weights writes into w (len(r.pools)) the weight of each of r's pools in
// mode and returns the total (see weighing).
func weights(r *Record, v *View, mode int, open bool, w []int) int {
	total, backups := weighing(r, v, mode, open)
	for i := range w {
		w[i] = weightAt(r, v, i, mode, open, backups)
	}
	return total
}

// allUp reports whether every pool of r is up in mode.
func allUp(r *Record, v *View, mode int) bool {
	for _, pi := range r.pools {
		if !v.upIn(pi, mode) {
			return false
		}
	}
	return true
}

func (p *weightedPolicy) Choose(r *Record, v *View, mode int, c *Client, open bool) (int, uint8) {
	open = open || allUp(r, v, mode) // the weights are allW
	if p.sticky {
		bits := p.bits6
		if c.Addr.Is4() {
			bits = p.bits4
		}
		bits = min(bits, int(c.Bits))
		pfx, _ := c.Addr.Prefix(bits)
		i := -1
		if open {
			i = balance.Rendezvous(prefixHash(pfx), p.ids, p.allW)
		} else {
			i = p.rendezvousDown(prefixHash(pfx), r, v, mode)
		}
		if i < 0 {
			return -1, 0
		}
		return i, uint8(bits)
	}
	if open {
		x := rand.IntN(p.allTotal)
		for i, wi := range p.allW {
			if x < wi {
				return i, 0
			}
			x -= wi
		}
	}
	total, backups := weighing(r, v, mode, false)
	if total == 0 {
		return -1, 0
	}
	x := rand.IntN(total)
	for i := range r.pools {
		wi := weightAt(r, v, i, mode, open, backups)
		if x < wi {
			return i, 0
		}
		x -= wi
	}
	return -1, 0
}

// rendezvousDown is the sticky choice for client network hash h while some
// of r's pools are down in mode, or -1 when none can be chosen.
func (p *weightedPolicy) rendezvousDown(h uint64, r *Record, v *View, mode int) int {
	var buf [stackPools]int
	w := buf[:]
	if len(r.pools) > len(buf) {
		w = make([]int, len(r.pools))
	}
	w = w[:len(r.pools)]
	if weights(r, v, mode, false, w) == 0 {
		return -1
	}
	return balance.Rendezvous(h, p.ids, w)
}

// prefixHash is a stable hash of a client network, the same on every node.
func prefixHash(p netip.Prefix) uint64 {
	a := p.Addr().As16()
	var h uint64 = 0x9e3779b97f4a7c15
	for i := 0; i < 16; i += 8 {
		v := uint64(a[i])<<56 | uint64(a[i+1])<<48 | uint64(a[i+2])<<40 | uint64(a[i+3])<<32 |
			uint64(a[i+4])<<24 | uint64(a[i+5])<<16 | uint64(a[i+6])<<8 | uint64(a[i+7])
		h = balance.Mix64(h ^ v)
	}
	return balance.Mix64(h ^ uint64(p.Bits()))
}

// geoPolicy sends each client to the first healthy pool of the regions that
// serve it (serves= prefixes, then countries, then continents: most
// specific wins), then of the nearest regions by great-circle distance
// (ST-01, ST-02). Clients with no known location get the record's pool
// order. The record's pool preference is precomputed per ordering of
// regions; the first healthy one is found at query time.
type geoPolicy struct {
	m     *geoMap
	table *prefTable
	spill int // spill=NN%: 0 off (load.go)
}

func newGeo(r *Record, opts map[string]string, cx *compileCtx) (Policy, error) {
	m := cx.geoMap()
	spill, err := spillOption(opts)
	if err != nil {
		return nil, err
	}
	return &geoPolicy{m: m, table: cx.prefTable(r, m.orders), spill: spill}, nil
}

func (p *geoPolicy) DependsOnClient(r *Record, v *View) bool {
	return !p.table.constant(r, v) || spilling(p.spill, r, v)
}
func (p *geoPolicy) Random() bool { return false }

func (p *geoPolicy) Choose(r *Record, v *View, mode int, c *Client, open bool) (int, uint8) {
	o, bits := p.m.lookup(c.Addr)
	pi := p.table.choose(o, v, r, mode, open)
	if !open && pi >= 0 && spilling(p.spill, r, v) {
		prefs := p.table.prefs[o]
		pi, bits = spillChoice(p.spill, pi, r, v, mode, c, bits, func(after int) int {
			for k, i := range prefs {
				if int(i) == after {
					for _, j := range prefs[k+1:] {
						if v.upIn(r.pools[j], mode) {
							return int(j)
						}
					}
				}
			}
			return -1
		})
		return pi, min(bits, c.Bits)
	}
	if p.table.constant(r, v) {
		return pi, 0
	}
	return pi, min(bits, c.Bits)
}

// prefTable is, for one list of pools, their preference for each ordering
// of regions: what does not depend on health. Records that list the same
// pools share one.
type prefTable struct {
	prefs [][]int16 // [ordering]: indices into the record's pools, best first
	// same: every ordering gives the same preference, so the choice never
	// depends on the client; openSame: the same first pool.
	same, openSame bool
	// For the choice in a View to be the same in every ordering, pool i
	// must be in every ordering (inAll bit i) and no up pool may come
	// before it in any (before[i]); any holds the pools in some ordering.
	// wide: more than 64 pools, not tracked.
	inAll, any uint64
	before     []uint64
	wide       bool
}

// prefTable returns the shared table of r's pools for orders.
func (cx *compileCtx) prefTable(r *Record, orders []ordering) *prefTable {
	key := fmt.Sprint(r.pools)
	if t := cx.prefs[key]; t != nil {
		return t
	}
	t := &prefTable{prefs: make([][]int16, len(orders)), same: true, openSame: true,
		wide: len(r.pools) > 64, before: make([]uint64, len(r.pools))}
	if !t.wide {
		t.inAll = 1<<len(r.pools) - 1
		if len(r.pools) == 64 {
			t.inAll = ^uint64(0)
		}
	}
	for o, ord := range orders {
		prefs := ord.poolOrder(r, cx.set)
		t.prefs[o] = make([]int16, len(prefs))
		var seen, in uint64
		for k, i := range prefs {
			t.prefs[o][k] = int16(i)
			if !t.wide {
				t.before[i] |= seen
				seen |= 1 << i
				in |= 1 << i
			}
		}
		t.inAll &= in
		t.any |= in
		if !slices.Equal(t.prefs[o], t.prefs[0]) {
			t.same = false
		}
		if len(t.prefs[o]) > 0 != (len(t.prefs[0]) > 0) || len(t.prefs[o]) > 0 && t.prefs[o][0] != t.prefs[0][0] {
			t.openSame = false
		}
	}
	cx.prefs[key] = t
	return t
}

// choose returns the first pool of ordering o that is up in mode (or just
// the first with open), as an index into r.pools, or -1.
func (t *prefTable) choose(o int, v *View, r *Record, mode int, open bool) int {
	prefs := t.prefs[o]
	if open {
		if len(prefs) == 0 {
			return -1
		}
		return int(prefs[0])
	}
	for _, i := range prefs {
		if v.upIn(r.pools[i], mode) {
			return int(i)
		}
	}
	return -1
}

// constant reports whether, in v, every ordering gives the same choice in
// every mode, and the same open choice: then the answer does not depend on
// the client, and its ECS scope is 0.
func (t *prefTable) constant(r *Record, v *View) bool {
	if t.same {
		return true
	}
	if !t.openSame || t.wide {
		return false
	}
	var up [modes]uint64 // bit i: r.pools[i] is up in the mode
	for i, pi := range r.pools {
		f := uint64(v.flags[pi])
		for m := range up {
			up[m] |= (f >> m & 1) << i
		}
	}
	for m := range up {
		c := -1
		for _, i := range t.prefs[0] {
			if up[m]&(1<<i) != 0 {
				c = int(i)
				break
			}
		}
		if c < 0 {
			if up[m]&t.any != 0 {
				return false // ordering 0 has no up pool, another one has
			}
			continue
		}
		if t.inAll&(1<<c) == 0 || up[m]&t.before[c] != 0 {
			return false
		}
	}
	return true
}

// latencyPolicy sends each client network to the region with the lowest
// measured RTT (with hysteresis, see LatencyTable), and answers as geo until
// the network has been measured (ST-06). The measured orders are in the View.
type latencyPolicy struct {
	geo geoPolicy
}

func newLatency(r *Record, opts map[string]string, cx *compileCtx) (Policy, error) {
	g, err := newGeo(r, opts, cx)
	if err != nil {
		return nil, err
	}
	return &latencyPolicy{geo: *g.(*geoPolicy)}, nil
}

func (p *latencyPolicy) DependsOnClient(*Record, *View) bool { return true }
func (p *latencyPolicy) Random() bool                        { return false }

func (p *latencyPolicy) Choose(r *Record, v *View, mode int, c *Client, open bool) (int, uint8) {
	pfx, bits := clientNetwork(c)
	if ord, ok := v.nets[pfx]; ok {
		pi := firstIn(ord, r, v, mode, open)
		if !open && pi >= 0 && spilling(p.geo.spill, r, v) {
			pi, bits = spillChoice(p.geo.spill, pi, r, v, mode, c, bits, func(after int) int {
				return nextIn(ord, r, v, mode, after)
			})
		}
		return pi, bits
	}
	if v.lat != nil {
		v.lat.Observe(netip.PrefixFrom(c.Addr, int(bits))) // the client, for the probers to measure
	}
	return p.geo.Choose(r, v, mode, c, open)
}

// firstIn returns r's first pool (an index into r.pools), in the regions
// of ord, that is up in mode (or just the first with open), or -1.
func firstIn(ord ordering, r *Record, v *View, mode int, open bool) int {
	for _, reg := range ord.regions {
		for i, pi := range r.pools {
			if r.set.pools[pi].region == reg && (open || v.upIn(pi, mode)) {
				return i
			}
		}
	}
	return -1
}

// clientNetwork is the network RTTs are measured and kept for: /24 for
// IPv4, /48 for IPv6, or the ECS source prefix if it is shorter.
func clientNetwork(c *Client) (netip.Prefix, uint8) {
	bits := 48
	if c.Addr.Is4() {
		bits = 24
	}
	bits = min(bits, int(c.Bits))
	p, _ := c.Addr.Prefix(bits)
	return p, uint8(bits)
}
