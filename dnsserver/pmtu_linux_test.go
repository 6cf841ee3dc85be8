//go:build linux && (amd64 || arm64)

package dnsserver

import (
	"context"
	"net"
	"testing"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// TestUDPOmitsPMTU: the server's UDP sockets send without the DF bit and
// ignore path MTU information (IP_PMTUDISC_OMIT), IPv4 and IPv6 alike.
func TestUDPOmitsPMTU(t *testing.T) {
	s := newTestServer(t)
	s.cfg.Addrs = []string{"127.0.0.1:0"}
	if ln, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err == nil {
		ln.Close()
		s.cfg.Addrs = append(s.cfg.Addrs, "[::1]:0")
	} else {
		t.Logf("no IPv6 loopback here: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	// An answer from each address: its reader has set the socket up.
	m := new(dns.Msg)
	m.SetQuestion("mail.example.com.", dns.TypeA)
	for _, a := range s.UDPAddrs() {
		if _, err := dns.Exchange(m, a.String()); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
	}
	s.mu.Lock()
	conns := append([]*net.UDPConn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		level, opt, want := unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_OMIT
		if c.LocalAddr().(*net.UDPAddr).IP.To4() == nil {
			level, opt, want = unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_OMIT
		}
		raw, err := c.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var got int
		var gerr error
		raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), level, opt) })
		if gerr != nil || got != want {
			t.Errorf("%s: path MTU discovery mode %d (%v), want %d (OMIT)", c.LocalAddr(), got, gerr, want)
		}
	}
}
