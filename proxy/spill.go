package proxy

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Spill-over: when a route's group has no available backend (all down,
// ejected, draining or at max_conns), or every backend an idempotent
// request was tried on failed, the request goes to the proxy of the next
// region (the first of spill.peers whose region health is good), so that
// clients still holding this region's address in their resolver cache are
// served elsewhere instead of getting 503.
//
// A spilled request carries the Gslb-Spill header: the origin region, a
// time, the client's address and an HMAC-SHA256 over them and the request
// line, keyed from the cluster secret. The receiving proxy never spills a
// request that carries the header (valid or not), so a request crosses at
// most one region even between misconfigured proxies; a valid header makes
// the spilling proxy a trusted peer for the forwarded headers and the
// request ID, and is removed before the request reaches a backend.

// SpillConfig is proxy.spill: where requests go when this region has no
// server left for them.
type SpillConfig struct {
	// Region is this proxy's region, named in spilled requests (a node
	// fills in its own region).
	Region string `yaml:"region"`
	// Secret keys the HMAC of the spill header; every region's proxy needs
	// the same. A node uses its cluster secret when this is empty.
	Secret string `yaml:"secret"`
	// Peers are the other regions' proxies, tried in this order; a peer
	// whose region health endpoint does not answer 200 is skipped.
	Peers []SpillPeer `yaml:"peers"`
	// NonIdempotent says what happens to a request that is not idempotent
	// (POST, PATCH, a PUT with a body) when no backend is available:
	// "spill" (the default; no backend has seen it) or "refuse" (503).
	// Such a request is never spilled after a backend failed on it.
	NonIdempotent string `yaml:"non_idempotent"`
	// CheckInterval is how often each peer's region health endpoint is
	// checked. Default 1s.
	CheckInterval time.Duration `yaml:"check_interval"`
}

// SpillPeer is another region's proxy.
type SpillPeer struct {
	Region string `yaml:"region"`
	// Address is host:port of the peer's HTTP (or HTTPS with tls) listener.
	Address string `yaml:"address"`
	// TLS speaks HTTPS to the peer, verifying its certificate against the
	// system roots for TLSServerName (default: the address's host).
	TLS           bool   `yaml:"tls"`
	TLSServerName string `yaml:"tls_server_name"`
	// TCP maps this proxy's tcp listener names to the peer's address for
	// the same service: a new connection that finds no backend here is
	// forwarded there.
	TCP map[string]string `yaml:"tcp"`
}

// SpillHeader is the header that marks (and authenticates) a spilled
// request.
const SpillHeader = "Gslb-Spill"

// spillSkew bounds the clock difference (and the replay window) accepted
// in a spill header.
const spillSkew = 60 * time.Second

func (s *SpillConfig) validate(bad func(string, ...any), listeners map[string]string) {
	if s == nil {
		return
	}
	if s.NonIdempotent == "" {
		s.NonIdempotent = "spill"
	}
	if s.NonIdempotent != "spill" && s.NonIdempotent != "refuse" {
		bad("spill.non_idempotent: %q must be spill or refuse", s.NonIdempotent)
	}
	orDur(&s.CheckInterval, time.Second)
	if s.CheckInterval < 0 {
		bad("spill.check_interval: %v must be > 0", s.CheckInterval)
	}
	if !spillToken(s.Region) && s.Region != "" {
		bad("spill.region: %q must be a name of letters, digits, '-', '_' and '.'", s.Region)
	}
	seen := map[string]bool{}
	for i, p := range s.Peers {
		f := fmt.Sprintf("spill.peers[%d]", i)
		if !spillToken(p.Region) {
			bad("%s.region: %q must be a region name", f, p.Region)
		}
		if _, _, err := net.SplitHostPort(p.Address); err != nil || p.Address == "" {
			bad("%s.address: %q is not host:port", f, p.Address)
		}
		if seen[p.Address] {
			bad("%s.address: %q listed twice", f, p.Address)
		}
		seen[p.Address] = true
		for ln, a := range p.TCP {
			if listeners[ln] != "tcp" {
				bad("%s.tcp: %q is not a tcp listener", f, ln)
			}
			if _, _, err := net.SplitHostPort(a); err != nil {
				bad("%s.tcp.%s: %q is not host:port", f, ln, a)
			}
		}
	}
}

// spillToken reports whether s is a non-empty region name that can go in
// the spill header as it is.
func spillToken(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// spiller is one configuration generation's spill state.
type spiller struct {
	cfg     SpillConfig
	key     []byte
	peers   []*spillPeer
	peerIPs []netip.Addr // the peers' literal addresses (HTTP and TCP)
	health  string       // the peers' region health path (ours)
	m       *spillMetrics
	log     logFunc
	now     func() time.Time
}

type logFunc func(msg string, args ...any)

type spillPeer struct {
	cfg   SpillPeer
	base  string // scheme://address
	up    atomic.Bool
	tr    *http.Transport
	warns atomic.Int64 // unix nanoseconds of the last spill log line
}

// newSpiller builds the spill state of a config; nil without a spill
// section. Without peers it only receives: it verifies spill headers.
func newSpiller(c *SpillConfig, healthPath string, t Timeouts, m *spillMetrics, log logFunc) (*spiller, error) {
	if c == nil {
		return nil, nil
	}
	if c.Secret == "" {
		return nil, errors.New("proxy.spill.secret: required (a node in a cluster uses its cluster secret)")
	}
	if c.Region == "" && len(c.Peers) > 0 {
		return nil, errors.New("proxy.spill.region: required (a node uses its own region)")
	}
	key, err := spillKey(c.Secret)
	if err != nil {
		return nil, fmt.Errorf("proxy.spill.secret: %w", err)
	}
	s := &spiller{cfg: *c, key: key, health: healthPath, m: m, log: log, now: time.Now}
	for _, pc := range c.Peers {
		p := &spillPeer{cfg: pc, base: "http://" + pc.Address}
		d := &net.Dialer{Timeout: t.Connect, KeepAlive: 30 * time.Second}
		p.tr = &http.Transport{
			DialContext:           d.DialContext,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       t.Idle,
			ResponseHeaderTimeout: t.Response,
			DisableCompression:    true,
		}
		if pc.TLS {
			p.base = "https://" + pc.Address
			name := pc.TLSServerName
			if name == "" {
				name, _, _ = net.SplitHostPort(pc.Address)
			}
			p.tr.TLSClientConfig = &tls.Config{ServerName: name}
			p.tr.ForceAttemptHTTP2 = true
		}
		p.up.Store(true) // until its first check says otherwise
		s.peers = append(s.peers, p)
		for _, a := range append([]string{pc.Address}, mapValues(pc.TCP)...) {
			if ap, err := netip.ParseAddrPort(a); err == nil {
				s.peerIPs = append(s.peerIPs, ap.Addr().Unmap())
			}
		}
	}
	return s, nil
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// spillKey derives the HMAC key from the shared secret.
func spillKey(secret string) ([]byte, error) {
	return hkdf.Key(sha256.New, []byte(secret), []byte("gslb proxy spill"), "spill header v1", 32)
}

// close releases the peers' idle connections.
func (s *spiller) close() {
	if s == nil {
		return
	}
	for _, p := range s.peers {
		p.tr.CloseIdleConnections()
	}
}

// start checks every peer's region health until ctx ends.
func (s *spiller) start(ctx context.Context, wg *sync.WaitGroup) {
	if s == nil {
		return
	}
	// A check may take up to spillCheckTimeout whatever the interval: a
	// busy peer is slow, not down.
	client := &http.Client{Timeout: spillCheckTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range s.peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := *client
			hc.Transport = p.tr
			t := time.NewTicker(s.cfg.CheckInterval)
			defer t.Stop()
			fails := 0
			for {
				s.checkPeer(ctx, &hc, p, &fails)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
}

// spillCheckTimeout bounds one check of a peer's region health.
const spillCheckTimeout = 2 * time.Second

// checkPeer checks a peer's region health: an answer other than 200 marks
// it down at once (its region says it has no server); no answer marks it
// down only the second time in a row (fails counts them), so that one
// lost check does not take a peer out.
func (s *spiller) checkPeer(ctx context.Context, c *http.Client, p *spillPeer, fails *int) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+s.health, nil)
	if err != nil {
		return
	}
	req.Header.Set("User-Agent", "gslb-proxy-spill-check")
	resp, err := c.Do(req)
	if ctx.Err() != nil {
		return
	}
	up := err == nil && resp.StatusCode == http.StatusOK
	if err == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		*fails = 0
	} else if *fails++; *fails < 2 && p.up.Load() {
		return
	}
	if p.up.Swap(up) != up {
		if up {
			s.log("spill peer up", "region", p.cfg.Region, "address", p.cfg.Address)
		} else {
			why := "no answer"
			if err == nil {
				why = resp.Status
			} else {
				why = err.Error()
			}
			s.log("spill peer down: its region health fails", "region", p.cfg.Region, "address", p.cfg.Address, "why", why)
		}
	}
}

// inbound is what a request's spill header said.
type inbound struct {
	marked  bool       // the header was present: never spill this request again
	trusted bool       // it was valid: the peer is trusted for forwarded headers
	region  string     // the origin region (trusted only)
	client  netip.Addr // the original client (trusted only)
}

// origin is the client a rate limit counts: the original client of a
// request spilled here by a trusted peer, else the connection's peer.
func (in inbound) origin(peer netip.Addr) netip.Addr {
	if in.trusted {
		return in.client
	}
	return peer
}

// spillReason is why a request that found no backend on its attempt'th
// try is spilled.
func spillReason(attempt int) string {
	if attempt == 0 {
		return spillNoBackend
	}
	return spillFailed
}

// spillInbound reads and removes the spill header of r. With no spill
// configured, a header is still removed and still marks the request.
func (st *state) spillInbound(r *http.Request) inbound {
	v := r.Header[SpillHeader]
	if len(v) == 0 {
		return inbound{}
	}
	delete(r.Header, SpillHeader)
	in := inbound{marked: true}
	s := st.spill
	if s == nil || len(v) != 1 {
		return in
	}
	f := strings.Fields(v[0])
	if len(f) != 5 || f[0] != "v1" || !spillToken(f[1]) {
		return in
	}
	ts, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return in
	}
	if d := s.now().Unix() - ts; d > int64(spillSkew/time.Second) || d < -int64(spillSkew/time.Second) {
		return in
	}
	client, err := netip.ParseAddr(f[3])
	if err != nil {
		return in
	}
	want := s.mac(f[1], f[2], f[3], r)
	got, err := base64.RawURLEncoding.DecodeString(f[4])
	if err != nil || !hmac.Equal(got, want) {
		s.m.rejected.Inc()
		return in
	}
	in.trusted, in.region, in.client = true, f[1], client
	s.m.received(in.region).Inc()
	return in
}

// mac is the truncated HMAC of a spill header's fields and the request
// line.
func (s *spiller) mac(region, ts, client string, r *http.Request) []byte {
	m := hmac.New(sha256.New, s.key)
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	for _, x := range []string{"v1", region, ts, client, r.Method, r.Host, uri} {
		io.WriteString(m, x)
		m.Write([]byte{0})
	}
	return m.Sum(nil)[:16]
}

func (s *spiller) header(client netip.Addr, r *http.Request) string {
	ts := strconv.FormatInt(s.now().Unix(), 10)
	c := client.String()
	return "v1 " + s.cfg.Region + " " + ts + " " + c + " " + base64.RawURLEncoding.EncodeToString(s.mac(s.cfg.Region, ts, c, r))
}

// Why a request was spilled (metric label values).
const (
	spillNoBackend = "no_backend" // the group had no available backend
	spillFailed    = "failed"     // every backend tried failed
)

// spillOver forwards r, whose header is already rewritten for a backend
// (forwarded headers, request ID), to the first peer up, and writes the
// peer's response. It returns false, having written nothing, when the
// request may not be spilled or no peer took it; the caller answers as it
// would without spill-over. A request is spilled only when its body has
// not been read: the caller guarantees that.
func (h *handler) spillOver(w http.ResponseWriter, r *http.Request, st *state, rt *route, in inbound, client netip.Addr, reason string, start time.Time, rid string) bool {
	s := st.spill
	if s == nil || in.marked || upgradeType(r.Header) != "" || r.Header.Get("Upgrade") != "" {
		return false
	}
	canRetry := idempotent(r)
	if !canRetry && (reason != spillNoBackend || s.cfg.NonIdempotent != "spill") {
		return false
	}
	var err error
	for _, p := range s.peers {
		if !p.up.Load() {
			continue
		}
		var status int
		var sent bool
		status, sent, err = h.spillTo(w, r, s, p, client)
		if err == nil || sent {
			took := time.Since(start)
			s.m.spilled(rt.name, p.cfg.Region, reason).Inc()
			rt.m.observe(status, took)
			if now := time.Now().UnixNano(); now-p.warns.Load() > int64(10*time.Second) {
				p.warns.Store(now)
				s.log("spilling requests to another region", "route", rt.name, "group", rt.group.name, "to", p.cfg.Region, "reason", reason)
			}
			if st.cfg.AccessLog {
				h.p.log.Info("request", "client", client, "method", r.Method, "host", r.Host, "path", r.URL.Path,
					"proto", r.Proto, "route", rt.name, "spilled_to", p.cfg.Region, "status", status,
					"duration", took, "request_id", rid)
			}
			if err != nil {
				panic(http.ErrAbortHandler) // a response cut short
			}
			return true
		}
		s.m.errors(p.cfg.Region).Inc()
		p.up.Store(false) // until its next check
		s.log("spill to peer failed", "route", rt.name, "to", p.cfg.Region, "err", err)
		if !canRetry || r.Context().Err() != nil {
			break
		}
	}
	return false
}

// spillTo sends r to one peer and copies the response to w. sent reports
// whether anything was written to w (err then means a truncated body).
func (h *handler) spillTo(w http.ResponseWriter, r *http.Request, s *spiller, p *spillPeer, client netip.Addr) (status int, sent bool, err error) {
	out := r.Clone(r.Context())
	u := *r.URL
	u.Scheme, u.Host = "http", p.cfg.Address
	if p.cfg.TLS {
		u.Scheme = "https"
	}
	out.URL = &u
	out.RequestURI = ""
	out.Close = false
	if out.Body != nil && (out.Body == http.NoBody || out.ContentLength == 0 && idempotent(r)) {
		out.Body = nil
	}
	out.Header[SpillHeader] = []string{s.header(client, r)}
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	dst := w.Header()
	for k, vv := range resp.Header {
		dst[k] = vv
	}
	removeHopHeaders(dst)
	w.WriteHeader(resp.StatusCode)
	if !copyBody(w, resp.Body, resp.ContentLength == -1) {
		return resp.StatusCode, true, errors.New("spilled response cut short")
	}
	return resp.StatusCode, true, nil
}

// spillConn forwards a new connection of a tcp listener that found no
// backend here to the first peer up that serves the same listener, and
// copies bytes both ways until it ends. A connection that comes from a
// spill peer's address is not spilled again (the hop marker of L4), and
// the connection to the peer is made from the address the client
// connected to, so that the peer recognises it.
func (p *Proxy) spillConn(st *state, listener string, c net.Conn) {
	s := st.spill
	if s == nil || s.fromPeer(addrPort(c.RemoteAddr()).Addr()) {
		return
	}
	d := net.Dialer{Timeout: st.cfg.Timeouts.Connect}
	if la := addrPort(c.LocalAddr()).Addr(); la.IsValid() && !la.IsUnspecified() {
		d.LocalAddr = &net.TCPAddr{IP: la.AsSlice()}
	}
	for _, x := range s.peers {
		a := x.cfg.TCP[listener]
		if a == "" || !x.up.Load() {
			continue
		}
		pc, err := d.Dial("tcp", a)
		if err != nil && d.LocalAddr != nil {
			d.LocalAddr = nil // the address may not reach the peer: any
			pc, err = d.Dial("tcp", a)
		}
		if err != nil {
			s.m.errors(x.cfg.Region).Inc()
			s.log("spill to peer failed", "listener", listener, "to", x.cfg.Region, "err", err)
			continue
		}
		s.m.spilled(listener, x.cfg.Region, spillNoBackend).Inc()
		if now := time.Now().UnixNano(); now-x.warns.Load() > int64(10*time.Second) {
			x.warns.Store(now)
			s.log("spilling connections to another region", "listener", listener, "to", x.cfg.Region)
		}
		defer pc.Close()
		pipe(c, pc, st.cfg.Timeouts.Idle)
		return
	}
}

// fromPeer reports whether a is the address of a spill peer.
func (s *spiller) fromPeer(a netip.Addr) bool {
	for _, x := range s.peerIPs {
		if x == a {
			return true
		}
	}
	return false
}

// spillMetrics are the spill-over series; label values are route and
// listener names and region names from the config (received: regions
// named by an authenticated header).
type spillMetrics struct {
	spilledVec  *prometheus.CounterVec
	errorsVec   *prometheus.CounterVec
	receivedVec *prometheus.CounterVec
	rejected    prometheus.Counter
	peerUp      *prometheus.Desc

	mu   sync.Mutex // the totals below, for SpillStatus (spill paths only)
	sent map[string]uint64
	recv map[string]uint64
}

func newSpillMetrics() *spillMetrics {
	const ns, sub = "gslb", "proxy"
	return &spillMetrics{
		spilledVec: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "spilled_total",
			Help: "Requests (route) and TCP connections (listener) sent to another region's proxy, by region and reason (no_backend, failed)."},
			[]string{"route", "region", "reason"}),
		errorsVec: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "spill_errors_total",
			Help: "Spill attempts that failed to reach another region's proxy, by region."}, []string{"region"}),
		receivedVec: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "spill_received_total",
			Help: "Spilled requests received from another region's proxy with a valid spill header, by origin region."}, []string{"region"}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "spill_rejected_total",
			Help: "Requests with a spill header that did not verify (bad MAC, stale time): served here, never spilled again, not trusted."}),
		peerUp: prometheus.NewDesc(ns+"_"+sub+"_spill_peer_up", "1 when the spill peer's region health check passes.", []string{"region"}, nil),
		sent:   map[string]uint64{},
		recv:   map[string]uint64{},
	}
}

func (m *spillMetrics) spilled(route, region, reason string) prometheus.Counter {
	m.mu.Lock()
	m.sent[region]++
	m.mu.Unlock()
	return m.spilledVec.WithLabelValues(route, region, reason)
}
func (m *spillMetrics) errors(region string) prometheus.Counter {
	return m.errorsVec.WithLabelValues(region)
}
func (m *spillMetrics) received(region string) prometheus.Counter {
	m.mu.Lock()
	m.recv[region]++
	m.mu.Unlock()
	return m.receivedVec.WithLabelValues(region)
}

// SpillStatus is what the proxy's spill-over did since it started.
type SpillStatus struct {
	Region string
	// Peers are the spill peers in order, with their last region health
	// check and the requests and connections sent to each.
	Peers []SpillPeerStatus
	// Received counts the valid spilled requests received, by origin
	// region.
	Received map[string]uint64
}

// SpillPeerStatus is one spill peer's state.
type SpillPeerStatus struct {
	Region string
	Up     bool
	Sent   uint64
}

// SpillStatus returns the spill-over state, or nil without proxy.spill.
func (p *Proxy) SpillStatus() *SpillStatus {
	s := p.state.Load().spill
	if s == nil {
		return nil
	}
	m := p.spillm
	m.mu.Lock()
	defer m.mu.Unlock()
	st := &SpillStatus{Region: s.cfg.Region, Received: maps.Clone(m.recv)}
	for _, x := range s.peers {
		st.Peers = append(st.Peers, SpillPeerStatus{Region: x.cfg.Region, Up: x.up.Load(), Sent: m.sent[x.cfg.Region]})
	}
	return st
}

func (p *Proxy) collectSpill(ch chan<- prometheus.Metric) {
	m := p.spillm
	m.spilledVec.Collect(ch)
	m.errorsVec.Collect(ch)
	m.receivedVec.Collect(ch)
	m.rejected.Collect(ch)
	if s := p.state.Load().spill; s != nil {
		for _, x := range s.peers {
			v := 0.0
			if x.up.Load() {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(m.peerUp, prometheus.GaugeValue, v, x.cfg.Region)
		}
	}
}
