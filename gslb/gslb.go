// Package gslb chooses the addresses that answer a GSLB record for one
// client. It compiles the zones' regions, pools and records into an
// immutable Set once per zone version (names turned into indices, each
// record's pool preference per class of clients precomputed), builds a
// small immutable View of health and RTTs whenever those change, and
// answers queries from the two without locks.
package gslb

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gslbd/gslb/geodata"
	"github.com/gslbd/gslb/zones"
)

// Health tells whether a pool member is up. The probers and the replicated
// store implement it; it is read only while a View is built, never per query.
// known is false while nothing is known about the member (cold start); such
// a member counts as up (ST-09).
type Health interface {
	Up(pool *zones.Pool, member netip.Addr) (up, known bool)
}

// AllUp is the Health of a node that checks nothing: every member is up.
type AllUp struct{}

// Up reports every member as up and unknown.
func (AllUp) Up(*zones.Pool, netip.Addr) (bool, bool) { return true, false }

// Env is what a Set is compiled against besides the zones.
type Env struct {
	// Health says which members are up in the Set's DefaultView; nil
	// means all.
	Health Health
	// Geo locates clients for the geo and latency policies; nil means no
	// database (only serves= prefixes place clients).
	Geo *geodata.DB
	// GeoCache keeps the merged geo map between compiles, so a health
	// change does not rebuild it; nil builds it every time.
	GeoCache *GeoCache
	// Latency holds measured RTTs from regions to client networks, for
	// the DefaultView; nil means none (latency records answer as geo).
	Latency *LatencyTable
}

// Client is who a query is answered for.
type Client struct {
	// Addr is the ECS address when the query carried a usable one,
	// otherwise the source address of the query.
	Addr netip.Addr
	// Bits is the ECS source prefix length, or the full address length when
	// Addr is the query's source.
	Bits uint8
}

// Family selects A (4) or AAAA (6) answers.
type Family uint8

// Families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func famIndex(f Family) int {
	if f == IPv6 {
		return 1
	}
	return 0
}

// Answer is what a record answers for one client and family.
type Answer struct {
	// Addrs are the chosen addresses (appended to the caller's slice).
	Addrs []netip.Addr
	// CNAME, when not empty, is answered instead of addresses (target=cname).
	CNAME string
	// TTL for every record in the answer.
	TTL uint32
	// Scope is the ECS scope prefix length the decision depended on
	// (RFC 7871 §7.2.1); 0 when it does not depend on the client.
	Scope uint8
	// ServFail asks the server to answer SERVFAIL (empty=servfail when
	// nothing is healthy).
	ServFail bool
}

// pool is a compiled pool: members split by family. Which are healthy is
// in the View (pool.first is the index of its first member there).
type pool struct {
	name    string
	region  int
	cname   string
	all     [2][]netip.Addr // by family index: every member
	weights [2][]int        // weights of all[f]
	first   int             // View.up index of src.Members[0]
	src     *zones.Pool
}

// up reports whether the pool can be chosen in mode m. By default (modes
// 0 and 1, the query's family index) a pool with members of the family is
// up when one of them is healthy, and a pool with none when any member is
// (so a v4-only region still wins an AAAA query, which is then NODATA:
// ST-11). With family=fallback (modes 2 and 3) only pools with a healthy
// member of the family are up.
func (p *pool) up(ps *poolView, m int) bool {
	f := m & 1
	if m < 2 && len(p.all[f]) == 0 {
		return len(ps.healthy[0])+len(ps.healthy[1]) > 0
	}
	return len(ps.healthy[f]) > 0
}

// modes is the number of choice modes (see pool.up).
const modes = 4

// Record is a compiled GSLB record.
//
// The fields every query reads come first, within 64 bytes
// (TestRecordLayout): a query for one of many records then misses the
// cache on one or two lines of it, not three.
type Record struct {
	set    *Set
	Policy Policy
	pools  []int // indices into Set.pools, in record order
	TTL    uint32
	opts   options

	Name    string
	pw      []int      // the record's weight for each pool
	emptyIP netip.Addr // empty=addr: the address
	src     *zones.Record
}

// Source returns the zone file record this was compiled from.
func (r *Record) Source() *zones.Record { return r.src }

// options are the settings every policy shares.
type options struct {
	shortTTL  uint32    // the TTL while a member of the record is down (ST-10)
	answers   int32     // 0 = all members of the chosen pool
	empty     emptyMode // what to do when nothing is healthy
	fallback  bool      // family=fallback
	cname     bool      // target=cname
	randomSel bool      // answers=N below the member count: pick by weight per query
	emptyTo   int32     // empty=pool: pool index
}

type emptyMode uint8

const (
	emptyOpen emptyMode = iota
	emptyPool
	emptyAddr
	emptyServFail
)

// allPools is the Choose result of the all policy: every pool at once.
const allPools = -2

// Policy chooses among a record's pools for one client, reading health and
// RTTs from v. Choose is called concurrently from every DNS goroutine; it
// must not block, must not mutate r or v, and must not allocate. It returns
// the index into the record's pools of the pool to answer from (allPools
// for every pool), or -1 when no pool has a healthy member for mode, and
// the ECS scope its choice depended on. open asks for the choice as if
// every member were healthy.
type Policy interface {
	Choose(r *Record, v *View, mode int, c *Client, open bool) (pool int, scope uint8)
	// DependsOnClient reports whether the answer in v may differ between
	// clients (so a reply may be reused only for the same client).
	DependsOnClient(r *Record, v *View) bool
	// Random reports whether the answer may differ between two calls for
	// the same client (so a reply must never be reused).
	Random() bool
}

// policies is the explicit table of policy names.
var policies = map[string]func(*Record, map[string]string, *compileCtx) (Policy, error){
	"all":      newAll,
	"failover": newFailover,
	"weighted": newWeighted,
	"geo":      newGeo,
	"latency":  newLatency,
	"load":     newLoad,
}

// Set is the compiled GSLB state for a set of zones: what changes only
// with the zones. Health and RTTs are in a View of it. A Set is immutable
// once built and safe for concurrent use.
type Set struct {
	regions   []*zones.Region
	regionIdx map[string]int
	pools     []*pool
	members   int // pool members, of every pool
	cnameOnly int // pools with a cname= and no members
	records   map[*zones.Record]*Record
	geo       *geoMap
	geoDB     *geodata.DB // the database geo was built from
	// byZone holds the records of each zone compiled, in the zone's
	// order, side by side (ZoneRecords); records points into them.
	byZone map[*zones.Zone][]Record
	view0  *View // for the Env compiled with
}

// compileCtx is what policy constructors get besides the record.
type compileCtx struct {
	set       *Set
	env       Env
	poolIdx   map[string]int
	regionIdx map[string]int
	prefs     map[string]*prefTable  // by the record's pool list
	shared    map[string]sharedParts // by policy, pools, weights and options
}

// sharedParts are what records of the same policy, pools and options share.
type sharedParts struct {
	pools, pw []int
	policy    Policy
}

// appendListKey appends a list of small integers to a map key.
func appendListKey(b []byte, l []int) []byte {
	b = append(b, '[')
	for _, n := range l {
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, ' ')
	}
	return append(b, ']')
}

// optionsKey is a record's options in a canonical order, for a map key.
func optionsKey(opts map[string]string) string {
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(opts[k])
		b.WriteByte(0)
	}
	return b.String()
}

// Compile builds a Set from linked zones (see zones.Link). It validates
// every record's policy and options; errors name the zone file and line.
// env.Health and env.Latency make the Set's DefaultView.
func Compile(zs []*zones.Zone, env Env) (*Set, error) {
	return CompileFrom(nil, zs, env)
}

// CompileFrom is Compile that reuses what it can of prev (nil: nothing).
// When every region and pool is defined as in prev and the geo database is
// the same, the records of a zone given again as the same *zones.Zone are
// not compiled again: the new Set holds copies of prev's records that share
// their policies (geo preference tables included) and refer to the new Set.
// So a reload that changes one zone of many compiles that zone's records
// only. prev is not modified and stays valid.
func CompileFrom(prev *Set, zs []*zones.Zone, env Env) (*Set, error) {
	s := &Set{records: map[*zones.Record]*Record{}, byZone: make(map[*zones.Zone][]Record, len(zs)), geoDB: env.Geo}
	cx := &compileCtx{set: s, env: env, poolIdx: map[string]int{}, regionIdx: map[string]int{}, prefs: map[string]*prefTable{}, shared: map[string]sharedParts{}}
	for _, r := range zones.Regions(zs) {
		s.regions = append(s.regions, r)
	}
	sort.Slice(s.regions, func(i, j int) bool { return s.regions[i].Name < s.regions[j].Name })
	for i, r := range s.regions {
		cx.regionIdx[r.Name] = i
	}
	s.regionIdx = cx.regionIdx
	var names []string
	all := zones.Pools(zs)
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		zp := all[n]
		p := &pool{name: n, region: cx.regionIdx[zp.Region], cname: zp.CNAME, first: s.members, src: zp}
		for _, m := range zp.Members {
			fi := famIndex(familyOf(m.Addr))
			p.all[fi] = append(p.all[fi], m.Addr)
			p.weights[fi] = append(p.weights[fi], m.Weight)
		}
		s.members += len(zp.Members)
		if zp.CNAME != "" && len(zp.Members) == 0 {
			s.cnameOnly++
		}
		cx.poolIdx[n] = len(s.pools)
		s.pools = append(s.pools, p)
	}
	reuse := prev != nil && s.sameDefinitions(prev) && prev.geoDB == env.Geo
	if reuse {
		s.geo = prev.geo // the same regions and database make the same map
	}
	var errs []error
	for _, z := range zs {
		recs := make([]Record, len(z.Records))
		s.byZone[z] = recs
		var old []Record
		again := false
		if reuse {
			old, again = prev.byZone[z]
		}
		for i, zr := range z.Records {
			if again {
				recs[i] = old[i]
				recs[i].set = s
			} else if pr := prev.sharedRecord(reuse, zr); pr != nil {
				// A record the zone's new version shares with the old one
				// (zones.ParseFrom): the same text, compiled the same.
				recs[i] = *pr
				recs[i].set = s
			} else {
				r, err := cx.compileRecord(zr)
				if err != nil {
					errs = append(errs, &zones.Error{Pos: zr.Pos, Msg: fmt.Sprintf("%s GSLB %s: %v", zr.Name, zr.Policy, err)})
					continue
				}
				recs[i] = *r
			}
			s.records[zr] = &recs[i]
		}
	}
	if len(errs) > 0 {
		return nil, zones.Errors(errs)
	}
	s.view0 = s.newView(env.Health, env.Latency, time.Now(), nil)
	return s, nil
}

// sharedRecord returns the record s compiled from zr, if reuse and there is
// one (s may be nil).
func (s *Set) sharedRecord(reuse bool, zr *zones.Record) *Record {
	if !reuse || s == nil {
		return nil
	}
	return s.records[zr]
}

// sameDefinitions reports whether s and o define the same regions and pools
// (by content, in the same order, so every index means the same in both).
func (s *Set) sameDefinitions(o *Set) bool {
	if len(s.regions) != len(o.regions) || len(s.pools) != len(o.pools) {
		return false
	}
	for i, r := range s.regions {
		if !zones.SameRegion(r, o.regions[i]) {
			return false
		}
	}
	for i, p := range s.pools {
		if !zones.SamePool(p.src, o.pools[i].src) {
			return false
		}
	}
	return true
}

func (cx *compileCtx) compileRecord(zr *zones.Record) (*Record, error) {
	s := cx.set
	r := &Record{Name: zr.Name, TTL: zr.TTL, set: s, src: zr}
	for _, ref := range zr.Pools {
		i, ok := cx.poolIdx[ref.Name]
		if !ok {
			return nil, fmt.Errorf("unknown pool %q", ref.Name)
		}
		for _, j := range r.pools {
			if j == i {
				return nil, fmt.Errorf("pool %q listed twice", ref.Name)
			}
		}
		r.pools = append(r.pools, i)
		r.pw = append(r.pw, ref.Weight)
	}
	opts := map[string]string{}
	for k, v := range zr.Options {
		opts[k] = v
	}
	take := func(k string) (string, bool) {
		v, ok := opts[k]
		delete(opts, k)
		return v, ok
	}
	if v, ok := take("answers"); ok && v != "all" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 64 {
			return nil, fmt.Errorf("answers=%q: want 1 to 64 or all", v)
		}
		r.opts.answers = int32(n)
	}
	if v, ok := take("empty"); ok {
		kind, arg, _ := strings.Cut(v, ":")
		switch kind {
		case "open":
			r.opts.empty = emptyOpen
		case "servfail":
			r.opts.empty = emptyServFail
		case "pool":
			i, ok := cx.poolIdx[arg]
			if !ok {
				return nil, fmt.Errorf("empty=pool:%s: unknown pool", arg)
			}
			r.opts.empty, r.opts.emptyTo = emptyPool, int32(i)
		case "addr":
			a, err := netip.ParseAddr(arg)
			if err != nil {
				return nil, fmt.Errorf("empty=addr:%s: not an IP address", arg)
			}
			r.opts.empty, r.emptyIP = emptyAddr, a.Unmap()
		default:
			return nil, fmt.Errorf("empty=%q: want open, servfail, pool:NAME or addr:IP", v)
		}
	}
	if v, ok := take("family"); ok {
		switch v {
		case "fallback":
			r.opts.fallback = true
		case "strict":
		default:
			return nil, fmt.Errorf("family=%q: want strict or fallback", v)
		}
	}
	if v, ok := take("target"); ok {
		switch v {
		case "cname":
			r.opts.cname = true
			for _, pi := range r.pools {
				if s.pools[pi].cname == "" {
					return nil, fmt.Errorf("target=cname: pool %q has no cname=", s.pools[pi].name)
				}
			}
		case "addr":
		default:
			return nil, fmt.Errorf("target=%q: want addr or cname", v)
		}
	}
	mk, ok := policies[zr.Policy]
	if !ok {
		return nil, fmt.Errorf("unknown policy (want %s)", policyNames())
	}
	pol, err := mk(r, opts, cx)
	if err != nil {
		return nil, err
	}
	for k := range opts {
		return nil, fmt.Errorf("unknown option %q", k)
	}
	// Records that list the same pools with the same options share their
	// pool list and policy (both immutable): a query for any of them then
	// reads these from the cache, and only the record itself is its own.
	key := string(appendListKey(appendListKey([]byte(zr.Policy), r.pools), r.pw)) + optionsKey(zr.Options)
	if sh, ok := cx.shared[key]; ok {
		r.pools, r.pw, pol = sh.pools, sh.pw, sh.policy
	} else {
		r.pools, r.pw = slices.Clip(r.pools), slices.Clip(r.pw)
		cx.shared[key] = sharedParts{r.pools, r.pw, pol}
	}
	r.Policy = pol
	if r.opts.cname && zr.Policy == "all" {
		return nil, fmt.Errorf("target=cname needs a policy that picks one pool")
	}
	// ST-10: while a member of the record is down, answers carry half the
	// TTL, so clients come back sooner when it recovers or more fails.
	r.opts.shortTTL = max(1, r.TTL/2)
	for _, pi := range r.pools {
		p := s.pools[pi]
		if r.opts.answers > 0 && (len(p.all[0]) > int(r.opts.answers) || len(p.all[1]) > int(r.opts.answers)) {
			r.opts.randomSel = true
		}
	}
	return r, nil
}

func policyNames() string {
	var n []string
	for k := range policies {
		n = append(n, k)
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}

// ZoneRecords returns the compiled records of zone z, in the order of
// z.Records, or nil when z was not compiled into s. They lie side by side,
// so a server that keeps this slice reaches a record by its position with
// one memory access (no pointer to follow). Record(z.Records[i]) is
// &ZoneRecords(z)[i].
func (s *Set) ZoneRecords(z *zones.Zone) []Record {
	if s == nil {
		return nil
	}
	return s.byZone[z]
}

// Record returns the compiled form of a zone record, or nil.
func (s *Set) Record(zr *zones.Record) *Record {
	if s == nil {
		return nil
	}
	return s.records[zr]
}

// DependsOnClient reports whether answers in v (nil: the Set's
// DefaultView) may differ between clients.
func (r *Record) DependsOnClient(v *View) bool {
	return r.Policy.DependsOnClient(r, r.view(v))
}

// view returns v, or the DefaultView when v is nil or of another Set.
func (r *Record) view(v *View) *View {
	if v == nil || v.set != r.set {
		return r.set.view0
	}
	return v
}

// Random reports whether answers may differ between two queries of the
// same client (weighted choice, or answers=N below the member count).
func (r *Record) Random() bool { return r.Policy.Random() || r.opts.randomSel }

// Answer answers r for client c and family f with the health and RTTs of
// v, appending addresses to dst. v nil (or a view of another Set) means
// the Set's DefaultView. It takes no lock and allocates nothing beyond
// growing dst.
func (r *Record) Answer(dst []netip.Addr, f Family, c *Client, v *View) Answer {
	v = r.view(v)
	fi := famIndex(f)
	a := Answer{TTL: r.TTL}
	if v.halfTTL(r) {
		a.TTL = r.opts.shortTTL
	}
	mode := fi
	if r.opts.fallback {
		mode = 2 + fi
	}
	n := len(dst)
	pi, scope := r.Policy.Choose(r, v, mode, c, false)
	a.Scope = scope
	if pi == -1 {
		// Nothing healthy (ST-07).
		a.Scope = 0
		switch r.opts.empty {
		case emptyServFail:
			a.ServFail = true
			return a
		case emptyAddr:
			if r.emptyIP.Is4() == (f == IPv4) {
				dst = append(dst, r.emptyIP)
			}
			a.Addrs = dst
			return a
		case emptyPool:
			p := r.set.pools[r.opts.emptyTo]
			a.Addrs = r.members(dst, p.all[fi], p.weights[fi], c)
			return a
		}
		pi, a.Scope = r.Policy.Choose(r, v, mode, c, true)
		if pi == allPools {
			for _, i := range r.pools {
				dst = append(dst, r.set.pools[i].all[fi]...)
			}
			a.Addrs = r.limit(dst, n)
			return a
		}
		if pi < 0 {
			a.Addrs = dst
			return a
		}
		p := r.set.pools[r.pools[pi]]
		if r.opts.cname {
			a.CNAME = p.cname
			return a
		}
		a.Addrs = r.members(dst, p.all[fi], p.weights[fi], c)
		return a
	}
	if pi == allPools {
		for _, i := range r.pools {
			dst = append(dst, v.pools[i].healthy[fi]...)
		}
		a.Addrs = r.limit(dst, n)
		return a
	}
	p := r.set.pools[r.pools[pi]]
	if r.opts.cname {
		a.CNAME = p.cname
		return a
	}
	ps := &v.pools[r.pools[pi]]
	a.Addrs = r.members(dst, ps.healthy[fi], ps.hweights[fi], c)
	return a
}

// members appends the pool members to answer with: all of them, or
// answers=N of them chosen by weight (without replacement).
func (r *Record) members(dst, addrs []netip.Addr, weights []int, _ *Client) []netip.Addr {
	n := int(r.opts.answers)
	if n == 0 || n >= len(addrs) {
		return append(dst, addrs...)
	}
	var taken uint64 // bit i: addrs[i] already chosen (at most 64 considered)
	total := 0
	for i, w := range weights {
		if i < 64 {
			total += w
		}
	}
	for k := 0; k < n && total > 0; k++ {
		x := rand.IntN(total)
		for i, w := range weights {
			if i >= 64 || taken&(1<<i) != 0 {
				continue
			}
			if x < w {
				dst = append(dst, addrs[i])
				taken |= 1 << i
				total -= w
				break
			}
			x -= w
		}
	}
	return dst
}

// limit applies answers=N to the addresses appended after dst[:n].
func (r *Record) limit(dst []netip.Addr, n int) []netip.Addr {
	if a := int(r.opts.answers); a > 0 && len(dst)-n > a {
		return dst[:n+a]
	}
	return dst
}
