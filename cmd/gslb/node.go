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
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/geodata"
	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/probes"
	"github.com/gslbd/gslb/proxy"
	"github.com/gslbd/gslb/store"
	"github.com/gslbd/gslb/zones"
)

// node is one running region node: DNS, zones, prober, cluster store,
// region proxy and admin listener, wired together.
type node struct {
	cfg    *nodeConfig
	name   string
	log    *slog.Logger
	dns    *dnsserver.Server
	loader *dnsserver.Loader
	geo    *geodata.DB
	reg    *prometheus.Registry
	health *health      // nil with probes disabled
	store  *store.Store // nil without a cluster
	proxy  *proxy.Proxy // nil without a proxy section
	admin  *admin

	overrides atomic.Pointer[overrideSet]
	localOv   sync.Mutex // single-node overrides (no store)
	localList []store.Override

	remoteMu   sync.Mutex
	remoteSeen map[string]time.Time // per remote prober: the newest report applied

	rebuildMu sync.Mutex
	wg        sync.WaitGroup
	cancel    context.CancelFunc
}

// startNode starts every part of the node; it returns once all listen.
func startNode(parent context.Context, cfg *nodeConfig, log *slog.Logger) (_ *node, err error) {
	ctx, cancel := context.WithCancel(parent)
	n := &node{cfg: cfg, log: log, cancel: cancel}
	defer func() {
		if err != nil {
			n.stop(context.Background())
		}
	}()
	n.overrides.Store(&overrideSet{})
	if n.geo, err = openGeo(cfg.GeoIP); err != nil {
		return nil, err
	}
	log.Info("geo database", "database", n.geo.Describe())
	nsid := cfg.NSID
	if nsid == "" {
		nsid = cfg.Node
	}
	if n.dns, err = dnsserver.New(dnsserver.Config{Addrs: cfg.DNS, NSID: nsid, Logger: log}); err != nil {
		return nil, err
	}
	n.name = cfg.Node
	if n.name == "" {
		n.name = n.dns.NSID()
	}
	n.reg = newRegistry(n.dns)
	zonesDir := cfg.Zones
	if cfg.Cluster != nil {
		// Every node serves the committed zones, written here from the
		// cluster state; the operator's zones directory (on any node)
		// only feeds the cluster.
		zonesDir = filepath.Join(cfg.Data, "zones")
		if err := os.MkdirAll(zonesDir, 0o755); err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
	}
	n.loader = &dnsserver.Loader{Dir: zonesDir, Log: log.With("component", "zones"),
		Env: gslb.Env{Geo: n.geo, Latency: &gslb.LatencyTable{}}}
	if cfg.probesEnabled() {
		n.health = newHealth(n.name, cfg.Region, cfg.Probes.MaxConcurrent, n.reg, log.With("component", "probes"))
	}
	n.loader.Env.Health = nodeHealth{n}
	if cfg.Cluster != nil {
		if err := n.startCluster(ctx); err != nil {
			return nil, err
		}
	}
	n.reload("start")
	if err := n.dns.Start(); err != nil {
		return nil, err
	}
	if n.health != nil {
		n.goRun(func() { n.health.prober.Run(ctx) })
		n.goRun(func() { n.followHealth(ctx) })
		if cfg.Probes.MeasureClients {
			n.goRun(func() { n.measureClients(ctx) })
		}
	}
	if cfg.Proxy != nil {
		if n.proxy, err = proxy.New(*cfg.Proxy, log.With("component", "proxy")); err != nil {
			return nil, err
		}
		if err := n.proxy.Start(ctx); err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
		n.reg.MustRegister(n.proxy)
	}
	if cfg.Admin != "" {
		if n.admin, err = startAdmin(cfg.Admin, n.adminMux(), log); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func (n *node) goRun(f func()) {
	n.wg.Add(1)
	go func() { defer n.wg.Done(); f() }()
}

// readyLine says where the node listens: "ready dns=... [admin=...] [proxy ...]".
func (n *node) readyLine() string {
	var addrs []string
	for _, a := range n.dns.UDPAddrs() {
		addrs = append(addrs, a.String())
	}
	parts := []string{"ready", "node=" + n.name, "dns=" + strings.Join(addrs, ",")}
	if n.admin != nil {
		parts = append(parts, "admin="+n.admin.addr.String())
	}
	if n.store != nil {
		parts = append(parts, "raft="+n.store.Addr())
	}
	if n.proxy != nil {
		keys := make([]string, 0)
		addrs := n.proxy.Addrs()
		for k := range addrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			parts = append(parts, "proxy."+k+"="+addrs[k])
		}
	}
	return strings.Join(parts, " ")
}

// wait serves until ctx ends: SIGHUP reloads zones (and the proxy config),
// and the zones directory is watched.
func (n *node) wait(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time
	if n.cfg.ZonesPoll > 0 {
		t := time.NewTicker(n.cfg.ZonesPoll)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			n.zonesChanged("SIGHUP", true)
			n.reloadProxy()
		case <-tick:
			n.zonesChanged("file changed", false)
		}
	}
}

// reloadProxy applies the proxy section of the config file again (SIGHUP);
// a bad section is logged with the field and the running proxy stays.
func (n *node) reloadProxy() {
	if n.proxy == nil {
		return
	}
	pc, err := n.cfg.loadProxyConfig()
	if err == nil && pc != nil {
		err = n.proxy.Reload(*pc)
	}
	if err != nil {
		n.log.Error("proxy config not reloaded; the running one stays", "err", err)
		return
	}
	n.log.Info("proxy config reloaded")
}

// zonesChanged reloads (single node) or submits (cluster) changed zones.
func (n *node) zonesChanged(why string, force bool) {
	if n.store != nil {
		if n.cfg.Zones != "" {
			n.submitZones(force)
		}
		return
	}
	if force || n.loader.Changed() {
		n.reload(why)
	}
}

// reload reads the zones directory and swaps the snapshot.
func (n *node) reload(why string) {
	n.rebuildMu.Lock()
	defer n.rebuildMu.Unlock()
	snap, errs := n.loader.Load()
	snap.Index = n.stateIndex()
	n.dns.Swap(snap)
	for o, serial := range snap.Zones() {
		n.log.Info("serving zone", "zone", o, "serial", serial, "reason", why)
	}
	if len(errs) > 0 {
		n.log.Warn("zone load finished with errors", "errors", len(errs))
	}
	if n.health != nil {
		// Checks start when a zone loads, not on the first query.
		n.health.prober.SetTargets(probes.TargetsFromZones(n.loader.Zones()...))
	}
}

// rebuild recompiles the snapshot for new health, overrides or RTTs.
func (n *node) rebuild() {
	n.rebuildMu.Lock()
	defer n.rebuildMu.Unlock()
	snap, err := n.loader.Rebuild(nil)
	if err != nil {
		n.log.Error("rebuilding the snapshot", "err", err)
		return
	}
	snap.Index = n.stateIndex()
	n.dns.Swap(snap)
}

func (n *node) stateIndex() uint64 {
	if n.store == nil {
		return 0
	}
	return n.store.State().Index()
}

func (n *node) followHealth(ctx context.Context) {
	ch := n.health.agg.Subscribe()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			n.rebuild()
		}
	}
}

// measureClients hands the client networks that latency records were
// asked from to the prober, and feeds every prober's RTTs to them into the
// latency table, rebuilding the snapshot when a network's best region
// changes.
func (n *node) measureClients(ctx context.Context) {
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
			n.rebuild()
		}
	}
}

// stop shuts every part down.
func (n *node) stop(ctx context.Context) error {
	n.cancel()
	var errs []error
	if n.admin != nil {
		n.admin.srv.Close()
	}
	if n.proxy != nil {
		errs = append(errs, n.proxy.Shutdown(ctx))
	}
	if n.dns != nil {
		errs = append(errs, n.dns.Shutdown(ctx))
	}
	n.wg.Wait()
	if n.health != nil {
		n.health.agg.Close()
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	if n.geo != nil {
		n.geo.Close()
	}
	return errors.Join(errs...)
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
type nodeHealth struct{ n *node }

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

// admin is the admin HTTP listener.
type admin struct {
	srv  *http.Server
	addr net.Addr
}

func startAdmin(addr string, h http.Handler, log *slog.Logger) (*admin, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin %s: %w", addr, err)
	}
	a := &admin{srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}, addr: ln.Addr()}
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

func httpError(w http.ResponseWriter, code int, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": fmt.Sprintf(format, args...)})
}

func newRegistry(srv *dnsserver.Server) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), srv)
	return reg
}

// adminMux is every admin endpoint.
func (n *node) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg}))
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, n.status()) })
	mux.HandleFunc("GET /api/v1/events", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, n.events()) })
	mux.Handle("GET /api/v1/explain", explainHandler(n.dns.Snapshot, n.geo, n.votes))
	mux.HandleFunc("POST /api/v1/drain", n.overrideHandler(store.ActionDrain))
	mux.HandleFunc("POST /api/v1/undrain", n.overrideHandler(store.ActionUndrain))
	mux.HandleFunc("POST /api/v1/force-up", n.overrideHandler(store.ActionForceUp))
	mux.HandleFunc("POST /api/v1/force-down", n.overrideHandler(store.ActionForceDown))
	mux.HandleFunc("POST /api/v1/leave", func(w http.ResponseWriter, r *http.Request) {
		if !n.authorized(w, r) {
			return
		}
		if n.store == nil {
			httpError(w, http.StatusBadRequest, "this node is not in a cluster")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
		defer cancel()
		if err := n.store.Leave(ctx); err != nil {
			httpError(w, http.StatusServiceUnavailable, "%v", err)
			return
		}
		writeJSON(w, map[string]any{"ok": true, "left": n.name})
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("GET /", dashboardHandler())
	return mux
}

// authorized checks the admin token of a write request (when the node has
// one) and answers 401 if it is missing or wrong.
func (n *node) authorized(w http.ResponseWriter, r *http.Request) bool {
	if tok := n.cfg.AdminToken; tok != "" && r.Header.Get("Authorization") != "Bearer "+tok {
		httpError(w, http.StatusUnauthorized, "a valid admin token is required (Authorization: Bearer TOKEN)")
		return false
	}
	return true
}

// overrideHandler applies an operator override: kind (region, pool,
// member), name, and for force-up/force-down an optional duration.
func (n *node) overrideHandler(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !n.authorized(w, r) {
			return
		}
		var req struct {
			Kind  string `json:"kind"`
			Name  string `json:"name"`
			For   string `json:"for"`
			Until time.Time
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
			httpError(w, http.StatusBadRequest, "body: %v", err)
			return
		}
		o := store.Override{Kind: req.Kind, Name: req.Name, Action: action, At: time.Now().UTC()}
		if req.For != "" {
			d, err := time.ParseDuration(req.For)
			if err != nil || d <= 0 {
				httpError(w, http.StatusBadRequest, "for: %q is not a positive duration", req.For)
				return
			}
			o.Until = o.At.Add(d)
		}
		if err := n.applyOverride(r.Context(), o); err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, store.ErrNoQuorum) {
				code = http.StatusServiceUnavailable
			}
			httpError(w, code, "%v", err)
			return
		}
		writeJSON(w, map[string]any{"ok": true, "override": o})
	}
}

// applyOverride commits an override through the cluster, or keeps it in
// memory on a single node.
func (n *node) applyOverride(ctx context.Context, o store.Override) error {
	switch o.Kind {
	case store.KindRegion, store.KindPool, store.KindMember:
	default:
		return fmt.Errorf("kind: %q is not region, pool or member", o.Kind)
	}
	if o.Name == "" {
		return errors.New("name: required")
	}
	if n.store != nil {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return n.store.Submit(ctx, &o)
	}
	n.localOv.Lock()
	var list []store.Override
	for _, x := range n.localList {
		if x.Kind != o.Kind || x.Name != o.Name {
			list = append(list, x)
		}
	}
	if o.Action != store.ActionUndrain {
		list = append(list, o)
	}
	n.localList = list
	n.overrides.Store(newOverrideSet(list, time.Now()))
	n.localOv.Unlock()
	n.rebuild()
	return nil
}

// events is /api/v1/events: the recent health transitions, newest last.
func (n *node) events() []probes.Event {
	if n.health == nil {
		return []probes.Event{}
	}
	return n.health.agg.Events()
}
