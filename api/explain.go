package api

import (
	"net/netip"
	"time"
)

// ExplainResponse is GET /api/v1/explain?name=NAME&type=A|AAAA with
// client=IP or subnet=PREFIX: why the GSLB record that answers NAME gives
// what it gives, with the in-zone CNAMEs and wildcards followed to the
// record and the state index the snapshot was built from.
type ExplainResponse struct {
	Query      string   `json:"query"`
	Chain      []string `json:"chain"` // the query name first, then each CNAME target
	StateIndex uint64   `json:"state_index"`
	*Explanation
	// DNSSEC is the signing of the record's zone (api/dnssec.go).
	DNSSEC *ExplainDNSSEC `json:"dnssec,omitempty"`
}

// Explanation is why a GSLB record answers what it answers for one client
// and family, step by step (the node's rendering of gslb.Explanation, with
// every prober's vote added).
type Explanation struct {
	Record  string            `json:"record"` // owner name of the GSLB record
	Source  string            `json:"source"` // zone file and line
	Type    string            `json:"type"`   // "A" or "AAAA"
	Client  ClientFacts       `json:"client"`
	Policy  string            `json:"policy"`
	Options map[string]string `json:"options,omitempty"`
	// Order is the region preference of a geo or latency record for the
	// client; nil for policies that do not look at the client's place.
	Order *RegionOrder `json:"order,omitempty"`
	// Latency is the RTT row of the client's network (latency records).
	Latency *LatencyFacts `json:"latency,omitempty"`
	// Pools are the record's pools, in the order the policy prefers them.
	Pools  []PoolFacts `json:"pools"`
	Choice ChoiceFacts `json:"choice"`
	Answer AnswerFacts `json:"answer"`
	Notes  []string    `json:"notes,omitempty"`
}

// ClientFacts is who the answer is for and what the geo database knows.
type ClientFacts struct {
	Addr        netip.Addr `json:"addr"`
	Bits        uint8      `json:"bits"` // ECS source prefix length, or the address length
	Network     string     `json:"network,omitempty"`
	Country     string     `json:"country,omitempty"`
	Continent   string     `json:"continent,omitempty"`
	Subdivision string     `json:"subdivision,omitempty"`
	Located     bool       `json:"located"`
	Lat         float64    `json:"lat,omitempty"`
	Lon         float64    `json:"lon,omitempty"`
	GeoError    string     `json:"geo_error,omitempty"`
}

// RegionOrder is the preference of regions for a client.
type RegionOrder struct {
	Source      string       `json:"source"` // "geo" or "latency"
	Network     string       `json:"network"`
	Rule        string       `json:"rule"`
	Regions     []RegionStep `json:"regions"`
	RecordOrder bool         `json:"record_order"`
}

// RegionStep is one region of an order and why it stands there.
type RegionStep struct {
	Region     string        `json:"region"`
	DistanceKm float64       `json:"distance_km,omitempty"`
	RTT        time.Duration `json:"rtt_ns,omitempty"`
	Why        string        `json:"why"`
}

// LatencyFacts is the RTT table's row for the client's network.
type LatencyFacts struct {
	Network  string        `json:"network"`
	Measured bool          `json:"measured"`
	Best     string        `json:"best,omitempty"`
	At       time.Time     `json:"at,omitzero"`
	RTTs     []RegionRTT   `json:"rtts,omitempty"`
	Note     string        `json:"note,omitempty"`
	Margin   float64       `json:"margin,omitempty"`
	MinGain  time.Duration `json:"min_gain_ns,omitempty"`
}

// RegionRTT is one measured RTT from a region to the client's network.
type RegionRTT struct {
	Region string        `json:"region"`
	RTT    time.Duration `json:"rtt_ns"`
}

// PoolFacts is one pool of the record as the policy sees it.
type PoolFacts struct {
	Pool        string        `json:"pool"`
	Region      string        `json:"region"`
	Weight      int           `json:"weight"`
	Up          bool          `json:"up"`
	Candidate   bool          `json:"candidate"`
	Why         string        `json:"why,omitempty"`
	Probability float64       `json:"probability,omitempty"`
	CNAME       string        `json:"cname,omitempty"`
	Check       string        `json:"check,omitempty"`
	Members     []MemberFacts `json:"members"`
}

// MemberFacts is one pool member, its health in the answers being served,
// the cluster's verdict and every prober's vote.
type MemberFacts struct {
	Addr    netip.Addr `json:"addr"`
	Weight  int        `json:"weight"`
	Up      bool       `json:"up"`
	Family  bool       `json:"family"` // false for a member of the other address family
	Note    string     `json:"note,omitempty"`
	Verdict string     `json:"verdict,omitempty"`
	Votes   []Vote     `json:"votes,omitempty"`
}

// ChoiceFacts is the policy's choice.
type ChoiceFacts struct {
	Pool   string `json:"pool,omitempty"`
	Region string `json:"region,omitempty"`
	Rule   string `json:"rule"`
	Why    string `json:"why"`
}

// AnswerFacts is what DNS answers.
type AnswerFacts struct {
	Addrs    []netip.Addr `json:"addrs"`
	CNAME    string       `json:"cname,omitempty"`
	ServFail bool         `json:"servfail,omitempty"`
	TTL      uint32       `json:"ttl"`
	TTLWhy   string       `json:"ttl_why"`
	Scope    uint8        `json:"scope"`
	ScopeWhy string       `json:"scope_why"`
	Random   bool         `json:"random,omitempty"`
	Note     string       `json:"note,omitempty"`
}
