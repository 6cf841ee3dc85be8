package dnsserver

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// TCP is served by our own accept and read loop so that no client can hold
// it: every connection has a slot in one table with limits per source
// address, per source network (/24, /56) and in total; when the table is
// full the connection idle for longest is closed for the new one (as NSD
// and Knot do) rather than the new one refused; the idle timeout shrinks as
// the table fills; and a query, once its first byte has arrived, must be
// complete within ReadTimeout (a byte-a-second client is cut). UDP has its
// own goroutines and shares nothing with this table.

// maxTCPQuery is the largest query read over TCP, as over UDP: larger
// length prefixes close the connection (nothing we answer needs more, and
// it bounds the buffer a slow client can make us hold).
const maxTCPQuery = 4096

// minIdle is the idle timeout of a nearly full table.
const minIdle = 200 * time.Millisecond

// tcpConn is one connection's slot in the table.
type tcpConn struct {
	c      net.Conn
	remote *net.TCPAddr
	addr   netip.Addr
	net    netip.Prefix
	// prev and next link the connection into the table's idle list while
	// it waits for a query; gone is set once it has left the table.
	prev, next *tcpConn
	idle       bool
	gone       bool
}

// tcpTable admits, tracks and evicts TCP connections. Its lock is taken on
// accept, on close, and twice per query (busy, idle again); never by UDP.
type tcpTable struct {
	mu      sync.Mutex
	max     int
	perAddr int32
	perNet  int32
	n       int
	byAddr  map[netip.Addr]int32
	byNet   map[netip.Prefix]int32
	// head is the connection idle for longest, tail the newest idle.
	head, tail *tcpConn
	closing    bool
	wg         sync.WaitGroup

	refused [3]atomic.Uint64 // by tcpRefusal
	evicted atomic.Uint64
	cut     atomic.Uint64 // queries not complete within ReadTimeout
}

type tcpRefusal int

const (
	refusedAddr tcpRefusal = iota // the source address has its share
	refusedNet                    // the source network has its share
	refusedFull                   // full, and every connection is mid-query
)

func newTCPTable(max, perAddr, perNet int) *tcpTable {
	return &tcpTable{max: max, perAddr: int32(perAddr), perNet: int32(perNet), byAddr: map[netip.Addr]int32{}, byNet: map[netip.Prefix]int32{}}
}

// sourceNet is the network a source address counts against: its /24, or
// /56 for IPv6 (a typical end-site assignment).
func sourceNet(a netip.Addr) netip.Prefix {
	bits := 24
	if !a.Is4() {
		bits = 56
	}
	p, _ := a.Prefix(bits)
	return p
}

// admit gives c a slot, closing the longest-idle connection if the table is
// full. It returns nil, and counts why, when c must be closed instead.
func (t *tcpTable) admit(c net.Conn) *tcpConn {
	ra, _ := c.RemoteAddr().(*net.TCPAddr)
	if ra == nil {
		return nil
	}
	addr := ra.AddrPort().Addr().Unmap()
	tc := &tcpConn{c: c, remote: ra, addr: addr, net: sourceNet(addr)}
	var victim *tcpConn
	t.mu.Lock()
	switch {
	case t.closing:
		t.mu.Unlock()
		return nil
	case t.byAddr[addr] >= t.perAddr:
		t.mu.Unlock()
		t.refused[refusedAddr].Add(1)
		return nil
	case t.byNet[tc.net] >= t.perNet:
		t.mu.Unlock()
		t.refused[refusedNet].Add(1)
		return nil
	case t.n >= t.max:
		victim = t.head
		if victim == nil {
			t.mu.Unlock()
			t.refused[refusedFull].Add(1)
			return nil
		}
		t.remove(victim)
		t.evicted.Add(1)
	}
	t.n++
	t.byAddr[addr]++
	t.byNet[tc.net]++
	t.pushIdle(tc)
	t.wg.Add(1)
	t.mu.Unlock()
	if victim != nil {
		victim.c.Close() // its goroutine sees the error and leaves
	}
	return tc
}

// remove takes tc out of the table; t.mu is held.
func (t *tcpTable) remove(tc *tcpConn) {
	if tc.gone {
		return
	}
	tc.gone = true
	t.unlinkIdle(tc)
	t.n--
	if t.byAddr[tc.addr]--; t.byAddr[tc.addr] <= 0 {
		delete(t.byAddr, tc.addr)
	}
	if t.byNet[tc.net]--; t.byNet[tc.net] <= 0 {
		delete(t.byNet, tc.net)
	}
}

// release is called once by tc's goroutine when it ends.
func (t *tcpTable) release(tc *tcpConn) {
	t.mu.Lock()
	t.remove(tc)
	t.mu.Unlock()
	t.wg.Done()
}

func (t *tcpTable) pushIdle(tc *tcpConn) {
	tc.idle = true
	tc.prev, tc.next = t.tail, nil
	if t.tail != nil {
		t.tail.next = tc
	} else {
		t.head = tc
	}
	t.tail = tc
}

func (t *tcpTable) unlinkIdle(tc *tcpConn) {
	if !tc.idle {
		return
	}
	tc.idle = false
	if tc.prev != nil {
		tc.prev.next = tc.next
	} else {
		t.head = tc.next
	}
	if tc.next != nil {
		tc.next.prev = tc.prev
	} else {
		t.tail = tc.prev
	}
	tc.prev, tc.next = nil, nil
}

// busy marks tc as reading a query: it cannot be evicted until it is idle
// again. It reports false when tc was evicted or the server is closing.
func (t *tcpTable) busy(tc *tcpConn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.unlinkIdle(tc)
	return !tc.gone && !t.closing
}

// idle puts tc back at the newest end of the idle list and returns how long
// it may stay idle: base while the table is at most half full, then
// shrinking linearly to minIdle as it fills (NSD lowers its timeout the
// same way under load). It reports false when tc must close.
func (t *tcpTable) idle(tc *tcpConn, base time.Duration) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tc.gone || t.closing {
		return 0, false
	}
	t.pushIdle(tc)
	return t.timeout(base), true
}

// timeout is the idle timeout at the table's fill; t.mu is held.
func (t *tcpTable) timeout(base time.Duration) time.Duration {
	d := base
	if half := t.max / 2; t.n > half && half > 0 {
		d = time.Duration(int64(base) * int64(t.max-t.n) / int64(t.max-half))
	}
	return max(d, min(minIdle, base))
}

// firstWait is how long a new connection may wait for its first query.
func (t *tcpTable) firstWait(base time.Duration) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.timeout(base)
}

// close stops admitting and closes every idle connection; busy ones close
// after their reply.
func (t *tcpTable) close() {
	t.mu.Lock()
	t.closing = true
	var idle []net.Conn
	for tc := t.head; tc != nil; tc = tc.next {
		idle = append(idle, tc.c)
	}
	t.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}

// connections returns how many TCP connections are open.
func (t *tcpTable) connections() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// serveTCP accepts connections on ln until it is closed.
func (s *Server) serveTCP(ln net.Listener) {
	for delay := time.Duration(0); ; {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or the like: back off as net/http
			// does, rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		tc := s.tcpt.admit(c)
		if tc == nil {
			if l, ok := c.(*net.TCPConn); ok {
				l.SetLinger(0) // reset: the refused client learns at once
			}
			c.Close()
			continue
		}
		go s.serveTCPConn(tc)
	}
}

// serveTCPConn answers the queries of one connection, in order, until it
// is idle too long, a query is too slow, the client closes, or it is
// evicted.
func (s *Server) serveTCPConn(tc *tcpConn) {
	defer s.tcpt.release(tc)
	defer tc.c.Close()
	w := &tcpWriter{tc: tc}
	var (
		hdr   [2]byte
		small [512]byte
		reply []byte
	)
	wait := s.tcpt.firstWait(s.cfg.TCPIdleTimeout)
	for {
		tc.c.SetReadDeadline(time.Now().Add(wait))
		n, err := io.ReadAtLeast(tc.c, hdr[:], 1)
		if err != nil || !s.tcpt.busy(tc) {
			return
		}
		// The first byte is here: the rest of the query, and the reply,
		// get ReadTimeout.
		tc.c.SetDeadline(time.Now().Add(s.cfg.ReadTimeout))
		if n < 2 {
			if _, err := io.ReadFull(tc.c, hdr[1:]); err != nil {
				s.tcpt.timedOut(err)
				return
			}
		}
		l := int(binary.BigEndian.Uint16(hdr[:]))
		if l < 12 || l > maxTCPQuery {
			return // DNS-36: not a DNS message; nothing to answer
		}
		buf := small[:]
		var big *[]byte
		if l > len(small) {
			big = tcpBufs.Get().(*[]byte)
			buf = *big
		}
		_, err = io.ReadFull(tc.c, buf[:l])
		if err != nil {
			s.tcpt.timedOut(err)
			if big != nil {
				tcpBufs.Put(big)
			}
			return
		}
		q := s.pool.Get().(*query)
		out, _, _ := s.respond(q, w, buf[:l], s.snap.Load())
		if out != nil {
			reply = binary.BigEndian.AppendUint16(reply[:0], uint16(len(out)))
			reply = append(reply, out...)
		}
		s.pool.Put(q)
		if big != nil {
			tcpBufs.Put(big)
		}
		// Idle again before the reply goes out: a client that reads the
		// reply and opens another connection finds this one in the idle
		// list in the order its queries were answered.
		var ok bool
		wait, ok = s.tcpt.idle(tc, s.cfg.TCPIdleTimeout)
		if out != nil {
			if _, err := tc.c.Write(reply); err != nil {
				return
			}
		}
		if !ok {
			return
		}
	}
}

// timedOut counts a query cut by the read timeout.
func (t *tcpTable) timedOut(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.cut.Add(1)
	}
}

var tcpBufs = sync.Pool{New: func() any { b := make([]byte, maxTCPQuery); return &b }}

// fdLimit returns the process's open-file limit, or 0 if unknown.
func fdLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 0
	}
	return int(rl.Cur)
}

// tcpWriter is the dns.ResponseWriter of a TCP connection; replies are
// written by serveTCPConn, so only the addresses are used.
type tcpWriter struct{ tc *tcpConn }

func (w *tcpWriter) LocalAddr() net.Addr         { return w.tc.c.LocalAddr() }
func (w *tcpWriter) RemoteAddr() net.Addr        { return w.tc.remote }
func (w *tcpWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *tcpWriter) WriteMsg(*dns.Msg) error     { return nil }
func (w *tcpWriter) Close() error                { return nil }
func (w *tcpWriter) TsigStatus() error           { return nil }
func (w *tcpWriter) TsigTimersOnly(bool)         {}
func (w *tcpWriter) Hijack()                     {}
