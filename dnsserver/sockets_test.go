package dnsserver

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestUDPSocketsPerCore: each listen address gets UDPSockets UDP sockets
// bound together (SO_REUSEPORT), every one served: queries from many
// source ports, which the kernel spreads over the sockets, are all
// answered; Shutdown closes them all.
func TestUDPSocketsPerCore(t *testing.T) {
	s := newTestServer(t)
	s.cfg.Addrs, s.cfg.UDPSockets = []string{"127.0.0.1:0", "127.0.0.1:0"}, 3
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	s.mu.Lock()
	conns := append([]*net.UDPConn(nil), s.conns...)
	s.mu.Unlock()
	if len(conns) != 6 || len(s.UDPAddrs()) != 2 {
		t.Fatalf("%d UDP sockets for %d addresses, want 6 for 2", len(conns), len(s.UDPAddrs()))
	}
	for i, c := range conns {
		if want := s.UDPAddrs()[i/3].String(); c.LocalAddr().String() != want {
			t.Errorf("socket %d bound to %s, want %s", i, c.LocalAddr(), want)
		}
	}
	m := new(dns.Msg)
	m.SetQuestion("mail.example.com.", dns.TypeA)
	pkt, _ := m.Pack()
	for _, a := range s.UDPAddrs() {
		for i := 0; i < 32; i++ {
			c, err := net.DialUDP("udp", nil, a.(*net.UDPAddr))
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(pkt); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 512)
			n, err := c.Read(buf)
			c.Close()
			var r dns.Msg
			if err != nil || r.Unpack(buf[:n]) != nil || len(r.Answer) != 1 {
				t.Fatalf("query %d to %s from a new port: %v %v", i, a, err, r.Answer)
			}
		}
	}
	s.Shutdown(context.Background())
	for i, c := range conns {
		if _, err := c.WriteTo(pkt, c.LocalAddr()); err == nil {
			t.Errorf("socket %d still open after Shutdown", i)
		}
	}
}
