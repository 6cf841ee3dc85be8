//go:build !linux

package proxy

import (
	"io"
	"net"
)

// rawIO is c where the raw system calls of rawio_linux.go are not built.
func rawIO(c net.Conn) io.ReadWriter { return c }

// rawNetConn is c where the raw system calls of rawio_linux.go are not
// built.
func rawNetConn(c net.Conn) net.Conn { return c }
