package proxy

import (
	"math"
	"time"
)

// GroupLoad is one backend group's capacity and load at one moment.
type GroupLoad struct {
	Group     string
	Backends  int   // configured, primaries and backups
	Available int   // may take new requests (healthy, not ejected, not draining)
	Weight    int   // sum of the available backends' weights
	InFlight  int64 // requests (HTTP) or connections (TCP) in flight, all backends
	// MaxConns is the group's per-backend limit (0: none). Headroom is
	// what the available backends can still take under it (-1: no limit).
	MaxConns int
	Headroom int64
	// Rate is requests (and TCP connections) per second since the
	// previous sample (0 on the first).
	Rate float64
	// Latency is the available backends' response latency EWMA, their
	// mean weighted by weight (0 before any response).
	Latency time.Duration
	// Utilisation is in flight on the available backends over their
	// capacity (available x max_conns), capped at 1; 0 without max_conns;
	// 1 when no backend is available.
	Utilisation float64
}

// LoadMeter samples a proxy's groups for load reports. Sample computes
// each group's request rate since the previous Sample, so a meter belongs
// to one caller (it is not safe for concurrent use).
type LoadMeter struct {
	p    *Proxy
	prev map[string]uint64 // by group: requests and connections counted so far
	at   time.Time
	now  func() time.Time
}

// NewLoadMeter returns a meter of p's groups.
func NewLoadMeter(p *Proxy) *LoadMeter {
	return &LoadMeter{p: p, prev: map[string]uint64{}, now: time.Now}
}

// Sample returns every group's capacity and load, in config order, and the
// region's utilisation: the largest of the groups'.
func (m *LoadMeter) Sample() ([]GroupLoad, float64) {
	st := m.p.state.Load()
	now := m.now()
	elapsed := now.Sub(m.at).Seconds()
	first := m.at.IsZero()
	m.at = now
	nanos := now.UnixNano()
	var out []GroupLoad
	region := 0.0
	for _, gc := range st.cfg.Groups {
		g := st.groups[gc.Name]
		if g == nil {
			continue
		}
		gl := GroupLoad{Group: g.name, Backends: len(g.backends), MaxConns: g.cfg.MaxConns, Headroom: -1}
		var total uint64
		var availActive int64
		var latSum, latWeight float64
		for bi, b := range g.backends {
			for i := range b.requests {
				total += b.requests[i].Load()
			}
			total += b.tcpConns.Load()
			active := b.active.Load()
			gl.InFlight += active
			if !b.available(nanos) {
				continue
			}
			gl.Available++
			gl.Weight += g.weights[bi]
			availActive += active
			if e := math.Float64frombits(b.ewmaNanos.Load()); e > 0 {
				latSum += e * float64(g.weights[bi])
				latWeight += float64(g.weights[bi])
			}
		}
		if latWeight > 0 {
			gl.Latency = time.Duration(latSum / latWeight)
		}
		if !first && elapsed > 0 && total >= m.prev[g.name] {
			gl.Rate = float64(total-m.prev[g.name]) / elapsed
		}
		m.prev[g.name] = total
		switch {
		case gl.Available == 0:
			gl.Utilisation = 1
			if gl.MaxConns > 0 {
				gl.Headroom = 0
			}
		case gl.MaxConns > 0:
			capacity := int64(gl.Available * gl.MaxConns)
			gl.Headroom = max(0, capacity-availActive)
			gl.Utilisation = min(1, float64(availActive)/float64(capacity))
		}
		region = max(region, gl.Utilisation)
		out = append(out, gl)
	}
	return out, region
}
