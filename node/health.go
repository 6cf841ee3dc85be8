package node

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gslbd/gslb/probes"
	"github.com/gslbd/gslb/store"
	"github.com/gslbd/gslb/zones"
)

// healthChanged publishes what changed in verdicts, overrides or RTTs to
// the query path: a new health view, swapped atomically, only when a query
// could see the difference; the compiled zones and the reply cache entries
// that did not depend on the change stay.
func (n *Node) healthChanged() {
	n.dns.Refresh(nodeHealth{n}, n.loader.Env.Latency)
}

func (n *Node) followHealth(ctx context.Context) {
	ch := n.health.agg.Subscribe()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			n.healthChanged()
		}
	}
}

// measureClients hands the client networks that latency records were
// asked from to the prober, and feeds every prober's RTTs to them into the
// latency table, refreshing the health view when a network's best region
// changes.
func (n *Node) measureClients(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lt := n.loader.Env.Latency
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range lt.Wanted() {
			n.health.prober.MeasureNetwork(p.Masked(), p.Addr())
		}
		by := map[netip.Prefix]map[string]time.Duration{}
		at := map[netip.Prefix]time.Time{}
		for _, r := range n.health.agg.RTTs() {
			if r.Kind != probes.KindNetwork || r.Region == "" || r.EWMA <= 0 {
				continue
			}
			p, err := netip.ParsePrefix(r.Name)
			if err != nil {
				continue
			}
			if by[p] == nil {
				by[p] = map[string]time.Duration{}
			}
			by[p][r.Region] = r.EWMA
			if r.Time.After(at[p]) {
				at[p] = r.Time
			}
		}
		changed := false
		for p, rtts := range by {
			if lt.Set(p, rtts, at[p]) {
				changed = true
			}
		}
		if changed {
			n.healthChanged()
		}
	}
}

// overrideSet is the operator overrides in force, by kind and name.
type overrideSet struct {
	m map[[2]string]store.Override
}

func newOverrideSet(list []store.Override, now time.Time) *overrideSet {
	s := &overrideSet{m: map[[2]string]store.Override{}}
	for _, o := range list {
		if o.Active(now) && o.Action != store.ActionUndrain {
			s.m[[2]string{o.Kind, o.Name}] = o
		}
	}
	return s
}

func (s *overrideSet) get(kind, name string) (store.Override, bool) {
	o, ok := s.m[[2]string{kind, name}]
	return o, ok
}

// nodeHealth is the gslb.Health of a node: operator overrides first, then
// the cluster verdicts; unchecked and not yet known members are up (cold
// start fails open: ST-09).
type nodeHealth struct{ n *Node }

func (h nodeHealth) Up(p *zones.Pool, a netip.Addr) (bool, bool) {
	ov := h.n.overrides.Load()
	for _, k := range [][2]string{{store.KindMember, a.String()}, {store.KindMember, p.Name + "/" + a.String()}, {store.KindPool, p.Name}, {store.KindRegion, p.Region}} {
		if o, ok := ov.get(k[0], k[1]); ok {
			switch o.Action {
			case store.ActionForceUp:
				return true, true
			case store.ActionDrain, store.ActionForceDown:
				return false, true
			}
		}
	}
	if p.Check.Scheme == "" || h.n.health == nil {
		return true, false
	}
	up, known := h.n.health.agg.Verdict(probes.Target{Check: p.Check, Addr: a}.Key())
	if !known {
		return true, false
	}
	return up, true
}

// health is the node's prober and the aggregator of every prober's view.
type health struct {
	prober *probes.Prober
	agg    *probes.Aggregator
	sink   *fanout
	fo     failover // failover hints (failover.go)
}

// fanout delivers the local prober's reports to the aggregator and, in a
// cluster, to the replicated store.
type fanout struct {
	agg     *probes.Aggregator
	cluster atomic.Pointer[reportForwarder]
}

func (f *fanout) Report(r probes.Report) {
	f.agg.Report(r)
	if c := f.cluster.Load(); c != nil {
		c.Report(r)
	}
}

func newHealth(node, region string, maxConc int, reg prometheus.Registerer, log *slog.Logger) *health {
	m := probes.NewMetrics(reg)
	agg := probes.NewAggregator(probes.AggregatorConfig{Logger: log, Metrics: m})
	f := &fanout{agg: agg}
	p := probes.NewProber(probes.ProberConfig{Name: node, Region: region, MaxConcurrent: maxConc, Sink: f, Logger: log, Metrics: m})
	return &health{prober: p, agg: agg, sink: f}
}
