package node

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/geodata"
	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/probes"
)

// ExplainResponse is GET /api/v1/explain: the explanation of one GSLB
// answer, with the query name, the in-zone CNAMEs and wildcards followed to
// the record, and the state index the snapshot was built from.
type ExplainResponse struct {
	Query      string   `json:"query"`
	Chain      []string `json:"chain"` // the query name first, then each CNAME target
	StateIndex uint64   `json:"state_index"`
	*gslb.Explanation
}

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
func ExplainHandler(snap func() *dnsserver.Snapshot, geo *geodata.DB, votes func() []probes.KeyView) http.HandlerFunc {
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
		if votes != nil {
			addVotes(e, votes())
		}
		writeJSON(w, ExplainResponse{Query: name, Chain: chain, StateIndex: s.Index, Explanation: e})
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
// prober's vote, and says when the snapshot disagrees with the verdict.
func addVotes(e *gslb.Explanation, kvs []probes.KeyView) {
	byKey := make(map[string]probes.KeyView, len(kvs))
	for _, kv := range kvs {
		byKey[kv.Key] = kv
	}
	for i := range e.Pools {
		p := &e.Pools[i]
		for j := range p.Members {
			m := &p.Members[j]
			if p.Src == nil || p.Src.Check.Scheme == "" {
				m.Verdict = "not checked: always up"
				continue
			}
			kv, ok := byKey[probes.Target{Check: p.Src.Check, Addr: m.Addr}.Key()]
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
					m.Note = joinNote(m.Note, "down in the snapshot although the verdict is up: an operator override (drain, force-down)")
				case !kv.Up && m.Up:
					m.Note = joinNote(m.Note, "up in the snapshot although the verdict is down: an operator override (force-up), or the snapshot predates the verdict")
				}
			}
			for _, pv := range kv.Probers {
				m.Votes = append(m.Votes, gslb.Vote{Prober: pv.Prober, Region: pv.Region, Up: pv.Up,
					Fresh: pv.Fresh, Suspect: pv.Suspect, Reason: pv.Reason, RTT: pv.RTT})
			}
		}
	}
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
