package probes

import (
	"net/netip"
	"time"

	"github.com/gslbd/gslb/zones"
)

// A Sink receives a prober's reports. A Prober calls Report serially, in the
// order it built the reports, from its own goroutines; different probers may
// call one Sink concurrently. Report must not block for long: the Aggregator
// applies a report in memory, and a replicating Sink should queue it.
type Sink interface {
	Report(Report)
}

// Report is what one prober tells the cluster: plain data, safe to copy,
// encode and replicate. A prober sends a Full report every Every (its
// heartbeat, with RTT summaries) and a delta report at once on every
// transition. A prober whose reports stop for 3×Every drops out of the
// verdicts.
type Report struct {
	Prober string
	Region string
	// Time is when the prober built the report; a receiver ignores a report
	// older than the last one it applied from the same prober.
	Time  time.Time
	Every time.Duration
	// Full says Statuses lists every target the prober checks (that it has
	// probed at least once); targets absent from a full report are no longer
	// checked by it. A report that is not Full carries changes only.
	Full     bool
	Statuses []Status
	// RTTs are the prober's smoothed RTTs to region nodes and client
	// networks (full reports only).
	RTTs []RTT
}

// Status is one prober's verdict on one target.
type Status struct {
	Key    string // Target.Key
	Target string // readable, e.g. "http://192.0.2.10:80/healthz"
	Up     bool
	// Since is when Up last changed, or when the first result came in.
	Since time.Time
	// Reason is the last result's error, or what it saw ("HTTP 200").
	Reason string
	// Quorum is the check's quorum= rule, applied by the aggregator.
	Quorum zones.Quorum
	// RTT is the smoothed connect or query time to the target, MinRTT the
	// least of the recent samples; both 0 until measured.
	RTT, MinRTT time.Duration
	// CertExpiry is the https server certificate's NotAfter.
	CertExpiry time.Time
}

// RTT kinds.
const (
	KindRegion  = "region"  // Name is a region, Addr its node
	KindNetwork = "network" // Name is a client network prefix, Addr the address probed in it
)

// RTT is a smoothed round-trip time from a prober to a region's node or to a
// client network.
type RTT struct {
	Kind string // KindRegion or KindNetwork
	Name string
	Addr netip.Addr
	// EWMA is the moving average and Min the least of the recent samples.
	EWMA, Min time.Duration
	// Time is when the last sample was taken.
	Time time.Time
}
