package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawIO returns the reader and writer the HTTP/1 paths put their buffers
// on for c: for a TCP connection, read(2) and write(2) as raw system calls
// under c's RawConn lock of the descriptor (the socket is non-blocking, so
// they return at once; EAGAIN waits for the poller, and deadlines hold as
// for c.Read and c.Write). That skips the runtime's system call bookkeeping
// (entersyscall and exitsyscall), which also wakes the runtime's monitor
// thread on the first call after every idle spell of the process: a
// context switch or two per burst of requests. Anything else is c itself.
func rawIO(c net.Conn) io.ReadWriter {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawRW{rc: rc}
	r.readFn, r.writeFn = r.readStep, r.writeStep
	return r
}

// rawRW is rawIO's reader and writer. One Read and one Write may run at
// the same time (as on a net.Conn); their state is separate.
type rawRW struct {
	rc      syscall.RawConn
	readFn  func(uintptr) bool
	writeFn func(uintptr) bool

	rbuf []byte
	rn   int
	rerr error

	wbuf []byte
	wn   int
	werr error
}

func (r *rawRW) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.rbuf, r.rn, r.rerr = p, 0, nil
	err := r.rc.Read(r.readFn)
	r.rbuf = nil
	switch {
	case err != nil:
		return 0, err
	case r.rerr != nil:
		return 0, r.rerr
	case r.rn == 0:
		return 0, io.EOF
	}
	return r.rn, nil
}

func (r *rawRW) readStep(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.rbuf[0])), uintptr(len(r.rbuf)))
		switch e {
		case 0:
			r.rn = int(n)
			return true
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			r.rerr = os.NewSyscallError("read", e)
			return true
		}
	}
}

func (r *rawRW) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.wbuf, r.wn, r.werr = p, 0, nil
	err := r.rc.Write(r.writeFn)
	n := r.wn
	r.wbuf = nil
	if r.werr != nil {
		return n, r.werr
	}
	return n, err
}

func (r *rawRW) writeStep(fd uintptr) bool {
	for r.wn < len(r.wbuf) {
		b := r.wbuf[r.wn:]
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch e {
		case 0:
			r.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			r.werr = os.NewSyscallError("write", e)
			return true
		}
	}
	return true
}

// rawNetConn is c with its Read and Write through rawIO (for crypto/tls
// on top of it), or c.
func rawNetConn(c net.Conn) net.Conn {
	rw := rawIO(c)
	if rw == io.ReadWriter(c) {
		return c
	}
	return &rawTCPConn{Conn: c, rw: rw}
}

// rawTCPConn is a TCP connection whose Read and Write are rawIO's.
type rawTCPConn struct {
	net.Conn
	rw io.ReadWriter
}

func (c *rawTCPConn) Read(p []byte) (int, error)  { return c.rw.Read(p) }
func (c *rawTCPConn) Write(p []byte) (int, error) { return c.rw.Write(p) }
