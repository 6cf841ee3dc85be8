package gslb

import (
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// LatencyTable holds the measured RTT from each region to client networks,
// and the networks the DNS path has been asked about but that are not
// measured yet. The node feeds it from the probers; a View built with it
// answers latency records from a copy of its region orders, made when the
// View is built. Safe for concurrent use;
// Observe never blocks and takes no lock.
type LatencyTable struct {
	// Margin is the hysteresis: a network's best region changes only when
	// another region is better by this fraction (default 0.2) and by at
	// least MinGain (default 5ms), so near-equal RTTs do not make answers
	// flap (ST-06).
	Margin  float64
	MinGain time.Duration
	// MaxAge drops measurements older than this (default 10 minutes).
	MaxAge time.Duration

	mu   sync.Mutex
	nets map[netip.Prefix]*latNet
	gen  uint64 // bumped by every Set: Views reread the table when it moved

	ring [ringSize]observed
	next atomic.Uint64
}

type latNet struct {
	rtt  map[string]time.Duration
	best string
	at   time.Time
}

const ringSize = 1024

// observed is one slot of the lock-free ring of networks asked about. A
// reader may see a torn slot; Wanted validates what it reads.
type observed struct {
	hi, lo atomic.Uint64
	bits   atomic.Uint32 // bits+1, 0 for empty
}

// Observe records that a client network was asked about and has no
// measurement (called from the DNS path: lock-free, allocation-free). p's
// address is the client seen (the address to probe), p.Masked() its network.
func (t *LatencyTable) Observe(p netip.Prefix) {
	a := p.Addr().As16()
	s := &t.ring[t.next.Add(1)%ringSize]
	s.bits.Store(0)
	s.hi.Store(be64(a[:8]))
	s.lo.Store(be64(a[8:]))
	b := uint32(p.Bits())
	if p.Addr().Is4() {
		b |= 1 << 8
	}
	s.bits.Store(b + 1)
}

func be64(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}

// Wanted returns the distinct networks observed since the last call that
// have no measurement, for the probers to measure: each prefix's address is
// a client seen in it, Masked() the network.
func (t *LatencyTable) Wanted() []netip.Prefix {
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.ring {
		s := &t.ring[i]
		b := s.bits.Swap(0)
		if b == 0 {
			continue
		}
		var a [16]byte
		hi, lo := s.hi.Load(), s.lo.Load()
		for k := 0; k < 8; k++ {
			a[k] = byte(hi >> (56 - 8*k))
			a[8+k] = byte(lo >> (56 - 8*k))
		}
		addr := netip.AddrFrom16(a)
		bits := int(b-1) & 0xff
		if (b-1)&(1<<8) != 0 {
			addr = addr.Unmap()
		}
		p := netip.PrefixFrom(addr, bits)
		network := p.Masked()
		if !p.IsValid() || seen[network] {
			continue
		}
		if _, measured := t.nets[network]; measured {
			continue
		}
		seen[network] = true
		out = append(out, p)
	}
	return out
}

// Set records the RTTs from each region (by name) to a client network,
// measured at time at. It reports whether the network's best region changed.
func (t *LatencyTable) Set(network netip.Prefix, rtts map[string]time.Duration, at time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nets == nil {
		t.nets = map[netip.Prefix]*latNet{}
	}
	n := t.nets[network]
	if n == nil {
		n = &latNet{}
		t.nets[network] = n
	}
	t.gen++
	n.rtt = make(map[string]time.Duration, len(rtts))
	for k, v := range rtts {
		n.rtt[k] = v
	}
	n.at = at
	best := ""
	for r, d := range n.rtt {
		if best == "" || d < n.rtt[best] || d == n.rtt[best] && r < best {
			best = r
		}
	}
	old, ok := n.rtt[n.best]
	if n.best != "" && ok && best != n.best {
		margin := t.Margin
		if margin == 0 {
			margin = 0.2
		}
		gain := t.MinGain
		if gain == 0 {
			gain = 5 * time.Millisecond
		}
		if nd := n.rtt[best]; float64(nd) > float64(old)*(1-margin) || old-nd < gain {
			return false // not better by the margin: keep the current best
		}
	}
	changed := best != n.best
	n.best = best
	return changed
}

// generation counts the changes Set made to the table.
func (t *LatencyTable) generation() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.gen
}

// orders returns, per measured client network, the regions (indices by
// regionIdx) by RTT, the best (with hysteresis) first; the table's
// generation they were read at; and when the first of them expires.
func (t *LatencyTable) orders(regionIdx map[string]int, now time.Time) (map[netip.Prefix]ordering, uint64, time.Time) {
	out := map[netip.Prefix]ordering{}
	until := now.Add(100 * 365 * 24 * time.Hour)
	if t == nil {
		return out, 0, until
	}
	maxAge := t.MaxAge
	if maxAge == 0 {
		maxAge = 10 * time.Minute
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for p, n := range t.nets {
		if !n.at.IsZero() && now.Sub(n.at) > maxAge {
			continue
		}
		var regs []string
		for r := range n.rtt {
			if _, ok := regionIdx[r]; ok {
				regs = append(regs, r)
			}
		}
		sort.Slice(regs, func(i, j int) bool {
			a, b := regs[i], regs[j]
			if (a == n.best) != (b == n.best) {
				return a == n.best
			}
			if n.rtt[a] != n.rtt[b] {
				return n.rtt[a] < n.rtt[b]
			}
			return a < b
		})
		var o ordering
		for _, r := range regs {
			o.regions = append(o.regions, regionIdx[r])
		}
		if len(o.regions) > 0 {
			out[p] = o
			if !n.at.IsZero() && n.at.Add(maxAge).Before(until) {
				until = n.at.Add(maxAge)
			}
		}
	}
	return out, t.gen, until
}
