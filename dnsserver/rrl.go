package dnsserver

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gslbd/gslb/internal/balance"
)

// RRL configures response-rate limiting of UDP replies (as Knot's, NSD's
// and BIND's RRL): replies are counted per second, per source network and
// per response class; those over Rate are dropped, except every Slip-th,
// which is sent as an empty TC reply so that a real client behind a
// spoofed flood retries over TCP. TCP replies, and queries with a valid
// DNS Cookie, are never limited. The zero value is on, with the defaults
// given beside each field.
type RRL struct {
	// Off turns response-rate limiting off.
	Off bool
	// Rate is the replies per second allowed to one source network for
	// one class (default 200, NSD's, which an honest resolver does not
	// reach: it caches).
	Rate int
	// Slip: every Slip-th reply over the rate is sent as an empty TC
	// reply (BADCOOKIE with a fresh server cookie if the query had a
	// client cookie) instead of dropped (default 2, as NSD and BIND; 1
	// slips every one; -1 drops every one).
	Slip int
	// IPv4Bits and IPv6Bits are the source network lengths counted
	// together (default 24 and 56).
	IPv4Bits, IPv6Bits int
	// Exempt lists source networks never limited (monitoring, your own
	// resolvers).
	Exempt []netip.Prefix
	// LimitLoopback limits queries from loopback addresses too. By
	// default they are exempt: they cannot come from another host, so
	// their replies cannot be reflected at one.
	LimitLoopback bool
	// LogOnly counts, and logs at most once a second, what would be
	// limited, but answers everything.
	LogOnly bool
	// Buckets is the size of the counting table, rounded up to a power of
	// two (default 65536: 512 KiB). It is fixed: a flood from random
	// sources reuses the least used buckets and allocates nothing.
	Buckets int
}

// Response classes counted apart (the key also holds the name: the query
// name for answers, the zone for NXDOMAIN, the delegation for referrals).
const (
	rrlAnswer = iota
	rrlNXDomain
	rrlReferral
	rrlError
	nRRLClasses
)

var rrlClassNames = [nRRLClasses]string{"answer", "nxdomain", "referral", "error"}

// What was done to a reply over the rate.
const (
	rrlDropped = iota
	rrlSlipped
	rrlLogged // LogOnly: sent anyway
	nRRLActions
)

var rrlActionNames = [nRRLActions]string{"dropped", "slipped", "logged"}

// rrl is the limiter: a fixed table of 4-way sets of 64-bit buckets, each
// holding a 24-bit tag of its key, the second it counts (16 bits) and the
// count (24 bits), updated with compare-and-swap: no lock, no allocation.
type rrl struct {
	cfg     RRL
	rate    uint32
	slip    uint32
	mask    uint64 // of the set index
	seed    uint64
	buckets []atomic.Uint64
	limited [nRRLClasses][nRRLActions]atomic.Uint64
	logged  pacer
}

func newRRL(cfg RRL) (*rrl, error) {
	if cfg.Off {
		return nil, nil
	}
	if cfg.Rate == 0 {
		cfg.Rate = 200
	}
	if cfg.Slip == 0 {
		cfg.Slip = 2
	}
	if cfg.IPv4Bits == 0 {
		cfg.IPv4Bits = 24
	}
	if cfg.IPv6Bits == 0 {
		cfg.IPv6Bits = 56
	}
	if cfg.Buckets == 0 {
		cfg.Buckets = 1 << 16
	}
	switch {
	case cfg.Rate < 0 || cfg.Rate >= 1<<24:
		return nil, fmt.Errorf("dns: rrl rate %d: want 1 to %d", cfg.Rate, 1<<24-1)
	case cfg.Slip < -1:
		return nil, fmt.Errorf("dns: rrl slip %d: want -1 (never), or 1 and up", cfg.Slip)
	case cfg.IPv4Bits < 0 || cfg.IPv4Bits > 32 || cfg.IPv6Bits < 0 || cfg.IPv6Bits > 128:
		return nil, fmt.Errorf("dns: rrl prefix lengths /%d, /%d: out of range", cfg.IPv4Bits, cfg.IPv6Bits)
	case cfg.Buckets < 4 || cfg.Buckets > 1<<26:
		return nil, fmt.Errorf("dns: rrl buckets %d: want 4 to %d", cfg.Buckets, 1<<26)
	}
	n := 1 << bits.Len(uint(cfg.Buckets-1))
	l := &rrl{cfg: cfg, rate: uint32(cfg.Rate), buckets: make([]atomic.Uint64, n), mask: uint64(n/4 - 1), seed: uint64(time.Now().UnixNano())*0x9e3779b97f4a7c15 | 1}
	if cfg.Slip > 0 {
		l.slip = uint32(cfg.Slip)
	}
	return l, nil
}

const (
	rrlCountBits = 24
	rrlSecBits   = 16
	rrlMaxCount  = 1<<rrlCountBits - 1
)

// count adds one reply to the bucket of key hash h in second now and
// returns the bucket's count for this second.
func (l *rrl) count(h uint64, now uint64) uint32 {
	set := (h & l.mask) * 4
	tag := h >> 40 // 24 bits
	sec := now & (1<<rrlSecBits - 1)
	fresh := tag<<40 | sec<<rrlCountBits | 1
retry:
	for try := 0; try < 4; try++ {
		victim, vscore := -1, uint64(1<<63)
		var vold uint64
		for i := uint64(0); i < 4; i++ {
			b := &l.buckets[set+i]
			v := b.Load()
			if v>>40 == tag && v != 0 {
				nv := fresh
				if (v>>rrlCountBits)&(1<<rrlSecBits-1) == sec {
					nv = v
					if v&rrlMaxCount < rrlMaxCount {
						nv++
					}
				}
				if b.CompareAndSwap(v, nv) {
					return uint32(nv & rrlMaxCount)
				}
				continue retry
			}
			// Replace a bucket of an earlier second first, else the one
			// counting least: a random-source flood cannot push out a
			// busy key.
			score := v & rrlMaxCount
			if (v>>rrlCountBits)&(1<<rrlSecBits-1) != sec {
				score = 0
			}
			if score < vscore {
				victim, vscore, vold = int(i), score, v
			}
		}
		if l.buckets[set+uint64(victim)].CompareAndSwap(vold, fresh) {
			return 1
		}
	}
	return 1 // contended: let it through
}

// rrlPass is check's verdict for a reply within the rate.
const rrlPass = -1

// check counts reply out to src in second now and says what to do with
// it: rrlPass, or the action taken on a reply over the rate.
func (l *rrl) check(src netip.Addr, out []byte, now uint64) int {
	if src.IsLoopback() && !l.cfg.LimitLoopback {
		return rrlPass
	}
	for _, p := range l.cfg.Exempt {
		if p.Contains(src) {
			return rrlPass
		}
	}
	class, name := rrlClassify(out)
	a := src.As16()
	hi, lo := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
	b := l.cfg.IPv6Bits
	if src.Is4() {
		b = 96 + l.cfg.IPv4Bits
	}
	switch {
	case b <= 64:
		hi &= ^uint64(0) << (64 - b)
		lo = 0
	case b < 128:
		lo &= ^uint64(0) << (128 - b)
	}
	h := balance.Mix64(balance.Mix64(balance.Mix64(hi^l.seed)^lo) ^ name ^ uint64(class)<<56)
	n := l.count(h, now)
	if n <= l.rate {
		return rrlPass
	}
	if l.cfg.LogOnly {
		l.limited[class][rrlLogged].Add(1)
		return rrlLogged
	}
	if l.slip > 0 && (n-l.rate)%l.slip == 0 {
		l.limited[class][rrlSlipped].Add(1)
		return rrlSlipped
	}
	l.limited[class][rrlDropped].Add(1)
	return rrlDropped
}

// rrlClassify reads a packed reply of ours: its class, and the hash of the
// name it counts against (the query name for answers, the zone of an
// NXDOMAIN, from its SOA's owner, the delegation of a referral, from its
// first NS record's owner; nothing for errors).
func rrlClassify(out []byte) (class int, name uint64) {
	if len(out) < 12 {
		return rrlError, 0
	}
	rcode := out[3] & 0xf
	qd, an, ns := binary.BigEndian.Uint16(out[4:]), binary.BigEndian.Uint16(out[6:]), binary.BigEndian.Uint16(out[8:])
	aa := out[2]&0x04 != 0
	off := 12
	var qname uint64
	if qd == 1 {
		qname, off = hashName(out, off)
		off += 4
	}
	switch {
	case rcode == 3: // NXDOMAIN
		class = rrlNXDomain
	case rcode == 0 && !aa && an == 0 && ns > 0:
		class = rrlReferral
	case rcode == 0:
		return rrlAnswer, qname
	default:
		return rrlError, 0
	}
	for i := 0; i < int(an) && off > 0; i++ {
		off = skipRR(out, off)
	}
	if ns == 0 || off <= 0 || off >= len(out) {
		return class, qname
	}
	owner, _ := hashName(out, off)
	return class, owner
}

// hashName hashes the (possibly compressed) name at off in msg, in lower
// case (FNV-1a), and returns the offset past it; -1 if it is malformed.
func hashName(msg []byte, off int) (uint64, int) {
	h := uint64(14695981039346656037)
	end := -1
	for hops := 0; hops < 128; hops++ {
		if off >= len(msg) {
			return h, -1
		}
		c := int(msg[off])
		switch {
		case c == 0:
			if end < 0 {
				end = off + 1
			}
			return h, end
		case c&0xc0 == 0xc0:
			if off+1 >= len(msg) {
				return h, -1
			}
			if end < 0 {
				end = off + 2
			}
			off = int(binary.BigEndian.Uint16(msg[off:]) & 0x3fff)
		default:
			if off+1+c > len(msg) {
				return h, -1
			}
			for _, b := range msg[off : off+1+c] {
				if b >= 'A' && b <= 'Z' {
					b += 'a' - 'A'
				}
				h = (h ^ uint64(b)) * 1099511628211
			}
			off += 1 + c
		}
	}
	return h, -1
}

// skipRR returns the offset past the resource record at off, or -1.
func skipRR(msg []byte, off int) int {
	_, off = hashName(msg, off)
	if off < 0 || off+10 > len(msg) {
		return -1
	}
	off += 10 + int(binary.BigEndian.Uint16(msg[off+8:]))
	if off > len(msg) {
		return -1
	}
	return off
}

// slipReply writes into dst the empty TC reply that stands for out: the
// header and question of out, TC set, AA clear, and out's OPT record if it
// has one. With badCookie (the query had a client cookie), the reply is
// BADCOOKIE instead, carrying the fresh server cookie of out's OPT, which
// the client can use at once (RFC 7873 §5.4).
func slipReply(dst, out []byte, badCookie bool) []byte {
	if len(out) < 12 {
		return nil
	}
	off := 12
	if binary.BigEndian.Uint16(out[4:]) == 1 {
		if _, off = hashName(out, off); off < 0 || off+4 > len(out) {
			return nil
		}
		off += 4
	}
	dst = append(dst[:0], out[:off]...)
	dst[2] = dst[2]&^0x04 | 0x02 // AA clear, TC set
	binary.BigEndian.PutUint32(dst[6:], 0)
	binary.BigEndian.PutUint16(dst[10:], 0)
	n := int(binary.BigEndian.Uint16(out[6:])) + int(binary.BigEndian.Uint16(out[8:])) + int(binary.BigEndian.Uint16(out[10:]))
	for i := 0; i < n && off > 0; i++ {
		start := off
		if off = skipRR(out, off); off < 0 {
			break
		}
		if out[start] == 0 && binary.BigEndian.Uint16(out[start+1:]) == 41 { // the OPT
			dst = append(dst, out[start:off]...)
			binary.BigEndian.PutUint16(dst[10:], 1)
			if badCookie {
				dst[2] &^= 0x02
				dst[3] = dst[3]&0xf0 | 23&0xf         // BADCOOKIE (23): 7 in the header,
				dst[len(dst)-(off-start)+5] = 23 >> 4 // 1 in the OPT's extended rcode
			}
			break
		}
	}
	return dst
}

// pacer lets a log line through at most once a second and says how many
// events it stands for.
type pacer struct {
	at     atomic.Int64
	n      atomic.Uint64
	logged atomic.Uint64
}

// event counts one event; ok says whether to log now, since how many
// events have happened since the last line, and total how many ever.
func (p *pacer) event(now time.Time) (since, total uint64, ok bool) {
	total = p.n.Add(1)
	t, last := now.UnixNano(), p.at.Load()
	if t-last < int64(time.Second) || !p.at.CompareAndSwap(last, t) {
		return 0, total, false
	}
	return total - p.logged.Swap(total), total, true
}
