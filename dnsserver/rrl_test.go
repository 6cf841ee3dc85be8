package dnsserver

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// reply packs the reply s gives to name/qtype from 192.0.2.1 (no RRL).
func reply(t *testing.T, s *Server, name string, qtype uint16) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, false)
	pkt, _ := m.Pack()
	l := s.rrl
	s.rrl = nil
	defer func() { s.rrl = l }()
	out := testReader(s, "192.0.2.1:5300").handle(pkt)
	if out == nil {
		t.Fatalf("%s: no reply", name)
	}
	return append([]byte(nil), out...)
}

// TestRRL covers DNS-47 on the limiter itself, second by second: with rate
// 5 and slip 2, 100 replies in one second give 5 sent, 47 slipped and 48
// dropped; other networks, other names, exempt networks and the next
// second are not affected; NXDOMAIN counts per zone.
func TestRRL(t *testing.T) {
	s := newTestServer(t)
	www := reply(t, s, "www.example.com.", dns.TypeA)
	mail := reply(t, s, "mail.example.com.", dns.TypeA)
	nx1 := reply(t, s, "nope1.example.com.", dns.TypeA)
	nx2 := reply(t, s, "nope2.example.com.", dns.TypeA)
	ref := reply(t, s, "x.big-deleg.example.com.", dns.TypeA)
	src := netip.MustParseAddr("192.0.2.1")
	run := func(l *rrl, src netip.Addr, out []byte, now uint64, n int) (counts [3]int) {
		for i := 0; i < n; i++ {
			switch l.check(src, out, now) {
			case rrlPass, rrlLogged:
				counts[0]++
			case rrlSlipped:
				counts[1]++
			case rrlDropped:
				counts[2]++
			}
		}
		return counts
	}
	l, err := newRRL(RRL{Rate: 5, Slip: 2, Exempt: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		src  string
		out  []byte
		now  uint64
		n    int
		want [3]int // sent, slipped, dropped
	}{
		{"flood of one name", "192.0.2.1", www, 1000, 100, [3]int{5, 47, 48}},
		{"same /24, same name: limited", "192.0.2.77", www, 1000, 2, [3]int{0, 1, 1}},
		{"other /24: its own count", "198.51.100.1", www, 1000, 6, [3]int{5, 0, 1}},
		{"other name: its own count", "192.0.2.1", mail, 1000, 5, [3]int{5, 0, 0}},
		{"exempt network", "203.0.113.9", www, 1000, 50, [3]int{50, 0, 0}},
		{"loopback exempt by default", "127.0.0.1", www, 1000, 50, [3]int{50, 0, 0}},
		{"next second", "192.0.2.1", www, 1001, 5, [3]int{5, 0, 0}},
		{"NXDOMAIN counts per zone", "192.0.2.1", nx1, 1001, 5, [3]int{5, 0, 0}},
		{"so another name of the zone is limited", "192.0.2.1", nx2, 1001, 2, [3]int{0, 1, 1}},
		{"referrals per delegation", "192.0.2.1", ref, 1001, 7, [3]int{5, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := run(l, netip.MustParseAddr(tc.src), tc.out, tc.now, tc.n); got != tc.want {
				t.Errorf("sent, slipped, dropped = %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("log only", func(t *testing.T) {
		l, _ := newRRL(RRL{Rate: 5, LogOnly: true})
		if got := run(l, src, www, 1, 20); got != [3]int{20, 0, 0} || l.limited[rrlAnswer][rrlLogged].Load() != 15 {
			t.Errorf("sent, slipped, dropped = %v, logged %d; want all sent, 15 logged", got, l.limited[rrlAnswer][rrlLogged].Load())
		}
	})
	t.Run("slip -1 drops all", func(t *testing.T) {
		l, _ := newRRL(RRL{Rate: 5, Slip: -1})
		if got := run(l, src, www, 1, 20); got != [3]int{5, 0, 15} {
			t.Errorf("sent, slipped, dropped = %v", got)
		}
	})
	t.Run("a random-source flood does not free a busy key", func(t *testing.T) {
		l, _ := newRRL(RRL{Rate: 5, Buckets: 1024})
		run(l, src, www, 7, 10)
		for i := 0; i < 100000; i++ {
			a := netip.AddrFrom4([4]byte{10 + byte(i>>16), byte(i >> 8), byte(i), 1}) // a /24 each
			l.check(a, www, 7)
		}
		if got := run(l, src, www, 7, 4); got[0] != 0 {
			t.Errorf("after the flood the limited key sent %d of 4", got[0])
		}
	})
}

// TestRRLSlip: through the UDP reader, replies over the rate are empty TC
// replies (slip 1) with the question and the OPT; the reply cache path is
// limited like the other, and allocates nothing.
func TestRRLSlip(t *testing.T) {
	s := newTestServer(t)
	var err error
	if s.rrl, err = newRRL(RRL{Rate: 2, Slip: 1}); err != nil {
		t.Fatal(err)
	}
	r := testReader(s, "192.0.2.1:5300")
	m := new(dns.Msg)
	m.SetQuestion("mail.example.com.", dns.TypeA)
	m.SetEdns0(1232, false)
	pkt, _ := m.Pack()
	tcs := 0
	for i := 0; i < 6; i++ {
		rep := new(dns.Msg)
		if err := rep.Unpack(r.handle(pkt)); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if rep.Truncated {
			tcs++
			if len(rep.Answer)+len(rep.Ns) != 0 || len(rep.Extra) != 1 || rep.IsEdns0() == nil || rep.Question[0].Name != "mail.example.com." || rep.Authoritative {
				t.Errorf("slip reply %v: want the question and OPT only, AA clear", rep)
			}
		}
	}
	if tcs != 4 {
		t.Errorf("%d of 6 replies slipped, want 4 (rate 2)", tcs)
	}
	if n := testing.AllocsPerRun(100, func() { r.handle(pkt) }); n != 0 {
		t.Errorf("%v allocations per limited cached query", n)
	}
}

func ExampleRRL() {
	cfg := Config{Addrs: []string{"127.0.0.1:0"}, RRL: RRL{Rate: 100, Exempt: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	_, err := New(cfg)
	fmt.Println(err)
	// Output: <nil>
}

// TestRRLNoAlloc: a cached UDP reply within the rate goes through RRL
// without allocating.
func TestRRLNoAlloc(t *testing.T) {
	s := newTestServer(t)
	r := testReader(s, "192.0.2.1:5300")
	m := new(dns.Msg)
	m.SetQuestion("mail.example.com.", dns.TypeA)
	m.SetEdns0(1232, false)
	pkt, _ := m.Pack()
	var err error
	if s.rrl, err = newRRL(RRL{Rate: 1<<24 - 1}); err != nil {
		t.Fatal(err)
	}
	r.handle(pkt)
	if n := testing.AllocsPerRun(100, func() { r.handle(pkt) }); n != 0 {
		t.Errorf("%v allocations per cached query with RRL on", n)
	}
}

// BenchmarkHandleRRL is the UDP reader's cached path with honest traffic
// (64 names from 65,536 resolvers in turn: each well under the rate),
// RRL off and on: the cost of the limiter per reply.
func BenchmarkHandleRRL(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("rrl=%v", on), func(b *testing.B) {
			s := newTestServer(b)
			if !on {
				s.rrl = nil
			}
			r := testReader(s, "192.0.2.1:5300")
			var pkts [][]byte
			for i := 0; i < 64; i++ {
				m := new(dns.Msg)
				m.SetQuestion(fmt.Sprintf("n%d.wild.example.com.", i), dns.TypeTXT)
				m.SetEdns0(1232, false)
				p, _ := m.Pack()
				pkts = append(pkts, p)
				r.handle(p)
			}
			srcs := make([]netip.AddrPort, 1<<16)
			for i := range srcs {
				srcs[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}), 5300)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.w.from = srcs[i&(1<<16-1)]
				r.handle(pkts[i&63])
			}
		})
	}
}
