// Package node runs one gslb region node: the DNS server, the zone loader,
// the prober and the aggregator of every prober's view, the replicated
// store, the region proxy and the admin HTTP handler, and the flows between
// them (probes -> store -> aggregator -> health; store -> zones -> loader).
//
// Start starts a node from a Config and returns once everything listens;
// Reload applies a SIGHUP; Stop shuts it down. The command line (flags,
// signals) is the caller's: see cmd/gslb.
package node

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/geodata"
	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/probes"
	"github.com/gslbd/gslb/proxy"
	"github.com/gslbd/gslb/store"
)

// Node is one running region node. Its methods are safe for concurrent use.
type Node struct {
	cfg    *Config
	name   string
	log    *slog.Logger
	dns    *dnsserver.Server
	loader *dnsserver.Loader
	geo    *geodata.DB
	reg    *prometheus.Registry
	health *health      // nil with probes disabled
	store  *store.Store // nil without a cluster
	proxy  *proxy.Proxy // nil without a proxy section
	admin  *admin       // nil without an admin listener
	token  string       // the admin token ("" when none)
	// signing is the DNSSEC state (dnssec.go), nil when no zone is signed.
	signing *signing

	overrides atomic.Pointer[overrideSet]
	localOv   sync.Mutex // single-node overrides (no store)
	localList []store.Override

	remoteMu   sync.Mutex
	remoteSeen map[string]time.Time // per remote prober: the newest report applied

	submitMu sync.Mutex
	looked   map[string]fileLook // by zone file: as last submitted or refused (submitMu)
	checked  atomic.Pointer[checkedZone]
	zonesMu  sync.Mutex
	served   []store.ZoneUpdate // in a cluster: the committed zones last loaded
	wg       sync.WaitGroup
	cancel   context.CancelFunc
}

// Start starts every part of the node and returns once all of them listen.
// ctx bounds the node's background work; call Stop to shut it down.
func Start(ctx context.Context, cfg *Config, log *slog.Logger) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	n := &Node{cfg: cfg, log: log, cancel: cancel}
	defer func() {
		if err != nil {
			n.Stop(context.Background())
		}
	}()
	if n.token, err = cfg.adminToken(); err != nil {
		return nil, err
	}
	n.overrides.Store(&overrideSet{})
	if n.geo, err = openGeo(cfg.GeoIP); err != nil {
		return nil, err
	}
	log.Info("geo database", "database", n.geo.Describe())
	nsid := cfg.NSID
	if nsid == "" {
		nsid = cfg.Node
	}
	dc, err := cfg.DNS.server(nsid, cookieSecret(cfg))
	if err != nil {
		return nil, err
	}
	dc.Logger = log
	if n.signing, err = newSigning(cfg); err != nil {
		return nil, err
	}
	if n.signing != nil {
		dc.Signer = n.signing.signer
	}
	if n.dns, err = dnsserver.New(dc); err != nil {
		return nil, err
	}
	n.name = cfg.Node
	if n.name == "" {
		n.name = n.dns.NSID()
	}
	n.reg = newRegistry(n.dns)
	if n.signing != nil {
		n.reg.MustRegister(signerMetrics{n.signing.signer})
		n.goRun(func() { n.clearSignedReplies(ctx) })
	}
	// In a cluster every node serves the committed zones, handed to the
	// loader in memory; the operator's zones directory (on any node) only
	// feeds the cluster.
	dir := cfg.Zones
	if cfg.Cluster != nil {
		dir = ""
	}
	n.loader = &dnsserver.Loader{Dir: dir, MaxSize: cfg.ZonesMaxSize, Log: log.With("component", "zones"),
		Env: gslb.Env{Geo: n.geo, Latency: &gslb.LatencyTable{}}}
	n.reg.MustRegister(n.loader)
	if cfg.probesEnabled() {
		n.health = newHealth(n.name, cfg.Region, cfg.Probes.MaxConcurrent, n.reg, log)
	}
	n.loader.Env.Health = nodeHealth{n}
	// From here on every snapshot swapped in is answered with the node's
	// health view, refreshed by healthChanged.
	n.dns.Refresh(nodeHealth{n}, n.loader.Env.Latency)
	if cfg.Cluster != nil {
		if err := n.startCluster(ctx); err != nil {
			return nil, err
		}
	} else {
		n.reload("start")
	}
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
		if n.proxy, err = proxy.New(n.proxyConfig(*cfg.Proxy), log); err != nil {
			return nil, err
		}
		if err := n.proxy.Start(ctx); err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
		n.reg.MustRegister(n.proxy)
	}
	n.startFailover(ctx)
	n.startLoadReports(ctx)
	if cfg.Admin != "" {
		if n.admin, err = startAdmin(cfg.Admin, n.Handler(), log); err != nil {
			return nil, err
		}
		n.warnOpenAdmin()
	}
	if cfg.ZonesPoll > 0 && cfg.Zones != "" {
		n.goRun(func() { n.pollZones(ctx) })
	}
	return n, nil
}

func (n *Node) goRun(f func()) {
	n.wg.Add(1)
	go func() { defer n.wg.Done(); f() }()
}

// Name is the node's name in the cluster, probe reports and status.
func (n *Node) Name() string { return n.name }

// DNSAddrs returns the UDP addresses the DNS server listens on.
func (n *Node) DNSAddrs() []net.Addr { return n.dns.UDPAddrs() }

// AdminAddr returns the admin listener's address, or nil without one.
func (n *Node) AdminAddr() net.Addr {
	if n.admin == nil {
		return nil
	}
	return n.admin.addr
}

// ReadyLine says where the node listens:
// "ready node=NAME dns=ADDR[,ADDR] [admin=ADDR] [raft=ADDR] [proxy.NAME=ADDR...]".
func (n *Node) ReadyLine() string {
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
		addrs := n.proxy.Addrs()
		keys := make([]string, 0, len(addrs))
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

// pollZones looks for changed zone files every zones_poll.
func (n *Node) pollZones(ctx context.Context) {
	t := time.NewTicker(n.cfg.ZonesPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.zonesChanged("file changed", false)
		}
	}
}

// Reload is what SIGHUP does: zone files are read again (and submitted to
// the cluster, in a cluster), and the proxy section of the config file is
// applied again.
func (n *Node) Reload() {
	n.zonesChanged("SIGHUP", true)
	n.reloadProxy()
}

// reloadProxy applies the proxy section of the config file again (SIGHUP);
// a bad section is logged with the field and the running proxy stays.
func (n *Node) reloadProxy() {
	if n.proxy == nil {
		return
	}
	pc, err := n.cfg.loadProxyConfig()
	if err == nil && pc != nil {
		err = n.proxy.Reload(n.proxyConfig(*pc))
	}
	if err != nil {
		n.log.Error("proxy config not reloaded; the running one stays", "err", err)
		return
	}
	n.log.Info("proxy config reloaded")
}

// zonesChanged reloads (single node) or submits (cluster) changed zones.
func (n *Node) zonesChanged(why string, force bool) {
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
func (n *Node) reload(why string) {
	n.zonesMu.Lock()
	defer n.zonesMu.Unlock()
	snap, _ := n.loader.Load()
	n.serve(snap, why)
}

// serve swaps in a snapshot of new zones and points the prober at them.
// n.zonesMu is held.
func (n *Node) serve(snap *dnsserver.Snapshot, why string) {
	snap.Index = n.stateIndex()
	n.dnssecKeys(snap)
	old := n.dns.Snapshot()
	n.dns.Swap(snap)
	for o, serial := range snap.Zones() {
		if old == nil || old.Zones()[o] != serial {
			n.log.Info("serving zone", "zone", o, "serial", serial, "reason", why)
		}
	}
	if n.health != nil {
		// Checks start when a zone loads, not on the first query.
		n.health.prober.SetTargets(probes.TargetsFromZones(n.loader.Zones()...))
	}
	// The zones' old version and what parsing them left behind are garbage
	// now: hand the memory back to the system at once rather than keep the
	// peak of the load as the node's size (docs/operations.md).
	go debug.FreeOSMemory()
}

func (n *Node) stateIndex() uint64 {
	if n.store == nil {
		return 0
	}
	return n.store.State().Index()
}

// Stop shuts every part down.
func (n *Node) Stop(ctx context.Context) error {
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

// cookieSecret is the DNS cookie secret every node of a cluster shares,
// derived from the cluster secret (nil: a single node, or a cluster
// authenticated by TLS files only: dnsserver makes a random one).
func cookieSecret(cfg *Config) []byte {
	if cfg.Cluster == nil {
		return nil
	}
	secret, err := cfg.Cluster.secret()
	if err != nil || secret == "" {
		return nil
	}
	k, err := hkdf.Key(sha256.New, []byte(secret), []byte("gslb dns cookie"), "server cookie secret (RFC 9018)", 16)
	if err != nil {
		return nil
	}
	return k
}

// openGeo opens the database named by path, or the embedded default.
func openGeo(path string) (*geodata.DB, error) {
	if path == "" {
		return geodata.Default()
	}
	db, err := geodata.Open(path)
	if err != nil {
		return nil, fmt.Errorf("geoip %s: %w", path, err)
	}
	return db, nil
}

func newRegistry(srv *dnsserver.Server) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), srv)
	return reg
}
