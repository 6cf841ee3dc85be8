package gslb

import (
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/gslbd/gslb/geodata"
	"github.com/gslbd/gslb/zones"
)

// Explanation says why a GSLB record answers what it answers for one client
// and family, step by step: the client's geo facts, the region order the
// policy sees, the RTTs of a latency record, every candidate pool with its
// members' health in the View, the policy's choice and the answer, which
// comes from Record.Answer itself so the two never disagree. It is plain
// data; the admin API's JSON shape of it is api.Explanation.
type Explanation struct {
	Record  string // owner name of the GSLB record
	Source  string // zone file and line
	Type    string // "A" or "AAAA"
	Client  ClientFacts
	Policy  string
	Options map[string]string
	// Order is the region preference of a geo or latency record for the
	// client; nil for policies that do not look at the client's place.
	Order *RegionOrder
	// Latency is the RTT row of the client's network (latency records).
	Latency *LatencyFacts
	// Pools are the record's pools, in the order the policy prefers them
	// for this client (record order for failover, weighted and all).
	Pools  []PoolFacts
	Choice ChoiceFacts
	Answer AnswerFacts
	Notes  []string
	client Client       // as given
	geo    geodata.Info // the client's database record
}

// ClientFacts is who the answer is for and what the geo database knows.
type ClientFacts struct {
	Addr netip.Addr
	// Bits is the ECS source prefix length, or the address length for a
	// query's source address.
	Bits        uint8
	Network     string // the database network that matched
	Country     string
	Continent   string
	Subdivision string
	Located     bool
	Lat         float64
	Lon         float64
	GeoError    string
}

// RegionOrder is the preference of regions for a client.
type RegionOrder struct {
	Source string // "geo" or "latency"
	// Network is the client network the order holds for: the merged geo
	// map's network, or the measured client network.
	Network string
	Rule    string
	Regions []RegionStep
	// RecordOrder: the client is not located, so after Regions come the
	// record's other pools in the order the record lists them.
	RecordOrder bool
}

// RegionStep is one region of an order and why it stands there.
type RegionStep struct {
	Region     string
	DistanceKm float64       // great-circle, when both ends are located
	RTT        time.Duration // latency records: measured RTT
	Why        string
}

// LatencyFacts is the RTT table's row for the client's network.
type LatencyFacts struct {
	Network  string
	Measured bool
	Best     string    // the best region, with hysteresis
	At       time.Time // when the row was measured
	RTTs     []RegionRTT
	Note     string
	Margin   float64
	MinGain  time.Duration
}

// RegionRTT is one measured RTT from a region to the client's network.
type RegionRTT struct {
	Region string
	RTT    time.Duration
}

// PoolFacts is one pool of the record as the policy sees it.
type PoolFacts struct {
	Pool   string
	Region string
	Weight int // the record's weight for the pool
	// Up: the pool can be chosen for this family (a healthy member).
	Up bool
	// Candidate: the policy may choose the pool for this client at all.
	Candidate bool
	Why       string // why it stands at this place
	// Probability is the chance of a weighted draw (or, with sticky=prefix,
	// the share of client networks) choosing the pool.
	Probability float64
	CNAME       string
	Check       string // e.g. "http://:80/healthz"
	Members     []MemberFacts
	// Src is the zone's pool, for callers that add probers' votes.
	Src *zones.Pool
}

// MemberFacts is one pool member and its health in the View.
type MemberFacts struct {
	Addr   netip.Addr
	Weight int
	Up     bool // handed out in the View
	// Family is false for a member of the other address family.
	Family bool
	Note   string
}

// ChoiceFacts is the policy's choice.
type ChoiceFacts struct {
	Pool   string // empty: every pool (all), a random draw, or none
	Region string
	// Rule is how the policy chose: "first healthy in region order",
	// "first healthy in record order", "weighted draw", "rendezvous hash",
	// "every healthy pool", "empty=...".
	Rule string
	Why  string
}

// AnswerFacts is what DNS answers, from Record.Answer.
type AnswerFacts struct {
	// Addrs is empty when the answer is drawn per query (Random).
	Addrs    []netip.Addr
	CNAME    string
	ServFail bool
	TTL      uint32
	TTLWhy   string
	Scope    uint8
	ScopeWhy string
	// Random: two queries may get different answers; Note says how.
	Random bool
	Note   string
}

// earthKm is the mean radius of the earth, for distances in km.
const earthKm = 6371.0088

// Explain explains r's answer for client c and family f in the Set's
// DefaultView (see ExplainView).
func (r *Record) Explain(f Family, c Client, geo *geodata.DB) *Explanation {
	return r.ExplainView(f, c, geo, nil)
}

// ExplainView explains r's answer for client c and family f with the
// health and RTTs of v (nil: the Set's DefaultView), the view DNS answers
// from. geo is the database the Set was compiled with (nil: none); it
// gives the client's facts. ExplainView calls the real Answer, so it may
// queue the client's network for RTT measurement as a query would.
func (r *Record) ExplainView(f Family, c Client, geo *geodata.DB, v *View) *Explanation {
	s := r.set
	v = r.view(v)
	fi := famIndex(f)
	mode := fi
	if r.opts.fallback {
		mode = 2 + fi
	}
	e := &Explanation{Record: r.Name, Type: "A", Policy: "?", client: c}
	if f == IPv6 {
		e.Type = "AAAA"
	}
	if r.src != nil {
		e.Source = r.src.Pos.String()
		e.Policy = r.src.Policy
		if len(r.src.Options) > 0 {
			e.Options = r.src.Options
		}
	}
	e.Client = ClientFacts{Addr: c.Addr, Bits: c.Bits}
	if geo != nil && c.Addr.IsValid() {
		in, err := geo.Lookup(c.Addr)
		if err != nil {
			e.Client.GeoError = err.Error()
		} else {
			e.geo = in
			e.Client.Network = in.Network.String()
			e.Client.Country, e.Client.Continent, e.Client.Subdivision = in.Country, in.Continent, in.Subdivision
			if in.HasLocation {
				e.Client.Located, e.Client.Lat, e.Client.Lon = true, in.Lat, in.Lon
			}
		}
	} else if geo == nil {
		e.Client.GeoError = "no geo database"
	}

	// The pools in the policy's preference, and the region order.
	order := make([]int, len(r.pools)) // indices into r.pools
	for i := range order {
		order[i] = i
	}
	why := map[int]string{}
	candidate := map[int]bool{}
	for i := range r.pools {
		candidate[i] = true
	}
	var geoBits uint8
	switch p := r.Policy.(type) {
	case *geoPolicy:
		o, bits := p.m.lookup(c.Addr)
		geoBits = bits
		e.Order = r.explainOrder(p.m.orders[o], "geo", netip.PrefixFrom(c.Addr, int(bits)).Masked(), e)
		order, why, candidate = r.explainPools(p.m.orders[o])
	case *latencyPolicy:
		pfx, _ := clientNetwork(&c)
		e.Latency = explainLatency(v.lat, pfx)
		if ord, ok := v.nets[pfx]; ok {
			e.Latency.Measured = true
			e.Order = r.explainLatencyOrder(ord, pfx, e.Latency)
			order, why, candidate = r.explainPools(ord)
		} else {
			e.Latency.Measured = false
			e.Latency.Note = "not measured, geo used (the network is queued for the probers to measure)"
			o, bits := p.geo.m.lookup(c.Addr)
			geoBits = bits
			e.Order = r.explainOrder(p.geo.m.orders[o], "geo", netip.PrefixFrom(c.Addr, int(bits)).Masked(), e)
			order, why, candidate = r.explainPools(p.geo.m.orders[o])
		}
	case *failoverPolicy:
		for i := range r.pools {
			why[i] = fmt.Sprintf("record order #%d", i+1)
		}
	}
	var ww []int // a weighted record's weights in mode
	wtotal := 0
	if _, ok := r.Policy.(*weightedPolicy); ok {
		ww = make([]int, len(r.pools))
		wtotal = weights(r, v, mode, false, ww)
	}
	for _, i := range order {
		p := s.pools[r.pools[i]]
		pf := PoolFacts{Pool: p.name, Region: s.regions[p.region].Name, Weight: r.pw[i], Up: v.upIn(r.pools[i], mode),
			Candidate: candidate[i], Why: why[i], CNAME: p.cname, Src: p.src}
		if p.src != nil {
			pf.Check = checkString(p.src.Check)
			pf.Members = explainMembers(&v.pools[r.pools[i]], p.src, fi)
		}
		if ww != nil && wtotal > 0 {
			pf.Probability = float64(ww[i]) / float64(wtotal)
			if ww[i] > 0 && r.pw[i] == 0 {
				pf.Why = "weight 0: a backup, used because no pool of positive weight is up"
			}
		}
		e.Pools = append(e.Pools, pf)
	}

	// The choice, then the real answer.
	pi, _ := r.Policy.Choose(r, v, mode, &c, false)
	ans := r.Answer(nil, f, &c, v)
	e.Choice = r.explainChoice(pi, mode, &c, e, v)
	e.Answer = AnswerFacts{Addrs: ans.Addrs, CNAME: ans.CNAME, ServFail: ans.ServFail, TTL: ans.TTL, Scope: ans.Scope}
	if e.Answer.Addrs == nil {
		e.Answer.Addrs = []netip.Addr{}
	}
	e.Answer.TTLWhy = fmt.Sprintf("the record's TTL %d", r.TTL)
	if v.halfTTL(r) {
		e.Answer.TTLWhy = fmt.Sprintf("half the record's TTL %d: a member of the record's pools is down", r.TTL)
	}
	e.Answer.ScopeWhy = r.explainScope(ans, pi, geoBits, &c, v)
	only := -1 // the one pool a weighted draw can give, if just one
	if r.Policy.Random() && pi >= 0 {
		for k, p := range e.Pools {
			if p.Probability > 0 {
				if only != -1 {
					only = -2
					break
				}
				only = k
			}
		}
	}
	switch {
	case only >= 0:
		p := e.Pools[only]
		e.Choice.Pool, e.Choice.Region = p.Pool, p.Region
		e.Choice.Why = fmt.Sprintf("a random draw per query by the record's weights among the up pools, but only %s is up: every draw gives it", p.Pool)
		if r.opts.randomSel && len(ans.Addrs) > 0 {
			e.Answer.Random = true
			e.Answer.Note = fmt.Sprintf("answers=%d: %d of the chosen pool's members drawn by weight per query; this is one draw", r.opts.answers, r.opts.answers)
		}
	case r.Policy.Random():
		e.Answer.Random = true
		e.Answer.Addrs = []netip.Addr{}
		e.Answer.Note = "a weighted draw per query: each pool's probability is shown; the answer is that pool's healthy members"
		if pi == -1 {
			e.Answer.Note = "nothing is healthy: see the choice"
		}
		if r.opts.answers > 0 {
			e.Answer.Note += fmt.Sprintf(" (answers=%d of them, drawn by weight)", r.opts.answers)
		}
	case r.opts.randomSel && pi != allPools && !ans.ServFail && ans.CNAME == "" && len(ans.Addrs) > 0:
		e.Answer.Random = true
		e.Answer.Note = fmt.Sprintf("answers=%d: %d of the chosen pool's members drawn by weight per query; this is one draw", r.opts.answers, r.opts.answers)
	}
	return e
}

// explainChoice says which pool the policy chose and why.
func (r *Record) explainChoice(pi, mode int, c *Client, e *Explanation, v *View) ChoiceFacts {
	s := r.set
	name := func(i int) (string, string) {
		p := s.pools[r.pools[i]]
		return p.name, s.regions[p.region].Name
	}
	fam := e.Type
	if pi == -1 {
		ch := ChoiceFacts{Rule: "empty=open"}
		switch r.opts.empty {
		case emptyServFail:
			ch.Rule, ch.Why = "empty=servfail", "no pool has a healthy "+fam+" member: the record asks for SERVFAIL"
		case emptyAddr:
			ch.Rule, ch.Why = "empty=addr", fmt.Sprintf("no pool has a healthy %s member: the record's fixed address %s answers (if of this family)", fam, r.emptyIP)
		case emptyPool:
			p := s.pools[r.opts.emptyTo]
			ch.Rule, ch.Pool, ch.Region = "empty=pool", p.name, s.regions[p.region].Name
			ch.Why = fmt.Sprintf("no pool has a healthy %s member: the fallback pool %s answers with all its members", fam, p.name)
		default:
			oi, _ := r.Policy.Choose(r, v, mode, c, true)
			ch.Why = "no pool has a healthy " + fam + " member: fail open, answering as if every member were up"
			switch {
			case oi == allPools:
				ch.Why += " (every member of every pool)"
			case oi >= 0:
				ch.Pool, ch.Region = name(oi)
				if _, ok := r.Policy.(*weightedPolicy); ok && r.Policy.Random() {
					ch.Pool, ch.Region = "", ""
					ch.Why += " (a pool drawn by the record's weights)"
				}
			default:
				ch.Why += " (but no pool is a candidate for this client)"
			}
		}
		return ch
	}
	if pi == allPools {
		var up []string
		for _, p := range e.Pools {
			if p.Up {
				up = append(up, p.Pool)
			}
		}
		ch := ChoiceFacts{Rule: "every healthy pool", Why: "the all policy answers every healthy member of every pool: " + strings.Join(up, ", ")}
		if r.opts.answers > 0 {
			ch.Why += fmt.Sprintf(", the first %d addresses", r.opts.answers)
		}
		return ch
	}
	ch := ChoiceFacts{}
	switch p := r.Policy.(type) {
	case *failoverPolicy:
		ch.Pool, ch.Region = name(pi)
		ch.Rule = "first healthy in record order"
		ch.Why = fmt.Sprintf("%s is the first pool in record order with a healthy %s member", ch.Pool, fam)
		if skipped := downBefore(e.Pools, ch.Pool); len(skipped) > 0 {
			ch.Why += "; skipped (down): " + strings.Join(skipped, ", ")
		}
	case *geoPolicy, *latencyPolicy:
		ch.Pool, ch.Region = name(pi)
		src := "the client's region order"
		if e.Latency != nil && e.Latency.Measured {
			src = "the client network's RTT order"
		}
		ch.Rule = "first healthy in region order"
		ch.Why = fmt.Sprintf("%s (region %s) is the first pool in %s with a healthy %s member", ch.Pool, ch.Region, src, fam)
		if skipped := downBefore(e.Pools, ch.Pool); len(skipped) > 0 {
			ch.Why += "; skipped (down): " + strings.Join(skipped, ", ")
		}
	case *weightedPolicy:
		if p.sticky {
			ch.Pool, ch.Region = name(pi)
			pfx, bits := stickyPrefix(p, c)
			ch.Rule = "rendezvous hash"
			ch.Why = fmt.Sprintf("sticky=prefix: weighted rendezvous hash of the client network %s over the up pools (/%d) picks %s", pfx, bits, ch.Pool)
		} else {
			ch.Rule = "weighted draw"
			var parts []string
			for _, pf := range e.Pools {
				if pf.Probability > 0 {
					parts = append(parts, fmt.Sprintf("%s %.1f%%", pf.Pool, 100*pf.Probability))
				}
			}
			ch.Why = "a random draw per query by the record's weights among the up pools: " + strings.Join(parts, ", ")
		}
	case *loadPolicy:
		ch.Pool, ch.Region = name(pi)
		pfx, bits := stickyPrefix(&p.weightedPolicy, c)
		ch.Rule = "rendezvous hash by spare capacity"
		ch.Why = fmt.Sprintf("weighted rendezvous hash of the client network %s (/%d) over the up pools, each weighted by its weight x its region's spare capacity (%s), picks %s",
			pfx, bits, r.loadFigures(v, mode), ch.Pool)
	default:
		ch.Pool, ch.Region = name(pi)
		ch.Rule = "policy"
		ch.Why = "chosen by the policy"
	}
	if f := r.spillFigures(v); f != "" {
		ch.Why += "; " + f
	}
	return ch
}

// loadFigures lists the load figures a load record is answered with: each
// up pool's region load, spare capacity and share of client networks.
func (r *Record) loadFigures(v *View, mode int) string {
	w := make([]int, len(r.pools))
	total := loadWeights(r, v, mode, false, w)
	full := true
	for i, pi := range r.pools {
		if w[i] > 0 && v.spare(pi) > 0 {
			full = false
		}
	}
	var parts []string
	for i, pi := range r.pools {
		p := v.set.pools[pi]
		region := v.set.regions[p.region].Name
		load := "load unknown"
		if l, ok := v.LoadLevel(region); ok {
			load = fmt.Sprintf("load %d%%", l)
		}
		share := "down"
		if !v.upIn(pi, mode) {
			parts = append(parts, fmt.Sprintf("%s in %s: %s, %s", p.name, region, load, share))
			continue
		}
		if total > 0 {
			share = fmt.Sprintf("%.1f%% of networks", 100*float64(w[i])/float64(total))
		}
		if full {
			share += " (every region full: by weight alone)"
		}
		parts = append(parts, fmt.Sprintf("%s in %s: %s, %s", p.name, region, load, share))
	}
	return strings.Join(parts, "; ")
}

func stickyPrefix(p *weightedPolicy, c *Client) (netip.Prefix, int) {
	bits := p.bits6
	if c.Addr.Is4() {
		bits = p.bits4
	}
	bits = min(bits, int(c.Bits))
	pfx, _ := c.Addr.Prefix(bits)
	return pfx, bits
}

// downBefore lists the candidate pools before chosen that are down.
func downBefore(pools []PoolFacts, chosen string) []string {
	var out []string
	for _, p := range pools {
		if p.Pool == chosen {
			break
		}
		if p.Candidate && !p.Up {
			out = append(out, p.Pool)
		}
	}
	return out
}

// explainScope says what the ECS scope of the answer depended on.
func (r *Record) explainScope(a Answer, pi int, geoBits uint8, c *Client, v *View) string {
	if a.ServFail {
		return "no answer (SERVFAIL)"
	}
	if a.Scope == 0 {
		if pi == -1 {
			return "0: nothing healthy, the fallback does not depend on the client"
		}
		return "0: the answer does not depend on the client's address"
	}
	if r.spillFigures(v) != "" {
		return fmt.Sprintf("/%d: at least the client network spill= hashes (/24 IPv4, /48 IPv6, capped at the client's /%d)", a.Scope, c.Bits)
	}
	switch p := r.Policy.(type) {
	case *weightedPolicy:
		return fmt.Sprintf("/%d: the client prefix hashed by sticky=prefix (prefix4=%d, prefix6=%d, capped at the client's /%d)", a.Scope, p.bits4, p.bits6, c.Bits)
	case *loadPolicy:
		return fmt.Sprintf("/%d: the client prefix hashed by the load policy (prefix4=%d, prefix6=%d, capped at the client's /%d)", a.Scope, p.bits4, p.bits6, c.Bits)
	case *latencyPolicy:
		pfx, bits := clientNetwork(c)
		if _, ok := v.nets[pfx]; ok {
			return fmt.Sprintf("/%d: the client network RTTs are kept for, %s (/24 IPv4, /48 IPv6, capped at the client's /%d)", bits, pfx, c.Bits)
		}
	}
	pfx := netip.PrefixFrom(c.Addr, int(geoBits)).Masked()
	if geoBits <= c.Bits {
		return fmt.Sprintf("/%d: the geo map network %s (database networks with the same region order merged)", a.Scope, pfx)
	}
	return fmt.Sprintf("/%d: the client's ECS source prefix, shorter than the geo map network %s", a.Scope, pfx)
}

// explainPools returns the record's pools in an ordering's preference
// (then the pools that are no candidates), why each stands there, and
// which are candidates.
func (r *Record) explainPools(o ordering) ([]int, map[int]string, map[int]bool) {
	s := r.set
	prefs := o.poolOrder(r, s)
	why := map[int]string{}
	cand := map[int]bool{}
	rank := map[int]int{}
	for k, reg := range o.regions {
		rank[reg] = k + 1
	}
	for _, i := range prefs {
		cand[i] = true
		reg := s.pools[r.pools[i]].region
		if k, ok := rank[reg]; ok {
			why[i] = fmt.Sprintf("region %s is #%d in the order", s.regions[reg].Name, k)
		} else {
			why[i] = "record order (the client is not located)"
		}
	}
	out := append([]int(nil), prefs...)
	for i := range r.pools {
		if !cand[i] {
			out = append(out, i)
			why[i] = fmt.Sprintf("never chosen for this client: region %s is not in its order", s.regions[s.pools[r.pools[i]].region].Name)
		}
	}
	return out, why, cand
}

// explainOrder explains a geo ordering for the client: which regions serve
// it explicitly (serves= prefix, country, continent) and the distances.
func (r *Record) explainOrder(o ordering, source string, network netip.Prefix, e *Explanation) *RegionOrder {
	s := r.set
	c := e.client
	in := e.geo
	ro := &RegionOrder{Source: source, Network: network.String(), RecordOrder: o.recordOrder}
	// Recompute the tiers the way buildGeoMap did, to say why.
	explicit, best := servesPrefix(s.regions, c.Addr)
	tierWhy := map[int]string{}
	var k geoKey
	if in.Country != "" || in.Continent != "" || in.HasLocation {
		k = geoKey{in.Country, in.Continent, in.Lat, in.Lon, in.HasLocation}
	}
	var rule string
	switch {
	case len(explicit) > 0:
		for _, i := range explicit {
			tierWhy[i] = "serves=" + best.String() + " (client prefix)"
		}
		rule = "regions whose serves= holds the client's most specific prefix " + best.String()
	case k.country != "" && anyServes(s.regions, k.country, true):
		for i, reg := range s.regions {
			if contains(reg.Countries, k.country) {
				tierWhy[i] = "serves=" + k.country + " (country)"
			}
		}
		rule = "regions that serve the client's country " + k.country
	case k.continent != "" && anyServes(s.regions, k.continent, false):
		for i, reg := range s.regions {
			if contains(reg.Continents, k.continent) {
				tierWhy[i] = "serves=" + k.continent + " (continent)"
			}
		}
		rule = "regions that serve the client's continent " + k.continent
	default:
		rule = "no region serves the client's prefix, country or continent"
	}
	if k.located {
		rule += ", nearest first; then every other region with coordinates, by great-circle distance"
	} else {
		rule += "; the client is not located, so then the record's other pools in record order"
	}
	ro.Rule = rule
	var tier []int
	for i := range tierWhy {
		tier = append(tier, i)
	}
	sort.Ints(tier)
	if want := orderFor(k, explicitOrNil(explicit), s.regions); want.key() != o.key() {
		e.Notes = append(e.Notes, "the region order was compiled from another geo database or zone set than this explanation's; the compiled order is shown, the reasons may not match")
	}
	for _, reg := range o.regions {
		rs := RegionStep{Region: s.regions[reg].Name, Why: tierWhy[reg]}
		if k.located && s.regions[reg].HasCoords {
			rs.DistanceKm = math.Round(10*earthKm*greatCircle(k.lat, k.lon, s.regions[reg].Lat, s.regions[reg].Lon)) / 10
		}
		if rs.Why == "" {
			rs.Why = "by distance"
			if len(ro.Regions) == 0 {
				rs.Why = "nearest"
			}
		} else if len(ro.Regions) == 0 && k.located && len(tier) > 1 {
			rs.Why += fmt.Sprintf(", the nearest of the %d regions that serve the client", len(tier))
		}
		ro.Regions = append(ro.Regions, rs)
	}
	if len(ro.Regions) > 0 {
		ro.Regions[0].Why = "first: " + ro.Regions[0].Why
	}
	return ro
}

func explicitOrNil(x []int) []int {
	if len(x) == 0 {
		return nil
	}
	return x
}

func anyServes(regions []*zones.Region, code string, country bool) bool {
	for _, r := range regions {
		if country && contains(r.Countries, code) || !country && contains(r.Continents, code) {
			return true
		}
	}
	return false
}

// servesPrefix returns the regions whose serves= holds the most specific
// prefix containing a, as buildGeoMap tags them, and that prefix.
func servesPrefix(regions []*zones.Region, a netip.Addr) ([]int, netip.Prefix) {
	a = a.Unmap()
	var best netip.Prefix
	for _, r := range regions {
		for _, p := range r.Prefixes {
			if p.Contains(a) && (!best.IsValid() || p.Bits() > best.Bits()) {
				best = p
			}
		}
	}
	var out []int
	if !best.IsValid() {
		return nil, best
	}
	for i, r := range regions {
		for _, p := range r.Prefixes {
			if p == best {
				out = append(out, i)
				break
			}
		}
	}
	return out, best
}

// explainLatencyOrder explains the RTT order of a measured network.
func (r *Record) explainLatencyOrder(o ordering, pfx netip.Prefix, lf *LatencyFacts) *RegionOrder {
	s := r.set
	rtt := map[string]time.Duration{}
	for _, x := range lf.RTTs {
		rtt[x.Region] = x.RTT
	}
	ro := &RegionOrder{Source: "latency", Network: pfx.String(),
		Rule: "the regions that measured the client network, best (with hysteresis) first, then by RTT"}
	lowest := ""
	for _, x := range lf.RTTs {
		if lowest == "" || x.RTT < rtt[lowest] {
			lowest = x.Region
		}
	}
	for k, reg := range o.regions {
		name := s.regions[reg].Name
		rs := RegionStep{Region: name, RTT: rtt[name], Why: "by RTT"}
		if k == 0 {
			rs.Why = "first: lowest RTT"
			switch {
			case lf.Best != "" && lf.Best != name:
				rs.Why = fmt.Sprintf("first when the snapshot was built; the table's best is now %s", lf.Best)
			case lowest != "" && lowest != name:
				rs.Why = fmt.Sprintf("first: best region kept by hysteresis (%s is lower, but not by the margin)", lowest)
			}
		}
		ro.Regions = append(ro.Regions, rs)
	}
	return ro
}

// explainLatency returns the RTT row the table holds for a network now
// (a View answers from a copy made when it was built).
func explainLatency(t *LatencyTable, pfx netip.Prefix) *LatencyFacts {
	lf := &LatencyFacts{Network: pfx.String()}
	if t == nil {
		return lf
	}
	lf.Margin, lf.MinGain = t.Margin, t.MinGain
	if lf.Margin == 0 {
		lf.Margin = 0.2
	}
	if lf.MinGain == 0 {
		lf.MinGain = 5 * time.Millisecond
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.nets[pfx]
	if n == nil {
		return lf
	}
	lf.Best, lf.At = n.best, n.at
	for reg, d := range n.rtt {
		lf.RTTs = append(lf.RTTs, RegionRTT{reg, d})
	}
	sort.Slice(lf.RTTs, func(i, j int) bool {
		if lf.RTTs[i].RTT != lf.RTTs[j].RTT {
			return lf.RTTs[i].RTT < lf.RTTs[j].RTT
		}
		return lf.RTTs[i].Region < lf.RTTs[j].Region
	})
	return lf
}

// explainMembers lists a pool's members in zone order with their health in
// the view (ps) for the query's family index fi.
func explainMembers(ps *poolView, zp *zones.Pool, fi int) []MemberFacts {
	out := []MemberFacts{}
	for _, m := range zp.Members {
		mfi := 0
		if m.Addr.Is6() {
			mfi = 1
		}
		mf := MemberFacts{Addr: m.Addr, Weight: m.Weight, Family: mfi == fi}
		for _, a := range ps.healthy[mfi] {
			if a == m.Addr {
				mf.Up = true
				break
			}
		}
		switch {
		case m.Weight == 0:
			mf.Note = "weight 0: handed out only when nothing else is (fail open)"
		case !mf.Family:
			mf.Note = "other address family"
		}
		out = append(out, mf)
	}
	return out
}

// checkString is a short readable form of a pool's check.
func checkString(c zones.Check) string {
	if c.Scheme == "" {
		return ""
	}
	s := fmt.Sprintf("%s://%s:%d%s", c.Scheme, c.Host, c.Port, c.Path)
	if c.Quorum != zones.QuorumMajority {
		switch c.Quorum {
		case zones.QuorumAny:
			s += " quorum=any"
		case zones.QuorumAll:
			s += " quorum=all"
		default:
			s += fmt.Sprintf(" quorum=%d", int(c.Quorum))
		}
	}
	return s
}
