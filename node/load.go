package node

import (
	"context"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gslbd/gslb/api"
	"github.com/gslbd/gslb/proxy"
	"github.com/gslbd/gslb/store"
)

// Load reports: the node samples its region proxy's groups every
// loadEvery and proposes a store.LoadReport when the figures changed
// enough (a group's available backends, or the region's utilisation by
// loadChange) and at least every loadSummaryEvery otherwise, so the Raft
// log carries a few entries a minute per node at rest and at most one a
// second under changing load, never one per request.
const (
	loadEvery        = time.Second
	loadSummaryEvery = 10 * time.Second
	loadChange       = 0.05
)

// startLoadReports starts the load reports of a node with a proxy in a
// cluster, and exports every node's committed load as metrics.
func (n *Node) startLoadReports(ctx context.Context) {
	if n.store == nil {
		return
	}
	n.reg.MustRegister(loadCollector{n})
	if n.proxy == nil {
		return
	}
	n.goRun(func() {
		m := proxy.NewLoadMeter(n.proxy)
		t := time.NewTicker(loadEvery)
		defer t.Stop()
		var last *store.LoadReport
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			gs, u := m.Sample()
			r := loadReport(n.name, n.cfg.Region, time.Now().UTC(), gs, u)
			if !loadChanged(last, r) {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := n.store.Submit(sctx, r)
			cancel()
			if err != nil {
				n.log.Debug("load report not committed", "err", err)
				continue
			}
			last = r
		}
	})
}

// loadReport translates the proxy's sample into the store's command.
func loadReport(node, region string, at time.Time, gs []proxy.GroupLoad, u float64) *store.LoadReport {
	r := &store.LoadReport{Node: node, Region: region, At: at, Utilisation: u, Groups: make([]store.GroupLoad, 0, len(gs))}
	for _, g := range gs {
		r.Groups = append(r.Groups, store.GroupLoad{Group: g.Group, Backends: g.Backends, Available: g.Available, Weight: g.Weight,
			InFlight: g.InFlight, MaxConns: g.MaxConns, Headroom: g.Headroom, Rate: math.Round(g.Rate*10) / 10,
			Latency: g.Latency.Round(time.Microsecond), Utilisation: g.Utilisation})
	}
	return r
}

// loadChanged reports whether r is worth proposing after last.
func loadChanged(last, r *store.LoadReport) bool {
	if last == nil || r.At.Sub(last.At) >= loadSummaryEvery || math.Abs(r.Utilisation-last.Utilisation) >= loadChange ||
		len(r.Groups) != len(last.Groups) {
		return true
	}
	for i, g := range r.Groups {
		if o := last.Groups[i]; g.Group != o.Group || g.Available != o.Available || g.Weight != o.Weight {
			return true
		}
	}
	return false
}

// regionLoads sums the committed load reports by region for the status.
func regionLoads(rs []store.LoadReport) map[string]*api.RegionLoad {
	out := map[string]*api.RegionLoad{}
	for _, r := range rs {
		l := out[r.Region]
		if l == nil {
			l = &api.RegionLoad{At: r.At}
			out[r.Region] = l
		}
		l.Utilisation = max(l.Utilisation, r.Utilisation)
		if r.At.After(l.At) {
			l.At = r.At
		}
		for _, g := range r.Groups {
			l.Backends += g.Backends
			l.Available += g.Available
			l.InFlight += g.InFlight
			l.Rate += g.Rate
			l.Latency = max(l.Latency, g.Latency)
		}
	}
	return out
}

// addLoads puts the committed load of each region on its status.
func (n *Node) addLoads(st *api.Status) {
	if n.store == nil {
		return
	}
	loads := regionLoads(n.store.State().Loads())
	for i := range st.Regions {
		st.Regions[i].Load = loads[st.Regions[i].Name]
	}
}

// loadCollector exports every node's committed load report.
type loadCollector struct{ n *Node }

var (
	loadUtilDesc   = prometheus.NewDesc("gslb_load_utilisation", "A region proxy's utilisation from its node's last committed load report (0 idle, 1 full or no server available): requests in flight over the available backends' max_conns.", []string{"region", "node"}, nil)
	loadFlightDesc = prometheus.NewDesc("gslb_load_in_flight", "Requests (and TCP connections) in flight in a region proxy, from its node's last committed load report.", []string{"region", "node"}, nil)
	loadRateDesc   = prometheus.NewDesc("gslb_load_requests_per_second", "A region proxy's request rate, from its node's last committed load report.", []string{"region", "node"}, nil)
	loadAvailDesc  = prometheus.NewDesc("gslb_load_available_backends", "A region proxy's available backends, from its node's last committed load report.", []string{"region", "node"}, nil)
	loadAgeDesc    = prometheus.NewDesc("gslb_load_report_timestamp_seconds", "When a node's last committed load report was made (Unix time).", []string{"region", "node"}, nil)
)

func (loadCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{loadUtilDesc, loadFlightDesc, loadRateDesc, loadAvailDesc, loadAgeDesc} {
		ch <- d
	}
}

func (c loadCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.n.store.State().Loads() {
		var flight int64
		var rate float64
		avail := 0
		for _, g := range r.Groups {
			flight += g.InFlight
			rate += g.Rate
			avail += g.Available
		}
		ch <- prometheus.MustNewConstMetric(loadUtilDesc, prometheus.GaugeValue, r.Utilisation, r.Region, r.Node)
		ch <- prometheus.MustNewConstMetric(loadFlightDesc, prometheus.GaugeValue, float64(flight), r.Region, r.Node)
		ch <- prometheus.MustNewConstMetric(loadRateDesc, prometheus.GaugeValue, rate, r.Region, r.Node)
		ch <- prometheus.MustNewConstMetric(loadAvailDesc, prometheus.GaugeValue, float64(avail), r.Region, r.Node)
		ch <- prometheus.MustNewConstMetric(loadAgeDesc, prometheus.GaugeValue, float64(r.At.UnixNano())/1e9, r.Region, r.Node)
	}
}

// loadStale is the age after which a region's load report no longer
// steers answers (its node stopped reporting: it died or lost the
// cluster); the region then counts as of unknown load.
const loadStale = 3 * loadSummaryEvery

// Utilisation is the gslb.Load of a node: a region's utilisation from the
// committed load reports of its nodes (the largest, of the fresh ones).
func (h nodeHealth) Utilisation(region string) (float64, bool) {
	if h.n.store == nil {
		return 0, false
	}
	u, known := 0.0, false
	now := time.Now()
	for _, r := range h.n.store.State().Loads() {
		if r.Region == region && now.Sub(r.At) < loadStale {
			u, known = max(u, r.Utilisation), true
		}
	}
	return u, known
}
