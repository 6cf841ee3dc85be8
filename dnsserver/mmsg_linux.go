//go:build linux && (amd64 || arm64)

package dnsserver

import (
	"errors"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr of recvmmsg(2) and sendmmsg(2) on 64-bit Linux.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// mmsgState is a reader's batch: the headers, buffers and source
// addresses of up to batch datagrams in and out, allocated once.
type mmsgState struct {
	in, out       [batch]mmsghdr
	iovIn, iovOut [batch]unix.Iovec
	names         [batch]unix.RawSockaddrInet6
	bufs, obufs   [batch][]byte
}

// loopMmsg serves r.conn with recvmmsg and sendmmsg called directly, as
// loopBatch does through golang.org/x/net but without its per-datagram
// allocations (a net.UDPAddr for each source) and without packing the
// headers anew for each call: a reply goes to the very socket address its
// query came from. It returns when the socket is closed, and false at once
// if the socket cannot be used this way.
func (r *udpReader) loopMmsg() bool {
	raw, err := r.conn.SyscallConn()
	if err != nil {
		return false
	}
	st := new(mmsgState)
	for i := range st.in {
		st.bufs[i] = make([]byte, 4096)
		st.obufs[i] = make([]byte, 0, int(r.s.cfg.UDPSize))
		st.iovIn[i].Base = &st.bufs[i][0]
		st.iovIn[i].SetLen(len(st.bufs[i]))
		st.in[i].hdr.Name = (*byte)(unsafe.Pointer(&st.names[i]))
		st.in[i].hdr.Iov = &st.iovIn[i]
		st.in[i].hdr.SetIovlen(1)
		st.out[i].hdr.Iov = &st.iovOut[i]
		st.out[i].hdr.SetIovlen(1)
	}
	for {
		for i := range st.in {
			st.in[i].hdr.Namelen = unix.SizeofSockaddrInet6
			st.in[i].hdr.Flags = 0
		}
		k, errno := 0, unix.Errno(0)
		err := raw.Read(func(fd uintptr) bool {
			var wait bool
			k, errno, wait = mmsg(unix.SYS_RECVMMSG, fd, &st.in[0], batch)
			return !wait
		})
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return true
			}
			continue
		}
		if errno != 0 {
			continue
		}
		r.batchClock()
		m := 0
		for i := 0; i < k; i++ {
			h := &st.in[i]
			if h.hdr.Flags&unix.MSG_TRUNC != 0 {
				continue // a query larger than 4096 bytes is dropped
			}
			from, ok := addrPortOf(&st.names[i])
			if !ok {
				continue
			}
			r.w.from, r.w.sess = from, nil
			reply := r.handle(st.bufs[i][:h.n])
			if len(reply) == 0 {
				continue
			}
			st.obufs[m] = append(st.obufs[m][:0], reply...)
			o := &st.out[m]
			st.iovOut[m].Base = &st.obufs[m][0]
			st.iovOut[m].SetLen(len(st.obufs[m]))
			o.hdr.Name, o.hdr.Namelen = h.hdr.Name, h.hdr.Namelen
			m++
		}
		for off := 0; off < m; {
			w, errno := 0, unix.Errno(0)
			err := raw.Write(func(fd uintptr) bool {
				var wait bool
				w, errno, wait = mmsg(unix.SYS_SENDMMSG, fd, &st.out[off], m-off)
				return !wait
			})
			if err != nil {
				break
			}
			if errno != 0 || w == 0 {
				w = 1 // the first reply could not be sent: skip it
			}
			off += w
		}
	}
}

// mmsg calls recvmmsg or sendmmsg (trap) on fd for the n headers from h,
// again if a signal interrupts it; wait is set for EAGAIN (the caller waits
// until the socket is ready).
func mmsg(trap, fd uintptr, h *mmsghdr, n int) (done int, errno unix.Errno, wait bool) {
	for {
		r, _, e := unix.RawSyscall6(trap, fd, uintptr(unsafe.Pointer(h)), uintptr(n), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, 0, true
		}
		return int(r), e, false
	}
}

// addrPortOf reads a source address filled in by recvmmsg.
func addrPortOf(sa *unix.RawSockaddrInet6) (netip.AddrPort, bool) {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(p[0])<<8|uint16(p[1])), true
	case unix.AF_INET6:
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(p[0])<<8|uint16(p[1])), true
	}
	return netip.AddrPort{}, false
}

// omitPMTU sets IP_PMTUDISC_OMIT (and its IPv6 twin) on c, as gdnsd does:
// replies go out without the DF bit and the kernel ignores path MTU
// information for them, so a forged ICMP "fragmentation needed" cannot
// make the server fragment replies to a victim (a DNS cache poisoning
// aid), and no send looks the path MTU up. Replies stay within the UDP
// size limit (1232 by default) anyway. Best effort: an error leaves the
// kernel's default.
func omitPMTU(c *net.UDPConn) {
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	raw.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_OMIT)
		unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_OMIT)
	})
}
