package dnsserver_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/dnsserver/dnstest"
)

func query(name string, t uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, t)
	m.RecursionDesired = false
	return m
}

func opt(m *dns.Msg) *dns.OPT { return m.IsEdns0() }

// TestFlags covers DNS-02 (RD copied, RA never) and DNS-18/19 (query flags
// cleared in the answer, Z bit is not an error, CD copied).
func TestFlags(t *testing.T) {
	srv := startExample(t)
	m := query("mail.example.com.", dns.TypeA)
	m.RecursionDesired = true
	m.Truncated, m.Authoritative, m.RecursionAvailable, m.AuthenticatedData, m.Zero, m.CheckingDisabled = true, true, true, true, true, true
	r := dnstest.Exchange(t, srv.Addr, "udp", m)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("rcode %s, %d answers; want NOERROR with the A record (DNS-19: Z is not FORMERR)", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	if !r.RecursionDesired {
		t.Error("RD not copied from the query")
	}
	if r.Truncated || r.RecursionAvailable || r.AuthenticatedData || r.Zero {
		t.Errorf("flags TC=%v RA=%v AD=%v Z=%v leaked from the query", r.Truncated, r.RecursionAvailable, r.AuthenticatedData, r.Zero)
	}
	if !r.Authoritative {
		t.Error("AA clear on an authoritative answer")
	}
	if !r.CheckingDisabled {
		t.Error("CD not copied (DNS-18 policy: copy CD, as BIND and Knot do)")
	}
	if r.Id != m.Id {
		t.Errorf("id %d, want %d", r.Id, m.Id)
	}
}

// TestEDNS covers DNS-01 (no OPT without EDNS), DNS-26..31.
func TestEDNS(t *testing.T) {
	srv := startExample(t)
	t.Run("DNS-01 no OPT in reply to a plain query", func(t *testing.T) {
		r := dnstest.Exchange(t, srv.Addr, "udp", query("example.com.", dns.TypeSOA))
		if opt(r) != nil {
			t.Error("OPT in the reply to a query without EDNS")
		}
	})
	t.Run("DNS-26 OPT version 0 and our payload", func(t *testing.T) {
		m := query("example.com.", dns.TypeSOA)
		m.SetEdns0(4096, false)
		r := dnstest.Exchange(t, srv.Addr, "udp", m)
		o := opt(r)
		if o == nil || o.Version() != 0 || o.UDPSize() != 1232 || r.Rcode != dns.RcodeSuccess {
			t.Fatalf("OPT %v rcode %s; want version 0, udp 1232, NOERROR", o, dns.RcodeToString[r.Rcode])
		}
	})
	for _, v := range []uint8{1, 100} {
		t.Run("DNS-27 BADVERS", func(t *testing.T) {
			m := query("example.com.", dns.TypeSOA)
			m.SetEdns0(1232, false)
			opt(m).SetVersion(v)
			opt(m).Option = append(opt(m).Option, &dns.EDNS0_LOCAL{Code: 100, Data: []byte{1}}) // DNS-29
			r := dnstest.Exchange(t, srv.Addr, "udp", m)
			o := opt(r)
			if r.Rcode != dns.RcodeBadVers || o == nil || o.Version() != 0 || len(r.Answer) != 0 || len(r.Ns) != 0 || len(o.Option) != 0 {
				t.Fatalf("version %d: rcode %s, OPT %v, %d answers, %d authority; want BADVERS, OPT v0, no SOA, no options",
					v, dns.RcodeToString[r.Rcode], o, len(r.Answer), len(r.Ns))
			}
		})
	}
	t.Run("DNS-28 unknown option not echoed, MBZ cleared", func(t *testing.T) {
		m := query("example.com.", dns.TypeSOA)
		m.SetEdns0(1232, false)
		o := opt(m)
		o.Option = append(o.Option, &dns.EDNS0_LOCAL{Code: 100, Data: []byte("x")})
		o.Hdr.Ttl |= 0x80 // an unknown flag bit
		r := dnstest.Exchange(t, srv.Addr, "udp", m)
		ro := opt(r)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || ro == nil || len(ro.Option) != 0 || ro.Hdr.Ttl&0x7fff != 0 {
			t.Fatalf("rcode %s answers %d OPT %v; want NOERROR, the SOA, no options, MBZ clear", dns.RcodeToString[r.Rcode], len(r.Answer), ro)
		}
	})
	t.Run("DNS-30 DO echoed", func(t *testing.T) {
		m := query("example.com.", dns.TypeSOA)
		m.SetEdns0(1232, true)
		if o := opt(dnstest.Exchange(t, srv.Addr, "udp", m)); o == nil || !o.Do() {
			t.Fatal("DO not echoed")
		}
	})
	t.Run("NSID", func(t *testing.T) {
		m := query("example.com.", dns.TypeSOA)
		m.SetEdns0(1232, false)
		opt(m).Option = append(opt(m).Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
		o := opt(dnstest.Exchange(t, srv.Addr, "udp", m))
		if o == nil || len(o.Option) != 1 || o.Option[0].(*dns.EDNS0_NSID).Nsid != "746573742d6e6f6465" {
			t.Fatalf("OPT %v; want NSID \"test-node\"", o)
		}
		m2 := query("example.com.", dns.TypeSOA)
		m2.SetEdns0(1232, false)
		if o := opt(dnstest.Exchange(t, srv.Addr, "udp", m2)); len(o.Option) != 0 {
			t.Fatalf("NSID sent unasked: %v", o)
		}
	})
	t.Run("two OPT records are FORMERR", func(t *testing.T) {
		m := query("example.com.", dns.TypeSOA)
		m.SetEdns0(1232, false)
		m.SetEdns0(1232, false)
		m.Extra = append(m.Extra, &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 1232}})
		r := dnstest.Exchange(t, srv.Addr, "udp", m)
		if r.Rcode != dns.RcodeFormatError || r.Id != m.Id {
			t.Fatalf("rcode %s id %d; want FORMERR with id %d", dns.RcodeToString[r.Rcode], r.Id, m.Id)
		}
	})
}

// generalPath adds to m an empty EDNS EXPIRE option, which the wire fast
// path leaves to the general (miekg/dns) path: the path whose replies the
// reply cache keeps. The option changes nothing in the reply.
func generalPath(m *dns.Msg) *dns.Msg {
	if opt(m) == nil {
		m.SetEdns0(1232, false)
	}
	opt(m).Option = append(opt(m).Option, &dns.EDNS0_EXPIRE{Code: dns.EDNS0EXPIRE, Empty: true})
	return m
}

func ecsQuery(name string, t uint16, prefix string) *dns.Msg {
	m := query(name, t)
	m.SetEdns0(1232, false)
	p := netip.MustParsePrefix(prefix)
	fam := uint16(1)
	if p.Addr().Is6() {
		fam = 2
	}
	opt(m).Option = append(opt(m).Option, &dns.EDNS0_SUBNET{
		Code: dns.EDNS0SUBNET, Family: fam, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice(),
	})
	return m
}

func ecsOf(r *dns.Msg) *dns.EDNS0_SUBNET {
	if o := opt(r); o != nil {
		for _, op := range o.Option {
			if e, ok := op.(*dns.EDNS0_SUBNET); ok {
				return e
			}
		}
	}
	return nil
}

// TestECS covers DNS-39..43.
func TestECS(t *testing.T) {
	srv := startExample(t)
	t.Run("DNS-39 absent stays absent", func(t *testing.T) {
		m := query("www.example.com.", dns.TypeA)
		m.SetEdns0(1232, false)
		if e := ecsOf(dnstest.Exchange(t, srv.Addr, "udp", m)); e != nil {
			t.Fatalf("ECS in reply to a query without it: %v", e)
		}
	})
	for _, tc := range []struct{ name, qname, prefix string }{
		{"DNS-39 static data scope 0", "mail.example.com.", "198.51.100.0/24"},
		{"GSLB all policy does not depend on the client: scope 0", "www.example.com.", "198.51.100.0/24"},
		{"DNS-41 source /0", "www.example.com.", "0.0.0.0/0"},
		{"DNS-41 source ::/0", "www.example.com.", "::/0"},
		{"DNS-43 private address", "www.example.com.", "10.1.2.0/24"},
		{"IPv6 family", "www.example.com.", "2001:db8:1::/48"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := ecsQuery(tc.qname, dns.TypeA, tc.prefix)
			r := dnstest.Exchange(t, srv.Addr, "udp", m)
			e, want := ecsOf(r), ecsOf(m)
			if r.Rcode != dns.RcodeSuccess || e == nil {
				t.Fatalf("rcode %s ECS %v; want NOERROR with ECS echoed", dns.RcodeToString[r.Rcode], e)
			}
			if e.Family != want.Family || e.SourceNetmask != want.SourceNetmask || !net.IP(e.Address).Equal(net.IP(want.Address)) || e.SourceScope != 0 {
				t.Fatalf("ECS %v; want %v with scope 0", e, want)
			}
		})
	}
	t.Run("DNS-42 address bits beyond the source prefix", func(t *testing.T) {
		m := ecsQuery("www.example.com.", dns.TypeA, "198.51.100.0/24")
		pkt := packECSRaw(t, m, 20, 100) // 198.51.100.0/20: bits set past /20
		resp := dnstest.Raw(t, srv.Addr, pkt, 5*time.Second)
		r := new(dns.Msg)
		if resp == nil || r.Unpack(resp) != nil || r.Rcode != dns.RcodeFormatError || len(r.Answer) != 0 {
			t.Fatalf("reply %v; want FORMERR", r)
		}
	})
	t.Run("DNS-42 source prefix too long", func(t *testing.T) {
		m := ecsQuery("www.example.com.", dns.TypeA, "198.51.100.0/24")
		// miekg refuses to pack this, so send the bytes by hand.
		pkt := packECSRaw(t, m, 33, 0)
		resp := dnstest.Raw(t, srv.Addr, pkt, 5*time.Second)
		r := new(dns.Msg)
		if resp == nil || r.Unpack(resp) != nil || r.Rcode != dns.RcodeFormatError {
			t.Fatalf("reply %v; want FORMERR", r)
		}
	})
}

// packECSRaw packs m (with a 198.51.100.0/24 ECS option), then rewrites
// the option's source prefix length and last address byte, which miekg
// would otherwise reject or mask.
func packECSRaw(t *testing.T, m *dns.Msg, source, last byte) []byte {
	pkt, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	// ECS option: code 8, len, family(2), source(1), scope(1), addr
	i := bytes.Index(pkt, []byte{0, 8, 0, 7, 0, 1, 24, 0})
	if i < 0 {
		t.Fatal("ECS option not found in packet")
	}
	pkt[i+6] = source
	pkt[i+10] = last
	return pkt
}

// TestTruncation covers DNS-31/32: a reply larger than the client's buffer
// is truncated to a valid message with TC, the question and the OPT and
// nothing else (no partial RRset, as Knot and NSD); the same query over TCP
// gets everything.
func TestTruncation(t *testing.T) {
	srv := startExample(t)
	for _, tc := range []struct {
		name string
		size uint16 // 0: no EDNS
		tc   bool
	}{
		{"no EDNS: 512", 0, true},
		{"EDNS 1232 fits", 1232, false},
		{"DNS-31 EDNS 100 treated as 512", 100, true},
		{"EDNS 600", 600, true},
		{"EDNS 900 fits", 900, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := query("big.example.com.", dns.TypeTXT)
			if tc.size > 0 {
				m.SetEdns0(tc.size, false)
			}
			pkt, _ := m.Pack()
			raw := dnstest.Raw(t, srv.Addr, pkt, 5*time.Second)
			r := new(dns.Msg)
			if err := r.Unpack(raw); err != nil {
				t.Fatalf("unpack: %v", err)
			}
			limit := 512
			if tc.size > 512 {
				limit = int(tc.size)
			}
			if len(raw) > limit {
				t.Errorf("reply %d bytes, over the client's %d", len(raw), limit)
			}
			if r.Truncated != tc.tc {
				t.Errorf("TC = %v, want %v (reply %d bytes)", r.Truncated, tc.tc, len(raw))
			}
			if len(r.Question) != 1 || r.Question[0].Name != "big.example.com." {
				t.Errorf("question not echoed: %v", r.Question)
			}
			if (tc.size > 0) != (opt(r) != nil) {
				t.Errorf("OPT present = %v, want %v (DNS-32: OPT kept in truncated replies)", opt(r) != nil, tc.size > 0)
			}
			if !tc.tc && len(r.Answer) != 6 {
				t.Errorf("%d answers, want 6", len(r.Answer))
			}
			if tc.tc && (len(r.Answer) != 0 || len(r.Ns) != 0 || len(r.Extra) != len(m.Extra)) {
				t.Errorf("TC reply with %d answer, %d authority, %d additional records; want the question and OPT only", len(r.Answer), len(r.Ns), len(r.Extra))
			}
			tr := dnstest.Exchange(t, srv.Addr, "tcp", m)
			if tr.Truncated || len(tr.Answer) != 6 {
				t.Errorf("over TCP: TC=%v with %d answers; want the whole RRset", tr.Truncated, len(tr.Answer))
			}
		})
	}
}

// TestMalformed covers DNS-17, 20-24: bad messages get FORMERR/NOTIMP/
// REFUSED with the ID kept, or no reply; the server keeps answering.
func TestMalformed(t *testing.T) {
	srv := startExample(t)
	valid := func() {
		t.Helper()
		r := dnstest.Exchange(t, srv.Addr, "udp", query("example.com.", dns.TypeSOA))
		if r.Rcode != dns.RcodeSuccess {
			t.Fatalf("server stopped answering: %s", dns.RcodeToString[r.Rcode])
		}
	}
	pack := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rcodeOf := func(raw []byte) (*dns.Msg, int) {
		if raw == nil {
			return nil, -1
		}
		var h dns.Msg
		if len(raw) < 12 {
			t.Fatalf("short reply %x", raw)
		}
		h.Id = binary.BigEndian.Uint16(raw)
		bits := binary.BigEndian.Uint16(raw[2:])
		h.Response = bits&0x8000 != 0
		h.Opcode = int(bits>>11) & 0xf
		h.Authoritative = bits&0x400 != 0
		return &h, int(bits & 0xf)
	}
	twoQ := query("example.com.", dns.TypeSOA)
	twoQ.Question = append(twoQ.Question, dns.Question{Name: "example.com.", Qtype: dns.TypeNS, Qclass: dns.ClassINET})
	noQ := query("example.com.", dns.TypeSOA)
	noQ.Question = nil
	notify := query("example.com.", dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	chTXT := query("id.server.", dns.TypeTXT)
	chTXT.Question[0].Qclass = dns.ClassCHAOS
	verBind := query("version.bind.", dns.TypeTXT)
	verBind.Question[0].Qclass = dns.ClassCHAOS
	class3 := query("example.com.", dns.TypeSOA)
	class3.Question[0].Qclass = 3
	for _, tc := range []struct {
		name   string
		pkt    []byte
		rcode  int // -1: no reply
		opcode int
	}{
		{"DNS-21 QDCOUNT=2", pack(twoQ), dns.RcodeFormatError, 0},
		{"DNS-21 QDCOUNT=0", pack(noQ), dns.RcodeFormatError, 0},
		{"DNS-20 opcode 15", withOpcode(pack(query("example.com.", dns.TypeSOA)), 15), dns.RcodeNotImplemented, 15},
		{"DNS-20 IQUERY", withOpcode(pack(query("example.com.", dns.TypeSOA)), 1), dns.RcodeNotImplemented, 1},
		{"DNS-20 STATUS", withOpcode(pack(query("example.com.", dns.TypeSOA)), 2), dns.RcodeNotImplemented, 2},
		{"DNS-20 UPDATE", withOpcode(pack(query("example.com.", dns.TypeSOA)), 5), dns.RcodeNotImplemented, 5},
		{"DNS-46 NOTIFY refused", pack(notify), dns.RcodeRefused, dns.OpcodeNotify},
		{"DNS-17 qtype OPT", pack(query("example.com.", dns.TypeOPT)), dns.RcodeFormatError, 0},
		{"DNS-17 qtype TSIG", pack(query("example.com.", dns.TypeTSIG)), dns.RcodeFormatError, 0},
		{"DNS-17 qtype MAILB", pack(query("example.com.", dns.TypeMAILB)), dns.RcodeNotImplemented, 0},
		{"DNS-45 AXFR over UDP", pack(query("example.com.", dns.TypeAXFR)), dns.RcodeRefused, 0},
		{"DNS-24 class 3", pack(class3), dns.RcodeRefused, 0},
		{"DNS-24 CH version.bind refused", pack(verBind), dns.RcodeRefused, 0},
		{"DNS-24 CH id.server answered", pack(chTXT), dns.RcodeSuccess, 0},
		{"DNS-23 a response gets no reply", withQR(pack(query("example.com.", dns.TypeSOA))), -1, 0},
		{"DNS-22 header only, truncated question", pack(query("example.com.", dns.TypeSOA))[:14], dns.RcodeFormatError, 0},
		{"DNS-22 shorter than a header", []byte{1, 2, 3}, -1, 0},
		{"DNS-22 compression pointer loop", pointerLoop(), dns.RcodeFormatError, 0},
		{"DNS-22 QNAME over 255 octets", longName(), dns.RcodeFormatError, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wait := 5 * time.Second
			if tc.rcode < 0 {
				wait = 300 * time.Millisecond
			}
			h, rc := rcodeOf(dnstest.Raw(t, srv.Addr, tc.pkt, wait))
			if rc != tc.rcode {
				t.Fatalf("rcode %d, want %d (-1: no reply)", rc, tc.rcode)
			}
			if h != nil {
				if h.Id != binary.BigEndian.Uint16(tc.pkt) {
					t.Errorf("id %d, want %d", h.Id, binary.BigEndian.Uint16(tc.pkt))
				}
				if !h.Response || h.Opcode != tc.opcode {
					t.Errorf("QR=%v opcode %d, want QR and opcode %d", h.Response, h.Opcode, tc.opcode)
				}
				if tc.rcode != dns.RcodeSuccess && h.Authoritative {
					t.Error("AA set on an error reply")
				}
			}
			valid()
		})
	}
}

func withOpcode(pkt []byte, op int) []byte {
	pkt[2] = pkt[2]&^0x78 | byte(op<<3)
	return pkt
}

func withQR(pkt []byte) []byte {
	pkt[2] |= 0x80
	return pkt
}

// pointerLoop is a query whose QNAME is a compression pointer to itself.
func pointerLoop() []byte {
	return []byte{0xbe, 0xef, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}
}

func longName() []byte {
	pkt := []byte{0xbe, 0xef, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	for i := 0; i < 5; i++ {
		pkt = append(pkt, 63)
		pkt = append(pkt, bytes.Repeat([]byte{'a'}, 63)...)
	}
	return append(pkt, 0, 0, 1, 0, 1)
}

// TestTCP covers DNS-35 (pipelining) and DNS-36 (bad length prefixes drop
// the connection, not the server).
func TestTCP(t *testing.T) {
	srv := startExample(t)
	t.Run("DNS-35 20 pipelined queries", func(t *testing.T) {
		c, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var out []byte
		for i := 0; i < 20; i++ {
			m := query("mail.example.com.", dns.TypeA)
			m.Id = uint16(1000 + i)
			b, _ := m.Pack()
			out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
			out = append(out, b...)
		}
		if _, err := c.Write(out); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		seen := map[uint16]bool{}
		for i := 0; i < 20; i++ {
			var l [2]byte
			if _, err := io.ReadFull(c, l[:]); err != nil {
				t.Fatalf("after %d replies: %v", i, err)
			}
			b := make([]byte, binary.BigEndian.Uint16(l[:]))
			if _, err := io.ReadFull(c, b); err != nil {
				t.Fatal(err)
			}
			r := new(dns.Msg)
			if err := r.Unpack(b); err != nil || len(r.Answer) != 1 {
				t.Fatalf("reply %d: %v %v", i, err, r)
			}
			seen[r.Id] = true
		}
		if len(seen) != 20 {
			t.Fatalf("%d distinct replies, want 20", len(seen))
		}
	})
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"DNS-36 length underrun", []byte{0, 2, 'A', 'B'}},
		{"DNS-36 length overrun", []byte{0x7f, 0x7f, 'A', 'B'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", srv.Addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Write(tc.data)
			c.(*net.TCPConn).CloseWrite()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, _ := io.Copy(io.Discard, c); n != 0 {
				t.Errorf("got %d bytes back for garbage", n)
			}
			c.Close()
			r := dnstest.Exchange(t, srv.Addr, "tcp", query("example.com.", dns.TypeSOA))
			if r.Rcode != dns.RcodeSuccess {
				t.Fatal("server not answering after garbage")
			}
		})
	}
}

// TestReplyCache: repeated UDP questions the miekg/dns path answers (here
// ANY, which the wire fast path leaves to it) are answered from the
// per-snapshot cache, with the ID, RD, CD and question case of each query;
// a new snapshot never serves the old data; ECS queries are cached per ECS
// option.
func TestReplyCache(t *testing.T) {
	srv := startExample(t)
	ask := func(name string, rd bool) *dns.Msg {
		m := query(name, dns.TypeANY)
		m.RecursionDesired = rd
		m.SetEdns0(1232, false)
		r := dnstest.Exchange(t, srv.Addr, "udp", m)
		if r.Id != m.Id || r.RecursionDesired != rd || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("%s: id %d (want %d) RD %v (want %v) rcode %s answers %d", name, r.Id, m.Id, r.RecursionDesired, rd, dns.RcodeToString[r.Rcode], len(r.Answer))
		}
		return r
	}
	before := srv.CacheHits()
	ask("mail.example.com.", false)
	ask("mail.example.com.", true)
	r := ask("MAIL.Example.COM.", false)
	if got := srv.CacheHits() - before; got != 2 {
		t.Errorf("%d cache hits, want 2", got)
	}
	if r.Question[0].Name != "MAIL.Example.COM." || r.Answer[0].Header().Name != "MAIL.Example.COM." {
		t.Errorf("case not mirrored from the cache: question %s, owner %s", r.Question[0].Name, r.Answer[0].Header().Name)
	}
	// The same query over TCP (never cached) gives the same sections.
	m := query("MAIL.Example.COM.", dns.TypeANY)
	m.SetEdns0(1232, false)
	tr := dnstest.Exchange(t, srv.Addr, "tcp", m)
	if tr.Answer[0].String() != r.Answer[0].String() {
		t.Errorf("UDP (cached) %v and TCP %v differ", r.Answer[0], tr.Answer[0])
	}

	// A reload with new data: the cache goes with the old snapshot.
	writeZone(t, srv.Dir, "example.com.zone", strings.Replace(mustRead(t, "testdata/example.com.zone"), "192.0.2.25", "192.0.2.26", 1))
	snap, errs := srv.Loader.Load()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	srv.Swap(snap)
	if got := ask("mail.example.com.", false).Answer[0].(*dns.A).A.String(); got != "192.0.2.26" {
		t.Fatalf("after reload mail = %s, want 192.0.2.26", got)
	}

	// ECS queries are cached per ECS option: each gets its own echo.
	before = srv.CacheHits()
	for _, subnet := range []string{"198.51.100.0/24", "198.51.100.0/24", "203.0.113.0/24", "203.0.113.0/24"} {
		r := dnstest.Exchange(t, srv.Addr, "udp", ecsQuery("mail.example.com.", dns.TypeANY, subnet))
		if e := ecsOf(r); e == nil || netip.PrefixFrom(addrFromSlice(e.Address), int(e.SourceNetmask)).String() != subnet || e.SourceScope != 0 {
			t.Fatalf("ECS %v, want %s/0 echoed", e, subnet)
		}
	}
	if got := srv.CacheHits() - before; got != 2 {
		t.Errorf("%d cache hits for two repeated ECS queries, want 2", got)
	}
}

func addrFromSlice(b []byte) netip.Addr {
	a, _ := netip.AddrFromSlice(b)
	return a.Unmap()
}

func mustRead(t *testing.T, f string) string {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReferralGlue covers DNS-10 (RFC 9471): at every buffer size from 512
// to 1300 bytes, a referral is TC exactly when its in-domain glue does not
// all fit, and then carries only the question and OPT; sibling glue is
// dropped first, without TC.
func TestReferralGlue(t *testing.T) {
	srv := startExample(t)
	sawSiblingDropped := false
	for size := 512; size <= 1300; size++ {
		m := query("x.big-deleg.example.com.", dns.TypeA)
		m.SetEdns0(uint16(size), false)
		pkt, _ := m.Pack()
		raw := dnstest.Raw(t, srv.Addr, pkt, 5*time.Second)
		r := new(dns.Msg)
		if err := r.Unpack(raw); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if len(raw) > max(512, min(size, 1232)) {
			t.Fatalf("size %d: reply of %d bytes", size, len(raw))
		}
		inDomain, sibling := 0, 0
		for _, rr := range r.Extra {
			switch {
			case rr.Header().Rrtype == dns.TypeOPT:
			case strings.HasSuffix(rr.Header().Name, ".big-deleg.example.com."):
				inDomain++
			case rr.Header().Name == "ns.sibling.example.com.":
				sibling++
			}
		}
		if r.Truncated && (len(r.Answer) != 0 || len(r.Ns) != 0 || len(r.Extra) != 1) {
			t.Fatalf("size %d: TC reply with %d/%d/%d records; want the question and OPT only", size, len(r.Answer), len(r.Ns), len(r.Extra))
		}
		if r.Truncated != (inDomain < 16) {
			t.Fatalf("size %d: TC=%v with %d of 16 in-domain glue records", size, r.Truncated, inDomain)
		}
		if len(r.Ns) != 9 && !r.Truncated {
			t.Fatalf("size %d: %d NS records without TC", size, len(r.Ns))
		}
		if !r.Truncated && sibling == 0 {
			sawSiblingDropped = true
		}
	}
	if !sawSiblingDropped {
		t.Error("no buffer size dropped the sibling glue alone (without TC)")
	}
}
