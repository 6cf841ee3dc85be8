// Package gslb chooses the addresses that answer a GSLB record for one
// client: it compiles the zones' regions, pools and records into an
// immutable Set (names turned into indices, healthy member lists
// precomputed), and answers queries from it without locks or allocation.
package gslb

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/gslbd/gslb/zones"
)

// Health tells whether a pool member is up. The probers and the replicated
// store implement it; it is read only while a Set is built, never per query.
// known is false while nothing is known about the member (cold start); such
// a member counts as up.
type Health interface {
	Up(pool *zones.Pool, member netip.Addr) (up, known bool)
}

// AllUp is the Health of a node that checks nothing: every member is up.
type AllUp struct{}

// Up reports every member as up and unknown.
func (AllUp) Up(*zones.Pool, netip.Addr) (bool, bool) { return true, false }

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

// pool is a compiled pool: members split by family, healthy ones precomputed.
type pool struct {
	name    string
	region  int
	cname   string
	all     [2][]netip.Addr // by family index: every member
	healthy [2][]netip.Addr // members that are up
	weights [2][]int        // weights of all[f]
	down    int             // members known to be down
	src     *zones.Pool
}

func famIndex(f Family) int {
	if f == IPv6 {
		return 1
	}
	return 0
}

// Record is a compiled GSLB record.
type Record struct {
	Name   string
	TTL    uint32
	Policy Policy
	pools  []int // indices into Set.pools, in record order
	opts   options
	set    *Set
	src    *zones.Record
}

// Source returns the zone file record this was compiled from.
func (r *Record) Source() *zones.Record { return r.src }

// options are the settings every policy shares.
type options struct {
	answers int        // 0 = all members of the chosen pool(s)
	empty   emptyMode  // what to do when nothing is healthy
	emptyTo int        // empty=pool: pool index
	emptyIP netip.Addr // empty=addr: the address
}

type emptyMode uint8

const (
	emptyOpen emptyMode = iota
	emptyPool
	emptyAddr
	emptyServFail
)

// Policy chooses among a record's pools for one client. Pick is called
// concurrently from every DNS goroutine; it must not block, must not mutate
// r, and should allocate nothing beyond growing dst. It appends the chosen
// healthy addresses of family f to dst and returns them with the ECS scope
// the choice depended on.
type Policy interface {
	Pick(dst []netip.Addr, r *Record, f Family, c *Client) (addrs []netip.Addr, scope uint8)
	// DependsOnClient reports whether Pick's answer may differ between
	// clients or between calls (so a reply must not be reused for another
	// client).
	DependsOnClient() bool
}

// policies is the explicit table of policy names.
var policies = map[string]func(*Record, map[string]string) (Policy, error){
	"all": newAll,
}

// Set is the compiled GSLB state for a set of zones and one health view.
// A Set is immutable once built and safe for concurrent use.
type Set struct {
	regions []*zones.Region
	pools   []*pool
	records map[*zones.Record]*Record
}

// Compile builds a Set from linked zones (see zones.Link) and a health
// view. It validates every record's policy and options; errors name the
// zone file and line.
func Compile(zs []*zones.Zone, h Health) (*Set, error) {
	if h == nil {
		h = AllUp{}
	}
	s := &Set{records: map[*zones.Record]*Record{}}
	regionIdx := map[string]int{}
	for _, r := range zones.Regions(zs) {
		s.regions = append(s.regions, r)
	}
	sort.Slice(s.regions, func(i, j int) bool { return s.regions[i].Name < s.regions[j].Name })
	for i, r := range s.regions {
		regionIdx[r.Name] = i
	}
	poolIdx := map[string]int{}
	var names []string
	all := zones.Pools(zs)
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		zp := all[n]
		p := &pool{name: n, region: regionIdx[zp.Region], cname: zp.CNAME, src: zp}
		for _, m := range zp.Members {
			fi := 0
			if m.Addr.Is6() {
				fi = 1
			}
			p.all[fi] = append(p.all[fi], m.Addr)
			p.weights[fi] = append(p.weights[fi], m.Weight)
			up, _ := h.Up(zp, m.Addr)
			if up {
				p.healthy[fi] = append(p.healthy[fi], m.Addr)
			} else {
				p.down++
			}
		}
		poolIdx[n] = len(s.pools)
		s.pools = append(s.pools, p)
	}
	var errs []error
	for _, z := range zs {
		for _, zr := range z.Records {
			r, err := s.compileRecord(zr, poolIdx)
			if err != nil {
				errs = append(errs, &zones.Error{Pos: zr.Pos, Msg: fmt.Sprintf("%s GSLB %s: %v", zr.Name, zr.Policy, err)})
				continue
			}
			s.records[zr] = r
		}
	}
	if len(errs) > 0 {
		return nil, zones.Errors(errs)
	}
	return s, nil
}

func (s *Set) compileRecord(zr *zones.Record, poolIdx map[string]int) (*Record, error) {
	r := &Record{Name: zr.Name, TTL: zr.TTL, set: s, src: zr}
	for _, ref := range zr.Pools {
		i, ok := poolIdx[ref.Name]
		if !ok {
			return nil, fmt.Errorf("unknown pool %q", ref.Name)
		}
		r.pools = append(r.pools, i)
	}
	opts := map[string]string{}
	for k, v := range zr.Options {
		opts[k] = v
	}
	if v, ok := opts["answers"]; ok {
		delete(opts, "answers")
		if v != "all" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 64 {
				return nil, fmt.Errorf("answers=%q: want 1 to 64 or all", v)
			}
			r.opts.answers = n
		}
	}
	if v, ok := opts["empty"]; ok {
		delete(opts, "empty")
		kind, arg, _ := strings.Cut(v, ":")
		switch kind {
		case "open":
			r.opts.empty = emptyOpen
		case "servfail":
			r.opts.empty = emptyServFail
		case "pool":
			i, ok := poolIdx[arg]
			if !ok {
				return nil, fmt.Errorf("empty=pool:%s: unknown pool", arg)
			}
			r.opts.empty, r.opts.emptyTo = emptyPool, i
		case "addr":
			a, err := netip.ParseAddr(arg)
			if err != nil {
				return nil, fmt.Errorf("empty=addr:%s: not an IP address", arg)
			}
			r.opts.empty, r.opts.emptyIP = emptyAddr, a.Unmap()
		default:
			return nil, fmt.Errorf("empty=%q: want open, servfail, pool:NAME or addr:IP", v)
		}
	}
	mk, ok := policies[zr.Policy]
	if !ok {
		return nil, fmt.Errorf("unknown policy (want %s)", policyNames())
	}
	pol, err := mk(r, opts)
	if err != nil {
		return nil, err
	}
	for k := range opts {
		return nil, fmt.Errorf("unknown option %q", k)
	}
	r.Policy = pol
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

// Record returns the compiled form of a zone record, or nil.
func (s *Set) Record(zr *zones.Record) *Record {
	if s == nil {
		return nil
	}
	return s.records[zr]
}

// Answer answers r for client c and family f, appending addresses to dst.
func (r *Record) Answer(dst []netip.Addr, f Family, c *Client) Answer {
	fi := famIndex(f)
	a := Answer{TTL: r.TTL}
	n := len(dst)
	dst, a.Scope = r.Policy.Pick(dst, r, f, c)
	if len(dst) == n {
		// Nothing healthy of this family among the chosen pools.
		switch r.opts.empty {
		case emptyServFail:
			if r.hasFamily(fi) {
				a.ServFail = true
				return a
			}
		case emptyAddr:
			if (r.opts.emptyIP.Is4() && f == IPv4) || (r.opts.emptyIP.Is6() && f == IPv6) {
				dst = append(dst, r.opts.emptyIP)
			}
		case emptyPool:
			dst = r.limit(append(dst, r.set.pools[r.opts.emptyTo].all[fi]...), n)
		default:
			for _, pi := range r.pools {
				dst = append(dst, r.set.pools[pi].all[fi]...)
			}
			dst = r.limit(dst, n)
		}
		a.Scope = 0
	}
	a.Addrs = dst
	return a
}

// DependsOnClient reports whether answers may differ between clients.
func (r *Record) DependsOnClient() bool { return r.Policy.DependsOnClient() }

// hasFamily reports whether any pool of the record has members of family fi.
func (r *Record) hasFamily(fi int) bool {
	for _, pi := range r.pools {
		if len(r.set.pools[pi].all[fi]) > 0 {
			return true
		}
	}
	return false
}

// limit applies answers=N to the addresses appended after dst[:n].
func (r *Record) limit(dst []netip.Addr, n int) []netip.Addr {
	if r.opts.answers > 0 && len(dst)-n > r.opts.answers {
		return dst[:n+r.opts.answers]
	}
	return dst
}

// allPolicy answers every healthy member of every pool of the record.
type allPolicy struct{}

func newAll(*Record, map[string]string) (Policy, error) { return allPolicy{}, nil }

func (allPolicy) DependsOnClient() bool { return false }

func (allPolicy) Pick(dst []netip.Addr, r *Record, f Family, _ *Client) ([]netip.Addr, uint8) {
	n := len(dst)
	fi := famIndex(f)
	for _, pi := range r.pools {
		dst = append(dst, r.set.pools[pi].healthy[fi]...)
	}
	return r.limit(dst, n), 0
}
