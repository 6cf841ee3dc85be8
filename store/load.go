package store

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"
)

// LoadReport is one region proxy's capacity and load, as its node saw it
// at At: a summary per backend group and for the region. A node proposes
// one when the figures changed enough and at least every few seconds
// otherwise (never per request); the newest report of each node replaces
// its previous one.
type LoadReport struct {
	Node   string      `json:"node"`
	Region string      `json:"region"`
	At     time.Time   `json:"at"`
	Groups []GroupLoad `json:"groups"`
	// Utilisation is the region's: the largest of its groups' (0 idle, 1
	// full or no server available).
	Utilisation float64 `json:"utilisation"`
}

// GroupLoad is one backend group's capacity and load.
type GroupLoad struct {
	Group     string `json:"group"`
	Backends  int    `json:"backends"`
	Available int    `json:"available"` // may take new requests
	Weight    int    `json:"weight"`    // sum of the available backends' weights
	InFlight  int64  `json:"in_flight"` // requests (HTTP) or connections (TCP)
	// MaxConns is the per-backend limit (0: none); Headroom is what the
	// available backends can still take under it (-1: no limit).
	MaxConns int   `json:"max_conns"`
	Headroom int64 `json:"headroom"`
	// Rate is requests (or connections) per second over the last period.
	Rate float64 `json:"rate"`
	// Latency is the available backends' response latency (EWMA, their
	// mean weighted by weight).
	Latency time.Duration `json:"latency"`
	// Utilisation: in flight / (available x max_conns) with max_conns, else
	// 0; 1 with no backend available.
	Utilisation float64 `json:"utilisation"`
}

// TypeLoadReport is LoadReport's permanent type byte.
const TypeLoadReport CommandType = 6

// maxLoadGroups bounds a report (a proxy has a handful of groups).
const maxLoadGroups = 256

var bucketLoads = []byte("loads")

// Type returns TypeLoadReport.
func (*LoadReport) Type() CommandType { return TypeLoadReport }

func (c *LoadReport) validate() error {
	switch {
	case c.Node == "":
		return errors.New("load report: no node")
	case len(c.Groups) > maxLoadGroups:
		return fmt.Errorf("load report: %d groups, at most %d", len(c.Groups), maxLoadGroups)
	case c.At.IsZero():
		return errors.New("load report: no time")
	}
	return nil
}

// applyLoadReport keeps the newest report of each node.
func (w *writer) applyLoadReport(c *LoadReport) error {
	if old, ok := w.d.next.loads[c.Node]; ok && c.At.Before(old.At) {
		return nil // a late retry of an older report
	}
	loads := make(map[string]LoadReport, len(w.d.next.loads)+1)
	for k, v := range w.d.next.loads {
		loads[k] = v
	}
	loads[c.Node] = *c
	w.put(bucketLoads, []byte(c.Node), c)
	w.d.next.loads = loads
	return nil
}

// Loads returns the newest load report of every node, ordered by region
// then node.
func (s *State) Loads() []LoadReport {
	out := make([]LoadReport, 0, len(s.loads))
	for _, r := range s.loads {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b LoadReport) int {
		return cmp.Or(cmp.Compare(a.Region, b.Region), cmp.Compare(a.Node, b.Node))
	})
	return out
}
