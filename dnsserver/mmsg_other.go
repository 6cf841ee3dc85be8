//go:build !(linux && (amd64 || arm64))

package dnsserver

import "net"

// loopMmsg is Linux's (mmsg_linux.go); elsewhere loopBatch serves through
// golang.org/x/net.
func (r *udpReader) loopMmsg() bool { return false }

// omitPMTU is Linux's (mmsg_linux.go); elsewhere the system's default
// applies.
func omitPMTU(*net.UDPConn) {}
