package api

import (
	"context"
	"time"
)

// DNSSEC is the signing state of a node (Status.DNSSEC): the signed zones
// with their keys and DS records, and the signer's counters.
type DNSSEC struct {
	Zones []DNSSECZone `json:"zones"`
	// Signatures made, and RRsets signed from the cache (hits) or afresh
	// (misses), since the node started.
	Signatures  uint64 `json:"signatures"`
	CacheHits   uint64 `json:"cache_hits"`
	CacheMisses uint64 `json:"cache_misses"`
	// EarliestExpiry is the earliest expiration of a signature the
	// signature cache still hands out.
	EarliestExpiry time.Time `json:"earliest_expiry,omitzero"`
}

// DNSSECZone is one signed zone.
type DNSSECZone struct {
	Zone string      `json:"zone"`
	Keys []DNSSECKey `json:"keys"`
	// DS are the DS records (SHA-256) of the zone's KSKs or CSKs, in
	// zone-file format: what the parent zone should hold.
	DS []string `json:"ds"`
}

// DNSSECKey is one zone key.
type DNSSECKey struct {
	Tag       uint16    `json:"tag"`
	Role      string    `json:"role"`  // csk, ksk or zsk
	State     string    `json:"state"` // published, active or retired
	Algorithm uint8     `json:"algorithm"`
	Created   time.Time `json:"created"`
	DS        string    `json:"ds"`
}

// RolloverRequest is POST /api/v1/dnssec/rollover: one step of a key
// rollover (prepublish, switch or remove) of zone's keys of role (csk, ksk
// or zsk; empty: the zone's CSK).
type RolloverRequest struct {
	Zone string `json:"zone"`
	Step string `json:"step"`
	Role string `json:"role,omitempty"`
}

// Rollover posts one rollover step and returns the zone's keys after it.
func (c *Client) Rollover(ctx context.Context, req RolloverRequest) ([]DNSSECKey, error) {
	var keys []DNSSECKey
	_, err := c.Do(ctx, "POST", "/api/v1/dnssec/rollover", req, &keys)
	return keys, err
}

// ExplainDNSSEC is how the answer explained is signed
// (ExplainResponse.DNSSEC): the zone, whether it is signed, and with which
// keys; nil when the node signs no zone.
type ExplainDNSSEC struct {
	Zone   string      `json:"zone"`
	Signed bool        `json:"signed"`
	Keys   []DNSSECKey `json:"keys,omitempty"`
	DS     []string    `json:"ds,omitempty"`
}
