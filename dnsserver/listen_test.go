package dnsserver_test

import (
	"net"
	"os"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/dnsserver/dnstest"
)

func exampleFiles(t *testing.T) map[string]string {
	return map[string]string{"example.com.zone": mustRead(t, "testdata/example.com.zone")}
}

// TestSeveralAddresses: every --dns address answers, IPv4 and IPv6.
func TestSeveralAddresses(t *testing.T) {
	addrs := []string{"127.0.0.1:0", "127.0.0.1:0"}
	if c, err := net.ListenPacket("udp", "[::1]:0"); err == nil {
		c.Close()
		addrs = append(addrs, "[::1]:0")
	} else {
		t.Log("no IPv6 loopback here; testing IPv4 addresses only")
	}
	srv := dnstest.Start(t, exampleFiles(t), dnsserver.Config{Addrs: addrs})
	if len(srv.UDPAddrs()) != len(addrs) || len(srv.TCPAddrs()) != len(addrs) {
		t.Fatalf("%d UDP and %d TCP listeners, want %d each", len(srv.UDPAddrs()), len(srv.TCPAddrs()), len(addrs))
	}
	for _, a := range srv.UDPAddrs() {
		for _, network := range []string{"udp", "tcp"} {
			r := dnstest.Exchange(t, a.String(), network, query("mail.example.com.", dns.TypeA))
			if len(r.Answer) != 1 {
				t.Errorf("%s %s: %d answers", network, a, len(r.Answer))
			}
		}
	}
}

// TestReplySource covers DNS-38: on a wildcard address, each reply comes
// from the address the query was sent to.
func TestReplySource(t *testing.T) {
	srv := dnstest.Start(t, exampleFiles(t), dnsserver.Config{Addrs: []string{"0.0.0.0:0"}})
	port := srv.UDPAddrs()[0].(*net.UDPAddr).Port
	for _, ip := range []string{"127.0.0.1", "127.0.0.2"} {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.1")})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		m := query("mail.example.com.", dns.TypeA)
		b, _ := m.Pack()
		dst := &net.UDPAddr{IP: net.ParseIP(ip), Port: port}
		if _, err := c.WriteToUDP(b, dst); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2048)
		_, from, err := c.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("query to %s: %v", ip, err)
		}
		if !from.IP.Equal(dst.IP) {
			t.Errorf("query to %s answered from %s", ip, from.IP)
		}
	}
}

// TestTCPIdle covers DNS-37: an idle TCP connection is closed after the
// idle timeout.
func TestTCPIdle(t *testing.T) {
	srv := dnstest.Start(t, exampleFiles(t), dnsserver.Config{TCPIdleTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || os.IsTimeout(err) {
		t.Fatalf("idle connection not closed by the server: %v", err)
	}
}
