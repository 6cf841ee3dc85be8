package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/probes"
	"github.com/gslbd/gslb/store"
	"github.com/gslbd/gslb/zones"
)

// startCluster opens the node's replica of the cluster state and starts
// following it: committed zones are written to data/zones and served,
// other probers' reports feed the aggregator, overrides apply at once.
func (n *Node) startCluster(ctx context.Context) error {
	cl := n.cfg.Cluster
	secret, err := cl.secret()
	if err != nil {
		return err
	}
	if cl.SecretFile != "" {
		if err := store.CheckSecret(secret); err != nil && !(secret == "" && cl.TLS != nil) {
			return fmt.Errorf("cluster.secret_file: %v (`gslb secret` prints a good one)", err)
		}
	}
	sc := store.Config{
		NodeID: n.name, DataDir: filepath.Join(n.cfg.Data, "raft"), RaftAddr: cl.Raft, AdvertiseAddr: cl.Advertise,
		Secret: secret, NonVoter: cl.NonVoter, Logger: n.log,
		CheckZone: n.checkZoneContent, ClusterID: cl.ClusterID, Told: n.told,
	}
	if t := cl.TLS; t != nil {
		sc.TLS = &store.TLSFiles{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile}
	}
	for _, p := range cl.Peers {
		sc.Peers = append(sc.Peers, store.Peer{ID: p.ID, Addr: p.Raft, Voter: !p.NonVoter})
	}
	if cl.Fast {
		sc.Tuning = store.Tuning{HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
			LeaderLeaseTimeout: 200 * time.Millisecond, CommitTimeout: 20 * time.Millisecond}
	}
	if err := os.MkdirAll(sc.DataDir, 0o700); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	s, err := store.New(sc)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	n.store = s
	n.reg.MustRegister(s.Collector())
	if err := n.startDNSSECSync(ctx); err != nil {
		return err
	}
	if cl.Join != "" {
		n.goRun(func() { n.joinUntilDone(ctx, cl.Join) })
	}
	if n.health != nil {
		f := newReportForwarder(n, s)
		n.health.sink.cluster.Store(f)
		n.goRun(func() { f.run(ctx) })
		var nodes []probes.Node
		for _, p := range cl.Peers {
			if p.ID == n.name || p.DNS == "" {
				continue
			}
			if ap, err := netip.ParseAddrPort(p.DNS); err == nil {
				nodes = append(nodes, probes.Node{Region: p.Region, Addr: ap})
			}
		}
		n.health.prober.SetNodes(nodes)
	}
	// A node whose state.db was lost or damaged rebuilds it from its own
	// snapshot and log before it serves anything: DNS starts after this,
	// so resolvers ask another nameserver meanwhile instead of getting
	// SERVFAIL from an empty state. Past restoreWait it serves what it has.
	if st := s.Stats(); st.Restoring {
		n.log.Warn("restoring the cluster state from this node's snapshot and log before serving")
		wctx, cancel := context.WithTimeout(ctx, restoreWait)
		err := s.WaitRestored(wctx)
		cancel()
		if err != nil {
			n.log.Error("serving before the state is fully restored", "err", err)
		}
	}
	// Warm start: what this node already has (zones, overrides, every
	// prober's last verdicts) is served at once, before any new commit.
	// Subscribed first, so that a commit published meanwhile is not missed.
	commits := s.Subscribe()
	st := s.State()
	n.overrides.Store(newOverrideSet(st.Overrides(), time.Now()))
	if n.health != nil {
		n.feedRemoteReports(st)
	}
	n.syncZones(st, "start")
	n.goRun(func() { n.followState(ctx, commits) })
	n.startClusterFailover(ctx)
	if n.cfg.Zones != "" {
		n.goRun(func() { n.submitZonesUntilAccepted(ctx) })
	}
	return nil
}

// restoreWait bounds how long a starting node waits for its own state to
// be restored before it serves what it has.
const restoreWait = 60 * time.Second

// joinUntilDone asks the cluster at addr to add this node, retrying until
// it answers (joining again is a no-op).
func (n *Node) joinUntilDone(ctx context.Context, addr string) {
	for {
		jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := n.store.Join(jctx, addr)
		cancel()
		if err == nil {
			n.log.Info("joined the cluster", "via", addr)
			return
		}
		n.log.Warn("joining the cluster", "via", addr, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

// checkZoneContent refuses a zone that does not load, before it is
// proposed to the cluster; the zone submitZones just parsed is not parsed
// again.
func (n *Node) checkZoneContent(name string, content []byte) error {
	var z *zones.Zone
	if c := n.checked.Load(); c != nil && c.hash == sha256.Sum256(content) {
		z = c.zone
	} else {
		var err error
		if z, err = zones.Parse(content, name+"zone", name, false); err != nil {
			return err
		}
	}
	return zones.Link([]*zones.Zone{z}) // references to other zones are checked when served
}

// followState applies every committed change. A commit that changes no
// zone only refreshes the health view (overrides, other probers' reports).
func (n *Node) followState(ctx context.Context, ch <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			st := n.store.State()
			n.overrides.Store(newOverrideSet(st.Overrides(), time.Now()))
			if n.health != nil {
				n.feedRemoteReports(st)
				n.recheckOnCommit(st)
			}
			if !n.syncZones(st, "cluster") {
				n.healthChanged()
			}
		}
	}
}

// syncZones hands the committed zones to the loader, in memory, when they
// differ from the ones being served; it reports whether it did. The
// loader parses only the zone versions it has not seen.
func (n *Node) syncZones(st *store.State, why string) bool {
	committed := st.Zones()
	n.zonesMu.Lock()
	defer n.zonesMu.Unlock()
	if !n.zonesDiffer(committed) {
		return false
	}
	srcs := make([]dnsserver.Source, 0, len(committed))
	for _, z := range committed {
		srcs = append(srcs, dnsserver.Source{Name: "committed zone " + z.Name, Origin: z.Name, Data: z.Content})
	}
	snap, _ := n.loader.LoadSources(srcs)
	n.served = committed
	n.serve(snap, why)
	return true
}

// zonesDiffer reports whether the committed zones differ from those last
// handed to the loader. n.zonesMu is held.
func (n *Node) zonesDiffer(committed []store.ZoneUpdate) bool {
	if n.served == nil || len(committed) != len(n.served) {
		return true
	}
	for i := range committed {
		if committed[i].Name != n.served[i].Name || committed[i].Serial != n.served[i].Serial || !bytes.Equal(committed[i].Content, n.served[i].Content) {
			return true
		}
	}
	return false
}

// submitZonesUntilAccepted submits the operator's zones at start, retrying
// until the cluster has a leader.
func (n *Node) submitZonesUntilAccepted(ctx context.Context) {
	for {
		if err := n.submitZones(true); err == nil || !errors.Is(err, store.ErrNoQuorum) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// submitZones proposes every zone file of the operator's directory whose
// content differs from the committed one. A zone that does not load is
// reported with file and line and not proposed.
func (n *Node) submitZones(force bool) error {
	n.submitMu.Lock()
	defer n.submitMu.Unlock()
	files, err := dnsserver.ZoneFiles(n.cfg.Zones)
	if err != nil {
		n.log.Error("zones directory", "err", err)
		return err
	}
	if n.looked == nil {
		n.looked = map[string]fileLook{}
	}
	// The committed contents' hashes, made only when a file changed.
	var committed map[[32]byte]bool
	isCommitted := func(h [32]byte) bool {
		if committed == nil {
			committed = map[[32]byte]bool{}
			for _, z := range n.store.State().Zones() {
				committed[sha256.Sum256(z.Content)] = true
			}
		}
		return committed[h]
	}
	var firstErr error
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			continue
		}
		look := fileLook{mod: fi.ModTime(), size: fi.Size()}
		if prev, ok := n.looked[f]; ok && prev.mod.Equal(look.mod) && prev.size == look.size && !force {
			continue // unchanged since it was last submitted or refused
		}
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		h := sha256.Sum256(data)
		if isCommitted(h) {
			n.looked[f] = look
			continue // this very content is committed: nothing to parse
		}
		z, err := zones.Parse(data, f, "", false)
		if err != nil {
			n.looked[f] = look // logged once, looked at again when it changes
			n.log.Error("zone not submitted: it does not load", "err", err)
			continue
		}
		n.checked.Store(&checkedZone{hash: h, zone: z})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = n.store.Submit(ctx, &store.ZoneUpdate{Name: z.Origin, Serial: z.Serial(), Content: data})
		cancel()
		if err != nil {
			n.log.Error("zone not accepted by the cluster", "file", f, "serial", z.Serial(), "err", err)
			if firstErr == nil {
				firstErr = err
			}
			if !errors.Is(err, store.ErrNoQuorum) {
				n.looked[f] = look
			}
			continue
		}
		n.looked[f] = look
		n.log.Info("zone submitted to the cluster", "zone", z.Origin, "serial", z.Serial())
	}
	return firstErr
}

// fileLook is a zone file's size and modification time when the node last
// submitted it or found it broken.
type fileLook struct {
	mod  time.Time
	size int64
}

// checkedZone is the zone submitZones parsed last, so that the store's
// check of the same content before proposing it does not parse it again.
type checkedZone struct {
	hash [32]byte
	zone *zones.Zone
}
