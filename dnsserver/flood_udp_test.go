package dnsserver_test

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/dnsserver/dnstest"
)

// TestRRLFlood covers DNS-47 over real sockets: a burst of 500 queries for
// one name from 127.0.0.1 gets at most the rate in full answers for each
// second it spans, about half of the rest as empty TC replies (slip 2) and
// nothing for the others; meanwhile 127.0.1.1, another /24, gets every
// answer.
func TestRRLFlood(t *testing.T) {
	const rate = 20
	srv := dnstest.Start(t, exampleFiles(t), dnsserver.Config{RRL: dnsserver.RRL{Rate: rate, Slip: 2}})
	ra, err := net.ResolveUDPAddr("udp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadBuffer(1 << 20)
	m := query("mail.example.com.", dns.TypeA)
	m.SetEdns0(1232, false)
	const n = 500
	start := time.Now()
	for i := 0; i < n; i++ {
		m.Id = uint16(i)
		b, _ := m.Pack()
		if _, err := c.WriteToUDP(b, ra); err != nil {
			t.Fatal(err)
		}
		if i%64 == 63 {
			time.Sleep(time.Millisecond) // fewer drops in the socket buffers
		}
	}
	full, tc := 0, 0
	buf := make([]byte, 2048)
	for {
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		k, err := c.Read(buf)
		if err != nil {
			break
		}
		r := new(dns.Msg)
		if err := r.Unpack(buf[:k]); err != nil {
			t.Fatal(err)
		}
		switch {
		case r.Truncated && len(r.Answer) == 0:
			tc++
		case len(r.Answer) == 1:
			full++
		default:
			t.Fatalf("unexpected reply %v", r)
		}
	}
	seconds := int(time.Now().Unix()-start.Unix()) + 1
	t.Logf("%d queries from one source: %d answered, %d slipped (TC), %d dropped", n, full, tc, n-full-tc)
	if full > rate*seconds {
		t.Errorf("%d full answers over %d second(s) at a rate of %d", full, seconds, rate)
	}
	// Queries the kernel dropped before the server read them are not
	// limited ones: compare with what the server counted.
	slipped, dropped := rrlCount(t, srv, "slipped"), rrlCount(t, srv, "dropped")
	if d := slipped - dropped; d < -seconds || d > seconds || tc > slipped || tc == 0 {
		t.Errorf("server slipped %d and dropped %d (want every other one slipped); client saw %d slips", slipped, dropped, tc)
	}
	other := dialUDPFrom(t, "127.0.1.1", srv.Addr)
	for i := 0; i < rate; i++ { // its own rate: all answered
		if r, err := exchangeOn(other, m); err != nil || r.Truncated || len(r.Answer) != 1 {
			t.Fatalf("127.0.1.1, query %d during the flood: %v %v", i, r, err)
		}
	}
}

// rrlCount reads gslb_dns_rrl_limited_total{class="answer",action} of srv.
func rrlCount(t *testing.T, srv *dnstest.Server, action string) int {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(srv.Server)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "gslb_dns_rrl_limited_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["class"] == "answer" && labels["action"] == action {
				return int(m.GetCounter().GetValue())
			}
		}
	}
	t.Fatalf("no gslb_dns_rrl_limited_total{class=answer,action=%s}", action)
	return 0
}

func dialUDPFrom(t *testing.T, src, addr string) *dns.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &dns.Conn{Conn: c, UDPSize: 1232}
}

func exchangeOn(c *dns.Conn, m *dns.Msg) (*dns.Msg, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMsg(m); err != nil {
		return nil, err
	}
	return c.ReadMsg()
}
