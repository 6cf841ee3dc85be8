package dnsserver

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// DNS Cookies (RFC 7873) with the interoperable server cookies of RFC 9018:
// Version 1, three reserved octets, a 32-bit timestamp and SipHash-2-4 of
// client cookie, those eight octets and the client address under a 16-byte
// secret. Every node given the same secret accepts the others' cookies.
//
// A query with a valid server cookie has proved that its source address is
// real: it is exempt from response-rate limiting. A client cookie alone,
// or a server cookie that is not valid (another secret, more than an hour
// old), is answered normally with a fresh server cookie (RFC 7873 §5.2.3,
// §5.2.4); when such a query is over the rate limit and would be slipped,
// it gets BADCOOKIE with the fresh cookie instead of an empty TC reply, so
// its next query passes (§5.4).

const (
	clientCookieLen = 8
	serverCookieLen = 16 // RFC 9018's
	cookieMaxAge    = 3600
	cookieRenewAge  = 1800
	cookieMaxAhead  = 300
)

// cookieState is what a query's COOKIE option said.
type cookieState struct {
	n      int      // option length: 0 (none), 8 (client only) or 16 to 40
	buf    [40]byte // client cookie, then the server cookie sent
	valid  bool     // the server cookie is ours and fresh
	renew  bool     // valid but older than half an hour: issue a new one
	sentAt uint32   // its timestamp, if valid
}

func (c *cookieState) client() []byte { return c.buf[:clientCookieLen] }

// parse reads a COOKIE option; false if its length is not one RFC 7873
// §5.2.2 allows (FORMERR).
func (c *cookieState) parse(o *dns.EDNS0_COOKIE) bool {
	n := len(o.Cookie) / 2
	if len(o.Cookie)%2 != 0 || n < clientCookieLen || n > len(c.buf) || n > clientCookieLen && n < 16 {
		return false
	}
	if _, err := hex.Decode(c.buf[:n], []byte(o.Cookie)); err != nil {
		return false
	}
	c.n = n
	return true
}

// cookieSecrets are the current secret and, during a rollover, the previous
// one (RFC 9018 §5), which still validates.
type cookieSecrets struct {
	cur, old [2]uint64 // SipHash keys
	hasOld   bool
}

func newCookieSecrets(cur, old []byte) (cookieSecrets, error) {
	var s cookieSecrets
	if len(cur) == 0 {
		cur = make([]byte, 16)
		rand.Read(cur)
	}
	if len(cur) != 16 {
		return s, fmt.Errorf("dns: cookie secret of %d bytes: want 16", len(cur))
	}
	s.cur = [2]uint64{binary.LittleEndian.Uint64(cur), binary.LittleEndian.Uint64(cur[8:])}
	if len(old) > 0 {
		if len(old) != 16 {
			return s, fmt.Errorf("dns: old cookie secret of %d bytes: want 16", len(old))
		}
		s.old = [2]uint64{binary.LittleEndian.Uint64(old), binary.LittleEndian.Uint64(old[8:])}
		s.hasOld = true
	}
	return s, nil
}

// hash is RFC 9018 §4.4's: SipHash-2-4 of client cookie, the server
// cookie's first eight octets (version, reserved, timestamp) and the
// client address.
func cookieHash(key [2]uint64, client, head []byte, ip netip.Addr) uint64 {
	var in [8 + 8 + 16]byte
	n := copy(in[:], client)
	n += copy(in[n:], head[:8])
	if ip.Is4() {
		a := ip.As4()
		n += copy(in[n:], a[:])
	} else {
		a := ip.As16()
		n += copy(in[n:], a[:])
	}
	return siphash24(key[0], key[1], in[:n])
}

// check validates the server cookie of c for ip at time now.
func (s *cookieSecrets) check(c *cookieState, ip netip.Addr, now uint32) {
	c.valid, c.renew = false, false
	if c.n != clientCookieLen+serverCookieLen || c.buf[8] != 1 {
		return
	}
	srv := c.buf[clientCookieLen:c.n]
	ts := binary.BigEndian.Uint32(srv[4:])
	age := int32(now - ts) // serial arithmetic: the timestamp wraps
	if age > cookieMaxAge || age < -cookieMaxAhead {
		return
	}
	want := binary.LittleEndian.Uint64(srv[8:])
	if cookieHash(s.cur, c.client(), srv, ip) != want && !(s.hasOld && cookieHash(s.old, c.client(), srv, ip) == want) {
		return
	}
	c.valid, c.renew, c.sentAt = true, age > cookieRenewAge, ts
}

// fill writes the cookie of the reply into out: the client cookie and the
// server cookie the client sent if it is valid and young, else a new one.
func (s *cookieSecrets) fill(out *[clientCookieLen + serverCookieLen]byte, c *cookieState, ip netip.Addr, now uint32) {
	copy(out[:], c.client())
	if c.valid && !c.renew && c.n == len(out) {
		copy(out[8:], c.buf[8:c.n])
		return
	}
	out[8], out[9], out[10], out[11] = 1, 0, 0, 0
	binary.BigEndian.PutUint32(out[12:], now)
	binary.LittleEndian.PutUint64(out[16:], cookieHash(s.cur, c.client(), out[8:], ip))
}

// reply returns the COOKIE option of the reply (see fill).
func (s *cookieSecrets) reply(c *cookieState, ip netip.Addr, now uint32) *dns.EDNS0_COOKIE {
	var out [clientCookieLen + serverCookieLen]byte
	s.fill(&out, c, ip, now)
	return &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hex.EncodeToString(out[:])}
}

// cookieTail is how a cacheable reply to a cookie query ends: its OPT's
// last option is the 24-byte COOKIE (replyOPT adds it after ECS).
var cookieTail = [4]byte{0, dns.EDNS0COOKIE, 0, clientCookieLen + serverCookieLen}

// patchCookie writes the cookie for the query's raw COOKIE option q (8 or
// 16 to 40 bytes) into the last 24 bytes of the cached reply out, and says
// whether the query's server cookie was valid. It allocates nothing.
func (s *cookieSecrets) patchCookie(out, q []byte, c *cookieState, ip netip.Addr) (valid, ok bool) {
	n := len(out) - (clientCookieLen + serverCookieLen)
	if n < 16 || [4]byte(out[n-4:n]) != cookieTail {
		return false, false
	}
	c.n = copy(c.buf[:], q)
	now := cookieNow()
	s.check(c, ip, now)
	s.fill((*[clientCookieLen + serverCookieLen]byte)(out[n:]), c, ip, now)
	return c.valid, true
}

func cookieNow() uint32 { return uint32(time.Now().Unix()) }

// siphash24 is SipHash-2-4 (Aumasson and Bernstein) of p under key k0, k1.
func siphash24(k0, k1 uint64, p []byte) uint64 {
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13)
		v1 ^= v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16)
		v3 ^= v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21)
		v3 ^= v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17)
		v1 ^= v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	last := uint64(len(p)) << 56
	for ; len(p) >= 8; p = p[8:] {
		m := binary.LittleEndian.Uint64(p)
		v3 ^= m
		round()
		round()
		v0 ^= m
	}
	for i, b := range p {
		last |= uint64(b) << (8 * i)
	}
	v3 ^= last
	round()
	round()
	v0 ^= last
	v2 ^= 0xff
	round()
	round()
	round()
	round()
	return v0 ^ v1 ^ v2 ^ v3
}
