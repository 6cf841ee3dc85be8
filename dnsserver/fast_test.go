package dnsserver

import (
	"bytes"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/geodata"
	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/zones"
)

// geoTestZone has geo and weighted GSLB records next to static data, for
// the fast path tests (answers that depend on the client and its ECS).
const geoTestZone = `$ORIGIN geo.test.
$TTL 300
@ IN SOA ns1 hostmaster 1 3600 600 1209600 60
@ IN NS ns1
ns1 IN A 192.0.2.53
$REGION us-east  lat=39.04 lon=-77.49 serves=NA,SA
$REGION eu-west  lat=53.35 lon=-6.26  serves=EU,AF
$REGION ap-south lat=1.35  lon=103.82 serves=AS,OC
$POOL geo-us region=us-east  members=192.0.2.10,2001:db8::10
$POOL geo-eu region=eu-west  members=198.51.100.10
$POOL geo-ap region=ap-south members=203.0.113.10
$POOL dead   region=us-east  members=192.0.2.99
geo   30 IN GSLB geo pools=geo-us,geo-eu,geo-ap
*.geo 30 IN GSLB geo pools=geo-us,geo-eu,geo-ap
down  30 IN GSLB failover pools=dead empty=servfail
galias   IN CNAME geo
dalias   IN CNAME down
`

// fastServer serves testdata/example.com.zone and geoTestZone with the
// embedded geo database; the pool "dead" is down.
func fastServer(tb testing.TB) *Server {
	tb.Helper()
	data, err := os.ReadFile("testdata/example.com.zone")
	if err != nil {
		tb.Fatal(err)
	}
	var zs []*zones.Zone
	for _, f := range []struct{ data, file string }{{string(data), "testdata/example.com.zone"}, {geoTestZone, "geo.test.zone"}} {
		z, err := zones.Parse([]byte(f.data), f.file, "", false)
		if err != nil {
			tb.Fatal(err)
		}
		zs = append(zs, z)
	}
	if err := zones.Link(zs); err != nil {
		tb.Fatal(err)
	}
	db, err := geodata.Default()
	if err != nil {
		tb.Fatal(err)
	}
	set, err := gslb.Compile(zs, gslb.Env{Geo: db, Health: down{"192.0.2.99": true}})
	if err != nil {
		tb.Fatal(err)
	}
	s, err := New(Config{Addrs: []string{"127.0.0.1:0"}, NSID: "fast-test"})
	if err != nil {
		tb.Fatal(err)
	}
	s.rrl = nil
	s.Swap(NewSnapshot(zs, set))
	return s
}

// down is a gslb.Health with the listed members down.
type down map[string]bool

func (d down) Up(_ *zones.Pool, a netip.Addr) (bool, bool) { return !d[a.String()], true }

// fastNames are the names of the differential test: every kind of answer
// of both zones, and names in no zone.
var fastNames = []string{
	"example.com.", "www.example.com.", "mail.example.com.", "Mail.Example.COM.", "nope.example.com.",
	"pool.example.com.", "www.pool.example.com.", "alias.example.com.", "chain1.example.com.", "ext.example.com.",
	"x.wild.example.com.", "A.b.Wild.example.com.", "exists.wild.example.com.", "ent.wild.example.com.",
	"z.ent.wild.example.com.", "q.ent.wild.example.com.", "*.wild.example.com.", "x.cw.example.com.",
	"big.example.com.", "sub.example.com.", "a.sub.example.com.", "ns.sub.example.com.", "sec.example.com.",
	"_sip._tcp.example.com.", "v4only.example.com.", "x.gw.example.com.", "x.big-deleg.example.com.",
	"ns1.example.com.", "geo.test.", "geo.geo.test.", "a.geo.geo.test.", "down.geo.test.", "nope.geo.test.",
	"tonx.example.com.", "todeleg.example.com.", "towild.example.com.", "galias.geo.test.", "dalias.geo.test.",
	"example.net.", "com.",
}

var fastTypes = []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeMX, dns.TypeNS, dns.TypeSOA,
	dns.TypeSRV, dns.TypeDS, dns.TypeCNAME, dns.TypePTR, dns.TypeANY, dns.TypeHINFO}

// fastVariants are the ways a query is asked: without EDNS, with EDNS and
// its options in different shapes.
var fastVariants = []struct {
	name string
	edit func(m *dns.Msg)
}{
	{"plain", func(m *dns.Msg) {}},
	{"rd cd", func(m *dns.Msg) { m.RecursionDesired, m.CheckingDisabled, m.AuthenticatedData = true, true, true }},
	{"edns", func(m *dns.Msg) { m.SetEdns0(1232, false) }},
	{"edns do 4096", func(m *dns.Msg) { m.SetEdns0(4096, true) }},
	{"edns 512", func(m *dns.Msg) { m.SetEdns0(512, false) }},
	{"edns 100", func(m *dns.Msg) { m.SetEdns0(100, false) }},
	{"ecs v4", func(m *dns.Msg) { addOpt(m, ecs(1, 24, "81.2.69.0")) }},
	{"ecs v4 /32", func(m *dns.Msg) { addOpt(m, ecs(1, 32, "81.2.69.7")) }},
	{"ecs v6", func(m *dns.Msg) { addOpt(m, ecs(2, 56, "2a02:c7f:1234:5600::")) }},
	{"ecs /0", func(m *dns.Msg) { addOpt(m, ecs(1, 0, "0.0.0.0")) }},
	{"ecs private", func(m *dns.Msg) { addOpt(m, ecs(1, 24, "10.1.2.0")) }},
	{"ecs /20", func(m *dns.Msg) { addOpt(m, ecs(1, 20, "81.2.64.0")) }},
	{"nsid", func(m *dns.Msg) { addOpt(m, &dns.EDNS0_NSID{Code: dns.EDNS0NSID}) }},
	{"nsid ecs", func(m *dns.Msg) { addOpt(m, &dns.EDNS0_NSID{Code: dns.EDNS0NSID}, ecs(1, 24, "81.2.69.0")) }},
	{"ecs nsid", func(m *dns.Msg) { addOpt(m, ecs(1, 24, "81.2.69.0"), &dns.EDNS0_NSID{Code: dns.EDNS0NSID}) }},
	{"cookie client", func(m *dns.Msg) { addOpt(m, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "2464c4abcf10c957"}) }},
	{"cookie stale", func(m *dns.Msg) {
		addOpt(m, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "2464c4abcf10c957010000005cf79f111f8130c3eee29480"})
	}},
	{"padding unknown", func(m *dns.Msg) {
		addOpt(m, &dns.EDNS0_PADDING{Padding: make([]byte, 20)}, &dns.EDNS0_LOCAL{Code: 65001, Data: []byte{1, 2}})
	}},
	{"ede", func(m *dns.Msg) { addOpt(m, &dns.EDNS0_EDE{InfoCode: 1}) }},
}

func ecs(fam uint16, bits uint8, addr string) *dns.EDNS0_SUBNET {
	return &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: fam, SourceNetmask: bits, Address: net.ParseIP(addr)}
}

func addOpt(m *dns.Msg, opts ...dns.EDNS0) {
	if m.IsEdns0() == nil {
		m.SetEdns0(1232, false)
	}
	m.IsEdns0().Option = append(m.IsEdns0().Option, opts...)
}

// slowReply answers pkt on the miekg/dns path, as respond does when the
// fast path declines.
func slowReply(r *udpReader, pkt []byte) []byte {
	out, _, _ := r.s.respond(&r.q, &r.w, pkt, r.s.snap.Load())
	return out
}

// sameReply reports how two replies differ, "" if they unpack to the same
// message (names may be compressed differently).
func sameReply(fast, slow []byte) string {
	var a, b dns.Msg
	if err := a.Unpack(fast); err != nil {
		return "fast reply does not unpack: " + err.Error()
	}
	if err := b.Unpack(slow); err != nil {
		return "slow reply does not unpack: " + err.Error()
	}
	if a.String() != b.String() {
		return "fast:\n" + a.String() + "\nslow:\n" + b.String()
	}
	return ""
}

// TestFastPathDifferential: every query of fastNames × fastTypes ×
// fastVariants that the wire fast path answers gets the reply the
// miekg/dns path gives (same header, question, sections, OPT and options;
// only compression may differ, and not for the worse); the fast path
// answers at least the common shapes (static, NXDOMAIN, NODATA, wildcard,
// in-zone CNAME chains, GSLB with and without ECS, cookies, NSID), and
// declines what it must leave (referrals, ANY, names in no zone).
func TestFastPathDifferential(t *testing.T) {
	s := fastServer(t)
	for _, from := range []string{"192.0.2.1:5300", "[2001:db8::1]:5300", "81.2.69.1:53"} {
		fr, sr := testReader(s, from), testReader(s, from)
		answered := map[string]bool{}
		for _, name := range fastNames {
			for _, qt := range fastTypes {
				for _, v := range fastVariants {
					m := new(dns.Msg)
					m.SetQuestion(name, qt)
					m.Id = 0xbeef
					v.edit(m)
					pkt, err := m.Pack()
					if err != nil {
						t.Fatal(err)
					}
					what := from + " " + name + "/" + dns.TypeToString[qt] + " " + v.name
					for try := 0; ; try++ {
						fast, ok := fr.fast(pkt, s.snap.Load())
						if !ok {
							break
						}
						answered[name+"/"+dns.TypeToString[qt]+" "+v.name] = true
						fast = bytes.Clone(fast)
						slow := slowReply(sr, pkt)
						diff := sameReply(fast, slow)
						if diff == "" {
							if len(fast) > len(slow) {
								t.Errorf("%s: fast reply of %d bytes, miekg/dns's %d: compressed less", what, len(fast), len(slow))
							}
							break
						}
						if try == 0 && strings.Contains(v.name, "cookie") {
							continue // a second ticked between the two server cookies
						}
						t.Errorf("%s: replies differ:\n%s", what, diff)
						break
					}
				}
			}
		}
		for _, want := range []string{
			"mail.example.com./A plain", "Mail.Example.COM./AAAA edns", "nope.example.com./A ecs v4", "pool.example.com./A edns",
			"mail.example.com./MX edns do 4096", "x.wild.example.com./TXT edns", "A.b.Wild.example.com./A edns 512",
			"www.example.com./A ecs v4", "www.example.com./AAAA ecs v6", "geo.geo.test./A ecs v4", "a.geo.geo.test./A ecs nsid",
			"geo.geo.test./A plain", "down.geo.test./A edns", "v4only.example.com./AAAA edns", "mail.example.com./A cookie client",
			"mail.example.com./A cookie stale", "mail.example.com./A nsid ecs", "mail.example.com./A padding unknown",
			"example.com./SOA edns", "example.com./NS edns", "_sip._tcp.example.com./SRV edns", "sec.example.com./DS edns",
			"alias.example.com./A edns", "chain1.example.com./A edns", "x.cw.example.com./A edns", "tonx.example.com./A edns",
			"ext.example.com./A edns", "towild.example.com./TXT edns", "galias.geo.test./A ecs v4", "dalias.geo.test./A edns",
		} {
			if !answered[want] {
				t.Errorf("%s: %s not answered on the fast path", from, want)
			}
		}
		for _, not := range []string{
			"todeleg.example.com./A edns", "a.sub.example.com./A edns", "example.net./A edns", "mail.example.com./ANY edns",
			"big.example.com./TXT plain", "mail.example.com./A ede",
		} {
			if answered[not] {
				t.Errorf("%s: %s answered on the fast path", from, not)
			}
		}
	}
}

// TestFastPathDeclines: packets the fast path must leave to the miekg/dns
// path, which gives FORMERR, NOTIMP or its own answer.
func TestFastPathDeclines(t *testing.T) {
	s := fastServer(t)
	r := testReader(s, "192.0.2.1:5300")
	base := func() *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion("mail.example.com.", dns.TypeA)
		m.SetEdns0(1232, false)
		return m
	}
	pack := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := pack(base())
	if _, ok := r.fast(good, s.snap.Load()); !ok {
		t.Fatal("the base query is not answered on the fast path")
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	twoQ := base()
	twoQ.Question = append(twoQ.Question, twoQ.Question[0])
	escaped := base()
	escaped.Question[0].Name = `ma\.il.example.com.`
	chaos := base()
	chaos.Question[0].Qclass = dns.ClassCHAOS
	twoOPT := base()
	twoOPT.Extra = append(twoOPT.Extra, twoOPT.Extra[0])
	v1 := base()
	v1.IsEdns0().SetVersion(1)
	cookie2 := base()
	addOpt(cookie2, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "2464c4abcf10c957"}, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "2464c4abcf10c957"})
	badCookie := base()
	addOpt(badCookie, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "2464c4abcf10c95701"})
	notify := base()
	notify.Opcode = dns.OpcodeNotify
	rawECS := func(data ...byte) []byte {
		m := base()
		addOpt(m, &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: data})
		return pack(m)
	}
	for name, pkt := range map[string][]byte{
		"two questions":       pack(twoQ),
		"escaped name":        pack(escaped),
		"class CH":            pack(chaos),
		"two OPTs":            pack(twoOPT),
		"EDNS version 1":      pack(v1),
		"two cookies":         pack(cookie2),
		"short cookie":        pack(badCookie),
		"NOTIFY":              pack(notify),
		"response":            edit(func(b []byte) []byte { b[2] |= 0x80; return b }),
		"trailing byte":       edit(func(b []byte) []byte { return append(b, 0) }),
		"truncated OPT":       edit(func(b []byte) []byte { return b[:len(b)-1] }),
		"compressed question": {0xbe, 0xef, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1},
		"header only":         good[:12],
		"ECS bits beyond":     rawECS(0, 1, 20, 0, 81, 2, 69),
		"ECS scope":           rawECS(0, 1, 24, 24, 81, 2, 69),
		"ECS address long":    rawECS(0, 1, 24, 0, 81, 2, 69, 0),
		"ECS family 0":        rawECS(0, 0, 0, 0),
		"ECS family 3":        rawECS(0, 3, 0, 0),
		"ECS /33":             rawECS(0, 1, 33, 0, 81, 2, 69, 0, 0),
		"root name":           {0xbe, 0xef, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1},
	} {
		if out, ok := r.fast(pkt, s.snap.Load()); ok {
			t.Errorf("%s: answered on the fast path (%d bytes)", name, len(out))
		}
	}
}

// TestFastPathAllocs: the fast path allocates nothing, for every kind of
// answer it gives.
func TestFastPathAllocs(t *testing.T) {
	s := fastServer(t)
	r := testReader(s, "192.0.2.1:5300")
	for _, c := range []struct {
		name string
		qt   uint16
		opt  []dns.EDNS0
	}{
		{"mail.example.com.", dns.TypeA, nil},
		{"mail.example.com.", dns.TypeMX, nil},
		{"nope.example.com.", dns.TypeA, nil},
		{"pool.example.com.", dns.TypeA, nil},
		{"x.wild.example.com.", dns.TypeA, nil},
		{"www.example.com.", dns.TypeA, []dns.EDNS0{ecs(1, 24, "81.2.69.0")}},
		{"geo.geo.test.", dns.TypeA, []dns.EDNS0{ecs(1, 24, "81.2.69.0"), &dns.EDNS0_NSID{Code: dns.EDNS0NSID}}},
		{"geo.geo.test.", dns.TypeAAAA, nil},
		{"alias.example.com.", dns.TypeA, nil},
		{"galias.geo.test.", dns.TypeA, []dns.EDNS0{ecs(1, 24, "81.2.69.0")}},
		{"mail.example.com.", dns.TypeA, []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "2464c4abcf10c957"}}},
	} {
		m := new(dns.Msg)
		m.SetQuestion(c.name, c.qt)
		addOpt(m, c.opt...)
		pkt, _ := m.Pack()
		if _, ok := r.fast(pkt, s.snap.Load()); !ok {
			t.Errorf("%s/%s: not answered on the fast path", c.name, dns.TypeToString[c.qt])
			continue
		}
		if n := testing.AllocsPerRun(100, func() { r.handle(pkt) }); n != 0 {
			t.Errorf("%s/%s: %v allocations per query", c.name, dns.TypeToString[c.qt], n)
		}
	}
}

// FuzzWireParse compares the wire fast path with miekg/dns on the same
// bytes: whenever parseWire accepts a packet, miekg/dns unpacks it, the
// header passes accept, checkEDNS accepts it, and both read the same
// question, OPT (payload size, DO), ECS, COOKIE and NSID; and whenever the
// fast path answers it, the reply is the miekg/dns path's.
func FuzzWireParse(f *testing.F) {
	for _, pkt := range fuzzSeeds() {
		f.Add(pkt)
	}
	for _, v := range fastVariants {
		m := new(dns.Msg)
		m.SetQuestion("geo.geo.test.", dns.TypeA)
		v.edit(m)
		pkt, _ := m.Pack()
		f.Add(pkt)
	}
	s := fastServer(f)
	fr, sr := testReader(s, "192.0.2.1:5300"), testReader(s, "192.0.2.1:5300")
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var wq wireQuery
		if !parseWire(pkt, &wq) {
			return
		}
		m := new(dns.Msg)
		if err := m.Unpack(pkt); err != nil {
			t.Fatalf("fast path accepts what miekg/dns does not unpack: %v", err)
		}
		h := dns.Header{Id: m.Id, Bits: uint16(pkt[2])<<8 | uint16(pkt[3]), Qdcount: uint16(len(m.Question)), Arcount: uint16(len(m.Extra))}
		if accept(h) != dns.MsgAccept || len(m.Question) != 1 {
			t.Fatalf("fast path accepts a header the server refuses: %+v", h)
		}
		q := m.Question[0]
		if got := string(wq.name[:wq.nlen]); got != strings.ToLower(q.Name) || wq.qtype != q.Qtype || q.Qclass != dns.ClassINET {
			t.Fatalf("question %s/%d, miekg/dns %s/%d/%d", got, wq.qtype, q.Name, q.Qtype, q.Qclass)
		}
		var st query
		st.src = fr.w.from.Addr()
		opt, rcode := s.checkEDNS(&st, m)
		if rcode != dns.RcodeSuccess || (opt != nil) != wq.edns {
			t.Fatalf("checkEDNS: rcode %d, OPT %v; fast path EDNS %v", rcode, opt != nil, wq.edns)
		}
		if opt != nil && (opt.UDPSize() != wq.size || opt.Do() != wq.do) {
			t.Fatalf("OPT size %d DO %v, fast path %d %v", opt.UDPSize(), opt.Do(), wq.size, wq.do)
		}
		switch {
		case (st.ecs != nil) != (wq.ecs != nil):
			t.Fatalf("ECS %v, fast path %x", st.ecs, wq.ecs)
		case st.ecs != nil && (addrFromECS(st.ecs) != wq.ecsAddr || st.ecs.SourceNetmask != wq.ecsBits):
			t.Fatalf("ECS %v, fast path %v/%d", st.ecs, wq.ecsAddr, wq.ecsBits)
		case st.cookie.n != len(wq.cookie) || !bytes.Equal(st.cookie.buf[:st.cookie.n], wq.cookie):
			t.Fatalf("COOKIE %x, fast path %x", st.cookie.buf[:st.cookie.n], wq.cookie)
		}
		nsid := false
		if opt != nil {
			for _, o := range opt.Option {
				if o.Option() == dns.EDNS0NSID {
					nsid = true
				}
			}
		}
		if nsid != wq.nsid {
			t.Fatalf("NSID %v, fast path %v", nsid, wq.nsid)
		}
		fast, ok := fr.fast(pkt, s.snap.Load())
		if !ok {
			return
		}
		fast = bytes.Clone(fast)
		if diff := sameReply(fast, slowReply(sr, pkt)); diff != "" && wq.cookie == nil {
			t.Fatalf("replies differ for %s:\n%s", hex.EncodeToString(pkt), diff)
		}
	})
}

// TestFastPathRecovers: a panic on the fast path (here from a missing
// snapshot) is counted and leaves the query to the miekg/dns path; the
// process goes on.
func TestFastPathRecovers(t *testing.T) {
	s := fastServer(t)
	r := testReader(s, "192.0.2.1:5300")
	m := new(dns.Msg)
	m.SetQuestion("mail.example.com.", dns.TypeA)
	pkt, _ := m.Pack()
	before := s.stats.panics.Load()
	if out, ok := r.fast(pkt, nil); ok || out != nil {
		t.Fatalf("answered without a snapshot: %d bytes", len(out))
	}
	if got := s.stats.panics.Load() - before; got != 1 {
		t.Errorf("%d panics counted, want 1", got)
	}
	if _, ok := r.fast(pkt, s.snap.Load()); !ok {
		t.Error("the next query is not answered on the fast path")
	}
}
