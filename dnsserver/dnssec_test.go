package dnsserver_test

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/dnssec"
	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/dnsserver/dnstest"
)

func startSigned(t *testing.T) (*dnstest.Server, *dnssec.Signer) {
	t.Helper()
	data, err := os.ReadFile("testdata/example.com.zone")
	if err != nil {
		t.Fatal(err)
	}
	keys, _, err := dnssec.Ensure(nil, []string{"example.com."}, dnssec.ECDSAP256SHA256, false, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sg := dnssec.New(dnssec.Options{})
	sg.SetKeys(keys)
	other := "$ORIGIN example.net.\n@ 300 IN SOA ns1 h 1 3600 600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.1\n"
	return dnstest.Start(t, map[string]string{"example.com.zone": string(data), "example.net.zone": other}, dnsserver.Config{Signer: sg}), sg
}

func doQuery(name string, qtype uint16, do bool, size uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	m.SetEdns0(size, do)
	return m
}

// verifySections checks that every RRset of the answer and authority
// sections of r, except the NS RRset of a referral, has an RRSIG that
// verifies with one of keys and is valid now, and returns the NSEC of the
// authority section, if any.
func verifySections(t *testing.T, q string, r *dns.Msg, keys []dns.RR) *dns.NSEC {
	t.Helper()
	var nsec *dns.NSEC
	for _, sec := range [][]dns.RR{r.Answer, r.Ns} {
		sets := map[string][]dns.RR{}
		sigs := map[string][]*dns.RRSIG{}
		for _, rr := range sec {
			h := rr.Header()
			if s, ok := rr.(*dns.RRSIG); ok {
				k := strings.ToLower(h.Name) + "/" + dns.TypeToString[s.TypeCovered]
				sigs[k] = append(sigs[k], s)
				continue
			}
			if n, ok := rr.(*dns.NSEC); ok {
				nsec = n
			}
			k := strings.ToLower(h.Name) + "/" + dns.TypeToString[h.Rrtype]
			sets[k] = append(sets[k], rr)
		}
		for k, set := range sets {
			if set[0].Header().Rrtype == dns.TypeNS && !r.Authoritative {
				if len(sigs[k]) > 0 {
					t.Errorf("%s: referral NS %s is signed", q, k)
				}
				continue
			}
			if len(sigs[k]) == 0 {
				t.Errorf("%s: %s has no RRSIG", q, k)
				continue
			}
			for _, s := range sigs[k] {
				ok := false
				for _, key := range keys {
					if d := key.(*dns.DNSKEY); d.KeyTag() == s.KeyTag && s.Verify(d, set) == nil && s.ValidityPeriod(time.Now()) {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s: RRSIG of %s by key %d does not verify", q, k, s.KeyTag)
				}
				if want := uint8(dns.CountLabel(set[0].Header().Name)); s.Labels != want {
					t.Errorf("%s: RRSIG of %s has %d labels, want %d (as the name asked)", q, k, s.Labels, want)
				}
			}
		}
	}
	return nsec
}

// TestSignedReplies (DNSSEC-10): DO=1 replies from a signed zone carry
// RRSIGs that verify for every answer and authority RRset (static, GSLB,
// CNAME chain, wildcard), compact denial for NODATA and names that do not
// exist (NOERROR with an NXNAME NSEC), a DS or a proof of no DS with a
// referral, and the apex key RRsets; over UDP and TCP (DNS-34).
func TestSignedReplies(t *testing.T) {
	srv, sg := startSigned(t)
	z := sg.Zone("example.com.")
	keys := z.DNSKEY()
	type want struct {
		rcode   int
		answers int      // records in the answer, RRSIGs excluded
		nsec    string   // owner of the NSEC expected, "" for none
		has     []uint16 // in its type bitmap
		hasNot  []uint16
		ds      bool // a DS in the authority section
	}
	cases := []struct {
		Name  string
		Qname string
		Qtype uint16
		Want  want
	}{
		{"static", "mail.example.com.", dns.TypeA, want{answers: 1}},
		{"apex SOA", "example.com.", dns.TypeSOA, want{answers: 1}},
		{"GSLB A", "www.example.com.", dns.TypeA, want{answers: 2}},
		{"GSLB AAAA", "www.example.com.", dns.TypeAAAA, want{answers: 1}},
		{"GSLB wildcard", "x.gw.example.com.", dns.TypeA, want{answers: 1}},
		{"CNAME chain", "chain1.example.com.", dns.TypeA, want{answers: 4}},
		{"wildcard", "a.b.wild.example.com.", dns.TypeA, want{answers: 1}},
		{"wildcard CNAME", "q.cw.example.com.", dns.TypeA, want{answers: 2}},
		{"NXDOMAIN is NOERROR with NXNAME", "nope.example.com.", dns.TypeA,
			want{nsec: "nope.example.com.", has: []uint16{dnssec.TypeNXNAME}, hasNot: []uint16{dns.TypeA}}},
		{"CNAME to a name that does not exist", "tonx.example.com.", dns.TypeA,
			want{answers: 1, nsec: "missing.example.com.", has: []uint16{dnssec.TypeNXNAME}}},
		{"NODATA", "mail.example.com.", dns.TypeTXT,
			want{nsec: "mail.example.com.", has: []uint16{dns.TypeA, dns.TypeAAAA}, hasNot: []uint16{dns.TypeTXT, dnssec.TypeNXNAME}}},
		{"NODATA at the apex", "example.com.", dns.TypeTXT,
			want{nsec: "example.com.", has: []uint16{dns.TypeSOA, dns.TypeNS, dns.TypeMX, dns.TypeDNSKEY}, hasNot: []uint16{dns.TypeTXT}}},
		{"empty non-terminal", "pool.example.com.", dns.TypeA,
			want{nsec: "pool.example.com.", hasNot: []uint16{dns.TypeA, dnssec.TypeNXNAME}}},
		{"wildcard NODATA", "q.wild.example.com.", dns.TypeMX,
			want{nsec: "q.wild.example.com.", has: []uint16{dns.TypeA, dns.TypeTXT}, hasNot: []uint16{dns.TypeMX}}},
		{"GSLB NODATA for the family it lacks", "v4only.example.com.", dns.TypeAAAA,
			want{nsec: "v4only.example.com.", has: []uint16{dns.TypeA}, hasNot: []uint16{dns.TypeAAAA}}},
		{"referral without DS", "host.sub.example.com.", dns.TypeA,
			want{nsec: "sub.example.com.", has: []uint16{dns.TypeNS}, hasNot: []uint16{dns.TypeDS, dns.TypeSOA}}},
		{"referral with DS", "host.sec.example.com.", dns.TypeA, want{ds: true}},
		{"DS at a cut without one", "sub.example.com.", dns.TypeDS,
			want{nsec: "sub.example.com.", has: []uint16{dns.TypeNS}, hasNot: []uint16{dns.TypeDS}}},
		{"DS at a cut", "sec.example.com.", dns.TypeDS, want{answers: 1}},
		{"NSEC asked: the name's NSEC as the answer", "mail.example.com.", dns.TypeNSEC,
			want{answers: 1, nsec: "mail.example.com.", has: []uint16{dns.TypeA}, hasNot: []uint16{dnssec.TypeNXNAME}}},
		{"DNSKEY", "example.com.", dns.TypeDNSKEY, want{answers: 1}},
		{"CDS", "example.com.", dns.TypeCDS, want{answers: 1}},
		{"CDNSKEY", "example.com.", dns.TypeCDNSKEY, want{answers: 1}},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range cases {
			t.Run(network+"/"+tc.Name, func(t *testing.T) {
				q := tc.Qname + "/" + dns.TypeToString[tc.Qtype]
				r := dnstest.Exchange(t, srv.Addr, network, doQuery(tc.Qname, tc.Qtype, true, 4096))
				if r.Rcode != tc.Want.rcode {
					t.Fatalf("%s: rcode %s, want %s", q, dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.Want.rcode])
				}
				if r.AuthenticatedData {
					t.Errorf("%s: AD set by an authoritative server", q)
				}
				if o := r.IsEdns0(); o == nil || !o.Do() {
					t.Errorf("%s: DO not echoed", q)
				}
				n := 0
				for _, rr := range r.Answer {
					if rr.Header().Rrtype != dns.TypeRRSIG {
						n++
					}
				}
				if n != tc.Want.answers {
					t.Errorf("%s: %d answers, want %d:\n%v", q, n, tc.Want.answers, r)
				}
				nsec := verifySections(t, q, r, keys)
				switch {
				case tc.Want.nsec == "" && nsec != nil:
					t.Errorf("%s: unexpected %v", q, nsec)
				case tc.Want.nsec != "" && nsec == nil:
					t.Fatalf("%s: no NSEC:\n%v", q, r)
				case nsec != nil:
					if nsec.Hdr.Name != tc.Want.nsec || nsec.NextDomain != `\000.`+tc.Want.nsec {
						t.Errorf("%s: NSEC %v, want owner %s and next \\000.%s", q, nsec, tc.Want.nsec, tc.Want.nsec)
					}
					if nsec.Hdr.Ttl != 60 {
						t.Errorf("%s: NSEC TTL %d, want the negative TTL 60", q, nsec.Hdr.Ttl)
					}
					for _, ty := range append(tc.Want.has, dns.TypeRRSIG, dns.TypeNSEC) {
						if !slices.Contains(nsec.TypeBitMap, ty) {
							t.Errorf("%s: NSEC bitmap %v lacks %s", q, nsec.TypeBitMap, dns.Type(ty))
						}
					}
					for _, ty := range tc.Want.hasNot {
						if slices.Contains(nsec.TypeBitMap, ty) {
							t.Errorf("%s: NSEC bitmap %v has %s", q, nsec.TypeBitMap, dns.Type(ty))
						}
					}
				}
				hasDS := false
				for _, rr := range r.Ns {
					hasDS = hasDS || rr.Header().Rrtype == dns.TypeDS
				}
				if hasDS != tc.Want.ds {
					t.Errorf("%s: DS in authority %v, want %v", q, hasDS, tc.Want.ds)
				}
			})
		}
	}
}

// TestUnsignedQueries (DNSSEC-11): without DO nothing is signed, and a name
// that does not exist is NXDOMAIN as before; DNSKEY is answered without DO
// too, unsigned; a zone the signer has no keys for is never signed.
func TestUnsignedQueries(t *testing.T) {
	srv, _ := startSigned(t)
	for _, tc := range []struct {
		Name    string
		Msg     *dns.Msg
		Rcode   int
		Answers int
	}{
		{"no DO", doQuery("www.example.com.", dns.TypeA, false, 1232), dns.RcodeSuccess, 2},
		{"no EDNS", (&dnstest.Case{Qname: "mail.example.com.", Qtype: dns.TypeA}).Query(), dns.RcodeSuccess, 1},
		{"NXDOMAIN without DO", doQuery("nope.example.com.", dns.TypeA, false, 1232), dns.RcodeNameError, 0},
		{"DNSKEY without DO", doQuery("example.com.", dns.TypeDNSKEY, false, 1232), dns.RcodeSuccess, 1},
		{"unsigned zone with DO", doQuery("ns1.example.net.", dns.TypeA, true, 1232), dns.RcodeSuccess, 1},
		{"unsigned zone NXDOMAIN with DO", doQuery("nope.example.net.", dns.TypeA, true, 1232), dns.RcodeNameError, 0},
	} {
		t.Run(tc.Name, func(t *testing.T) {
			r := dnstest.Exchange(t, srv.Addr, "udp", tc.Msg)
			if r.Rcode != tc.Rcode || len(r.Answer) != tc.Answers {
				t.Errorf("rcode %s with %d answers, want %s with %d:\n%v", dns.RcodeToString[r.Rcode], len(r.Answer), dns.RcodeToString[tc.Rcode], tc.Answers, r)
			}
			for _, sec := range [][]dns.RR{r.Answer, r.Ns, r.Extra} {
				for _, rr := range sec {
					if ty := rr.Header().Rrtype; ty == dns.TypeRRSIG || ty == dns.TypeNSEC {
						t.Errorf("unsigned reply has %v", rr)
					}
				}
			}
		})
	}
}

// TestSignedTruncation (DNSSEC-12): a signed reply larger than the client's
// UDP size is TC (RFC 4035 §3.1.1: RRSIGs are not dropped to make room), and
// complete over TCP; the cached reply is served again the same way.
func TestSignedTruncation(t *testing.T) {
	srv, sg := startSigned(t)
	for range 2 {
		r := dnstest.Exchange(t, srv.Addr, "udp", doQuery("big.example.com.", dns.TypeTXT, true, 700))
		if !r.Truncated {
			t.Fatalf("big/TXT at 700 bytes: TC clear:\n%v", r)
		}
	}
	r := dnstest.Exchange(t, srv.Addr, "tcp", doQuery("big.example.com.", dns.TypeTXT, true, 700))
	if r.Truncated || len(r.Answer) != 7 {
		t.Fatalf("big/TXT over TCP: TC %v, %d records, want 6 TXT and their RRSIG", r.Truncated, len(r.Answer))
	}
	verifySections(t, "big/TXT", r, sg.Zone("example.com.").DNSKEY())
}

// TestClearReplies (DNSSEC-14): ClearReplies empties the reply cache, so a
// signed reply is made again (with the signer's current signatures) at
// the next query.
func TestClearReplies(t *testing.T) {
	srv, _ := startSigned(t)
	q := doQuery("mail.example.com.", dns.TypeA, true, 1232)
	dnstest.Exchange(t, srv.Addr, "udp", q)
	hits := srv.CacheHits()
	dnstest.Exchange(t, srv.Addr, "udp", q)
	if srv.CacheHits() != hits+1 {
		t.Fatalf("the same signed question again: cache hits %d -> %d, want one more", hits, srv.CacheHits())
	}
	srv.ClearReplies()
	misses := srv.CacheMisses()
	dnstest.Exchange(t, srv.Addr, "udp", q)
	if srv.CacheMisses() != misses+1 {
		t.Errorf("after ClearReplies: cache misses %d -> %d, want one more", misses, srv.CacheMisses())
	}
}

// TestSignatureCacheAcrossClients (DNSSEC-13): one GSLB answer given to
// many clients (each with its own ECS subnet, so the reply cache does not
// answer) is signed once.
func TestSignatureCacheAcrossClients(t *testing.T) {
	srv, sg := startSigned(t)
	before := sg.Stats().Signatures.Load()
	for i := range 20 {
		m := doQuery("www.example.com.", dns.TypeA, true, 1232)
		o := m.IsEdns0()
		o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: []byte{203, 0, byte(i), 0}})
		r := dnstest.Exchange(t, srv.Addr, "udp", m)
		verifySections(t, "www/A", r, sg.Zone("example.com.").DNSKEY())
	}
	if made := sg.Stats().Signatures.Load() - before; made != 1 {
		t.Errorf("%d signatures made for one answer given to 20 clients, want 1", made)
	}
}
