package dnsserver

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// UDP is served by our own loop rather than miekg/dns's (which starts a
// goroutine and unpacks a message per packet): a few reader goroutines per
// socket, each with its own buffers, answer repeated questions from a
// per-snapshot cache of packed replies (patching the ID, flags and the
// question's letter case), and hand everything else to the same code path
// TCP uses. Replies that depend on the client (geo, latency, sticky
// weighted records) are cached per client address and ECS option; replies
// that vary between queries (random weighted choice) are never cached.

// udpReader is one reader goroutine's state.
type udpReader struct {
	s    *Server
	conn *net.UDPConn
	wild bool // bound to a wildcard address: reply from the address queried (DNS-38)
	buf  []byte
	out  []byte
	key  []byte
	q    query
	wq   wireQuery // the fast path's parse of the packet (fast.go)
	w    udpWriter
	slip []byte
	// cookie is the COOKIE option of the packet being handled, if
	// cacheKey found one (a slice of the packet).
	cookie []byte
	hseed  maphash.Seed
	// now is the Unix second of the batch being answered, read once per
	// batch by the batch loops for response-rate limiting; 0 outside them
	// (limit reads the clock).
	now int64
}

// serveUDP runs readers on conn until it is closed.
func (s *Server) serveUDP(conn *net.UDPConn) {
	omitPMTU(conn)
	la := conn.LocalAddr().(*net.UDPAddr)
	wild := la.IP.IsUnspecified()
	if wild {
		// Ask for the destination address of each packet; failing both
		// families is not fatal (replies then come from the default
		// source address).
		e6 := ipv6.NewPacketConn(conn).SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true)
		e4 := ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true)
		if e6 != nil && e4 != nil {
			s.log.Warn("cannot learn the destination address of UDP queries", "addr", la.String(), "err", e4)
		}
	}
	// One reader per socket: Start opens a socket per core (UDPSockets)
	// on each address, which spread the load without sharing a queue.
	n := 1
	done := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		r := &udpReader{s: s, conn: conn, wild: wild, buf: make([]byte, dns.MaxMsgSize), out: make([]byte, 0, dns.MaxMsgSize), hseed: s.hseed}
		r.q.buf = make([]byte, 0, dns.MaxMsgSize)
		r.w.r = r
		go func() {
			if wild {
				r.loop()
			} else {
				r.loopBatch()
			}
			done <- struct{}{}
		}()
	}
	for i := 0; i < n; i++ {
		<-done
	}
}

func (r *udpReader) loop() {
	for {
		var (
			n    int
			from netip.AddrPort
			sess *dns.SessionUDP
			err  error
		)
		if r.wild {
			n, sess, err = dns.ReadFromSessionUDP(r.conn, r.buf)
			if err == nil {
				from = sess.RemoteAddr().(*net.UDPAddr).AddrPort()
			}
		} else {
			n, from, err = r.conn.ReadFromUDPAddrPort(r.buf)
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			continue
		}
		r.w.from, r.w.sess = from, sess
		if out := r.handle(r.buf[:n]); out != nil {
			r.write(out)
		}
	}
}

// batch is how many datagrams one recvmmsg/sendmmsg call moves.
const batch = 32

// loopBatch serves a socket bound to one address with recvmmsg and
// sendmmsg (golang.org/x/net's ReadBatch/WriteBatch): under load one system
// call reads, and one writes, up to batch datagrams.
func (r *udpReader) loopBatch() {
	if r.loopMmsg() {
		return
	}
	var pc interface {
		ReadBatch([]ipv4.Message, int) (int, error)
		WriteBatch([]ipv4.Message, int) (int, error)
	}
	if r.conn.LocalAddr().(*net.UDPAddr).IP.To4() != nil {
		pc = ipv4.NewPacketConn(r.conn)
	} else {
		pc = ipv6.NewPacketConn(r.conn)
	}
	in := make([]ipv4.Message, batch)
	out := make([]ipv4.Message, batch)
	outBuf := make([][]byte, batch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, 4096)}
		outBuf[i] = make([]byte, 0, int(r.s.cfg.UDPSize))
		out[i].Buffers = make([][]byte, 1)
	}
	for {
		k, err := pc.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		r.batchClock()
		m := 0
		for i := 0; i < k; i++ {
			ua, ok := in[i].Addr.(*net.UDPAddr)
			if !ok || in[i].Flags&syscall.MSG_TRUNC != 0 {
				continue // a query larger than 4096 bytes is dropped
			}
			r.w.from, r.w.sess = ua.AddrPort(), nil
			reply := r.handle(in[i].Buffers[0][:in[i].N])
			if reply == nil {
				continue
			}
			outBuf[m] = append(outBuf[m][:0], reply...)
			out[m].Buffers[0] = outBuf[m]
			out[m].Addr = ua
			m++
		}
		for off := 0; off < m; {
			w, err := pc.WriteBatch(out[off:m], 0)
			if err != nil {
				break
			}
			off += w
		}
	}
}

// batchClock reads the clock for the batch about to be answered, if
// response-rate limiting needs it: once a batch rather than once a reply.
func (r *udpReader) batchClock() {
	if r.s.rrl != nil {
		r.now = time.Now().Unix()
	}
}

func (r *udpReader) write(b []byte) {
	if r.w.sess != nil {
		dns.WriteToSessionUDP(r.conn, b, r.w.sess)
		return
	}
	r.conn.WriteToUDPAddrPort(b, r.w.from)
}

// handle answers one packet and returns the reply, or nil for none. The
// reply is valid until the next call.
func (r *udpReader) handle(pkt []byte) []byte {
	s := r.s
	snap := s.snap.Load()
	if out, ok := r.fast(pkt, snap); ok {
		c := &r.q.cookie
		if r.wq.cookie == nil {
			c.n, c.valid = 0, false
		}
		return r.limit(out, c.valid, c.n > 0 && !c.valid)
	}
	key, qend, ok := r.cacheKey(pkt)
	base := len(key)
	var h uint64
	if ok {
		h = maphash.Bytes(r.hseed, key)
		e := snap.cache.get(key, h, &s.stats)
		if e != nil && e.perClient {
			// The answer depends on who asks: look for this client's.
			key = r.appendClient(key)
			h = maphash.Bytes(r.hseed, key)
			e = snap.cache.get(key, h, &s.stats)
		}
		if e != nil && !e.perClient {
			out := append(r.out[:0], e.resp...)
			out[0], out[1] = pkt[0], pkt[1]     // ID
			out[2] = out[2]&^0x01 | pkt[2]&0x01 // RD copied
			out[3] = out[3]&^0x10 | pkt[3]&0x10 // CD copied
			copy(out[12:qend], pkt[12:qend])    // the question as asked (0x20)
			r.out = out
			valid, hit := false, true
			if r.cookie != nil {
				// The reply ends with the cookie of whoever asked first:
				// this client's goes there.
				valid, hit = s.cookies.patchCookie(out, r.cookie, &r.q.cookie, r.w.from.Addr().Unmap())
			}
			if hit {
				s.stats.cacheHits.Add(1)
				s.stats.count(false, uint16(pkt[qend])<<8|uint16(pkt[qend+1]), int(out[3]&0xf))
				return r.limit(out, valid, r.cookie != nil && !valid)
			}
		}
		s.stats.cacheMisses.Add(1)
	}
	// The slow path: what miekg/dns's server does, then ServeDNS.
	out, cacheable, perClient := s.respond(&r.q, &r.w, pkt, snap)
	if out == nil {
		return nil
	}
	// Cache before replying, so the client's next query finds the entry.
	if ok && cacheable {
		if perClient && len(key) == base { // no marker yet
			snap.cache.put(key, nil, h, true, &r.q)
			key = r.appendClient(key)
			h = maphash.Bytes(r.hseed, key)
		}
		snap.cache.put(key, out, h, false, &r.q)
	}
	return r.limit(out, r.q.cookie.valid, r.q.cookie.n > 0 && !r.q.cookie.valid)
}

// limit applies response-rate limiting to reply out: it returns out, the
// slip reply that stands for it, or nil. exempt is set for a query with a
// valid server cookie; clientCookie for one with a client cookie only.
func (r *udpReader) limit(out []byte, exempt, clientCookie bool) []byte {
	l := r.s.rrl
	if l == nil || exempt {
		return out
	}
	src := r.w.from.Addr().Unmap()
	now := r.now
	if now == 0 {
		now = time.Now().Unix()
	}
	switch l.check(src, out, uint64(now)) {
	case rrlPass:
		return out
	case rrlLogged:
		if since, total, ok := l.logged.event(time.Now()); ok {
			r.s.log.Info("rrl would limit", "network", sourceNet(src).String(), "replies", since, "total", total)
		}
		return out
	case rrlSlipped:
		r.slip = slipReply(r.slip, out, clientCookie)
		return r.slip
	}
	return nil
}

// appendClient adds the query's source address to a cache key, for replies
// that depend on the client (ECS, when the query has it, is in the key
// already).
func (r *udpReader) appendClient(key []byte) []byte {
	a := r.w.from.Addr().As16()
	key = append(key, 0xff)
	key = append(key, a[:]...)
	r.key = key
	return key
}

// cacheKey parses what the reply to a plain query depends on, and builds
// the cache key: the lower-case QNAME, QTYPE, EDNS presence and DO, and the
// UDP size limit. ok is false for anything the cache must not answer
// (another opcode or class, several questions, compression in the
// question, EDNS version above 0, an NSID option, trailing data). A COOKIE
// option is noted in the key and kept in r.cookie. An ECS
// option is part of the key.
// qend is the offset just past the question name.
func (r *udpReader) cacheKey(pkt []byte) (key []byte, qend int, ok bool) {
	r.cookie = nil
	if len(pkt) < 17 || pkt[2]&0xf8 != 0 || // QR=0, opcode QUERY
		binary.BigEndian.Uint16(pkt[4:]) != 1 || binary.BigEndian.Uint16(pkt[6:]) != 0 ||
		binary.BigEndian.Uint16(pkt[8:]) != 0 || binary.BigEndian.Uint16(pkt[10:]) > 1 {
		return nil, 0, false
	}
	key = r.key[:0]
	i := 12
	for {
		if i >= len(pkt) {
			return nil, 0, false
		}
		l := int(pkt[i])
		if l&0xc0 != 0 || i+1+l > len(pkt) {
			return nil, 0, false
		}
		key = append(key, byte(l))
		for _, c := range pkt[i+1 : i+1+l] {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			key = append(key, c)
		}
		i += 1 + l
		if l == 0 {
			break
		}
	}
	if i > 12+255 || i+4 > len(pkt) {
		return nil, 0, false
	}
	qend = i
	if binary.BigEndian.Uint16(pkt[i+2:]) != dns.ClassINET {
		return nil, 0, false
	}
	key = append(key, pkt[i], pkt[i+1])
	i += 4
	limit := uint16(dns.MinMsgSize)
	edns := byte(0)
	var ecs []byte
	if pkt[11] == 1 {
		// The OPT record: root owner, type 41, class = payload size,
		// TTL = extended rcode, version, flags; then its options.
		if i+11 > len(pkt) || pkt[i] != 0 || binary.BigEndian.Uint16(pkt[i+1:]) != dns.TypeOPT || pkt[i+6] != 0 {
			return nil, 0, false
		}
		size := binary.BigEndian.Uint16(pkt[i+3:])
		limit = max(dns.MinMsgSize, min(size, r.s.cfg.UDPSize))
		edns = 1
		if pkt[i+7]&0x80 != 0 {
			edns = 2 // DO
		}
		rdlen := int(binary.BigEndian.Uint16(pkt[i+9:]))
		j := i + 11
		if j+rdlen != len(pkt) {
			return nil, 0, false
		}
		for j < len(pkt) {
			if j+4 > len(pkt) {
				return nil, 0, false
			}
			code := binary.BigEndian.Uint16(pkt[j:])
			olen := int(binary.BigEndian.Uint16(pkt[j+2:]))
			if code == dns.EDNS0NSID || j+4+olen > len(pkt) {
				return nil, 0, false
			}
			if code == dns.EDNS0COOKIE {
				// Not part of the key (the cached reply's cookie is
				// rewritten for each client), but its presence is; a
				// malformed or second one takes the slow path (FORMERR).
				if r.cookie != nil || olen < clientCookieLen || olen > 40 || olen > clientCookieLen && olen < 16 {
					return nil, 0, false
				}
				r.cookie = pkt[j+4 : j+4+olen]
				edns |= 4
			}
			if code == dns.EDNS0SUBNET {
				// The reply echoes ECS and may depend on it: key on it.
				ecs = pkt[j+4 : j+4+olen]
			}
			j += 4 + olen
		}
	} else if i != len(pkt) {
		return nil, 0, false
	}
	key = append(key, edns, byte(limit>>8), byte(limit), byte(len(ecs)))
	key = append(key, ecs...)
	r.key = key
	return key, qend, true
}

// udpWriter is the dns.ResponseWriter of the UDP loop's slow path.
type udpWriter struct {
	r    *udpReader
	from netip.AddrPort
	sess *dns.SessionUDP
}

func (w *udpWriter) LocalAddr() net.Addr { return w.r.conn.LocalAddr() }
func (w *udpWriter) RemoteAddr() net.Addr {
	return net.UDPAddrFromAddrPort(w.from)
}
func (w *udpWriter) Write(b []byte) (int, error) { w.r.write(b); return len(b), nil }
func (w *udpWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	w.r.write(b)
	return nil
}
func (w *udpWriter) Close() error        { return nil }
func (w *udpWriter) TsigStatus() error   { return nil }
func (w *udpWriter) TsigTimersOnly(bool) {}
func (w *udpWriter) Hijack()             {}
