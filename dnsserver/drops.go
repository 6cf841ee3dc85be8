package dnsserver

import (
	"bufio"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// udpBuffer is the receive and send buffer asked for on each UDP socket:
// 4 MiB absorbs a burst of a few thousand queries while a reader is
// descheduled. As root it is set with SO_RCVBUFFORCE/SO_SNDBUFFORCE, past
// net.core.rmem_max; otherwise the kernel caps it there.
const udpBuffer = 4 << 20

// sizeBuffers asks for udpBuffer on c, forcing it past the system maximum
// when allowed.
func sizeBuffers(c *net.UDPConn) {
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	forced := false
	raw.Control(func(fd uintptr) {
		e1 := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, udpBuffer)
		e2 := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, udpBuffer)
		forced = e1 == nil && e2 == nil
	})
	if !forced {
		c.SetReadBuffer(udpBuffer)
		c.SetWriteBuffer(udpBuffer)
	}
}

// socketInode is the inode of c's socket, as /proc/net/udp names it.
func socketInode(c *net.UDPConn) uint64 {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	var ino uint64
	raw.Control(func(fd uintptr) {
		var st syscall.Stat_t
		if syscall.Fstat(int(fd), &st) == nil {
			ino = st.Ino
		}
	})
	return ino
}

// udpDrops sums the kernel's count of datagrams dropped on the sockets with
// these inodes (a full receive buffer), from /proc/net/udp and udp6; 0
// where /proc does not say.
func udpDrops(inodes map[uint64]bool) uint64 {
	var total uint64
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // the header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// sl local rem st tx:rx tr:tm retrnsmt uid timeout inode ref pointer drops
			if len(fields) < 13 {
				continue
			}
			ino, err := strconv.ParseUint(fields[9], 10, 64)
			if err != nil || !inodes[ino] {
				continue
			}
			if d, err := strconv.ParseUint(fields[12], 10, 64); err == nil {
				total += d
			}
		}
		fh.Close()
	}
	return total
}

// UDPDrops returns how many queries the kernel dropped on the server's UDP
// sockets because their receive buffers were full (Linux; 0 elsewhere).
func (s *Server) UDPDrops() uint64 {
	s.mu.Lock()
	inodes := make(map[uint64]bool, len(s.conns))
	for _, c := range s.conns {
		if ino := socketInode(c); ino != 0 {
			inodes[ino] = true
		}
	}
	s.mu.Unlock()
	if len(inodes) == 0 {
		return 0
	}
	return udpDrops(inodes)
}
