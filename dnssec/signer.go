// Package dnssec signs DNS answers online: zone keys (ECDSA P-256 or
// Ed25519, one combined key per zone or a KSK/ZSK split, with a
// pre-publish rollover), RRSIGs made when an answer is given and kept in a
// bounded cache keyed by the RRset's content (so an answer given to many
// clients is signed once per change), and compact denial of existence
// (RFC 9824): one NSEC that covers only the name asked.
package dnssec

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Options tune a Signer. The zero value of each field is the default
// documented beside it.
type Options struct {
	// Validity is how long a new signature is valid from now (default 4
	// days), plus a random Jitter (default up to 1 day), so that the
	// signatures of one moment do not all expire at once.
	Validity time.Duration
	Jitter   time.Duration
	// Backdate is how far a signature's inception is set in the past
	// (default 1 hour), for validators whose clock is behind.
	Backdate time.Duration
	// Refresh: a cached signature that expires within this long is made
	// again (default 2 days). Replies holding signatures must not be kept
	// longer than Refresh less a margin: the server's reply cache is
	// cleared every hour while signing.
	Refresh time.Duration
	// CacheSize bounds the signature cache, in RRsets (default 16384).
	CacheSize int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Signer signs the zones it has keys for. It is safe for concurrent use:
// the keys are swapped atomically (SetKeys) and the cache is lock-free.
type Signer struct {
	opt   Options
	zones atomic.Pointer[map[string]*Zone]
	gen   atomic.Uint64
	cache []atomic.Pointer[sigEntry]
	seed  maphash.Seed
	stats Stats
}

// Stats counts what a Signer did.
type Stats struct {
	Signatures  atomic.Uint64 // RRSIGs made
	CacheHits   atomic.Uint64 // RRsets whose signatures came from the cache
	CacheMisses atomic.Uint64 // RRsets signed afresh
	Errors      atomic.Uint64 // signing failures (the RRset is then sent unsigned)
}

const cacheProbe = 4

// New returns a signer with no keys.
func New(opt Options) *Signer {
	if opt.Validity <= 0 {
		opt.Validity = 4 * 24 * time.Hour
	}
	if opt.Jitter <= 0 {
		opt.Jitter = 24 * time.Hour
	}
	if opt.Backdate <= 0 {
		opt.Backdate = time.Hour
	}
	if opt.Refresh <= 0 {
		opt.Refresh = 2 * 24 * time.Hour
	}
	if opt.Refresh >= opt.Validity {
		opt.Refresh = opt.Validity / 2
	}
	if opt.CacheSize <= 0 {
		opt.CacheSize = 1 << 14
	}
	size := 1
	for size < opt.CacheSize {
		size <<= 1
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	s := &Signer{opt: opt, cache: make([]atomic.Pointer[sigEntry], size), seed: maphash.MakeSeed()}
	m := map[string]*Zone{}
	s.zones.Store(&m)
	return s
}

// Stats returns the signer's counters.
func (s *Signer) Stats() *Stats { return &s.stats }

// SetKeys makes keys the keys every following signature is made with. A
// zone with no active key is not signed. Signatures cached for the
// previous keys are not reused.
func (s *Signer) SetKeys(keys []*Key) {
	gen := s.gen.Add(1)
	m := map[string]*Zone{}
	for _, origin := range Zones(keys) {
		if z := newZone(s, origin, ZoneKeys(keys, origin), gen); z != nil {
			m[origin] = z
		}
	}
	s.zones.Store(&m)
}

// Zone returns the signing state of zone origin (lower case, fully
// qualified), or nil if it is not signed.
func (s *Signer) Zone(origin string) *Zone { return (*s.zones.Load())[origin] }

// Zones returns the signed zones' states, sorted by origin.
func (s *Signer) Zones() []*Zone {
	m := *s.zones.Load()
	out := make([]*Zone, 0, len(m))
	for _, z := range m {
		out = append(out, z)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Origin < out[j].Origin })
	return out
}

// Zone is one signed zone with its keys, immutable.
type Zone struct {
	s      *Signer
	Origin string
	Keys   []*Key
	gen    uint64
	data   []*Key // sign every RRset but DNSKEY
	sep    []*Key // sign the DNSKEY RRset
	dnskey []dns.RR
	cds    []dns.RR
	cdns   []dns.RR
	labels uint8
}

func newZone(s *Signer, origin string, keys []*Key, gen uint64) *Zone {
	z := &Zone{s: s, Origin: origin, Keys: keys, gen: gen, labels: uint8(dns.CountLabel(origin))}
	var zsk, csk []*Key
	for _, k := range keys {
		z.dnskey = append(z.dnskey, k.DNSKEY)
		if k.signsKeys() {
			z.sep = append(z.sep, k)
			z.cds = append(z.cds, k.DS().ToCDS())
			z.cdns = append(z.cdns, k.DNSKEY.ToCDNSKEY())
		}
		if k.State == Active {
			if k.Role == ZSK {
				zsk = append(zsk, k)
			} else {
				csk = append(csk, k)
			}
		}
	}
	// With a split, only the ZSK signs data; a CSK or a KSK standing alone
	// signs everything.
	z.data = zsk
	if len(z.data) == 0 {
		z.data = csk
	}
	if len(z.data) == 0 {
		return nil
	}
	for _, rr := range z.cds {
		rr.Header().Ttl = KeyTTL
	}
	for _, rr := range z.cdns {
		rr.Header().Ttl = KeyTTL
	}
	return z
}

// DNSKEY, CDS and CDNSKEY return the zone's apex key RRsets (RFC 4034 §2,
// RFC 7344 §3): every key of the zone in DNSKEY; the KSKs and CSKs, in
// every state, in CDS (SHA-256) and CDNSKEY. The caller must not modify
// them.
func (z *Zone) DNSKEY() []dns.RR  { return z.dnskey }
func (z *Zone) CDS() []dns.RR     { return z.cds }
func (z *Zone) CDNSKEY() []dns.RR { return z.cdns }

// DS returns the DS records (SHA-256) of the zone's KSKs and CSKs: what
// the parent zone should hold.
func (z *Zone) DS() []*dns.DS {
	var out []*dns.DS
	for _, k := range z.sep {
		out = append(out, k.DS())
	}
	return out
}

// Sign returns the RRSIGs of rrset (one RRset: same owner, type and class;
// not empty), from the cache when its content was signed before with the
// same keys and the signatures are not due for refresh. The result is
// shared: the caller must not modify it. On a signing failure it returns
// nil (counted in Stats.Errors).
func (z *Zone) Sign(rrset []dns.RR) []dns.RR {
	s := z.s
	key := z.cacheKey(rrset)
	h := maphash.Bytes(s.seed, key)
	now := s.opt.Now()
	mask := uint64(len(s.cache) - 1)
	for i := uint64(0); i < cacheProbe; i++ {
		e := s.cache[(h+i)&mask].Load()
		if e == nil {
			break
		}
		if e.hash == h && bytes.Equal(e.key, key) && now.Unix() < e.refresh {
			s.stats.CacheHits.Add(1)
			return e.sigs
		}
	}
	s.stats.CacheMisses.Add(1)
	sigs, exp := z.sign(rrset, now)
	if sigs == nil {
		return nil
	}
	e := &sigEntry{hash: h, key: key, sigs: sigs, refresh: exp.Add(-s.opt.Refresh).Unix(), expires: exp.Unix()}
	for i := uint64(0); i < cacheProbe; i++ {
		slot := &s.cache[(h+i)&mask]
		old := slot.Load()
		if old == nil || old.hash == h && bytes.Equal(old.key, key) || now.Unix() >= old.refresh {
			if slot.CompareAndSwap(old, e) {
				return sigs
			}
		}
	}
	s.cache[h&mask].Store(e) // full: replace the first
	return sigs
}

// sign makes the RRSIGs of rrset now, by every key that signs it.
func (z *Zone) sign(rrset []dns.RR, now time.Time) ([]dns.RR, time.Time) {
	s := z.s
	keys := z.data
	if rrset[0].Header().Rrtype == dns.TypeDNSKEY {
		keys = z.sep
	}
	exp := now.Add(s.opt.Validity + rand.N(s.opt.Jitter))
	out := make([]dns.RR, 0, len(keys))
	for _, k := range keys {
		sig := &dns.RRSIG{
			Hdr:        dns.RR_Header{Ttl: rrset[0].Header().Ttl},
			Algorithm:  k.DNSKEY.Algorithm,
			Expiration: uint32(exp.Unix()),
			Inception:  uint32(now.Add(-s.opt.Backdate).Unix()),
			KeyTag:     k.Tag,
			SignerName: z.Origin,
		}
		if err := sig.Sign(k.private, rrset); err != nil {
			s.stats.Errors.Add(1)
			return nil, exp
		}
		s.stats.Signatures.Add(1)
		out = append(out, sig)
	}
	return out, exp
}

// cacheKey is the RRset's content in a form that is the same whatever the
// order of its records or the case of its names: the zone's key
// generation, then each record's uncompressed wire form with the owner in
// lower case, sorted.
func (z *Zone) cacheKey(rrset []dns.RR) []byte {
	if k, ok := z.addrKey(rrset); ok {
		return k
	}
	var recs [][]byte
	buf := make([]byte, 0, 64*len(rrset))
	for _, rr := range rrset {
		// A copy: dns.PackRR writes Rdlength into the record, and rrset
		// is shared with every other query answered from it.
		c := dns.Copy(rr)
		c.Header().Name = strings.ToLower(c.Header().Name)
		b := make([]byte, dns.Len(c)+16)
		n, err := dns.PackRR(c, b, 0, nil, false)
		if err != nil {
			continue
		}
		recs = append(recs, b[:n])
	}
	slices.SortFunc(recs, bytes.Compare)
	buf = binary.BigEndian.AppendUint64(buf, z.gen)
	buf = append(buf, 0) // the general form
	for _, r := range recs {
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(r)))
		buf = append(buf, r...)
	}
	return buf
}

// addrKey is cacheKey for the RRsets most answers are (A or AAAA, GSLB
// answers among them), without packing: the key generation, 1, the owner
// in lower case, type, class and TTL, then the addresses, sorted. ok is
// false for any other RRset.
func (z *Zone) addrKey(rrset []dns.RR) (key []byte, ok bool) {
	h0 := rrset[0].Header()
	size := 0
	switch h0.Rrtype {
	case dns.TypeA:
		size = 4
	case dns.TypeAAAA:
		size = 16
	default:
		return nil, false
	}
	buf := make([]byte, 0, 8+1+len(h0.Name)+1+8+size*len(rrset))
	buf = binary.BigEndian.AppendUint64(buf, z.gen)
	buf = append(buf, 1)
	for i := 0; i < len(h0.Name); i++ {
		c := h0.Name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf = append(buf, c)
	}
	buf = append(buf, 0)
	buf = binary.BigEndian.AppendUint16(buf, h0.Rrtype)
	buf = binary.BigEndian.AppendUint16(buf, h0.Class)
	buf = binary.BigEndian.AppendUint32(buf, h0.Ttl)
	start := len(buf)
	for _, rr := range rrset {
		h := rr.Header()
		if h.Rrtype != h0.Rrtype || h.Class != h0.Class || h.Ttl != h0.Ttl || !strings.EqualFold(h.Name, h0.Name) {
			return nil, false
		}
		var ip []byte
		switch v := rr.(type) {
		case *dns.A:
			ip = v.A.To4()
		case *dns.AAAA:
			ip = v.AAAA.To16()
		}
		if len(ip) != size {
			return nil, false
		}
		buf = append(buf, ip...)
	}
	// Insertion sort of the fixed-size addresses (RRsets are small).
	for i := start + size; i < len(buf); i += size {
		for j := i; j > start && bytes.Compare(buf[j:j+size], buf[j-size:j]) < 0; j -= size {
			for k := 0; k < size; k++ {
				buf[j+k], buf[j-size+k] = buf[j-size+k], buf[j+k]
			}
		}
	}
	return buf, true
}

type sigEntry struct {
	hash    uint64
	key     []byte
	sigs    []dns.RR
	refresh int64 // unix seconds: from then on, sign again
	expires int64 // unix seconds: the signatures' expiration
}

// EarliestExpiry returns the earliest expiration of the signatures the
// cache still hands out (zero time if none): what a resolver that got one
// of them just now holds at worst. It scans the whole cache; call it at
// metric scrapes, not per query.
func (s *Signer) EarliestExpiry() time.Time {
	now := s.opt.Now().Unix()
	var min int64
	for i := range s.cache {
		e := s.cache[i].Load()
		if e == nil || now >= e.refresh {
			continue
		}
		if min == 0 || e.expires < min {
			min = e.expires
		}
	}
	if min == 0 {
		return time.Time{}
	}
	return time.Unix(min, 0)
}

// TypeNXNAME is the meta-type of RFC 9824 §3.3 in the NSEC of a name that
// does not exist.
const TypeNXNAME = 128

// Denial returns the compact-denial NSEC of RFC 9824 for name in zone z:
// owner name, next name the immediate successor "\000.name" (so it covers
// nothing but name), and the type bitmap types (as found at name, less the
// type asked, which the answer says is not there) plus RRSIG and NSEC.
// For a name that does not exist, pass nxname: the bitmap is then NXNAME,
// RRSIG and NSEC (§3.3). ttl is the negative TTL (RFC 9077: the lesser of
// the SOA's TTL and MINIMUM).
func (z *Zone) Denial(name string, types []uint16, qtype uint16, nxname bool, ttl uint32) *dns.NSEC {
	name = strings.ToLower(name)
	bm := make([]uint16, 0, len(types)+5)
	if nxname {
		bm = append(bm, TypeNXNAME)
	} else {
		for _, t := range types {
			if t != qtype {
				bm = append(bm, t)
			}
		}
		if name == z.Origin {
			// RFC 4034 §2, RFC 7344: the key RRsets the signer adds.
			for _, t := range []uint16{dns.TypeDNSKEY, dns.TypeCDS, dns.TypeCDNSKEY} {
				if t != qtype {
					bm = append(bm, t)
				}
			}
		}
	}
	bm = append(bm, dns.TypeRRSIG, dns.TypeNSEC)
	slices.Sort(bm)
	bm = slices.Compact(bm)
	return &dns.NSEC{
		Hdr:        dns.RR_Header{Name: name, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: ttl},
		NextDomain: `\000.` + name,
		TypeBitMap: bm,
	}
}
