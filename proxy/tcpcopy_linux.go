package proxy

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// copyBufSize is the buffer of one read in copyConn, HAProxy's default
// bufsize. A read that fills it hands the direction over to io.Copy
// (splice(2)) for the rest of the connection.
const copyBufSize = 16 << 10

// copyBufs holds the buffers of copyConn; a direction takes one only while
// it moves bytes, so idle connections hold none.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// tcpINQ is Linux's TCP_INQ socket option and TCP_CM_INQ control message
// (linux/tcp.h, since 4.18).
const tcpINQ = 36

// copyConn copies src to dst until EOF (nil), an error, or the idle
// timeout, like copyIdle, with fewer system calls per message.
//
// net.Conn.Read and io.Copy's splice read before they wait: every message
// costs a read that returns it and one more that returns EAGAIN, because
// each call starts by forgetting what the poller reported. Here one
// syscall.RawConn.Read call lasts as long as the connection moves small
// messages: its callback reads with recvmsg(2), writes what it read with
// dst.Write, and returns false to wait for the poller when the kernel says
// nothing is left to read; the poller calls it again when src is readable
// (data, FIN or an error). "Nothing left" is TCP_INQ's answer, which counts
// a pending FIN or reset as something to read; a short read alone cannot
// tell that a FIN arrived with the data. So a message costs one recvmsg
// and one write.
//
// A read that fills the buffer (a bulk transfer) hands the direction over
// to copyIdle (io.Copy, splice(2)); so does a socket without TCP_INQ.
func copyConn(dst, src net.Conn, idle time.Duration, last *atomic.Int64) error {
	sc, ok := src.(syscall.Conn)
	if !ok {
		return copyIdle(dst, src, idle, last)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return copyIdle(dst, src, idle, last)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpINQ, 1)
	}); err != nil || serr != nil {
		return copyIdle(dst, src, idle, last)
	}
	cp := &rawCopy{dst: rawIO(dst), last: last}
	cp.msg.Iov = &cp.iov
	cp.msg.Iovlen = 1
	for {
		if idle > 0 {
			src.SetReadDeadline(time.Now().Add(idle / 2))
		}
		err := rc.Read(cp.step)
		switch {
		case cp.err != nil:
			return cp.err
		case cp.eof:
			return nil
		case cp.bulk:
			return copyIdle(dst, src, idle, last)
		case err == nil:
			return errors.New("raw read ended without a result") // not reached
		case !isTimeout(err):
			return err
		case time.Now().UnixNano()-last.Load() >= int64(idle):
			return errIdle
		}
	}
}

// rawCopy is one direction of copyConn; step is its RawConn.Read callback.
//
// Its reads (and, through rawIO, its writes) are raw system calls
// (syscall.RawSyscall) on non-blocking sockets under the RawConn's lock of
// the descriptor: they return at once, so the runtime's system call
// bookkeeping (entersyscall, which also wakes the runtime's monitor thread
// after each idle spell of the process) is not needed.
type rawCopy struct {
	dst  io.Writer // rawIO(dst)
	last *atomic.Int64
	err  error // a read or write error: stop
	eof  bool  // src reached EOF: stop
	bulk bool  // a read filled the buffer: continue with copyIdle

	msg syscall.Msghdr
	iov syscall.Iovec
	oob [64]byte // room for the TCP_CM_INQ control message
}

// step reads src's socket (fd) and writes what it read to dst. It returns
// false to wait until src is readable again, true to end the Read call
// with c.err, c.eof or c.bulk set.
func (c *rawCopy) step(fd uintptr) bool {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, inq, err := c.recv(fd, buf)
		switch {
		case n > 0:
			c.last.Store(time.Now().UnixNano())
			if _, werr := c.dst.Write(buf[:n]); werr != nil {
				c.err = werr
				return true
			}
			if n == len(buf) {
				c.bulk = true
				return true
			}
			if inq == 0 {
				return false // drained, no FIN pending: wait for the poller
			}
		case err == syscall.EINTR:
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			c.err = err
			return true
		default:
			c.eof = true
			return true
		}
	}
}

// recv is one recvmsg(2) into buf. inq is what TCP_CM_INQ reported left to
// read after it (a pending FIN or error counts as 1), or 1 when the
// message carried no such report.
func (c *rawCopy) recv(fd uintptr, buf []byte) (n, inq int, err error) {
	c.iov.Base = &buf[0]
	c.iov.SetLen(len(buf))
	c.msg.Control = &c.oob[0]
	c.msg.SetControllen(len(c.oob))
	r, _, e := syscall.RawSyscall(syscall.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&c.msg)), 0)
	if e != 0 {
		return 0, 0, e
	}
	inq = 1
	hl := syscall.CmsgLen(0)
	if int(c.msg.Controllen) >= syscall.CmsgLen(4) {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&c.oob[0]))
		if h.Level == syscall.IPPROTO_TCP && h.Type == tcpINQ {
			inq = int(int32(binary.NativeEndian.Uint32(c.oob[hl:])))
		}
	}
	return int(r), inq, nil
}
