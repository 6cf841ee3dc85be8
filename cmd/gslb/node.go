package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/probes"
	"github.com/gslbd/gslb/zones"
)

// verdictHealth is the gslb.Health of a node: the aggregator's cluster
// verdicts, with unchecked and not yet known members up (cold start is
// fail-open: ST-09).
type verdictHealth struct{ agg *probes.Aggregator }

func (h verdictHealth) Up(p *zones.Pool, a netip.Addr) (bool, bool) {
	if p.Check.Scheme == "" {
		return true, false
	}
	up, known := h.agg.Verdict(probes.Target{Check: p.Check, Addr: a}.Key())
	if !known {
		return true, false
	}
	return up, true
}

// health runs the node's prober and keeps the DNS snapshot in step with
// its verdicts.
type health struct {
	prober *probes.Prober
	agg    *probes.Aggregator
}

func newHealth(node, region string, reg prometheus.Registerer, log *slog.Logger) *health {
	m := probes.NewMetrics(reg)
	agg := probes.NewAggregator(probes.AggregatorConfig{Logger: log, Metrics: m})
	p := probes.NewProber(probes.ProberConfig{Name: node, Region: region, Sink: agg, Logger: log, Metrics: m})
	return &health{prober: p, agg: agg}
}

// follow rebuilds the snapshot whenever a verdict changes, until ctx ends.
func (h *health) follow(ctx context.Context, loader *dnsserver.Loader, srv *dnsserver.Server, log *slog.Logger) {
	ch := h.agg.Subscribe()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			snap, err := loader.Rebuild(nil)
			if err != nil {
				log.Error("rebuilding after a health change", "err", err)
				continue
			}
			srv.Swap(snap)
		}
	}
}

// admin serves /metrics and the read-only status API.
type admin struct {
	srv  *http.Server
	addr net.Addr
}

func startAdmin(addr string, reg *prometheus.Registry, status func() any, events func() any, log *slog.Logger) (*admin, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, status()) })
	mux.HandleFunc("GET /api/v1/events", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, events()) })
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--admin %s: %w", addr, err)
	}
	a := &admin{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, addr: ln.Addr()}
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener", "err", err)
		}
	}()
	return a, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func newRegistry(srv *dnsserver.Server) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), srv)
	return reg
}

// nodeStatus is /api/v1/status for a single node.
type nodeStatus struct {
	Node    string            `json:"node"`
	Region  string            `json:"region"`
	Zones   map[string]uint32 `json:"zones"`
	Members []memberStatus    `json:"members"`
}

type memberStatus struct {
	Pool    string              `json:"pool"`
	Member  string              `json:"member"`
	Check   string              `json:"check"`
	Up      bool                `json:"up"`
	Known   bool                `json:"known"`
	Since   time.Time           `json:"since,omitzero"`
	Probers []probes.ProberView `json:"probers,omitempty"`
}

func statusOf(node, region string, srv *dnsserver.Server, loader *dnsserver.Loader, h *health) nodeStatus {
	st := nodeStatus{Node: node, Region: region, Zones: srv.Snapshot().Zones()}
	views := map[string]probes.KeyView{}
	if h != nil {
		for _, kv := range h.agg.Snapshot() {
			views[kv.Key] = kv
		}
	}
	for _, z := range loader.Zones() {
		for _, p := range z.Pools {
			for _, m := range p.Members {
				ms := memberStatus{Pool: p.Name, Member: m.Addr.String(), Up: true}
				if p.Check.Scheme != "" {
					key := probes.Target{Check: p.Check, Addr: m.Addr}.Key()
					ms.Check = probes.Target{Check: p.Check, Addr: m.Addr}.String()
					if kv, ok := views[key]; ok {
						ms.Up, ms.Known, ms.Since, ms.Probers = kv.Up || !kv.Known, kv.Known, kv.Since, kv.Probers
					}
				}
				st.Members = append(st.Members, ms)
			}
		}
	}
	sort.SliceStable(st.Members, func(i, j int) bool { return st.Members[i].Pool < st.Members[j].Pool })
	return st
}
