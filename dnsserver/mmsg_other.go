//go:build !(linux && (amd64 || arm64))

package dnsserver

// loopMmsg is Linux's (mmsg_linux.go); elsewhere loopBatch serves through
// golang.org/x/net.
func (r *udpReader) loopMmsg() bool { return false }
