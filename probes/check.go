package probes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gslbd/gslb/zones"
)

// MaxBody is how many bytes of an HTTP response body a check reads; the
// body= substring must occur within them.
const MaxBody = 5120

// Target is one thing to probe: a pool's check applied to one member. Two
// targets with the same Key are the same probe.
type Target struct {
	Check zones.Check
	Addr  netip.Addr
	// Zone is the origin of the zone that defines the pool: the name a dns
	// check without qname= queries. It is not part of the Key, so targets
	// that differ only in Zone share one probe (of the first zone seen).
	Zone string
}

// Key identifies the probe for de-duplication, reports and verdicts.
func (t Target) Key() string { return t.Check.Key(t.Addr) }

// String is a short readable form, such as "http://192.0.2.10:80/healthz".
func (t Target) String() string {
	return t.Check.Scheme + "://" + net.JoinHostPort(t.host(), strconv.Itoa(int(t.Check.Port))) + t.Check.Path
}

func (t Target) host() string {
	if t.Check.Host != "" {
		return t.Check.Host
	}
	return t.Addr.String()
}

// interval is the check's interval with the zones defaults applied.
func (t Target) interval() time.Duration {
	iv := t.Check.Interval
	if iv <= 0 {
		iv = zones.DefaultInterval
	}
	return max(iv, zones.MinInterval)
}

// fastInterval is the re-check interval while the target's state is in
// doubt: a tenth of the interval, at most 100ms (50ms at the least
// interval).
func (t Target) fastInterval() time.Duration {
	return min(t.interval()/10, 100*time.Millisecond)
}

// settle is the settle window of flap damping: after the target went
// down, and after its suppression ended, it is watched at the short
// interval for this long (ten short intervals: 1s with the defaults).
func (t Target) settle() time.Duration { return 10 * t.fastInterval() }

// timeout is the check's timeout, or min(interval/2, 2s) when unset.
func (t Target) timeout() time.Duration {
	if t.Check.Timeout > 0 {
		return t.Check.Timeout
	}
	return min(t.interval()/2, 2*time.Second)
}

func (t Target) fails() int {
	if t.Check.Fails > 0 {
		return t.Check.Fails
	}
	return zones.DefaultFails
}

func (t Target) passes() int {
	if t.Check.Passes > 0 {
		return t.Check.Passes
	}
	return zones.DefaultPasses
}

// Result is the outcome of one probe.
type Result struct {
	Up bool
	// Reason is the error when the probe failed, else what was seen
	// ("HTTP 200", "NOERROR", "connected").
	Reason string
	// Duration is how long the whole probe took.
	Duration time.Duration
	// RTT is the connect time (tcp, http, https) or the query round trip
	// (dns); zero when nothing was measured.
	RTT time.Duration
	// CertExpiry is the NotAfter of the server's leaf certificate (https).
	CertExpiry time.Time
	// Refused says the connection was refused or reset (or, for dns, the
	// port was unreachable): the member's host answered that nothing
	// serves there, a stronger sign of down than a timeout.
	Refused bool
}

// CheckerConfig configures a Checker. The zero value is ready to use.
type CheckerConfig struct {
	// RootCAs verifies https servers; nil means the system roots.
	RootCAs *x509.CertPool
}

// Checker runs single probes. It reuses one http.Transport per (scheme,
// insecure, SNI), with keep-alives off so that every probe opens a fresh
// connection. A Checker is safe for concurrent use.
type Checker struct {
	cfg        CheckerConfig
	mu         sync.Mutex
	transports map[transportKey]*http.Transport
}

type transportKey struct {
	insecure bool
	sni      string
}

// NewChecker returns a Checker.
func NewChecker(cfg CheckerConfig) *Checker {
	return &Checker{cfg: cfg, transports: make(map[transportKey]*http.Transport)}
}

// Close releases the Checker's idle connections.
func (c *Checker) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tr := range c.transports {
		tr.CloseIdleConnections()
	}
}

// Probe runs t's check once, bounded by the check's timeout and ctx.
func (c *Checker) Probe(ctx context.Context, t Target) Result {
	start := time.Now() // before the deadline is set: Duration >= timeout on a timeout
	timeout := t.timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var r Result
	var err error
	switch t.Check.Scheme {
	case "tcp":
		r, err = c.probeTCP(ctx, t)
	case "http", "https":
		r, err = c.probeHTTP(ctx, t)
	case "dns":
		r, err = c.probeDNS(ctx, t)
	case "":
		r = Result{Up: true, Reason: "not checked"}
	default:
		err = fmt.Errorf("unknown check scheme %q", t.Check.Scheme)
	}
	r.Duration = time.Since(start)
	if err != nil {
		r.Up = false
		r.Refused = isRefused(err) || errors.Is(err, syscall.ECONNRESET)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timeout after %v: %w", timeout, err)
		}
		r.Reason = err.Error()
	}
	return r
}

func (c *Checker) probeTCP(ctx context.Context, t Target) (Result, error) {
	addr := net.JoinHostPort(t.host(), strconv.Itoa(int(t.Check.Port)))
	var d net.Dialer
	start := time.Now()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Result{}, err // a *net.OpError naming the address
	}
	rtt := time.Since(start)
	conn.Close()
	return Result{Up: true, Reason: "connected", RTT: rtt}, nil
}

// sni is the TLS server name: sni=, else host=, else the check's host name.
// Empty means the address itself, verified against the certificate's IP SANs.
func (t Target) sni() string {
	switch {
	case t.Check.SNI != "":
		return t.Check.SNI
	case t.Check.HostHeader != "":
		h := t.Check.HostHeader
		if hh, _, err := net.SplitHostPort(h); err == nil {
			h = hh
		}
		return h
	case t.Check.Host != "":
		if _, err := netip.ParseAddr(t.Check.Host); err != nil {
			return t.Check.Host
		}
	}
	return ""
}

func (c *Checker) transport(t Target) *http.Transport {
	k := transportKey{insecure: t.Check.Insecure}
	if t.Check.Scheme == "https" {
		k.sni = t.sni()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if tr := c.transports[k]; tr != nil {
		return tr
	}
	tr := &http.Transport{
		Proxy:                  nil, // never a proxy from the environment
		DialContext:            (&net.Dialer{}).DialContext,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
		TLSClientConfig: &tls.Config{
			ServerName:         k.sni,
			InsecureSkipVerify: k.insecure,
			RootCAs:            c.cfg.RootCAs,
		},
	}
	c.transports[k] = tr
	return tr
}

func (c *Checker) probeHTTP(ctx context.Context, t Target) (r Result, err error) {
	// The trace hooks run on the transport's dial goroutine, which may
	// outlive a timed-out RoundTrip: share only atomics with it.
	var connStart, connRTT atomic.Int64
	trace := &httptrace.ClientTrace{
		ConnectStart: func(string, string) { connStart.Store(time.Now().UnixNano()) },
		ConnectDone: func(_, _ string, err error) {
			if s := connStart.Load(); err == nil && s != 0 {
				connRTT.Store(time.Now().UnixNano() - s)
			}
		},
	}
	defer func() { r.RTT = time.Duration(connRTT.Load()) }()
	ctx = httptrace.WithClientTrace(ctx, trace)
	path := t.Check.Path
	if path == "" {
		path = "/"
	}
	url := t.Check.Scheme + "://" + net.JoinHostPort(t.host(), strconv.Itoa(int(t.Check.Port))) + path
	method := t.Check.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return r, fmt.Errorf("http request %s: %w", url, err)
	}
	if t.Check.HostHeader != "" {
		req.Host = t.Check.HostHeader
	}
	req.Header.Set("User-Agent", "gslb-probe/1")
	// RoundTrip, not a Client: redirects are statuses to judge, not to follow.
	resp, err := c.transport(t).RoundTrip(req)
	if err != nil {
		return r, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		r.CertExpiry = resp.TLS.PeerCertificates[0].NotAfter
	}
	lo, hi := t.Check.ExpectMin, t.Check.ExpectMax
	if lo == 0 && hi == 0 {
		lo, hi = 200, 399
	}
	if resp.StatusCode < lo || resp.StatusCode > hi {
		return r, fmt.Errorf("%s %s: status %d, want %d-%d", method, url, resp.StatusCode, lo, hi)
	}
	if t.Check.Body != "" {
		body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
		if err != nil {
			return r, fmt.Errorf("%s %s: reading body: %w", method, url, err)
		}
		if !strings.Contains(string(body), t.Check.Body) {
			return r, fmt.Errorf("%s %s: body has no %q in its first %d bytes", method, url, t.Check.Body, MaxBody)
		}
	}
	r.Up = true
	r.Reason = "HTTP " + strconv.Itoa(resp.StatusCode)
	return r, nil
}

// rcodeNames names the rcodes a 12-bit header can carry without EDNS.
var rcodeNames = [...]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
	"YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"}

func rcodeName(rc int) string {
	if rc >= 0 && rc < len(rcodeNames) {
		return rcodeNames[rc]
	}
	return "RCODE" + strconv.Itoa(rc)
}

// dnsQuery packs a query for qname SOA IN without recursion desired.
func dnsQuery(id uint16, qname string) ([]byte, error) {
	b := make([]byte, 12, 12+len(qname)+6)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[4:], 1) // QDCOUNT
	name := strings.TrimSuffix(qname, ".")
	if name != "" {
		for _, l := range strings.Split(name, ".") {
			if len(l) == 0 || len(l) > 63 {
				return nil, fmt.Errorf("qname %q: bad label %q", qname, l)
			}
			b = append(b, byte(len(l)))
			b = append(b, l...)
		}
	}
	b = append(b, 0, 0, 6, 0, 1) // root, type SOA, class IN
	if len(b)-12 > 260 {
		return nil, fmt.Errorf("qname %q: too long", qname)
	}
	return b, nil
}

func (c *Checker) probeDNS(ctx context.Context, t Target) (Result, error) {
	addr := net.JoinHostPort(t.host(), strconv.Itoa(int(t.Check.Port)))
	qname := t.Check.QName
	if qname == "" {
		qname = t.Zone
	}
	if qname == "" {
		qname = "."
	}
	id := uint16(rand.Uint32())
	q, err := dnsQuery(id, qname)
	if err != nil {
		return Result{}, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return Result{}, fmt.Errorf("dns %s: %w", addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	start := time.Now()
	if _, err := conn.Write(q); err != nil {
		return Result{}, fmt.Errorf("dns %s: %w", addr, err)
	}
	buf := make([]byte, 512)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return Result{}, fmt.Errorf("dns %s %s SOA: %w", addr, qname, err)
		}
		// Skip anything that is not the answer to our query (stray or spoofed).
		if n < 12 || binary.BigEndian.Uint16(buf) != id || buf[2]&0x80 == 0 {
			continue
		}
		r := Result{RTT: time.Since(start)}
		rc := int(buf[3] & 0x0f)
		lo, hi := t.Check.ExpectMin, t.Check.ExpectMax
		if rc < lo || rc > hi {
			return r, fmt.Errorf("dns %s %s SOA: rcode %s, want %s", addr, qname, rcodeName(rc), expectRcodes(lo, hi))
		}
		r.Up = true
		r.Reason = rcodeName(rc)
		return r, nil
	}
}

func expectRcodes(lo, hi int) string {
	if lo == hi {
		return rcodeName(lo)
	}
	return rcodeName(lo) + "-" + rcodeName(hi)
}
