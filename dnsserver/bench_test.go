package dnsserver

import (
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/gslb"
	"github.com/gslbd/gslb/zones"
)

// writer is a dns.ResponseWriter that keeps the last reply.
type writer struct {
	remote net.Addr
	out    []byte
}

func (w *writer) LocalAddr() net.Addr         { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (w *writer) RemoteAddr() net.Addr        { return w.remote }
func (w *writer) Write(b []byte) (int, error) { w.out = append(w.out[:0], b...); return len(b), nil }
func (w *writer) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
func (w *writer) Close() error        { return nil }
func (w *writer) TsigStatus() error   { return nil }
func (w *writer) TsigTimersOnly(bool) {}
func (w *writer) Hijack()             {}
func (w *writer) Network() string     { return "udp" }

// newTestServer serves testdata/example.com.zone from memory, no sockets.
func newTestServer(tb testing.TB) *Server {
	tb.Helper()
	data, err := os.ReadFile("testdata/example.com.zone")
	if err != nil {
		tb.Fatal(err)
	}
	zs, set := compileZone(tb, data, "testdata/example.com.zone")
	s, err := New(Config{Addrs: []string{"127.0.0.1:0"}, NSID: "bench"})
	if err != nil {
		tb.Fatal(err)
	}
	s.Swap(NewSnapshot(zs, set))
	return s
}

// compileZone parses, links and compiles one zone.
func compileZone(tb testing.TB, data []byte, file string) ([]*zones.Zone, *gslb.Set) {
	tb.Helper()
	z, err := zones.Parse(data, file, "", false)
	if err != nil {
		tb.Fatal(err)
	}
	zs := []*zones.Zone{z}
	if err := zones.Link(zs); err != nil {
		tb.Fatal(err)
	}
	set, err := gslb.Compile(zs, gslb.Env{})
	if err != nil {
		tb.Fatal(err)
	}
	return zs, set
}

func benchQuery(b *testing.B, m *dns.Msg) {
	s := newTestServer(b)
	w := &writer{remote: &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5300}}
	s.ServeDNS(w, m)
	if len(w.out) == 0 {
		b.Fatal("no reply")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.ServeDNS(w, m)
	}
}

func benchMsg(name string, t uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, t)
	m.SetEdns0(1232, false)
	return m
}

// BenchmarkServeStatic answers a static A record (handler only: the
// request is already unpacked, as miekg/dns hands it over).
func BenchmarkServeStatic(b *testing.B) { benchQuery(b, benchMsg("mail.example.com.", dns.TypeA)) }

// BenchmarkServeNXDOMAIN answers a name that does not exist.
func BenchmarkServeNXDOMAIN(b *testing.B) { benchQuery(b, benchMsg("nope.example.com.", dns.TypeA)) }

// BenchmarkServeGSLBECS answers a GSLB record for a query with ECS.
func BenchmarkServeGSLBECS(b *testing.B) {
	m := benchMsg("www.example.com.", dns.TypeA)
	p := netip.MustParsePrefix("198.51.100.0/24")
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: p.Addr().AsSlice()})
	benchQuery(b, m)
}

// BenchmarkServeStaticWire includes unpacking the request, as the server
// does for every packet.
func BenchmarkServeStaticWire(b *testing.B) {
	s := newTestServer(b)
	w := &writer{remote: &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5300}}
	pkt, _ := benchMsg("mail.example.com.", dns.TypeA).Pack()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := new(dns.Msg)
		if err := m.Unpack(pkt); err != nil {
			b.Fatal(err)
		}
		s.ServeDNS(w, m)
	}
}
