// Package zones loads RFC 1035 master files, extended with $REGION, $POOL and
// GSLB records, into validated, immutable Zone values.
//
// A zone file that BIND's named-checkzone accepts loads unchanged; the three
// extensions are described in docs/zones.md and docs/policies.md. Every
// error names the file and line.
package zones

import (
	"fmt"
	"net/netip"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/miekg/dns"
)

// Pos is a place in a zone file.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Error is a load error with its position.
type Error struct {
	Pos Pos
	Msg string
}

// maxToken is the most of a zone file's content an error message shows:
// the offending token, cut to this many bytes, so that an error never
// prints a file's lines (an $INCLUDE of a secret, a binary).
const maxToken = 40

// quotedRE finds the quoted tokens of a message.
var quotedRE = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// newError is an Error whose quoted tokens are cut to maxToken bytes.
func newError(pos Pos, msg string) *Error {
	msg = quotedRE.ReplaceAllStringFunc(msg, func(q string) string {
		if len(q) <= maxToken+2 {
			return q
		}
		t := q[1 : maxToken+1]
		for len(t) > 0 && !utf8.ValidString(t) {
			t = t[:len(t)-1]
		}
		return `"` + t + `..."`
	})
	return &Error{pos, msg}
}

func (e *Error) Error() string {
	if e.Pos.File == "" {
		return e.Msg
	}
	return e.Pos.String() + ": " + e.Msg
}

// Zone is one loaded zone. A Zone is never modified after Load returns it,
// so it may be shared between goroutines.
type Zone struct {
	Origin string // lower-case FQDN, e.g. "example.com."
	File   string
	SOA    *dns.SOA
	// RRs holds every static record (everything but GSLB records),
	// packed, owner names in lower case, grouped by name and type; an
	// RRset keeps the order of the file.
	RRs     RRs
	Regions []*Region
	Pools   []*Pool
	Records []*Record
	// Warnings are problems that do not stop the zone from loading.
	Warnings []error
}

// Serial returns the SOA serial.
func (z *Zone) Serial() uint32 { return z.SOA.Serial }

// Region is a datacenter: where it is and which clients it serves first.
type Region struct {
	Name      string
	Lat, Lon  float64
	HasCoords bool
	// Serves lists what the region serves first: ISO 3166 country codes
	// ("US"), continent codes ("EU"), and client prefixes.
	Countries  []string
	Continents []string
	Prefixes   []netip.Prefix
	Pos        Pos
}

// Pool is a set of addresses handed out for one region, with its health check.
type Pool struct {
	Name    string
	Region  string
	Members []Member
	// CNAME is the target name for policies with target=cname (lower-case FQDN);
	// empty when the pool hands out addresses.
	CNAME string
	Check Check
	Pos   Pos
}

// Member is one address of a pool with its weight (default 1).
type Member struct {
	Addr   netip.Addr
	Weight int
}

// Quorum says how many probers must see a member up for the cluster verdict.
type Quorum int

// Quorum values other than a plain count.
const (
	QuorumMajority Quorum = 0
	QuorumAny      Quorum = -1
	QuorumAll      Quorum = -2
)

// Check is a pool's health check, as written in $POOL check= and its options.
// Scheme "" means the pool is not checked: its members are always up.
type Check struct {
	Scheme string // "tcp", "http", "https", "dns" or ""
	// Host is the host written in the check URL; empty means each member's
	// own address, so one check line serves a whole pool.
	Host     string
	Port     uint16
	Path     string // http(s): request path with query, default "/"
	Interval time.Duration
	Timeout  time.Duration
	Fails    int
	Passes   int
	// ExpectMin and ExpectMax bound the healthy HTTP status (default 200-399),
	// or for dns the accepted rcode (default NOERROR, both 0).
	ExpectMin, ExpectMax int
	Body                 string // http(s): substring required in the first 5120 bytes
	HostHeader           string // http(s): Host header
	SNI                  string // https: server name
	Insecure             bool   // https: skip certificate verification
	Method               string // http(s): GET or HEAD
	QName                string // dns: name to query (default: the zone origin)
	Quorum               Quorum
}

// Check defaults.
const (
	DefaultInterval = 5 * time.Second
	MinInterval     = 500 * time.Millisecond
	DefaultFails    = 3
	DefaultPasses   = 2
)

// Key identifies what a check probes for one member: two pools with the same
// check of the same address share one checker.
func (c *Check) Key(member netip.Addr) string {
	if c.Scheme == "" {
		return ""
	}
	host := c.Host
	if host == "" {
		host = member.String()
	}
	return fmt.Sprintf("%s|%s|%d|%s|%s|%s|%s|%v|%s|%s|%d-%d|%v|%v|%d|%d",
		c.Scheme, host, c.Port, c.Path, c.Method, c.HostHeader, c.SNI, c.Insecure, c.Body, c.QName,
		c.ExpectMin, c.ExpectMax, c.Interval, c.Timeout, c.Fails, c.Passes)
}

// PoolRef is a pool named by a GSLB record, with its weight (default 1).
type PoolRef struct {
	Name   string
	Weight int
}

// Record is a GSLB record: a name answered by a policy over pools.
// Options holds the record's other key=value settings, which the gslb
// package validates (answers=, empty=, sticky=, family=, target=, ...).
// Records of one zone written with the same policy and options share
// their Pools and Options, which nobody may modify.
type Record struct {
	Name    string // lower-case FQDN; may be a wildcard "*.example.com."
	TTL     uint32
	Policy  string
	Pools   []PoolRef
	Options map[string]string
	Pos     Pos
}
