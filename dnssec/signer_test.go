package dnssec

import (
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return rr
}

// clock is a settable clock for Options.Now.
type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time      { return time.Unix(c.t.Load(), 0) }
func (c *clock) add(d time.Duration) { c.t.Add(int64(d / time.Second)) }
func newClock(t time.Time) *clock    { c := &clock{}; c.t.Store(t.Unix()); return c }

// TestSignVerifies (DNSSEC-01): for both algorithms and every role layout,
// the RRSIGs of a static RRset, a GSLB answer and the DNSKEY RRset verify
// with miekg/dns's RRSIG.Verify against the zone's DNSKEYs, with the
// inception backdated an hour and the expiration a few days ahead.
func TestSignVerifies(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		Name  string
		Alg   uint8
		Split bool
	}{
		{"ECDSAP256SHA256 CSK", ECDSAP256SHA256, false},
		{"ED25519 CSK", ED25519, false},
		{"ECDSAP256SHA256 KSK+ZSK", ECDSAP256SHA256, true},
	} {
		t.Run(tc.Name, func(t *testing.T) {
			keys, added, err := Ensure(nil, []string{"Example.COM"}, tc.Alg, tc.Split, now)
			if err != nil || !added {
				t.Fatalf("Ensure: %v, added %v", err, added)
			}
			s := New(Options{Now: func() time.Time { return now }})
			s.SetKeys(keys)
			z := s.Zone("example.com.")
			if z == nil {
				t.Fatal("example.com. is not signed")
			}
			want := 1
			if tc.Split {
				want = 2
			}
			if len(z.DNSKEY()) != want || len(z.CDS()) != 1 || len(z.CDNSKEY()) != 1 || len(z.DS()) != 1 {
				t.Fatalf("DNSKEY %d (want %d), CDS %d, CDNSKEY %d, DS %d (want 1 each)", len(z.DNSKEY()), want, len(z.CDS()), len(z.CDNSKEY()), len(z.DS()))
			}
			for _, set := range [][]dns.RR{
				{mustRR(t, "www.example.com. 30 IN A 192.0.2.10"), mustRR(t, "www.example.com. 30 IN A 192.0.2.11")},
				{mustRR(t, "example.com. 300 IN SOA ns1.example.com. h.example.com. 1 3600 600 1209600 60")},
				z.DNSKEY(),
			} {
				sigs := z.Sign(set)
				if len(sigs) != 1 {
					t.Fatalf("%s: %d RRSIGs, want 1", set[0].Header().Name, len(sigs))
				}
				sig := sigs[0].(*dns.RRSIG)
				verified := false
				for _, k := range z.DNSKEY() {
					if k.(*dns.DNSKEY).KeyTag() == sig.KeyTag {
						if err := sig.Verify(k.(*dns.DNSKEY), set); err != nil {
							t.Fatalf("%s/%s: Verify: %v", set[0].Header().Name, dns.TypeToString[set[0].Header().Rrtype], err)
						}
						verified = true
					}
				}
				if !verified {
					t.Fatalf("no DNSKEY with tag %d", sig.KeyTag)
				}
				if set[0].Header().Rrtype == dns.TypeDNSKEY && tc.Split && sig.KeyTag != keyOf(keys, KSK).Tag {
					t.Errorf("DNSKEY RRset signed by %d, want the KSK %d", sig.KeyTag, keyOf(keys, KSK).Tag)
				}
				if set[0].Header().Rrtype == dns.TypeA && tc.Split && sig.KeyTag != keyOf(keys, ZSK).Tag {
					t.Errorf("A RRset signed by %d, want the ZSK %d", sig.KeyTag, keyOf(keys, ZSK).Tag)
				}
				inc, exp := time.Unix(int64(sig.Inception), 0), time.Unix(int64(sig.Expiration), 0)
				if !inc.Equal(now.Add(-time.Hour)) {
					t.Errorf("inception %v, want %v", inc, now.Add(-time.Hour))
				}
				if exp.Before(now.Add(4*24*time.Hour)) || !exp.Before(now.Add(5*24*time.Hour)) {
					t.Errorf("expiration %v, want within [4, 5) days of %v", exp, now)
				}
				if sig.OrigTtl != set[0].Header().Ttl || sig.Hdr.Ttl != set[0].Header().Ttl {
					t.Errorf("RRSIG TTL %d/%d, want the RRset's %d", sig.Hdr.Ttl, sig.OrigTtl, set[0].Header().Ttl)
				}
			}
			ds := z.DS()[0]
			if ds.DigestType != dns.SHA256 || ds.KeyTag != z.sep[0].Tag {
				t.Errorf("DS %v: want SHA-256 of key %d", ds, z.sep[0].Tag)
			}
			if cds := z.CDS()[0].(*dns.CDS); cds.Digest != ds.Digest {
				t.Errorf("CDS %v does not match DS %v", cds, ds)
			}
		})
	}
}

func keyOf(keys []*Key, r Role) *Key {
	for _, k := range keys {
		if k.Role == r {
			return k
		}
	}
	return nil
}

// TestSignatureCache (DNSSEC-02): an RRset signed once is signed from the
// cache for the same content in any record order and owner case, signed
// again for other content, after a key change, and once its signatures
// come within Refresh of their expiration.
func TestSignatureCache(t *testing.T) {
	c := newClock(time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC))
	keys, _, err := Ensure(nil, []string{"example.com."}, ECDSAP256SHA256, false, c.now())
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Now: c.now, Validity: 4 * 24 * time.Hour, Jitter: time.Hour, Refresh: 2 * 24 * time.Hour})
	s.SetKeys(keys)
	z := s.Zone("example.com.")
	a := []dns.RR{mustRR(t, "www.example.com. 30 IN A 192.0.2.10"), mustRR(t, "www.example.com. 30 IN A 192.0.2.11")}
	b := []dns.RR{mustRR(t, "WWW.example.com. 30 IN A 192.0.2.11"), mustRR(t, "www.example.com. 30 IN A 192.0.2.10")}
	other := []dns.RR{mustRR(t, "www.example.com. 30 IN A 192.0.2.12")}
	first := z.Sign(a)
	if got := z.Sign(b); &got[0] != &first[0] {
		t.Error("the same RRset in another order and case was signed again")
	}
	if s.stats.Signatures.Load() != 1 || s.stats.CacheHits.Load() != 1 {
		t.Errorf("signatures %d, hits %d; want 1, 1", s.stats.Signatures.Load(), s.stats.CacheHits.Load())
	}
	z.Sign(other)
	if s.stats.Signatures.Load() != 2 {
		t.Errorf("another RRset: signatures %d, want 2", s.stats.Signatures.Load())
	}
	z.Sign([]dns.RR{mustRR(t, "www.example.com. 31 IN A 192.0.2.10"), mustRR(t, "www.example.com. 31 IN A 192.0.2.11")})
	z.Sign([]dns.RR{mustRR(t, "www.example.com. 30 IN AAAA 2001:db8::10")})
	z.Sign([]dns.RR{mustRR(t, "www.example.com. 30 IN TXT x"), mustRR(t, "www.example.com. 30 IN TXT y")})
	z.Sign([]dns.RR{mustRR(t, "www.example.com. 30 IN TXT y"), mustRR(t, "WWW.example.com. 30 IN TXT x")})
	if s.stats.Signatures.Load() != 5 {
		t.Errorf("another TTL, an AAAA, a TXT RRset twice in two orders: signatures %d, want 5", s.stats.Signatures.Load())
	}
	s.stats.Signatures.Store(2)
	c.add(24 * time.Hour)
	if got := z.Sign(a); &got[0] != &first[0] {
		t.Error("signed again a day later, with three days of validity left")
	}
	c.add(25 * time.Hour)
	renewed := z.Sign(a)
	if &renewed[0] == &first[0] {
		t.Fatal("not signed again within Refresh of the expiration")
	}
	if e := renewed[0].(*dns.RRSIG).Expiration; int64(e) < c.now().Add(4*24*time.Hour).Unix() {
		t.Errorf("renewed expiration %d, want at least 4 days from now", e)
	}
	if exp := s.EarliestExpiry(); exp.IsZero() || exp.Before(c.now().Add(2*24*time.Hour)) {
		t.Errorf("EarliestExpiry %v, want at least Refresh ahead of %v", exp, c.now())
	}
	s.SetKeys(keys)
	if got := s.Zone("example.com.").Sign(a); &got[0] == &renewed[0] {
		t.Error("signatures of the previous key set reused after SetKeys")
	}
}

// TestSignatureCacheBounded (DNSSEC-03): the cache holds at most its size,
// whatever number of RRsets is signed.
func TestSignatureCacheBounded(t *testing.T) {
	keys, _, _ := Ensure(nil, []string{"example.com."}, ED25519, false, time.Now())
	s := New(Options{CacheSize: 16})
	s.SetKeys(keys)
	z := s.Zone("example.com.")
	for i := range 200 {
		z.Sign([]dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "www.example.com.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: []byte{192, 0, 2, byte(i)}}})
	}
	if len(s.cache) != 16 {
		t.Fatalf("cache has %d slots, want 16", len(s.cache))
	}
	if s.stats.Signatures.Load() != 200 {
		t.Errorf("signatures %d, want 200", s.stats.Signatures.Load())
	}
}

// TestDenial (DNSSEC-04): compact denial NSECs (RFC 9824) cover only the
// name: next name "\000.name"; NODATA lists the types present less the
// type asked; a name that does not exist has NXNAME; the apex lists the
// key types the signer adds.
func TestDenial(t *testing.T) {
	keys, _, _ := Ensure(nil, []string{"example.com."}, ECDSAP256SHA256, false, time.Now())
	s := New(Options{})
	s.SetKeys(keys)
	z := s.Zone("example.com.")
	for _, tc := range []struct {
		Name   string
		Owner  string
		Types  []uint16
		QType  uint16
		NXName bool
		Want   []uint16
	}{
		{"nodata", "WWW.example.com.", []uint16{dns.TypeAAAA, dns.TypeA}, dns.TypeTXT, false, []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeRRSIG, dns.TypeNSEC}},
		{"gslb nodata for the type asked", "www.example.com.", []uint16{dns.TypeA, dns.TypeAAAA}, dns.TypeAAAA, false, []uint16{dns.TypeA, dns.TypeRRSIG, dns.TypeNSEC}},
		{"empty non-terminal", "pool.example.com.", nil, dns.TypeA, false, []uint16{dns.TypeRRSIG, dns.TypeNSEC}},
		{"no DS at a delegation", "sub.example.com.", []uint16{dns.TypeNS}, dns.TypeDS, false, []uint16{dns.TypeNS, dns.TypeRRSIG, dns.TypeNSEC}},
		{"apex", "example.com.", []uint16{dns.TypeSOA, dns.TypeNS}, dns.TypeTXT, false, []uint16{dns.TypeNS, dns.TypeSOA, dns.TypeRRSIG, dns.TypeNSEC, dns.TypeDNSKEY, dns.TypeCDS, dns.TypeCDNSKEY}},
		{"nxname", "nope.example.com.", nil, dns.TypeA, true, []uint16{dns.TypeRRSIG, dns.TypeNSEC, TypeNXNAME}},
	} {
		t.Run(tc.Name, func(t *testing.T) {
			n := z.Denial(tc.Owner, tc.Types, tc.QType, tc.NXName, 60)
			want := slices.Clone(tc.Want)
			slices.Sort(want)
			if !slices.Equal(n.TypeBitMap, want) {
				t.Errorf("bitmap %v, want %v", n.TypeBitMap, want)
			}
			owner := dns.CanonicalName(tc.Owner)
			if n.Hdr.Name != owner || n.NextDomain != `\000.`+owner || n.Hdr.Ttl != 60 {
				t.Errorf("NSEC %v: want owner %s, next \\000.%s, TTL 60", n, owner, owner)
			}
			// It packs, and its signature verifies.
			sig := z.Sign([]dns.RR{n})[0].(*dns.RRSIG)
			if err := sig.Verify(z.DNSKEY()[0].(*dns.DNSKEY), []dns.RR{n}); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

// TestKeysRoundTrip (DNSSEC-05): keys marshal and unmarshal to the same
// DNSKEY, tag, role and state, and sign verifiably after the trip.
func TestKeysRoundTrip(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	keys, _, _ := Ensure(nil, []string{"a.example."}, ECDSAP256SHA256, false, now)
	keys, _, _ = Ensure(keys, []string{"b.example."}, ED25519, true, now)
	b, err := Marshal(keys)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(keys) {
		t.Fatalf("%d keys back, want %d", len(back), len(keys))
	}
	for i, k := range keys {
		g := back[i]
		if g.DNSKEY.String() != k.DNSKEY.String() || g.Tag != k.Tag || g.Role != k.Role || g.State != k.State || !g.Created.Equal(k.Created) {
			t.Errorf("key %d: got %v %v, want %v %v", i, g, g.DNSKEY, k, k.DNSKEY)
		}
	}
	s := New(Options{})
	s.SetKeys(back)
	set := []dns.RR{mustRR(t, "x.b.example. 60 IN TXT hello")}
	sig := s.Zone("b.example.").Sign(set)[0].(*dns.RRSIG)
	if err := sig.Verify(keyOf(keys[1:], ZSK).DNSKEY, set); err != nil {
		t.Errorf("signature by the unmarshalled ZSK: %v", err)
	}
	for _, bad := range []string{`{"version":2,"keys":[]}`, `{"version":1,"keys":[{"zone":"a.","role":"csk","state":"active","algorithm":13,"private":"!!"}]}`, `nope`} {
		if _, err := Unmarshal([]byte(bad)); err == nil {
			t.Errorf("Unmarshal(%s): no error", bad)
		}
	}
}

// TestRollover (DNSSEC-06): pre-publish, switch and remove. At every step
// the DNSKEY RRset is signed by every KSK or CSK it holds, so the DS of
// the old key and the DS of the new one both validate it until the old
// key is removed; data is signed by the active key only; out-of-order
// steps are refused with ErrRollover.
func TestRollover(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	keys, _, _ := Ensure(nil, []string{"example.com."}, ECDSAP256SHA256, false, now)
	old := keys[0]
	if _, err := Switch(keys, "example.com.", CSK); !errors.Is(err, ErrRollover) {
		t.Fatalf("Switch with nothing pre-published: %v, want ErrRollover", err)
	}
	keys, next, err := Prepublish(keys, "example.com.", CSK, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Prepublish(keys, "example.com.", CSK, now); !errors.Is(err, ErrRollover) {
		t.Fatalf("second Prepublish: %v, want ErrRollover", err)
	}
	check := func(step string, keys []*Key, dataBy *Key, keysBy []*Key) {
		t.Helper()
		s := New(Options{})
		s.SetKeys(keys)
		z := s.Zone("example.com.")
		data := []dns.RR{mustRR(t, "www.example.com. 30 IN A 192.0.2.10")}
		sigs := z.Sign(data)
		if len(sigs) != 1 || sigs[0].(*dns.RRSIG).KeyTag != dataBy.Tag {
			t.Errorf("%s: data signed by %v, want %d only", step, sigs, dataBy.Tag)
		}
		ksigs := z.Sign(z.DNSKEY())
		if len(ksigs) != len(keysBy) {
			t.Fatalf("%s: %d DNSKEY RRSIGs, want %d", step, len(ksigs), len(keysBy))
		}
		for i, k := range keysBy {
			if err := ksigs[i].(*dns.RRSIG).Verify(k.DNSKEY, z.DNSKEY()); err != nil {
				t.Errorf("%s: DNSKEY RRset by %d: %v", step, k.Tag, err)
			}
		}
		if len(z.CDS()) != len(keysBy) {
			t.Errorf("%s: %d CDS, want %d", step, len(z.CDS()), len(keysBy))
		}
	}
	check("prepublished", keys, old, []*Key{old, next})
	if keys, err = Switch(keys, "example.com.", CSK); err != nil {
		t.Fatal(err)
	}
	check("switched", keys, next, []*Key{old, next})
	if keys, err = Remove(keys, "example.com.", CSK); err != nil {
		t.Fatal(err)
	}
	check("removed", keys, next, []*Key{next})
	if _, err := Remove(keys, "example.com.", CSK); !errors.Is(err, ErrRollover) {
		t.Fatalf("second Remove: %v, want ErrRollover", err)
	}
}

// TestParseZones (DNSSEC-07): the --dnssec flag's value.
func TestParseZones(t *testing.T) {
	for _, tc := range []struct {
		In   string
		Want []string
		All  bool
		Err  bool
	}{
		{"example.com,Example.NET.", []string{"example.com.", "example.net."}, false, false},
		{"*", nil, true, false},
		{"*,example.com", nil, false, true},
		{"bad..name", nil, false, true},
	} {
		z, all, err := ParseZones(tc.In)
		if (err != nil) != tc.Err || all != tc.All || !slices.Equal(z, tc.Want) {
			t.Errorf("ParseZones(%q) = %v, %v, %v; want %v, %v, error %v", tc.In, z, all, err, tc.Want, tc.All, tc.Err)
		}
	}
}
