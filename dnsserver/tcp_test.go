package dnsserver_test

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/gslbd/gslb/dnsserver"
	"github.com/gslbd/gslb/dnsserver/dnstest"
)

// dialFrom opens a TCP connection to addr from the loopback address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// askTCP sends one query on c and returns the reply, or the error.
func askTCP(c net.Conn, name string) (*dns.Msg, error) {
	m := query(name, dns.TypeSOA)
	b, _ := m.Pack()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(b)))); err != nil {
		return nil, err
	}
	if _, err := c.Write(b); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	b = make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		return nil, err
	}
	r := new(dns.Msg)
	return r, r.Unpack(b)
}

// refused reports whether a connection from src is closed by the server
// at once (reset during the handshake, or closed after it).
func refused(t *testing.T, src, addr string) bool {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return true
	}
	defer c.Close()
	return closedByServer(c)
}

// closedByServer reports whether the server closed c (EOF or reset before
// the 5 s deadline).
func closedByServer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

// TestTCPFair covers DNS-37's limits: one address gets its share of
// connections and no more, its neighbour is still answered, and when the
// table is full the connection idle for longest makes room.
func TestTCPFair(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		srv := dnstest.Start(t, exampleFiles(t), dnsserver.Config{MaxTCPConnsPerAddr: 2})
		a, b := dialFrom(t, "127.0.0.1", srv.Addr), dialFrom(t, "127.0.0.1", srv.Addr)
		for _, c := range []net.Conn{a, b} {
			if _, err := askTCP(c, "example.com."); err != nil {
				t.Fatalf("a connection within the share: %v", err)
			}
		}
		if !refused(t, "127.0.0.1", srv.Addr) {
			t.Error("a third connection from 127.0.0.1 was kept open")
		}
		if _, err := askTCP(dialFrom(t, "127.0.0.2", srv.Addr), "example.com."); err != nil {
			t.Errorf("127.0.0.2 not answered while 127.0.0.1 holds its share: %v", err)
		}
		if _, err := askTCP(a, "example.com."); err != nil {
			t.Errorf("a held connection stopped answering: %v", err)
		}
	})
	t.Run("per network", func(t *testing.T) {
		srv := dnstest.Start(t, exampleFiles(t), dnsserver.Config{MaxTCPConnsPerNet: 2})
		dialFrom(t, "127.0.0.1", srv.Addr)
		dialFrom(t, "127.0.0.2", srv.Addr)
		if !refused(t, "127.0.0.3", srv.Addr) {
			t.Error("a third connection from 127.0.0.0/24 was kept open")
		}
		if _, err := askTCP(dialFrom(t, "127.0.1.1", srv.Addr), "example.com."); err != nil {
			t.Errorf("127.0.1.1 not answered: %v", err)
		}
	})
	t.Run("full: the oldest idle goes", func(t *testing.T) {
		srv := dnstest.Start(t, exampleFiles(t), dnsserver.Config{MaxTCPConns: 2})
		oldest := dialFrom(t, "127.0.0.1", srv.Addr)
		if _, err := askTCP(oldest, "example.com."); err != nil {
			t.Fatal(err)
		}
		newer := dialFrom(t, "127.0.0.2", srv.Addr)
		if _, err := askTCP(newer, "example.com."); err != nil {
			t.Fatal(err)
		}
		if _, err := askTCP(dialFrom(t, "127.0.1.1", srv.Addr), "example.com."); err != nil {
			t.Fatalf("a new connection to a full table was not answered: %v", err)
		}
		if !closedByServer(oldest) {
			t.Error("the connection idle for longest was not closed")
		}
		if _, err := askTCP(newer, "example.com."); err != nil {
			t.Errorf("the newer idle connection was closed: %v", err)
		}
	})
}

// TestTCPSlowQuery covers DNS-37's slow writer: a query that has started
// but does not complete within ReadTimeout closes the connection.
func TestTCPSlowQuery(t *testing.T) {
	srv := dnstest.Start(t, exampleFiles(t), dnsserver.Config{ReadTimeout: 100 * time.Millisecond})
	c := dialFrom(t, "127.0.0.1", srv.Addr)
	if _, err := c.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	if !closedByServer(c) {
		t.Fatal("a query stuck after its first byte kept the connection open")
	}
	if _, err := askTCP(dialFrom(t, "127.0.0.1", srv.Addr), "example.com."); err != nil {
		t.Fatalf("server not answering after the slow client: %v", err)
	}
}
