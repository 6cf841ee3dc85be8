package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"
)

// serveTCP proxies one accepted connection of a tcp listener to a backend
// of its group: up to three backends are tried to connect, then bytes are
// copied both ways (copyConn: a read and a write per small message,
// splice(2) for bulk, on Linux) with half-close forwarded and an idle
// timeout.
func (p *Proxy) serveTCP(listener string, c net.Conn) {
	defer c.Close()
	st := p.state.Load()
	lc := st.listeners[listener]
	if lc == nil {
		return // the listener was removed by a reload
	}
	g := st.groups[lc.Backends]
	peer := addrPort(c.RemoteAddr())
	var key pickKey
	if g.hkind != hashNone {
		key.hash = hashAddr(peer.Addr())
	}
	var tried [3]*Backend
	var b *Backend
	var bc net.Conn
	d := net.Dialer{Timeout: st.cfg.Timeouts.Connect}
	for attempt := 0; ; attempt++ {
		b = g.pick(&key, tried[:attempt])
		if b == nil {
			p.spillConn(st, listener, c) // no backend left here
			return
		}
		var err error
		bc, err = d.Dial("tcp", b.addr)
		if err == nil {
			break
		}
		b.release()
		b.result(0)
		p.log.Debug("tcp backend dial", "listener", listener, "backend", b.addr, "err", err)
		if attempt+1 >= len(tried) {
			p.spillConn(st, listener, c)
			return
		}
		tried[attempt] = b
	}
	defer b.release()
	defer bc.Close()
	b.success()
	if lc.ProxyProtocol != "" {
		hdr := proxyHeader(lc.ProxyProtocol, peer, addrPort(c.LocalAddr()))
		if _, err := bc.Write(hdr); err != nil {
			return
		}
	}
	stop := context.AfterFunc(b.drainCtx, func() {
		c.Close()
		bc.Close()
	})
	defer stop()
	pipe(c, bc, st.cfg.Timeouts.Idle)
}

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// pipe copies a<->b until both directions end. A clean EOF in one
// direction is forwarded as a half-close (CloseWrite); an error or the
// idle timeout closes both connections.
func pipe(a, b net.Conn, idle time.Duration) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	done := make(chan struct{})
	one := func(dst, src net.Conn) {
		err := copyConn(dst, src, idle, &last)
		if err == nil {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
				return
			}
		}
		a.Close()
		b.Close()
	}
	go func() {
		one(b, a)
		close(done)
	}()
	one(a, b)
	<-done
}

var errIdle = errors.New("idle timeout")

// copyIdle copies src to dst until EOF (nil) or an error. The read
// deadline is refreshed every idle/2 so that io.Copy keeps using splice;
// the connection is idle when neither direction moved a byte for idle.
func copyIdle(dst, src net.Conn, idle time.Duration, last *atomic.Int64) error {
	if idle <= 0 {
		_, err := io.Copy(dst, src)
		return err
	}
	step := idle / 2
	for {
		src.SetReadDeadline(time.Now().Add(step))
		n, err := io.Copy(dst, src)
		now := time.Now().UnixNano()
		if n > 0 {
			last.Store(now)
		}
		if err == nil {
			return nil
		}
		if !isTimeout(err) {
			return err
		}
		if now-last.Load() >= int64(idle) {
			return errIdle
		}
	}
}

var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// proxyHeader returns a PROXY protocol header (HAProxy's spec, v1 text or
// v2 binary) describing the client connection src -> dst.
func proxyHeader(version string, src, dst netip.AddrPort) []byte {
	v4 := src.Addr().Is4() && dst.Addr().Is4()
	if version == "v1" {
		if !src.IsValid() || !dst.IsValid() {
			return []byte("PROXY UNKNOWN\r\n")
		}
		fam := "TCP6"
		if v4 {
			fam = "TCP4"
		}
		b := []byte("PROXY " + fam + " " + src.Addr().String() + " " + dst.Addr().String() + " ")
		b = strconv.AppendUint(b, uint64(src.Port()), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(dst.Port()), 10)
		return append(b, '\r', '\n')
	}
	b := append([]byte{}, proxyV2Sig...)
	b = append(b, 0x21) // version 2, PROXY command
	switch {
	case v4:
		b = append(b, 0x11, 0, 12) // TCP over IPv4, 12 address bytes
		s, d := src.Addr().As4(), dst.Addr().As4()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
	case src.IsValid() && dst.IsValid():
		b = append(b, 0x21, 0, 36) // TCP over IPv6
		s, d := src.Addr().As16(), dst.Addr().As16()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
	default:
		b[12] = 0x20 // LOCAL command, no address
		return append(b, 0, 0, 0)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}
