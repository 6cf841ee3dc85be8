// Package probes health-checks pool members from this node's region and turns
// the probers' views into cluster-wide verdicts.
//
// A Checker runs one probe (tcp, http, https, dns) with a timeout and a
// measured duration. A Prober runs every target it is given on a jittered
// schedule with bounded concurrency, applies hysteresis (fails/passes) per
// target with fast confirmation (a state in doubt is re-checked at a tenth
// of the interval) and flap damping, keeps smoothed RTTs, and sends Reports
// (plain data) to a Sink; CheckNow re-checks targets at once when the node
// learns something before their checks are due. An Aggregator is a Sink: it
// combines the reports of every prober, local or carried by the replicated
// store, into quorum verdicts per target key, counting only the probers
// that are fresh.
//
// Probers report transitions and periodic summaries, not every sample: a
// Report is small, self-describing data that the store can replicate
// without either side changing.
package probes
