// Package api is the admin API of a gslb node: the JSON shapes of its
// /api/v1 endpoints and a small client for them. The CLI, the dashboard's
// server side and the tests share it; it imports nothing of the node.
package api

import (
	"time"
)

// Status is GET /api/v1/status: one node's view of the cluster, its zones,
// every member's verdict with each prober's vote, and the RTT matrix.
type Status struct {
	Node       string            `json:"node"`
	Region     string            `json:"region"`
	Time       time.Time         `json:"time"`
	StateIndex uint64            `json:"state_index"`
	Cluster    *Cluster          `json:"cluster,omitempty"`
	Zones      map[string]uint32 `json:"zones"`
	// ZoneErrors are the zone files that failed to load, with the
	// problem ("FILE:LINE: problem"), by file.
	ZoneErrors map[string]string `json:"zone_errors,omitempty"`
	Regions    []Region          `json:"regions"`
	Pools      []Pool            `json:"pools"`
	RTT        []RTT             `json:"rtt"`
	Overrides  []Override        `json:"overrides"`
	Proxy      *Proxy            `json:"proxy,omitempty"`
	// DNSSEC is the signing state (nil when the node signs no zone).
	DNSSEC *DNSSEC `json:"dnssec,omitempty"`
}

// Cluster is the replicated store as this node sees it.
type Cluster struct {
	Role   string `json:"role"`
	Leader string `json:"leader"`
	// Quorum is true when this node is in contact with a leader and can
	// apply what it commits.
	Quorum      bool   `json:"quorum"`
	Term        uint64 `json:"term"`
	CommitIndex uint64 `json:"commit_index"`
	// LeaderCommitIndex is the leader's commit index as last heard,
	// AppliedIndex what this node's state has applied, Behind the
	// difference when positive.
	LeaderCommitIndex uint64    `json:"leader_commit_index"`
	AppliedIndex      uint64    `json:"applied_index"`
	Behind            uint64    `json:"behind"`
	LastContact       time.Time `json:"last_contact,omitzero"`
	// CanApply is false while writes to the node's data files fail (a
	// full or failing disk); ApplyError says why, since CannotApplySince.
	CanApply         bool      `json:"can_apply"`
	ApplyError       string    `json:"apply_error,omitempty"`
	CannotApplySince time.Time `json:"cannot_apply_since,omitzero"`
	ApplyErrors      uint64    `json:"apply_errors"`
	// Restoring is true while the node rebuilds its state from its own
	// snapshot and log after start.
	Restoring bool   `json:"restoring,omitempty"`
	Members   []Peer `json:"members"`
}

// Peer is one member of the cluster.
type Peer struct {
	ID     string
	Addr   string
	Voter  bool
	Leader bool `json:",omitempty"`
	Self   bool `json:",omitempty"`
	// LastContact is when this node last heard from the member, when
	// known: the leader knows it for every member, a follower only for
	// the leader (zero: not known here, or this node).
	LastContact time.Time `json:",omitzero"`
}

// Region is one region and whether it can be answered.
type Region struct {
	Name    string  `json:"name"`
	Lat     float64 `json:"lat"`
	Lon     float64 `json:"lon"`
	Up      bool    `json:"up"` // some pool of the region has a member up
	Drained bool    `json:"drained"`
	// Load is the region proxy's last committed load report (nil before
	// one, or outside a cluster).
	Load *RegionLoad `json:"load,omitempty"`
}

// RegionLoad is a region proxy's capacity and load, summed over its
// backend groups (and its nodes).
type RegionLoad struct {
	// Utilisation is the largest of the groups' (0 idle, 1 full or no
	// server available): requests in flight over the available backends'
	// max_conns.
	Utilisation float64       `json:"utilisation"`
	Backends    int           `json:"backends"`
	Available   int           `json:"available"`
	InFlight    int64         `json:"in_flight"`
	Rate        float64       `json:"rate"`    // requests per second
	Latency     time.Duration `json:"latency"` // the slowest group's EWMA
	At          time.Time     `json:"at"`      // when the newest report was made
}

// Pool is one pool and its members.
type Pool struct {
	Name    string   `json:"name"`
	Region  string   `json:"region"`
	Members []Member `json:"members"`
}

// Member is one pool member: whether it is in the answers being served, and
// every prober's vote.
type Member struct {
	Addr    string    `json:"addr"`
	Weight  int       `json:"weight"`
	Check   string    `json:"check,omitempty"`
	Up      bool      `json:"up"`    // in the answers being served
	Known   bool      `json:"known"` // a verdict exists (else cold start: up)
	Since   time.Time `json:"since,omitzero"`
	Probers []Vote    `json:"probers,omitempty"`
	Reason  string    `json:"reason,omitempty"`
}

// Vote is one prober's view of a member.
type Vote struct {
	Prober  string        `json:"prober"`
	Region  string        `json:"region"`
	Up      bool          `json:"up"`
	Fresh   bool          `json:"fresh"`
	Suspect bool          `json:"suspect"`
	Reason  string        `json:"reason,omitempty"`
	RTT     time.Duration `json:"rtt_ns,omitempty"`
}

// RTT is a smoothed round-trip time from a prober's region.
type RTT struct {
	From string        `json:"from"` // prober's region
	To   string        `json:"to"`   // region or client network
	EWMA time.Duration `json:"ewma_ns"`
	Min  time.Duration `json:"min_ns"`
}

// Override is an operator override in force.
type Override struct {
	Kind   string    `json:"kind"`   // region, pool or member
	Name   string    `json:"name"`   // a region or pool name, an address or POOL/ADDRESS
	Action string    `json:"action"` // drain, force-up, force-down
	Until  time.Time `json:"until,omitzero"`
	At     time.Time `json:"at"`
}

// Proxy is the region proxy's state.
type Proxy struct {
	Healthy bool              `json:"healthy"`
	Addrs   map[string]string `json:"addrs"`
	// Spill is the spill-over to other regions' proxies, nil when the
	// proxy has no spill section.
	Spill *ProxySpill `json:"spill,omitempty"`
}

// ProxySpill is what the proxy's spill-over did since it started.
type ProxySpill struct {
	// Peers are the other regions' proxies in the order they are tried.
	Peers []SpillPeer `json:"peers"`
	// Received counts spilled requests received, by origin region.
	Received map[string]uint64 `json:"received,omitempty"`
}

// SpillPeer is one spill peer: its last region health check and the
// requests (and TCP connections) spilled to it.
type SpillPeer struct {
	Region string `json:"region"`
	Up     bool   `json:"up"`
	Sent   uint64 `json:"sent"`
}

// Event is one health transition seen by a prober (GET /api/v1/events).
type Event struct {
	Time   time.Time
	Prober string
	Region string
	// Target is the checked member, readable: "pool web-eu member
	// 198.51.100.10 (http://198.51.100.10:80/healthz)".
	Target   string
	Key      string `json:",omitempty"` // internal check key (for matching status entries)
	From, To string // "up", "down", or "unknown"
	Reason   string
}

// OverrideRequest is the body of POST /api/v1/drain, undrain, force-up and
// force-down.
type OverrideRequest struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	For  string `json:"for,omitempty"` // a Go duration; empty: until undone
}

// Error is the body of every error reply.
type Error struct {
	Error string `json:"error"`
}
