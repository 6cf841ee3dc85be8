package probes

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// icmpDenied remembers, per family, that this process may not open
// unprivileged ICMP echo sockets (Linux net.ipv4.ping_group_range).
var icmpDenied [2]atomic.Bool

// pingICMP times one ICMP echo to a, over an unprivileged ping socket or,
// failing that, a raw socket (CAP_NET_RAW). It fails fast when the process
// may use neither.
func pingICMP(ctx context.Context, a netip.Addr) (time.Duration, error) {
	a = a.Unmap()
	fam, networks, laddr := 0, [2]string{"udp4", "ip4:icmp"}, "0.0.0.0"
	var typ icmp.Type = ipv4.ICMPTypeEcho
	proto := 1
	if a.Is6() {
		fam, networks, laddr, typ, proto = 1, [2]string{"udp6", "ip6:ipv6-icmp"}, "::", ipv6.ICMPTypeEchoRequest, 58
	}
	if icmpDenied[fam].Load() {
		return 0, errors.New("icmp echo not permitted")
	}
	var c *icmp.PacketConn
	var err error
	raw := false
	for _, network := range networks {
		if c, err = icmp.ListenPacket(network, laddr); err == nil {
			raw = network != networks[0]
			break
		}
	}
	if err != nil {
		icmpDenied[fam].Store(true)
		return 0, fmt.Errorf("icmp listen: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	id, seq := os.Getpid()&0xffff, int(rand.Uint32()&0xffff)
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("gslb-rtt")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return 0, err
	}
	var dst net.Addr = &net.UDPAddr{IP: a.AsSlice()}
	if raw {
		dst = &net.IPAddr{IP: a.AsSlice()}
	}
	start := time.Now()
	if _, err := c.WriteTo(b, dst); err != nil {
		return 0, fmt.Errorf("icmp echo %s: %w", a, err)
	}
	buf := make([]byte, 1500)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return 0, fmt.Errorf("icmp echo %s: %w", a, err)
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil {
			continue
		}
		// The kernel sets the echo ID of ping sockets; a raw socket sees
		// every echo reply to this host, so it checks the ID too.
		if e, ok := m.Body.(*icmp.Echo); ok && e.Seq == seq && (!raw || e.ID == id) &&
			(m.Type == ipv4.ICMPTypeEchoReply || m.Type == ipv6.ICMPTypeEchoReply) {
			return time.Since(start), nil
		}
	}
}

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
