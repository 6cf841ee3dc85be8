package node

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gslbd/gslb/api"
	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/geodata"
	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/probes"
)

// votes returns every prober's view of every target this node knows of,
// or nil with probes disabled.
func (n *Node) votes() []probes.KeyView {
	if n.health == nil {
		return nil
	}
	return n.health.agg.Snapshot()
}

// ExplainHandler serves GET /api/v1/explain?name=NAME&type=A|AAAA and
// client=IP (a query's source address) or subnet=PREFIX (an ECS client
// subnet): why the GSLB record that answers NAME gives what it gives, from
// the snapshot being served, with each member's per-prober votes from votes
// (nil: none).
//
// signing, if given, tells how the zone of the record's name is signed.
func ExplainHandler(snap func() *dnsserver.Snapshot, geo *geodata.DB, votes func() []probes.KeyView, signing ...func(name string) *api.ExplainDNSSEC) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		name := strings.TrimSpace(q.Get("name"))
		if name == "" {
			httpError(w, http.StatusBadRequest, "name: required")
			return
		}
		fam, err := ParseFamily(q.Get("type"))
		if err != nil {
			httpError(w, http.StatusBadRequest, "%v", err)
			return
		}
		c, err := ParseClient(q.Get("client"), q.Get("subnet"))
		if err != nil {
			httpError(w, http.StatusBadRequest, "%v", err)
			return
		}
		s := snap()
		if s == nil || s.Set() == nil {
			httpError(w, http.StatusServiceUnavailable, "no snapshot is being served yet")
			return
		}
		rec, chain := s.GSLBRecord(name)
		if rec == nil {
			httpError(w, http.StatusNotFound, "name %q: no GSLB record answers it (names followed: %s)", name, strings.Join(chain, " -> "))
			return
		}
		e := rec.ExplainView(fam, c, geo, s.View())
		ae := toAPI(e)
		if votes != nil {
			addVotes(ae, e, votes())
		}
		resp := api.ExplainResponse{Query: name, Chain: chain, StateIndex: s.Index, Explanation: ae}
		for _, f := range signing {
			resp.DNSSEC = f(chain[len(chain)-1])
		}
		writeJSON(w, resp)
	}
}

// ParseFamily parses type=: A (the default) or AAAA.
func ParseFamily(t string) (gslb.Family, error) {
	switch strings.ToUpper(strings.TrimSpace(t)) {
	case "", "A":
		return gslb.IPv4, nil
	case "AAAA":
		return gslb.IPv6, nil
	}
	return 0, fmt.Errorf("type: %q is not A or AAAA (GSLB records answer addresses)", t)
}

// ParseClient parses client= (an address, as a query's source) or
// subnet= (a prefix, as an EDNS client subnet, RFC 7871): exactly one.
func ParseClient(client, subnet string) (gslb.Client, error) {
	switch {
	case client != "" && subnet != "":
		return gslb.Client{}, fmt.Errorf("client=%q and subnet=%q: give one of them", client, subnet)
	case client != "":
		a, err := netip.ParseAddr(strings.TrimSpace(client))
		if err != nil || a.Zone() != "" {
			return gslb.Client{}, fmt.Errorf("client: %q is not an IP address", client)
		}
		a = a.Unmap()
		return gslb.Client{Addr: a, Bits: uint8(a.BitLen())}, nil
	case subnet != "":
		p, err := netip.ParsePrefix(strings.TrimSpace(subnet))
		if err != nil {
			return gslb.Client{}, fmt.Errorf("subnet: %q is not a prefix such as 192.0.2.0/24", subnet)
		}
		bits := p.Bits()
		if p.Addr().Is4In6() {
			if bits < 96 {
				return gslb.Client{}, fmt.Errorf("subnet: %q: an IPv4-mapped prefix needs /96 or longer", subnet)
			}
			bits -= 96
		}
		a := p.Addr().Unmap()
		p, _ = a.Prefix(bits)
		return gslb.Client{Addr: p.Addr(), Bits: uint8(bits)}, nil
	}
	return gslb.Client{}, fmt.Errorf("client or subnet: one is required")
}

// addVotes fills in each checked member's cluster verdict and every
// prober's vote, and says when the answers disagree with the verdict. src
// is the explanation ae was made from (for each pool's check).
func addVotes(ae *api.Explanation, src *gslb.Explanation, kvs []probes.KeyView) {
	byKey := make(map[string]probes.KeyView, len(kvs))
	for _, kv := range kvs {
		byKey[kv.Key] = kv
	}
	for i := range ae.Pools {
		p, zp := &ae.Pools[i], src.Pools[i].Src
		for j := range p.Members {
			m := &p.Members[j]
			if zp == nil || zp.Check.Scheme == "" {
				m.Verdict = "not checked: always up"
				continue
			}
			kv, ok := byKey[probes.Target{Check: zp.Check, Addr: m.Addr}.Key()]
			if !ok || !kv.Known {
				m.Verdict = "unknown: no verdict yet, counts as up"
			} else {
				m.Verdict = "down"
				if kv.Up {
					m.Verdict = "up"
				}
				if !kv.Since.IsZero() {
					m.Verdict += " since " + kv.Since.UTC().Format(time.RFC3339)
				}
				switch {
				case kv.Up && !m.Up && m.Weight > 0:
					m.Note = joinNote(m.Note, "down in the answers although the verdict is up: an operator override (drain, force-down)")
				case !kv.Up && m.Up:
					m.Note = joinNote(m.Note, "up in the answers although the verdict is down: an operator override (force-up)")
				}
			}
			for _, pv := range kv.Probers {
				m.Votes = append(m.Votes, api.Vote{Prober: pv.Prober, Region: pv.Region, Up: pv.Up,
					Fresh: pv.Fresh, Suspect: pv.Suspect, Reason: pv.Reason, RTT: pv.RTT})
			}
		}
	}
}

// toAPI is the admin API's shape of an explanation.
func toAPI(e *gslb.Explanation) *api.Explanation {
	c := e.Client
	out := &api.Explanation{Record: e.Record, Source: e.Source, Type: e.Type, Policy: e.Policy, Options: e.Options, Notes: e.Notes,
		Client: api.ClientFacts{Addr: c.Addr, Bits: c.Bits, Network: c.Network, Country: c.Country, Continent: c.Continent,
			Subdivision: c.Subdivision, Located: c.Located, Lat: c.Lat, Lon: c.Lon, GeoError: c.GeoError},
		Choice: api.ChoiceFacts{Pool: e.Choice.Pool, Region: e.Choice.Region, Rule: e.Choice.Rule, Why: e.Choice.Why},
		Answer: api.AnswerFacts{Addrs: e.Answer.Addrs, CNAME: e.Answer.CNAME, ServFail: e.Answer.ServFail, TTL: e.Answer.TTL,
			TTLWhy: e.Answer.TTLWhy, Scope: e.Answer.Scope, ScopeWhy: e.Answer.ScopeWhy, Random: e.Answer.Random, Note: e.Answer.Note},
		Pools: []api.PoolFacts{},
	}
	if o := e.Order; o != nil {
		ao := &api.RegionOrder{Source: o.Source, Network: o.Network, Rule: o.Rule, RecordOrder: o.RecordOrder, Regions: []api.RegionStep{}}
		for _, r := range o.Regions {
			ao.Regions = append(ao.Regions, api.RegionStep{Region: r.Region, DistanceKm: r.DistanceKm, RTT: r.RTT, Why: r.Why})
		}
		out.Order = ao
	}
	if l := e.Latency; l != nil {
		al := &api.LatencyFacts{Network: l.Network, Measured: l.Measured, Best: l.Best, At: l.At, Note: l.Note, Margin: l.Margin, MinGain: l.MinGain}
		for _, r := range l.RTTs {
			al.RTTs = append(al.RTTs, api.RegionRTT{Region: r.Region, RTT: r.RTT})
		}
		out.Latency = al
	}
	for _, p := range e.Pools {
		ap := api.PoolFacts{Pool: p.Pool, Region: p.Region, Weight: p.Weight, Up: p.Up, Candidate: p.Candidate, Why: p.Why,
			Probability: p.Probability, CNAME: p.CNAME, Check: p.Check, Members: []api.MemberFacts{}}
		for _, m := range p.Members {
			ap.Members = append(ap.Members, api.MemberFacts{Addr: m.Addr, Weight: m.Weight, Up: m.Up, Family: m.Family, Note: m.Note})
		}
		out.Pools = append(out.Pools, ap)
	}
	return out
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
