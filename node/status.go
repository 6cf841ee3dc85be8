package node

import (
	"sort"
	"time"

	"github.com/gslbd/gslb/api"
	"github.com/gslbd/gslb/probes"
	"github.com/gslbd/gslb/store"
)

// Status is this node's view, as /api/v1/status serves it.
func (n *Node) Status() api.Status {
	snap := n.dns.Snapshot()
	st := api.Status{Node: n.name, Region: n.cfg.Region, Time: time.Now().UTC(), StateIndex: snap.Index,
		Zones: snap.Zones(), ZoneErrors: n.loader.Errors(), Regions: []api.Region{}, Pools: []api.Pool{}, RTT: []api.RTT{}, Overrides: []api.Override{}}
	if n.store != nil {
		s := n.store.Stats()
		cs := &api.Cluster{Role: s.State, Leader: s.Leader, Quorum: s.Quorum, Term: s.Term, CommitIndex: s.CommitIndex,
			LeaderCommitIndex: s.LeaderCommitIndex, AppliedIndex: s.AppliedIndex, Behind: s.Behind, LastContact: s.LastContact,
			CanApply: s.CanApply, ApplyError: s.ApplyError, CannotApplySince: s.CannotApplySince, ApplyErrors: s.ApplyErrors,
			Restoring: s.Restoring, Members: []api.Peer{}}
		for _, m := range s.Members {
			cs.Members = append(cs.Members, api.Peer{ID: m.ID, Addr: m.Addr, Voter: m.Voter, Leader: m.Leader, Self: m.Self, LastContact: m.LastContact})
		}
		st.Cluster = cs
	}
	ov := n.overrides.Load()
	for _, o := range ov.m {
		st.Overrides = append(st.Overrides, toAPIOverride(o))
	}
	views := map[string]probes.KeyView{}
	if n.health != nil {
		for _, kv := range n.health.agg.Snapshot() {
			views[kv.Key] = kv
		}
		for _, r := range n.health.agg.RTTs() {
			if r.Kind == probes.KindRegion {
				st.RTT = append(st.RTT, api.RTT{From: r.Region, To: r.Name, EWMA: r.EWMA, Min: r.Min})
			}
		}
	}
	h := nodeHealth{n}
	regionUp := map[string]bool{}
	for _, z := range n.loader.Zones() {
		for _, r := range z.Regions {
			if !containsRegion(st.Regions, r.Name) {
				_, drained := ov.get(store.KindRegion, r.Name)
				st.Regions = append(st.Regions, api.Region{Name: r.Name, Lat: r.Lat, Lon: r.Lon, Drained: drained})
			}
		}
		for _, p := range z.Pools {
			ps := api.Pool{Name: p.Name, Region: p.Region}
			for _, m := range p.Members {
				ms := api.Member{Addr: m.Addr.String(), Weight: m.Weight}
				ms.Up, ms.Known = h.Up(p, m.Addr)
				if p.Check.Scheme != "" {
					t := probes.Target{Check: p.Check, Addr: m.Addr}
					ms.Check = t.String()
					if kv, ok := views[t.Key()]; ok {
						ms.Since = kv.Since
						for _, pv := range kv.Probers {
							ms.Probers = append(ms.Probers, api.Vote{Prober: pv.Prober, Region: pv.Region, Up: pv.Up,
								Fresh: pv.Fresh, Suspect: pv.Suspect, Reason: pv.Reason, RTT: pv.RTT})
						}
					}
				}
				if ms.Up {
					regionUp[p.Region] = true
				}
				ps.Members = append(ps.Members, ms)
			}
			st.Pools = append(st.Pools, ps)
		}
	}
	for i := range st.Regions {
		st.Regions[i].Up = regionUp[st.Regions[i].Name] && !st.Regions[i].Drained
	}
	n.addLoads(&st)
	sort.Slice(st.Regions, func(i, j int) bool { return st.Regions[i].Name < st.Regions[j].Name })
	sort.Slice(st.Pools, func(i, j int) bool { return st.Pools[i].Name < st.Pools[j].Name })
	if n.proxy != nil {
		st.Proxy = &api.Proxy{Healthy: n.proxy.Healthy(), Addrs: n.proxy.Addrs(), Spill: spillStatus(n.proxy)}
	}
	st.DNSSEC = n.dnssecStatus()
	return st
}

func containsRegion(rs []api.Region, name string) bool {
	for _, r := range rs {
		if r.Name == name {
			return true
		}
	}
	return false
}

// events is /api/v1/events: the recent health transitions, newest last,
// with readable targets.
func (n *Node) events() []api.Event {
	out := []api.Event{}
	if n.health == nil {
		return out
	}
	names := map[string]string{}
	for _, z := range n.loader.Zones() {
		for _, p := range z.Pools {
			if p.Check.Scheme == "" {
				continue
			}
			for _, m := range p.Members {
				t := probes.Target{Check: p.Check, Addr: m.Addr}
				if _, ok := names[t.Key()]; !ok {
					names[t.Key()] = "pool " + p.Name + " member " + m.Addr.String() + " (" + t.String() + ")"
				}
			}
		}
	}
	for _, e := range n.health.agg.Events() {
		target := names[e.Key]
		if target == "" {
			target = "a member no longer served"
		}
		out = append(out, api.Event{Time: e.Time, Prober: e.Prober, Region: e.Region, Target: target, Key: e.Key, From: e.From, To: e.To, Reason: e.Reason})
	}
	return out
}
