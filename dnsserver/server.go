// Package dnsserver is the authoritative DNS server: UDP and TCP listeners
// that answer every query from an immutable Snapshot behind an atomic
// pointer, with EDNS0, Client Subnet, NSID, DNS Cookies, truncation and the
// negative answers of RFC 2308, and made to face the Internet: response-rate
// limiting of UDP (rrl.go), TCP connection limits no client can monopolise
// (tcp.go), and no panic from any packet.
package dnsserver

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/gslbd/gslb/dnssec"
)

// Config configures a Server. The zero value of each field is the default
// documented beside it.
type Config struct {
	// Addrs are the addresses to listen on, UDP and TCP each ("127.0.0.1:53",
	// "[::1]:53"). Port 0 picks a free port, the same for UDP and TCP.
	Addrs []string
	// NSID is returned to queries that ask for it (RFC 5001), and as the
	// CH TXT answer to id.server and hostname.bind. Empty: the host name.
	NSID string
	// UDPSize is the EDNS UDP payload size we advertise and the largest
	// UDP reply we send (default 1232, the DNS flag day 2020 value).
	UDPSize uint16
	// MaxTCPConns bounds the TCP connections open at once, over all
	// listen addresses (default 4096, lowered to the open-file limit less
	// 64 if that is smaller). Each costs about 10 KiB while idle. When
	// the table is full, the connection idle for longest is closed to
	// make room for a new one.
	MaxTCPConns int
	// MaxTCPConnsPerAddr bounds the TCP connections of one source
	// address (default 32); more are closed at once.
	MaxTCPConnsPerAddr int
	// MaxTCPConnsPerNet bounds the TCP connections of one source network,
	// a /24 for IPv4 and a /56 for IPv6 (default 128).
	MaxTCPConnsPerNet int
	// TCPIdleTimeout closes a TCP connection that waits that long for a
	// query (default 8s). Once more than half of MaxTCPConns are open it
	// shrinks linearly with the free room, down to 200ms.
	TCPIdleTimeout time.Duration
	// ReadTimeout bounds reading one TCP query from its first byte, and
	// writing its reply (default 2s): a slowly sent query is cut.
	ReadTimeout time.Duration
	// CookieSecret is the 16-byte key of the server cookies we hand out
	// (RFC 7873, RFC 9018 SipHash-2-4). Give every node of a cluster the
	// same, so that a cookie from one is valid at all. Empty: a random
	// secret per process (cookies then stay valid only at this node,
	// until it restarts).
	CookieSecret []byte
	// CookieSecretOld, during a secret rollover (RFC 9018 §5), still
	// validates cookies made with the previous secret (default none).
	CookieSecretOld []byte
	// RRL configures response-rate limiting of UDP replies (on by
	// default; see RRL).
	RRL RRL
	// UDPSockets is how many UDP sockets each listen address gets, bound
	// together with SO_REUSEPORT so the kernel spreads queries over them
	// by source address and port, each served by its own goroutine
	// (default GOMAXPROCS: one per core, so the cost of a query does not
	// grow with the cores, as it does with readers sharing a socket).
	UDPSockets int
	// Logger receives the server's logs (default slog.Default()).
	Logger *slog.Logger
	// Signer, when set, signs the replies to DO=1 queries for the zones
	// it has keys for (dnssec.go). Nil: nothing is signed.
	Signer *dnssec.Signer
}

// Server answers DNS queries from the current Snapshot.
type Server struct {
	cfg     Config
	log     *slog.Logger
	snap    atomic.Pointer[Snapshot]
	nsidHex string
	pool    sync.Pool

	hseed    maphash.Seed
	stats    stats
	views    views // health and RTTs for the snapshots' views (view.go)
	panicLog pacer // of recovered panics
	packLog  pacer // of replies that did not pack
	cookies  cookieSecrets
	rrl      *rrl // nil when off

	tcpt *tcpTable

	mu    sync.Mutex
	conns []*net.UDPConn
	lns   []net.Listener
	udp   []net.Addr
	tcp   []net.Addr
}

// New returns a server that answers REFUSED until a snapshot is set.
func New(cfg Config) (*Server, error) {
	if len(cfg.Addrs) == 0 {
		return nil, errors.New("dns: at least one listen address is required")
	}
	if cfg.UDPSize == 0 {
		cfg.UDPSize = 1232
	}
	if cfg.UDPSize < 512 {
		return nil, fmt.Errorf("dns: udp size %d: must be at least 512", cfg.UDPSize)
	}
	if cfg.MaxTCPConns == 0 {
		cfg.MaxTCPConns = 4096
		if fds := fdLimit(); fds > 0 && fds-64 < cfg.MaxTCPConns {
			cfg.MaxTCPConns = max(16, fds-64)
		}
	}
	if cfg.MaxTCPConnsPerAddr == 0 {
		cfg.MaxTCPConnsPerAddr = 32
	}
	if cfg.MaxTCPConnsPerNet == 0 {
		cfg.MaxTCPConnsPerNet = 128
	}
	if cfg.MaxTCPConns < 0 || cfg.MaxTCPConnsPerAddr < 0 || cfg.MaxTCPConnsPerNet < 0 {
		return nil, errors.New("dns: TCP connection limits must not be negative")
	}
	if cfg.TCPIdleTimeout == 0 {
		cfg.TCPIdleTimeout = 8 * time.Second
	}
	if cfg.UDPSockets == 0 {
		cfg.UDPSockets = runtime.GOMAXPROCS(0)
	}
	if cfg.UDPSockets < 0 {
		return nil, errors.New("dns: UDPSockets must not be negative")
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NSID == "" {
		cfg.NSID = hostname()
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "dns"), nsidHex: hex.EncodeToString([]byte(cfg.NSID)), hseed: maphash.MakeSeed()}
	var err error
	if s.rrl, err = newRRL(cfg.RRL); err != nil {
		return nil, err
	}
	if s.cookies, err = newCookieSecrets(cfg.CookieSecret, cfg.CookieSecretOld); err != nil {
		return nil, err
	}
	s.tcpt = newTCPTable(cfg.MaxTCPConns, cfg.MaxTCPConnsPerAddr, cfg.MaxTCPConnsPerNet)
	s.snap.Store(NewSnapshot(nil, nil))
	s.pool.New = func() any { return &query{buf: make([]byte, 0, dns.MaxMsgSize)} }
	return s, nil
}

// NSID returns the name the server gives in NSID and id.server answers.
func (s *Server) NSID() string { return s.cfg.NSID }

// Swap makes snap the snapshot every following query is answered from
// (with a view of the last health given to Refresh, if any).
func (s *Server) Swap(snap *Snapshot) { s.swap(snap) }

// Snapshot returns the snapshot being served.
func (s *Server) Snapshot() *Snapshot { return s.snap.Load() }

// Start opens every listener and serves in the background. It returns once
// all are listening, or the first error.
func (s *Server) Start() error {
	for _, addr := range s.cfg.Addrs {
		pc, ln, err := listenPair(addr)
		if err != nil {
			s.Shutdown(context.Background())
			return fmt.Errorf("dns: listen %s: %w", addr, err)
		}
		ucs := []*net.UDPConn{pc.(*net.UDPConn)}
		if s.cfg.UDPSockets > 1 {
			// The first socket was bound without SO_REUSEPORT, so that
			// for port 0 the kernel gave a port no other socket holds
			// (with the option set, it may hand out a port another
			// process's SO_REUSEPORT sockets share); set now, it lets
			// this server's other sockets join it.
			if err := setReusePort(ucs[0]); err != nil {
				pc.Close()
				ln.Close()
				s.Shutdown(context.Background())
				return fmt.Errorf("dns: listen %s: SO_REUSEPORT: %w", addr, err)
			}
		}
		for len(ucs) < s.cfg.UDPSockets {
			more, err := reusePort.ListenPacket(context.Background(), "udp", pc.LocalAddr().String())
			if err != nil {
				for _, c := range ucs {
					c.Close()
				}
				ln.Close()
				s.Shutdown(context.Background())
				return fmt.Errorf("dns: listen %s (socket %d): %w", addr, len(ucs)+1, err)
			}
			ucs = append(ucs, more.(*net.UDPConn))
		}
		s.mu.Lock()
		s.lns = append(s.lns, ln)
		s.conns = append(s.conns, ucs...)
		s.udp = append(s.udp, pc.LocalAddr())
		s.tcp = append(s.tcp, ln.Addr())
		s.mu.Unlock()
		for _, uc := range ucs {
			sizeBuffers(uc)
			go s.serveUDP(uc)
		}
		go s.serveTCP(ln)
		s.log.Info("listening", "udp", pc.LocalAddr().String(), "tcp", ln.Addr().String(), "udp_sockets", len(ucs))
	}
	return nil
}

// reusePort opens UDP sockets with SO_REUSEPORT, to join a socket bound
// to the same address (setReusePort), the kernel spreading the datagrams
// over them by source address and port.
var reusePort = net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error { return reuse(c) }}

// setReusePort sets SO_REUSEPORT on bound socket c.
func setReusePort(c *net.UDPConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	return reuse(raw)
}

func reuse(c syscall.RawConn) error {
	var err error
	if e := c.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); e != nil {
		return e
	}
	return err
}

// listenPair opens UDP and TCP on one address; for port 0 it finds a port
// free for both.
func listenPair(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	for try := 0; ; try++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		tcpAddr := addr
		if port == "0" {
			tcpAddr = net.JoinHostPort(host, fmt.Sprint(pc.LocalAddr().(*net.UDPAddr).Port))
		}
		ln, err := net.Listen("tcp", tcpAddr)
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" || try == 20 {
			return nil, nil, err
		}
	}
}

// UDPAddrs and TCPAddrs return the bound listen addresses.
func (s *Server) UDPAddrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]net.Addr(nil), s.udp...)
}

// TCPAddrs returns the bound TCP listen addresses.
func (s *Server) TCPAddrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]net.Addr(nil), s.tcp...)
}

// CacheHits returns how many UDP queries were answered from the reply cache.
func (s *Server) CacheHits() uint64 { return s.stats.cacheHits.Load() }

// Shutdown stops every listener; TCP queries being read are answered, and
// it waits for them until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	lns, conns := s.lns, s.conns
	s.lns, s.conns = nil, nil
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	for _, ln := range lns {
		ln.Close()
	}
	s.tcpt.close()
	done := make(chan struct{})
	go func() { s.tcpt.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// accept decides, from the header alone, whether a message is processed.
// Responses are never answered (DNS-23: no ping-pong); opcodes other than
// QUERY and NOTIFY get NOTIMP; a question count other than one gets FORMERR
// with the ID preserved (DNS-21), except none with additional records,
// which may be a DNS Cookie query (RFC 7873 §5.4) and is left to serve.
func accept(h dns.Header) dns.MsgAcceptAction {
	if h.Bits&(1<<15) != 0 {
		return dns.MsgIgnore
	}
	op := int(h.Bits>>11) & 0xF
	if op != dns.OpcodeQuery && op != dns.OpcodeNotify {
		return dns.MsgRejectNotImplemented
	}
	if h.Qdcount > 1 || h.Qdcount == 0 && h.Arcount == 0 || h.Ancount > 1 || h.Nscount > 1 || h.Arcount > 2 {
		return dns.MsgReject
	}
	return dns.MsgAccept
}

// ServeDNS answers one query (TCP, through miekg/dns's server). It takes
// no lock: the snapshot is one atomic load, and everything it reads from
// there is immutable.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	q := s.pool.Get().(*query)
	defer s.pool.Put(q)
	if out, _, _ := s.serve(q, w, r, s.snap.Load()); out != nil {
		w.Write(out)
	}
}

// serve answers r from snap into q's buffer and returns the packed reply,
// whether the reply may be reused for the same question asked the same way,
// and whether only for the same client.
func (s *Server) serve(q *query, w dns.ResponseWriter, r *dns.Msg, snap *Snapshot) (out []byte, cacheable, perClient bool) {
	defer func() {
		if p := recover(); p != nil {
			s.recovered(p, r)
			fail := new(dns.Msg)
			fail.SetRcode(r, dns.RcodeServerFailure)
			out, _ = fail.Pack()
			cacheable, perClient = false, false
		}
	}()
	q.reset(r)
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	q.src = addrOf(w.RemoteAddr())
	m := &q.m

	opt, rcode := s.checkEDNS(q, r)
	if rcode == dns.RcodeSuccess {
		switch {
		case len(r.Question) == 1:
			rcode = s.answer(q, snap)
		case len(r.Question) == 0 && q.cookie.n > clientCookieLen && !q.cookie.valid:
			rcode = dns.RcodeBadCookie // RFC 7873 §5.4: asking for a cookie with a bad one
		case len(r.Question) == 0 && q.cookie.n > 0:
			// RFC 7873 §5.4: no question, a cookie: the reply is the
			// cookie.
		default:
			// DNS-21: the header's count can lie (miekg/dns stops at
			// the end of the message without an error): nothing below
			// indexes a question that is not there.
			rcode = dns.RcodeFormatError
		}
	}
	m.Rcode = rcode
	if rcode == dns.RcodeFormatError || rcode == dns.RcodeBadVers {
		m.Answer, m.Ns, m.Extra = m.Answer[:0], m.Ns[:0], m.Extra[:0]
		m.Authoritative = false
	}
	// DNSSEC: replies are signed here (dnssec.go), once assembled and
	// before they are packed and truncated to the client's size.
	if s.cfg.Signer != nil && (opt != nil && opt.Do() || isKeyType(q.qtype)) {
		s.signReply(q, snap, opt != nil && opt.Do())
	}
	if opt != nil {
		m.Extra = append(m.Extra, s.replyOPT(q, opt, rcode))
	}

	limit := dns.MaxMsgSize
	if udp {
		limit = dns.MinMsgSize
		if opt != nil {
			// RFC 6891 §6.2.5: a requested size below 512 is treated as 512.
			limit = int(max(dns.MinMsgSize, min(opt.UDPSize(), s.cfg.UDPSize)))
		}
	}
	out, err := m.PackBuffer(q.buf[:cap(q.buf)])
	if err == nil && len(out) > limit {
		na, nn := len(m.Answer), len(m.Ns)
		m.Truncate(limit)
		// TC only when required records did not fit: answer or authority
		// records, or a referral's in-domain glue (RFC 2181 §9, RFC 9471);
		// other additional records are left out without it (DNS-10).
		// miekg/dns sets TC for any record dropped, so decide here.
		m.Truncated = len(m.Answer) < na || len(m.Ns) < nn || q.cut != nil && !q.glueFits()
		if m.Truncated {
			// Then the reply is the question and the OPT, as Knot's and
			// NSD's are: the client asks again over TCP, and a partial
			// RRset would only make the reply a better amplifier.
			opt := m.IsEdns0()
			m.Answer, m.Ns, m.Extra = m.Answer[:0], m.Ns[:0], m.Extra[:0]
			if opt != nil {
				m.Extra = append(m.Extra, opt)
			}
			s.stats.truncated.Add(1)
		}
		out, err = m.PackBuffer(q.buf[:cap(q.buf)])
	}
	s.stats.count(!udp, q.qtype, m.Rcode)
	if err == nil && len(r.Question) == 1 {
		restoreCase(out, r.Question[0].Name)
	}
	if err != nil {
		if since, total, ok := s.packLog.event(time.Now()); ok {
			s.log.Error("packing reply", "err", err, "qname", q.qname, "errors", since, "total", total)
		}
		fail := new(dns.Msg)
		fail.SetRcode(r, dns.RcodeServerFailure)
		out, _ = fail.Pack()
		return out, false, false
	}
	return out, len(r.Question) == 1 && !q.random && (rcode == dns.RcodeSuccess || rcode == dns.RcodeNameError), q.perClient
}

// recovered counts a panic recovered while answering r and logs it, at
// most once a second with the number of panics since the last line: a
// packet that panics the handler must not also flood the log.
func (s *Server) recovered(p any, r *dns.Msg) {
	s.stats.panics.Add(1)
	if since, total, ok := s.panicLog.event(time.Now()); ok {
		s.log.Error("panic answering query", "panic", p, "qname", safeQName(r), "panics", since, "total", total, "stack", string(debug.Stack()))
	}
}

// respond answers one message as it came off the wire, UDP or TCP, the way
// miekg/dns's server would before calling ServeDNS: responses are dropped,
// what the header already rules out gets FORMERR or NOTIMP, and the rest is
// served. out is nil when there is no reply; cacheable and perClient are
// serve's.
func (s *Server) respond(q *query, w dns.ResponseWriter, pkt []byte, snap *Snapshot) (out []byte, cacheable, perClient bool) {
	q.cookie.n, q.cookie.valid = 0, false // read by the caller, for RRL
	if len(pkt) < 12 {
		return nil, false, false // no header: no reply ("any reply can be used to amplify")
	}
	var hdr dns.Header
	hdr.Id = binary.BigEndian.Uint16(pkt)
	hdr.Bits = binary.BigEndian.Uint16(pkt[2:])
	hdr.Qdcount = binary.BigEndian.Uint16(pkt[4:])
	hdr.Ancount = binary.BigEndian.Uint16(pkt[6:])
	hdr.Nscount = binary.BigEndian.Uint16(pkt[8:])
	hdr.Arcount = binary.BigEndian.Uint16(pkt[10:])
	action := accept(hdr)
	if action == dns.MsgIgnore {
		return nil, false, false
	}
	m := new(dns.Msg)
	// Unpacked even when the header is refused: the error reply carries
	// an OPT when the query had one (RFC 6891 §7), as Knot's does.
	err := m.Unpack(pkt)
	if action == dns.MsgAccept && err == nil {
		return s.serve(q, w, m, snap)
	}
	if action == dns.MsgAccept {
		action = dns.MsgReject
	}
	if err != nil {
		m = nil
	}
	out = s.errorReply(pkt, m, action)
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	s.stats.count(tcp, 0, int(out[3]&0xf))
	return out, false, false
}

// errorReply answers a message that was not accepted: FORMERR, or NOTIMP
// with the opcode echoed, the ID kept, and the question and an OPT if the
// message (m, nil if it did not unpack) had them.
func (s *Server) errorReply(pkt []byte, m *dns.Msg, action dns.MsgAcceptAction) []byte {
	var req dns.Msg
	req.Id = binary.BigEndian.Uint16(pkt)
	req.Opcode = int(pkt[2]>>3) & 0xf
	req.RecursionDesired = pkt[2]&1 != 0
	if m != nil && len(m.Question) > 0 {
		req.Question = m.Question[:1]
	}
	rep := new(dns.Msg)
	rep.SetRcode(&req, dns.RcodeFormatError)
	if action == dns.MsgRejectNotImplemented {
		rep.Rcode = dns.RcodeNotImplemented
	}
	rep.Opcode = req.Opcode
	if m != nil && m.IsEdns0() != nil {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(s.cfg.UDPSize)
		rep.Extra = append(rep.Extra, o)
	}
	b, err := rep.Pack()
	if err != nil {
		rep.Question = nil
		b, _ = rep.Pack()
	}
	return b
}

// restoreCase writes the letter case of name, as the query spelled it,
// into the packed question at offset 12 (DNS-25). Names with escapes are
// left as packed.
func restoreCase(out []byte, name string) {
	if strings.IndexByte(name, '\\') >= 0 {
		return
	}
	i, j := 12, 0
	for i < len(out) && out[i] != 0 && out[i]&0xc0 == 0 {
		l := int(out[i])
		for k := 1; k <= l && i+k < len(out) && j < len(name); k++ {
			if c := name[j]; c >= 'A' && c <= 'Z' && out[i+k] == c+('a'-'A') {
				out[i+k] = c
			}
			j++
		}
		i += 1 + l
		j++ // the dot
	}
}

func safeQName(r *dns.Msg) string {
	if r != nil && len(r.Question) > 0 {
		return r.Question[0].Name
	}
	return ""
}

func addrOf(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// reset prepares the pooled query state for request r.
func (q *query) reset(r *dns.Msg) {
	m := &q.m
	answer, ns, extra := m.Answer[:0], m.Ns[:0], m.Extra[:0]
	*m = dns.Msg{}
	m.Answer, m.Ns, m.Extra = answer, ns, extra
	m.Id = r.Id
	m.Response = true
	m.Opcode = r.Opcode
	m.RecursionDesired = r.RecursionDesired
	// DNS-18: CD is copied, like BIND and Knot do; every other flag of the
	// query (TC, AA, RA, AD, Z) is cleared.
	m.CheckingDisabled = r.CheckingDisabled
	m.Compress = true
	// The reply is packed with the question in lower case, and the case
	// as asked is put back into the packed question afterwards
	// (restoreCase): so names compressed against the question mirror the
	// query's case whichever path, cached or not, answers it, as BIND and
	// Knot do.
	if len(r.Question) == 1 {
		q.qname = strings.ToLower(r.Question[0].Name)
		q.question[0] = r.Question[0]
		q.question[0].Name = q.qname
		m.Question = q.question[:]
		q.qtype = r.Question[0].Qtype
	} else {
		// Not answered, but the reply echoes what a FORMERR may.
		q.qname, q.qtype, m.Question = "", 0, nil
	}
	q.clientKnown, q.ecs, q.scope, q.scoped, q.perClient, q.random, q.cut = false, nil, 0, false, false, false, nil
	q.cookie.n, q.cookie.valid, q.ede = 0, false, nil
	q.view, q.deps = nil, q.deps[:0]
	q.addrs, q.ips, q.aRR, q.aaaaRR = q.addrs[:0], q.ips[:0], q.aRR[:0], q.aaaaRR[:0]
}

// checkEDNS validates the query's OPT record (RFC 6891) and its Client
// Subnet option (RFC 7871 §7.1.2); it returns the OPT, if any, and the rcode
// to answer with when the query is not acceptable.
func (s *Server) checkEDNS(q *query, r *dns.Msg) (*dns.OPT, int) {
	var opt *dns.OPT
	for _, rr := range r.Extra {
		o, ok := rr.(*dns.OPT)
		if !ok {
			continue
		}
		if opt != nil || o.Hdr.Name != "." {
			return nil, dns.RcodeFormatError // DNS-22: two OPTs, or OPT owner not root
		}
		opt = o
	}
	if opt == nil {
		return nil, dns.RcodeSuccess
	}
	if opt.Version() != 0 {
		return opt, dns.RcodeBadVers // RFC 6891 §6.1.3
	}
	for _, o := range opt.Option {
		if c, ok := o.(*dns.EDNS0_COOKIE); ok {
			// RFC 7873 §5.2.2: a malformed COOKIE is FORMERR; so, as
			// in BIND, is a second one.
			if q.cookie.n != 0 || !q.cookie.parse(c) {
				return opt, dns.RcodeFormatError
			}
			s.cookies.check(&q.cookie, q.src, cookieNow())
			continue
		}
		e, ok := o.(*dns.EDNS0_SUBNET)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(e.Address)
		if !ok {
			return opt, dns.RcodeFormatError
		}
		bits := int(e.SourceNetmask)
		switch e.Family {
		case 1:
			ip = ip.Unmap()
			if !ip.Is4() || bits > 32 {
				return opt, dns.RcodeFormatError
			}
		case 2:
			if bits > 128 {
				return opt, dns.RcodeFormatError
			}
		default:
			return opt, dns.RcodeFormatError
		}
		if p, _ := ip.Prefix(bits); p.Addr() != ip || e.SourceScope != 0 {
			return opt, dns.RcodeFormatError // address bits beyond SOURCE PREFIX-LENGTH
		}
		q.ecs = e
	}
	return opt, dns.RcodeSuccess
}

// fillClient works out who the answer is for: the ECS address when it is
// usable (RFC 7871 §7.1.2), else the query's source.
func (q *query) fillClient() {
	if q.clientKnown {
		return
	}
	q.clientKnown = true
	q.client = clientFrom(q.ecs, q.src)
}

// usableECS reports whether ECS address ip with bits source bits says
// anything about a client: /0 and non-public addresses do not (DNS-41, DNS-43).
func usableECS(ip netip.Addr, bits uint8) bool {
	return bits > 0 && !(ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified())
}

// replyOPT builds the OPT record of the reply: our payload size, version 0,
// DO copied, ECS echoed with its scope and NSID if asked. Unknown options
// are not echoed (RFC 6891 §6.1.2).
func (s *Server) replyOPT(q *query, opt *dns.OPT, rcode int) *dns.OPT {
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(s.cfg.UDPSize)
	if opt.Do() {
		o.SetDo()
	}
	if rcode == dns.RcodeBadVers {
		return o
	}
	if q.cookie.n > 0 {
		o.Option = append(o.Option, s.cookies.reply(&q.cookie, q.src, cookieNow()))
	}
	if q.ede != nil {
		o.Option = append(o.Option, q.ede)
	}
	for _, op := range opt.Option {
		switch v := op.(type) {
		case *dns.EDNS0_NSID:
			o.Option = append(o.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: s.nsidHex})
		case *dns.EDNS0_SUBNET:
			if rcode == dns.RcodeFormatError {
				continue
			}
			scope := uint8(0)
			if q.scoped && q.client.Addr.IsValid() && q.ecs != nil && usableECS(addrFromECS(q.ecs), q.ecs.SourceNetmask) {
				scope = min(q.scope, v.SourceNetmask)
			}
			o.Option = append(o.Option, &dns.EDNS0_SUBNET{
				Code: dns.EDNS0SUBNET, Family: v.Family, SourceNetmask: v.SourceNetmask,
				SourceScope: scope, Address: v.Address,
			})
		}
	}
	return o
}

func hostname() string {
	h, err := osHostname()
	if err != nil || h == "" {
		return "gslb"
	}
	return h
}
