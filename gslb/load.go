package gslb

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/gslbd/gslb/internal/balance"
)

// Load is what a Health may also know: each region proxy's utilisation
// (0 idle, 1 full or no server available), from the cluster's load
// reports. It is read only while a View is built, never per query.
type Load interface {
	Utilisation(region string) (u float64, known bool)
}

// loadUnknown is a region's load level before any report (or with a
// stale one): it counts as idle.
const loadUnknown = 255

// loadHysteresis is how far (in points of utilisation) a region's load
// must move from the level the last view used before the answers move:
// a load that wobbles around a value does not move clients back and forth.
const loadHysteresis = 10

// readLoads fills in each region's load level (percent) from h, keeping
// prev's level while the new one is within loadHysteresis of it, and
// gives every pool whose region's level changed a new generation.
func (v *View) readLoads(h Health, prev *View) {
	lh, ok := h.(Load)
	v.loads = make([]uint8, len(v.set.regions))
	for i, r := range v.set.regions {
		level := uint8(loadUnknown)
		if ok {
			if u, known := lh.Utilisation(r.Name); known {
				level = uint8(math.Round(min(max(u, 0), 1) * 100))
			}
		}
		if prev != nil && level != loadUnknown && prev.loads[i] != loadUnknown &&
			math.Abs(float64(level)-float64(prev.loads[i])) < loadHysteresis {
			level = prev.loads[i]
		}
		v.loads[i] = level
	}
	if prev == nil {
		return
	}
	for pi, p := range v.set.pools {
		if v.loads[p.region] != prev.loads[p.region] {
			v.gen[pi] = v.seq
		}
	}
}

// LoadLevel returns the utilisation (percent) of region that v answers
// with, and whether a report is known.
func (v *View) LoadLevel(region string) (percent int, known bool) {
	i, ok := v.set.regionIdx[region]
	if !ok || v.loads == nil || v.loads[i] == loadUnknown {
		return 0, false
	}
	return int(v.loads[i]), true
}

// spare is the spare capacity (percent) of pool pi's region in v.
func (v *View) spare(pi int) int {
	if v.loads == nil {
		return 100
	}
	l := v.loads[v.set.pools[pi].region]
	if l == loadUnknown {
		return 100
	}
	return 100 - int(l)
}

// loadPolicy answers each client network with one of the record's
// healthy pools, chosen by weighted rendezvous hashing of the network with
// weight = the pool's weight x its region's spare capacity: the least
// loaded region gets the most clients, every client network keeps its
// region while the loads stay within the hysteresis, and when a region
// fills up only a share of its networks moves. When every healthy pool's
// region is full it falls back to the pools' weights alone.
type loadPolicy struct {
	weightedPolicy
}

func newLoad(r *Record, opts map[string]string, cx *compileCtx) (Policy, error) {
	if _, ok := opts["sticky"]; ok {
		return nil, fmt.Errorf("sticky: the load policy always keeps each client network on its pool")
	}
	opts["sticky"] = "prefix"
	w, err := newWeighted(r, opts, cx)
	if err != nil {
		return nil, err
	}
	return &loadPolicy{*w.(*weightedPolicy)}, nil
}

func (p *loadPolicy) DependsOnClient(*Record, *View) bool { return true }
func (p *loadPolicy) Random() bool                        { return false }

func (p *loadPolicy) Choose(r *Record, v *View, mode int, c *Client, open bool) (int, uint8) {
	bits := p.bits6
	if c.Addr.Is4() {
		bits = p.bits4
	}
	bits = min(bits, int(c.Bits))
	pfx, _ := c.Addr.Prefix(bits)
	var buf [stackPools]int
	w := buf[:]
	if len(r.pools) > len(buf) {
		w = make([]int, len(r.pools))
	}
	w = w[:len(r.pools)]
	if loadWeights(r, v, mode, open, w) == 0 {
		return -1, 0
	}
	return balance.Rendezvous(prefixHash(pfx), p.ids, w), uint8(bits)
}

// loadWeights writes into w (len(r.pools)) each pool's weight in mode
// times its region's spare capacity, or its weight alone when every up
// pool's region is full, and returns the total (0: no pool up).
func loadWeights(r *Record, v *View, mode int, open bool, w []int) int {
	if weights(r, v, mode, open, w) == 0 {
		return 0
	}
	total := 0
	for i, pi := range r.pools {
		if w[i] > 0 {
			w[i] *= v.spare(pi)
		}
		total += w[i]
	}
	if total == 0 { // every region full: by weight alone
		total = weights(r, v, mode, open, w)
	}
	return total
}

// spillOption reads spill=NN% (geo and latency records): 0 when absent.
func spillOption(opts map[string]string) (int, error) {
	v, ok := opts["spill"]
	if !ok {
		return 0, nil
	}
	delete(opts, "spill")
	n, err := strconv.Atoi(strings.TrimSuffix(v, "%"))
	if err != nil || !strings.HasSuffix(v, "%") || n < 1 || n > 99 {
		return 0, fmt.Errorf("spill=%q: want a utilisation from 1%% to 99%%, e.g. spill=80%%", v)
	}
	return n, nil
}

// spilling reports whether, in v, some region of r's pools is loaded past
// spill percent (so some of its clients go to the next region).
func spilling(spill int, r *Record, v *View) bool {
	if spill == 0 || v.loads == nil {
		return false
	}
	for _, pi := range r.pools {
		if l := v.loads[v.set.pools[pi].region]; l != loadUnknown && int(l) > spill {
			return true
		}
	}
	return false
}

// spillChoice is the spill=NN% step of geo and latency: when the chosen
// pool's region is loaded past spill, the share (load - spill) / (100 -
// spill) of client networks (by a hash of the /24 or /48, the same on
// every nameserver) gets the next up pool in the client's order instead
// (next returns it, or -1). It returns the pool and the scope, at least
// the hashed network's.
func spillChoice(spill, pi int, r *Record, v *View, mode int, c *Client, bits uint8, next func(after int) int) (int, uint8) {
	l := v.loads[v.set.pools[r.pools[pi]].region]
	if l == loadUnknown || int(l) <= spill {
		return pi, bits
	}
	pfx, nbits := clientNetwork(c)
	bits = max(bits, nbits)
	share := uint64((int(l) - spill) * 1000 / (100 - spill)) // per mille of networks
	if prefixHash(pfx)%1000 >= share {
		return pi, bits
	}
	if n := next(pi); n >= 0 {
		return n, bits
	}
	return pi, bits
}

// nextIn returns r's first up pool (an index into r.pools) in the regions
// of ord after pool after's region, or -1.
func nextIn(ord ordering, r *Record, v *View, mode int, after int) int {
	seen := false
	for _, reg := range ord.regions {
		if reg == r.set.pools[r.pools[after]].region {
			seen = true
			continue
		}
		if !seen {
			continue
		}
		for i, pi := range r.pools {
			if r.set.pools[pi].region == reg && v.upIn(pi, mode) {
				return i
			}
		}
	}
	return -1
}

// spillFigures says, for a geo or latency record with spill=NN%, which
// regions are loaded past it and what share of their client networks goes
// to the next region ("" when none is).
func (r *Record) spillFigures(v *View) string {
	spill := 0
	switch p := r.Policy.(type) {
	case *geoPolicy:
		spill = p.spill
	case *latencyPolicy:
		spill = p.geo.spill
	}
	if !spilling(spill, r, v) {
		return ""
	}
	var parts []string
	seen := map[int]bool{}
	for _, pi := range r.pools {
		reg := v.set.pools[pi].region
		if l := v.loads[reg]; !seen[reg] && l != loadUnknown && int(l) > spill {
			seen[reg] = true
			parts = append(parts, fmt.Sprintf("%s at %d%% sends %.1f%% of its client networks (by a hash of the /24 or /48) to the next region",
				v.set.regions[reg].Name, l, 100*float64(int(l)-spill)/float64(100-spill)))
		}
	}
	return fmt.Sprintf("spill=%d%%: ", spill) + strings.Join(parts, ", ")
}
