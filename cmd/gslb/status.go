package main

import (
	"sort"
	"time"

	"github.com/gslbd/gslb/probes"
	"github.com/gslbd/gslb/store"
)

// nodeStatus is /api/v1/status.
type nodeStatus struct {
	Node       string            `json:"node"`
	Region     string            `json:"region"`
	Time       time.Time         `json:"time"`
	StateIndex uint64            `json:"state_index"`
	Cluster    *clusterStatus    `json:"cluster,omitempty"`
	Zones      map[string]uint32 `json:"zones"`
	Regions    []regionStatus    `json:"regions"`
	Pools      []poolStatus      `json:"pools"`
	RTT        []rttStatus       `json:"rtt"`
	Overrides  []store.Override  `json:"overrides"`
	Proxy      *proxyStatus      `json:"proxy,omitempty"`
	// DemoControl is the `gslb demo` control address (POST
	// /kill?region=R, /start?region=R), when the node runs in the demo.
	DemoControl string `json:"demo_control,omitempty"`
}

type clusterStatus struct {
	Role        string       `json:"role"`
	Leader      string       `json:"leader"`
	Quorum      bool         `json:"quorum"`
	Term        uint64       `json:"term"`
	CommitIndex uint64       `json:"commit_index"`
	LastContact time.Time    `json:"last_contact,omitzero"`
	Members     []store.Peer `json:"members"`
}

type regionStatus struct {
	Name    string  `json:"name"`
	Lat     float64 `json:"lat"`
	Lon     float64 `json:"lon"`
	Up      bool    `json:"up"` // some pool of the region has a member up
	Drained bool    `json:"drained"`
}

type poolStatus struct {
	Name    string         `json:"name"`
	Region  string         `json:"region"`
	Members []memberStatus `json:"members"`
}

type memberStatus struct {
	Addr    string     `json:"addr"`
	Weight  int        `json:"weight"`
	Check   string     `json:"check,omitempty"`
	Up      bool       `json:"up"`    // in the answers being served
	Known   bool       `json:"known"` // a verdict exists (else cold start: up)
	Since   time.Time  `json:"since,omitzero"`
	Probers []voteView `json:"probers,omitempty"`
	Reason  string     `json:"reason,omitempty"`
}

type voteView struct {
	Prober  string        `json:"prober"`
	Region  string        `json:"region"`
	Up      bool          `json:"up"`
	Fresh   bool          `json:"fresh"`
	Suspect bool          `json:"suspect"`
	Reason  string        `json:"reason,omitempty"`
	RTT     time.Duration `json:"rtt_ns,omitempty"`
}

type rttStatus struct {
	From string        `json:"from"` // prober's region
	To   string        `json:"to"`   // region or client network
	EWMA time.Duration `json:"ewma_ns"`
	Min  time.Duration `json:"min_ns"`
}

type proxyStatus struct {
	Healthy bool              `json:"healthy"`
	Addrs   map[string]string `json:"addrs"`
}

func (n *node) status() nodeStatus {
	snap := n.dns.Snapshot()
	st := nodeStatus{Node: n.name, Region: n.cfg.Region, Time: time.Now().UTC(), StateIndex: snap.Index, DemoControl: n.cfg.DemoControl,
		Zones: snap.Zones(), Regions: []regionStatus{}, Pools: []poolStatus{}, RTT: []rttStatus{}, Overrides: []store.Override{}}
	if n.store != nil {
		s := n.store.Stats()
		cs := &clusterStatus{Role: s.State, Leader: s.Leader, Quorum: s.Quorum, Term: s.Term, CommitIndex: s.CommitIndex, LastContact: s.LastContact}
		cs.Members, _ = n.store.Members()
		st.Cluster = cs
	}
	ov := n.overrides.Load()
	for _, o := range ov.m {
		st.Overrides = append(st.Overrides, o)
	}
	views := map[string]probes.KeyView{}
	if n.health != nil {
		for _, kv := range n.health.agg.Snapshot() {
			views[kv.Key] = kv
		}
		for _, r := range n.health.agg.RTTs() {
			if r.Kind == probes.KindRegion {
				st.RTT = append(st.RTT, rttStatus{From: r.Region, To: r.Name, EWMA: r.EWMA, Min: r.Min})
			}
		}
	}
	h := nodeHealth{n}
	regionUp := map[string]bool{}
	for _, z := range n.loader.Zones() {
		for _, r := range z.Regions {
			if !containsRegion(st.Regions, r.Name) {
				_, drained := ov.get(store.KindRegion, r.Name)
				st.Regions = append(st.Regions, regionStatus{Name: r.Name, Lat: r.Lat, Lon: r.Lon, Drained: drained})
			}
		}
		for _, p := range z.Pools {
			ps := poolStatus{Name: p.Name, Region: p.Region}
			for _, m := range p.Members {
				ms := memberStatus{Addr: m.Addr.String(), Weight: m.Weight}
				ms.Up, ms.Known = h.Up(p, m.Addr)
				if p.Check.Scheme != "" {
					t := probes.Target{Check: p.Check, Addr: m.Addr}
					ms.Check = t.String()
					if kv, ok := views[t.Key()]; ok {
						ms.Since = kv.Since
						for _, pv := range kv.Probers {
							ms.Probers = append(ms.Probers, voteView{Prober: pv.Prober, Region: pv.Region, Up: pv.Up,
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
	sort.Slice(st.Regions, func(i, j int) bool { return st.Regions[i].Name < st.Regions[j].Name })
	sort.Slice(st.Pools, func(i, j int) bool { return st.Pools[i].Name < st.Pools[j].Name })
	if n.proxy != nil {
		st.Proxy = &proxyStatus{Healthy: n.proxy.Healthy(), Addrs: n.proxy.Addrs()}
	}
	return st
}

func containsRegion(rs []regionStatus, name string) bool {
	for _, r := range rs {
		if r.Name == name {
			return true
		}
	}
	return false
}
