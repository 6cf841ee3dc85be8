//go:build !linux

package proxy

import (
	"net"
	"sync/atomic"
	"time"
)

// copyConn is copyIdle where the raw socket copy of tcpcopy_linux.go is not
// built.
func copyConn(dst, src net.Conn, idle time.Duration, last *atomic.Int64) error {
	return copyIdle(dst, src, idle, last)
}
