package dnsserver

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/miekg/dns"
)

// testReader is a UDP reader of s with no socket, for calling handle.
func testReader(s *Server, from string) *udpReader {
	r := &udpReader{s: s, buf: make([]byte, dns.MaxMsgSize), out: make([]byte, 0, dns.MaxMsgSize), hseed: s.hseed}
	r.q.buf = make([]byte, 0, dns.MaxMsgSize)
	r.w.r = r
	r.w.from = netip.MustParseAddrPort(from)
	return r
}

// TestHeaderLies covers the fuzz seeds as a plain test (DNS-21, DNS-22):
// the 12-byte header that claims a question gets FORMERR with its ID, and
// nothing panics.
func TestHeaderLies(t *testing.T) {
	s := newTestServer(t)
	r := testReader(s, "192.0.2.1:5300")
	for _, pkt := range fuzzSeeds() {
		r.handle(pkt)
	}
	if n := s.stats.panics.Load(); n != 0 {
		t.Fatalf("%d panics over the seed corpus", n)
	}
	out := r.handle([]byte{0xbe, 0xef, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	rep := new(dns.Msg)
	if err := rep.Unpack(out); err != nil || rep.Rcode != dns.RcodeFormatError || rep.Id != 0xbeef {
		t.Fatalf("QDCOUNT=1 without a question: reply %v (err %v), want FORMERR with id 0xbeef", rep, err)
	}
}

// TestPanicLogPaced: a recovered panic is counted every time but logged at
// most once a second, with the number of panics since the last line.
func TestPanicLogPaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		s, err := New(Config{Addrs: []string{"127.0.0.1:0"}, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
		if err != nil {
			t.Fatal(err)
		}
		m := new(dns.Msg)
		m.SetQuestion("example.com.", dns.TypeA)
		for i := 0; i < 100; i++ {
			s.recovered("boom", m)
		}
		time.Sleep(time.Second)
		s.recovered("boom", m)
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != 2 || s.stats.panics.Load() != 101 {
			t.Fatalf("%d log lines and %d panics counted, want 2 and 101:\n%s", len(lines), s.stats.panics.Load(), buf.String())
		}
		if !strings.Contains(lines[0], "panics=1 ") || !strings.Contains(lines[1], "panics=100 ") || !strings.Contains(lines[1], "total=101") {
			t.Errorf("counts not logged:\n%s", buf.String())
		}
	})
}

// TestTCPIdleShrinks: the idle timeout is the configured one while the
// table is at most half full, then falls with the free room, to 200ms.
func TestTCPIdleShrinks(t *testing.T) {
	tt := newTCPTable(10, 100, 100)
	base := 8 * time.Second
	var last time.Duration = 1 << 62
	for n := 1; n <= 10; n++ {
		tt.n = n
		tc := &tcpConn{}
		d, ok := tt.idle(tc, base)
		tt.unlinkIdle(tc)
		switch {
		case !ok:
			t.Fatalf("n=%d: connection refused", n)
		case n <= 5 && d != base:
			t.Errorf("n=%d of 10: idle %v, want %v", n, d, base)
		case d > last:
			t.Errorf("n=%d: idle %v grew from %v", n, d, last)
		case n == 10 && d != minIdle:
			t.Errorf("full table: idle %v, want %v", d, minIdle)
		}
		last = d
	}
}
