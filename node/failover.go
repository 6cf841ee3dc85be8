package node

import (
	"context"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/gslbd/gslb/probes"
	"github.com/gslbd/gslb/store"
)

// Failover hints: the signals a node has before its own checks are due,
// each turned into an immediate re-check (Prober.CheckNow), never into a
// verdict. The checks stay the only evidence; the hints only make every
// prober look at once, so that the quorum forms in one round trip instead
// of in each prober's own schedule.
//
//   - Another prober's committed transition that disagrees with this
//     prober's view: re-check that member now (every region learns at once).
//   - A member of the cluster that stopped answering Raft (the leader's
//     last contact with it, or a follower's with the leader, grows stale):
//     re-check the pools it fronts (pools in its region, and pools whose
//     members are its addresses), and stop counting its prober's votes;
//     when it answers again, re-check them too and count it again.
//   - This node's region proxy changing its aggregate health: re-check the
//     pools it fronts, so that its region's verdict changes the moment the
//     proxy sees its servers go (or come back).

// failover is the node's state for the hints.
type failover struct {
	mu     sync.Mutex
	seen   map[[2]string]time.Time // (prober, key) -> At of the last transition looked at
	silent map[string]bool         // member ID -> marked silent
}

// recheckOnCommit re-checks at once each member whose committed
// transition, from another prober and not looked at before, disagrees with
// this prober's view (or that this prober has no view of yet). Called on
// every commit.
func (n *Node) recheckOnCommit(st *store.State) {
	if n.health == nil {
		return
	}
	n.recheckTransitions(st.Transitions())
}

// recheckTransitions re-checks at once each member whose transition in ts,
// committed or told (store.Tell), from another prober and not looked at
// before, disagrees with this prober's view.
//
// While a member is still in disagreement it is checked again every short
// interval, for at most recheckFor: a region that restarts commits its
// first view before its proxy listens, and a re-check that found the
// proxy not yet there must not wait for the regular schedule.
func (n *Node) recheckTransitions(all []store.Transition) {
	ts := n.disagreeing(all)
	if len(ts) == 0 {
		return
	}
	want := map[string]bool{}
	for _, t := range ts {
		want[t.Key] = t.Up
	}
	n.health.prober.CheckNow(slices.Collect(maps.Keys(want))...)
	go func() {
		for range int(recheckFor / recheckEvery) {
			time.Sleep(recheckEvery)
			var again []string
			for k, up := range want {
				if own, ok := n.health.prober.Status(k); !ok || own.Up != up {
					again = append(again, k)
				}
			}
			if len(again) == 0 {
				return
			}
			n.health.prober.CheckNow(again...)
		}
	}()
}

// How long and how often recheckOnCommit checks a member again while it
// disagrees with another region's committed transition: the default short
// interval, for a second.
const (
	recheckEvery = 100 * time.Millisecond
	recheckFor   = time.Second
)

// disagreeing returns the transitions of ts, from other probers and newer
// than the last looked at from the same prober and key, that disagree with
// this prober's view.
func (n *Node) disagreeing(ts []store.Transition) []store.Transition {
	f := &n.health.fo
	var out []store.Transition
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen == nil {
		f.seen = map[[2]string]time.Time{}
	}
	for _, t := range ts {
		if t.Prober == n.name {
			continue
		}
		k := [2]string{t.Prober, t.Key}
		if prev, ok := f.seen[k]; ok && !t.At.After(prev) {
			continue
		}
		f.seen[k] = t.At
		if own, ok := n.health.prober.Status(t.Key); !ok || own.Up != t.Up {
			out = append(out, t)
		}
	}
	return out
}

// raftTimeout is the cluster's Raft heartbeat timeout: a member not heard
// from for that long is one Raft itself would give up on.
func (n *Node) raftTimeout() time.Duration {
	if n.cfg.Cluster != nil && n.cfg.Cluster.Fast {
		return 300 * time.Millisecond
	}
	return time.Second
}

// watchMembers turns the store's view of each member's last contact into
// hints. A contact older than three Raft heartbeats (Raft sends one every
// tenth of the heartbeat timeout) re-checks the member's pools: cheap, so
// early, and a false alarm on a loaded machine costs one check per member;
// one older than the timeout also marks its prober silent in the
// aggregator. For members whose contact a follower learns from the leader
// (polled once per heartbeat timeout) the thresholds are one timeout
// longer. The contacts are looked at every heartbeat.
func (n *Node) watchMembers(ctx context.Context) {
	hb := n.raftTimeout()
	tick := time.NewTicker(hb / 10)
	defer tick.Stop()
	hinted := map[string]bool{}
	// The last contact known of each member, with its slack: when the view
	// goes away (this leader stepped down, the leader died), the member
	// ages from there, so that a survivor that lost its quorum still
	// learns that the others are gone.
	type contact struct {
		at    time.Time
		slack time.Duration
	}
	seen := map[string]contact{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		st := n.store.Stats()
		now := time.Now()
		for _, m := range st.Members {
			if m.Self {
				continue
			}
			if !m.LastContact.IsZero() {
				c := contact{at: m.LastContact}
				if m.ReportedBy != n.name {
					c.slack = hb // learnt from the leader, polled once per timeout
				}
				seen[m.ID] = c
			}
			c, ok := seen[m.ID]
			if !ok {
				continue // never heard of: nothing to say
			}
			age := now.Sub(c.at)
			stale, dead := age > staleContact(hb)+c.slack, age > hb+c.slack
			if stale != hinted[m.ID] {
				hinted[m.ID] = stale
				n.recheckFronted(m.ID, m.Addr, "member "+map[bool]string{true: "silent", false: "back"}[stale])
			}
			n.markSilent(m.ID, m.Addr, dead)
		}
	}
}

// staleContact is how old a member's last contact may grow before its
// pools are re-checked: three Raft heartbeats (300 ms with the default
// timing, 90 ms with cluster.fast).
func staleContact(hb time.Duration) time.Duration { return 3 * hb / 10 }

// markSilent tells the aggregator whether the member's prober is silent,
// and the prober whether the pools the member fronts are lost, logging the
// changes.
func (n *Node) markSilent(id, raftAddr string, silent bool) {
	n.health.fo.mu.Lock()
	if n.health.fo.silent == nil {
		n.health.fo.silent = map[string]bool{}
	}
	changed := n.health.fo.silent[id] != silent
	n.health.fo.silent[id] = silent
	n.health.fo.mu.Unlock()
	if !changed {
		return
	}
	n.log.Info("cluster member's prober "+map[bool]string{true: "not counted: the member stopped answering", false: "counted again"}[silent], "member", id)
	n.health.agg.SetSilent(id, silent)
	n.health.prober.SetLost(silent, n.frontedBy(id, raftAddr)...)
}

// recheckFronted re-checks at once the pools that the member with Raft ID
// id and Raft address raftAddr fronts: the pools of its region, and those
// with a member at one of its addresses.
func (n *Node) recheckFronted(id, raftAddr, why string) {
	if keys := n.frontedBy(id, raftAddr); len(keys) > 0 {
		n.log.Debug("re-checking the pools a node fronts", "member", id, "why", why, "targets", len(keys))
		n.health.prober.CheckNow(keys...)
	}
}

// frontedBy lists the check keys of the pools that the member with Raft ID
// id and Raft address raftAddr fronts.
func (n *Node) frontedBy(id, raftAddr string) []string {
	var region string
	addrs := map[netip.Addr]bool{}
	addHost := func(hp string) {
		if h, _, err := net.SplitHostPort(hp); err == nil {
			if a, err := netip.ParseAddr(h); err == nil && !a.IsUnspecified() {
				addrs[a.Unmap()] = true
			}
		}
	}
	addHost(raftAddr)
	if cl := n.cfg.Cluster; cl != nil {
		for _, p := range cl.Peers {
			if p.ID == id {
				region = p.Region
				addHost(p.Raft)
				addHost(p.DNS)
			}
		}
	}
	return n.frontedKeys(region, addrs)
}

// frontedKeys lists the check keys of the pools in region (if not empty)
// and of the pools with a member in addrs.
func (n *Node) frontedKeys(region string, addrs map[netip.Addr]bool) []string {
	var keys []string
	for _, z := range n.loader.Zones() {
		for _, p := range z.Pools {
			if p.Check.Scheme == "" {
				continue
			}
			inRegion := region != "" && p.Region == region
			for _, m := range p.Members {
				if inRegion || addrs[m.Addr.Unmap()] {
					keys = append(keys, probes.Target{Check: p.Check, Addr: m.Addr}.Key())
				}
			}
		}
	}
	return keys
}

// watchProxy re-checks the pools this node's region proxy fronts when its
// aggregate health changes (Proxy.Healthy is two atomic loads per group).
func (n *Node) watchProxy(ctx context.Context) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	was := n.proxy.Healthy()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ok := n.proxy.Healthy()
		if ok == was {
			continue
		}
		was = ok
		addrs := map[netip.Addr]bool{}
		for _, a := range n.proxy.Addrs() {
			if ap, err := netip.ParseAddrPort(a); err == nil && !ap.Addr().IsUnspecified() {
				addrs[ap.Addr().Unmap()] = true
			}
		}
		if keys := n.frontedKeys(n.cfg.Region, addrs); len(keys) > 0 {
			n.log.Info("region proxy health changed: re-checking its pools", "healthy", ok, "targets", len(keys))
			n.health.prober.CheckNow(keys...)
		}
	}
}

// startFailover starts the hints that need no cluster (the proxy's); the
// cluster's start with startClusterFailover.
func (n *Node) startFailover(ctx context.Context) {
	if n.health != nil && n.proxy != nil {
		n.goRun(func() { n.watchProxy(ctx) })
	}
}

// startClusterFailover starts watching the cluster's members; called once
// the store is open.
func (n *Node) startClusterFailover(ctx context.Context) {
	if n.health != nil {
		n.goRun(func() { n.watchMembers(ctx) })
	}
}
