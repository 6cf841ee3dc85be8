package gslb

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"

	"github.com/gslbd/gslb/internal/balance"
)

// allPolicy answers every healthy member of every pool of the record.
type allPolicy struct{}

func newAll(*Record, map[string]string, *compileCtx) (Policy, error) { return allPolicy{}, nil }

func (allPolicy) DependsOnClient() bool { return false }
func (allPolicy) Random() bool          { return false }

func (allPolicy) Choose(r *Record, mode int, _ *Client, open bool) (int, uint8) {
	if open {
		return allPools, 0
	}
	for _, pi := range r.pools {
		if r.set.pools[pi].up(mode) {
			return allPools, 0
		}
	}
	return -1, 0
}

// failoverPolicy answers from the first pool, in record order, that has a
// healthy member (active-passive, any depth: ST-03).
type failoverPolicy struct {
	choice [modes]int
}

func newFailover(r *Record, _ map[string]string, cx *compileCtx) (Policy, error) {
	p := &failoverPolicy{}
	for m := range p.choice {
		p.choice[m] = -1
		for i, pi := range r.pools {
			if cx.set.pools[pi].up(m) {
				p.choice[m] = i
				break
			}
		}
	}
	return p, nil
}

func (p *failoverPolicy) DependsOnClient() bool { return false }
func (p *failoverPolicy) Random() bool          { return false }

func (p *failoverPolicy) Choose(_ *Record, mode int, _ *Client, open bool) (int, uint8) {
	if open {
		return 0, 0
	}
	return p.choice[mode], 0
}

// weightedPolicy picks a pool at random by the record's weights among the
// pools with a healthy member (ST-05), or, with sticky=prefix, by weighted
// rendezvous hashing of the client's network, so a client keeps its pool and
// removing one of N pools moves only about 1/N of clients (ST-14). Pools
// of weight 0 are used only when no pool of positive weight is up.
type weightedPolicy struct {
	sticky    bool
	bits4     int
	bits6     int
	ids       []uint64
	weights   [modes][]int // by mode: the weight of each up pool, 0 for down ones
	total     [modes]int
	openW     []int
	openTotal int
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
	weigh := func(up func(i int) bool) ([]int, int) {
		w := make([]int, len(r.pools))
		total := 0
		for i := range r.pools {
			if up(i) && r.pw[i] > 0 {
				w[i] = r.pw[i]
				total += w[i]
			}
		}
		if total == 0 { // the weight-0 pools are the backups
			for i := range r.pools {
				if up(i) && r.pw[i] == 0 {
					w[i] = 1
					total++
				}
			}
		}
		return w, total
	}
	for m := range p.weights {
		p.weights[m], p.total[m] = weigh(func(i int) bool { return cx.set.pools[r.pools[i]].up(m) })
	}
	p.openW, p.openTotal = weigh(func(int) bool { return true })
	return p, nil
}

func (p *weightedPolicy) DependsOnClient() bool { return p.sticky }
func (p *weightedPolicy) Random() bool          { return !p.sticky }

func (p *weightedPolicy) Choose(_ *Record, mode int, c *Client, open bool) (int, uint8) {
	w, total := p.weights[mode], p.total[mode]
	if open {
		w, total = p.openW, p.openTotal
	}
	if total == 0 {
		return -1, 0
	}
	if p.sticky {
		bits := p.bits6
		if c.Addr.Is4() {
			bits = p.bits4
		}
		bits = min(bits, int(c.Bits))
		pfx, _ := c.Addr.Prefix(bits)
		return balance.Rendezvous(prefixHash(pfx), p.ids, w), uint8(bits)
	}
	x := rand.IntN(total)
	for i, wi := range w {
		if x < wi {
			return i, 0
		}
		x -= wi
	}
	return -1, 0
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
// order. Every choice is precomputed per ordering of regions.
type geoPolicy struct {
	m     *geoMap
	table choiceTable
}

func newGeo(r *Record, _ map[string]string, cx *compileCtx) (Policy, error) {
	m := cx.geoMap()
	return &geoPolicy{m: m, table: newChoiceTable(r, cx, m.orders)}, nil
}

func (p *geoPolicy) DependsOnClient() bool { return !p.table.constant }
func (p *geoPolicy) Random() bool          { return false }

func (p *geoPolicy) Choose(r *Record, mode int, c *Client, open bool) (int, uint8) {
	o, bits := p.m.lookup(c.Addr)
	return p.table.choose(o, mode, open), p.table.scope(bits, c)
}

// choiceTable is a record's pool choice for each ordering of regions.
type choiceTable struct {
	choice   [modes][]int16 // [mode][ordering]
	open     []int16
	constant bool // every ordering gives the same choices: the answer does not depend on the client
}

func newChoiceTable(r *Record, cx *compileCtx, orders []ordering) choiceTable {
	t := choiceTable{open: make([]int16, len(orders)), constant: true}
	for m := range t.choice {
		t.choice[m] = make([]int16, len(orders))
	}
	for o, ord := range orders {
		prefs := ord.poolOrder(r, cx.set)
		t.open[o] = -1
		if len(prefs) > 0 {
			t.open[o] = int16(prefs[0])
		}
		for m := range t.choice {
			t.choice[m][o] = -1
			for _, i := range prefs {
				if cx.set.pools[r.pools[i]].up(m) {
					t.choice[m][o] = int16(i)
					break
				}
			}
			if t.choice[m][o] != t.choice[m][0] {
				t.constant = false
			}
		}
		if t.open[o] != t.open[0] {
			t.constant = false
		}
	}
	return t
}

func (t *choiceTable) choose(o, mode int, open bool) int {
	if open {
		return int(t.open[o])
	}
	return int(t.choice[mode][o])
}

// scope is the ECS scope of a choice made from a geo network of bits.
func (t *choiceTable) scope(bits uint8, c *Client) uint8 {
	if t.constant {
		return 0
	}
	return min(bits, c.Bits)
}

// latencyPolicy sends each client network to the region with the lowest
// measured RTT (with hysteresis, see LatencyTable), and answers as geo until
// the network has been measured (ST-06).
type latencyPolicy struct {
	geo   geoPolicy
	nets  map[netip.Prefix]choiceRow
	table *LatencyTable
}

type choiceRow struct {
	choice [modes]int16
	open   int16
}

func newLatency(r *Record, opts map[string]string, cx *compileCtx) (Policy, error) {
	g, err := newGeo(r, opts, cx)
	if err != nil {
		return nil, err
	}
	p := &latencyPolicy{geo: *g.(*geoPolicy), table: cx.env.Latency, nets: map[netip.Prefix]choiceRow{}}
	for pfx, ord := range cx.latencyView().orders {
		t := newChoiceTable(r, cx, []ordering{ord})
		row := choiceRow{open: t.open[0]}
		for m := range row.choice {
			row.choice[m] = t.choice[m][0]
		}
		p.nets[pfx] = row
	}
	return p, nil
}

func (p *latencyPolicy) DependsOnClient() bool { return true }
func (p *latencyPolicy) Random() bool          { return false }

func (p *latencyPolicy) Choose(r *Record, mode int, c *Client, open bool) (int, uint8) {
	pfx, bits := clientNetwork(c)
	if row, ok := p.nets[pfx]; ok {
		if open {
			return int(row.open), bits
		}
		return int(row.choice[mode]), bits
	}
	if p.table != nil {
		p.table.Observe(netip.PrefixFrom(c.Addr, int(bits))) // the client, for the probers to measure
	}
	return p.geo.Choose(r, mode, c, open)
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
