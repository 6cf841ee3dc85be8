package proxy

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gslbd/gslb/internal/balance"
)

// handler serves one HTTP or HTTPS listener.
type handler struct {
	p        *Proxy
	listener string
	tls      bool
}

// hopHeaders are removed in both directions (RFC 9110 §7.6.1), besides the
// headers that Connection names.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHopHeaders(h http.Header) {
	for _, f := range h["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			sf = textproto.TrimString(sf)
			if sf == "" || strings.EqualFold(sf, "close") || strings.EqualFold(sf, "keep-alive") {
				continue // no such field, or one removed below
			}
			h.Del(sf)
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// upgradeType returns the protocol a request or response asks to upgrade
// to ("websocket"), or "".
func upgradeType(h http.Header) string {
	for _, f := range h["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if strings.EqualFold(textproto.TrimString(sf), "upgrade") {
				return h.Get("Upgrade")
			}
		}
	}
	return ""
}

func hasToken(h http.Header, key, token string) bool {
	for _, f := range h[key] {
		for sf := range strings.SplitSeq(f, ",") {
			if strings.EqualFold(textproto.TrimString(sf), token) {
				return true
			}
		}
	}
	return false
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := h.p.state.Load()
	if _, ok := w.(*h1response); !ok && r.ProtoMajor == 1 && len(r.TransferEncoding) > 0 {
		// RFC 9112 §6.1: a request with both Content-Length and
		// Transfer-Encoding must not leave its connection open. h1server
		// refuses it; net/http (h2c listeners) drops the Content-Length
		// and cannot tell us whether there was one, so every chunked
		// HTTP/1 request there closes its connection after the response.
		w = &closingWriter{ResponseWriter: w}
	}
	switch r.URL.Path {
	case st.cfg.HealthPath:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
		return
	case st.cfg.RegionHealthPath:
		ok, bad := st.health()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "unhealthy: no available backend in "+strings.Join(bad, ", ")+"\n")
			return
		}
		io.WriteString(w, "ok\n")
		return
	}
	host := hostOnly(r.Host)
	var rt *route
	for _, x := range st.routes[h.listener] {
		if x.match(r, host) {
			rt = x
			break
		}
	}
	if rt == nil {
		http.Error(w, "no route", http.StatusNotFound)
		return
	}
	peer, _ := netip.ParseAddrPort(r.RemoteAddr)
	client := peer.Addr().Unmap()
	in := st.spillInbound(r)
	if rt.limiter != nil {
		if ok, retry := rt.limiter.allow(rt.limitKey(r, in.origin(client)), time.Now()); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(max(1, (retry+time.Second-1)/time.Second))))
			rt.m.code(http.StatusTooManyRequests)
			http.Error(w, "rate limit exceeded", http.StatusTooManyRequests)
			return
		}
	}
	if max := st.cfg.MaxBodyBytes; max > 0 {
		if r.ContentLength > max {
			rt.m.code(http.StatusRequestEntityTooLarge)
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, max)
		}
	}
	h.forward(w, r, st, rt, client, in)
}

// closingWriter adds Connection: close to the response.
type closingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (c *closingWriter) WriteHeader(code int) {
	if !c.wrote && code >= 200 {
		c.wrote = true
		c.Header().Set("Connection", "close")
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *closingWriter) Write(p []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(p)
}

func (c *closingWriter) Flush() {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	http.NewResponseController(c.ResponseWriter).Flush()
}

func (c *closingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (rt *route) limitKey(r *http.Request, client netip.Addr) string {
	switch k := rt.limiter.cfg.Key; {
	case k == "route":
		return ""
	case strings.HasPrefix(k, "header:"):
		return r.Header.Get(k[7:])
	default:
		return client.String()
	}
}

func (st *state) isTrusted(a netip.Addr) bool {
	for _, p := range st.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func newRequestID() string {
	var b [16]byte
	x, y := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		b[i], b[8+i] = byte(x>>(8*i)), byte(y>>(8*i))
	}
	return hex.EncodeToString(b[:])
}

// fwdScratch keeps what setForwarded computed for the last request of a
// connection (same client, usually the same Host) and the value slices it
// set, so that the next requests on it allocate nothing. Owned by one
// connection's goroutine.
type fwdScratch struct {
	client    netip.Addr
	ip        string
	host      string
	tls       bool
	forwarded string // for=...;host=...;proto=... of client, host, tls
	vals      [4]string
}

// one returns a one-element value slice backed by the scratch's slot i
// (or a new one without scratch).
func (sc *fwdScratch) one(i int, v string) []string {
	if sc == nil {
		return []string{v}
	}
	sc.vals[i] = v
	return sc.vals[i : i+1 : i+1]
}

// setForwarded sets X-Forwarded-For/-Proto/-Host and Forwarded (RFC 7239)
// on the outgoing header: appended to when the peer is trusted, replaced
// otherwise, so a client cannot spoof its address. sc may be nil.
func setForwarded(hdr http.Header, r *http.Request, client netip.Addr, trusted, tls bool, sc *fwdScratch) {
	proto := "http"
	if tls {
		proto = "https"
	}
	var ip, fwd string
	if sc != nil && sc.ip != "" && sc.client == client && sc.host == r.Host && sc.tls == tls {
		ip, fwd = sc.ip, sc.forwarded
	} else {
		ip = client.String()
		node := ip
		if client.Is6() {
			node = `"[` + ip + `]"` // RFC 7239 §6: IPv6 is bracketed and quoted
		}
		fwd = "for=" + node + ";host=" + quoteForwarded(r.Host) + ";proto=" + proto
		if sc != nil {
			sc.client, sc.ip, sc.host, sc.tls, sc.forwarded = client, ip, r.Host, tls, fwd
		}
	}
	if prior := hdr["X-Forwarded-For"]; trusted && len(prior) > 0 {
		hdr["X-Forwarded-For"] = []string{strings.Join(prior, ", ") + ", " + ip}
	} else {
		hdr["X-Forwarded-For"] = sc.one(0, ip)
	}
	if !trusted || len(hdr["X-Forwarded-Proto"]) == 0 {
		hdr["X-Forwarded-Proto"] = sc.one(1, proto)
	}
	if !trusted || len(hdr["X-Forwarded-Host"]) == 0 {
		hdr["X-Forwarded-Host"] = sc.one(2, r.Host)
	}
	if prior := hdr["Forwarded"]; trusted && len(prior) > 0 {
		hdr["Forwarded"] = []string{strings.Join(prior, ", ") + ", " + fwd}
	} else {
		hdr["Forwarded"] = sc.one(3, fwd)
	}
}

// quoteForwarded quotes a value unless it is an RFC 7230 token.
func quoteForwarded(v string) string {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return strconv.Quote(v)
		}
	}
	return v
}

func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 && r.Method != http.MethodPut
	}
	return false
}

// forward proxies r to a backend of the route's group, retrying
// idempotent body-less requests on another backend when one fails before
// sending a response.
func (h *handler) forward(w http.ResponseWriter, r *http.Request, st *state, rt *route, client netip.Addr, in inbound) {
	start := time.Now()
	g := rt.group
	trusted := in.trusted || len(st.trusted) > 0 && st.isTrusted(client)
	hw, _ := w.(*h1response) // the connection's own writer and scratch on h1server
	var sc *fwdScratch
	if hw != nil {
		sc = &hw.hc.fwd
	}

	up := upgradeType(r.Header)
	te := hasToken(r.Header, "Te", "trailers")
	hdr := r.Header
	removeHopHeaders(hdr)
	// Header names with underscores are dropped (nginx's default): a
	// backend that maps X_User and X-User to one variable (CGI, some
	// frameworks) could otherwise be fooled.
	for k := range hdr {
		if strings.IndexByte(k, '_') >= 0 {
			delete(hdr, k)
		}
	}
	if up != "" {
		hdr["Connection"] = []string{"Upgrade"}
		hdr["Upgrade"] = []string{up}
	}
	if te {
		hdr["Te"] = []string{"trailers"}
	}
	setForwarded(hdr, r, client, trusted, h.tls, sc)
	rid := ""
	if n := st.cfg.RequestIDHeader; n != "-" {
		key := textproto.CanonicalMIMEHeaderKey(n)
		if v := hdr[key]; trusted && len(v) > 0 {
			rid = v[0]
		} else {
			rid = newRequestID()
			hdr[key] = []string{rid}
		}
	}

	var key pickKey
	switch g.hkind {
	case hashIP:
		key.hash = hashAddr(client)
	case hashURI:
		key.hash = balance.Hash64(r.URL.Path)
	case hashHeader:
		key.hash = balance.Hash64(r.Header.Get(g.hheader))
	}
	sticky := g.cfg.StickyCookie
	if sticky != "" {
		if c, err := r.Cookie(sticky); err == nil {
			key.cookie = c.Value
		}
	}

	// HTTP/1 and HTTP/2 requests with a Content-Length of 0 have no body
	// (net/http's HTTP/2 server says -1 when DATA frames may follow).
	noBody := r.Body == nil || up == "" && (r.Body == http.NoBody || r.ContentLength == 0 && r.ProtoMajor <= 2)
	retryable := idempotent(r) && up == ""
	// The fast path writes r itself (header rewritten above) and needs no
	// copy of it; the Transport gets one.
	fast := retryable && noBody && !g.cfg.TLS && !g.cfg.H2C && (r.Host == "" || plainHost(r.Host))
	var d *direct
	if fast && hw != nil && !hw.wroteHeader && r.ProtoMinor == 1 && r.Method != http.MethodHead {
		d = &hw.hc.direct
		*d = direct{w: hw}
	}
	var out *http.Request
	var u *url.URL
	var cb *clientBody
	if !fast {
		out = new(http.Request)
		*out = *r
		u = new(url.URL)
		*u = *r.URL
		out.URL = u
		u.Scheme = "http"
		if g.cfg.TLS {
			u.Scheme = "https"
		}
		out.RequestURI = ""
		out.Close = false
		if noBody {
			out.Body = nil
		}
		if out.Body != nil && out.Body != http.NoBody {
			cb = &clientBody{rc: out.Body}
			out.Body = cb
		}
	}

	var tried [6]*Backend
	var b *Backend
	var resp *http.Response
	var err error
	for attempt := 0; ; attempt++ {
		b = g.pick(&key, tried[:attempt])
		if b == nil {
			if st.spill != nil && h.spillOver(w, r, st, rt, in, client, spillReason(attempt), start, rid) {
				return
			}
			status := http.StatusServiceUnavailable
			if attempt > 0 {
				// No other backend to retry on: report the failure.
				status = http.StatusBadGateway
				if isTimeout(err) {
					status = http.StatusGatewayTimeout
				}
			}
			rt.m.code(status)
			h.p.accessLog(st, r, rt, nil, status, start, rid, client)
			http.Error(w, http.StatusText(status), status)
			return
		}
		if fast {
			host := r.Host
			if host == "" {
				host = b.addr
			}
			if d != nil {
				d.cookie, d.cookieVal = "", b.cookieVal
				if sticky != "" && key.cookie != b.cookieVal {
					d.cookie = sticky
				}
			}
			resp, err = b.roundTripH1(r, host, &st.cfg.Timeouts, d)
		} else {
			u.Host = b.addr
			resp, err = g.transport.RoundTrip(out)
		}
		if d != nil && d.statusSent != 0 {
			// Written to the client by the fast path, whole or (err) cut
			// short.
			status, took := d.statusSent, time.Since(start)
			b.observe(took)
			b.result(status)
			b.release()
			rt.m.observe(status, took)
			h.p.accessLog(st, r, rt, b, status, start, rid, client)
			if err != nil {
				panic(http.ErrAbortHandler) // so that the client cannot take it for complete
			}
			return
		}
		if err == nil {
			break
		}
		b.release()
		if cb != nil && cb.err != nil {
			// The client's body failed (too large, malformed chunking, the
			// client went away): not the backend's fault.
			status := http.StatusBadRequest
			var mbe *http.MaxBytesError
			if errors.As(cb.err, &mbe) {
				status = http.StatusRequestEntityTooLarge
			}
			rt.m.code(status)
			h.p.accessLog(st, r, rt, b, status, start, rid, client)
			w.Header().Set("Connection", "close")
			http.Error(w, http.StatusText(status), status)
			return
		}
		if r.Context().Err() != nil {
			// The client went away (net/http also cancels on a client's
			// half-close): not the backend's fault, and nothing to answer.
			rt.m.code(499)
			panic(http.ErrAbortHandler)
		}
		b.result(0)
		h.p.log.Debug("backend error", "route", rt.name, "backend", b.addr, "err", err)
		if !retryable || attempt >= rt.retries || attempt+1 >= len(tried) {
			if retryable && st.spill != nil && h.spillOver(w, r, st, rt, in, client, spillFailed, start, rid) {
				return
			}
			status := http.StatusBadGateway
			if isTimeout(err) {
				status = http.StatusGatewayTimeout
			}
			rt.m.code(status)
			h.p.accessLog(st, r, rt, b, status, start, rid, client)
			http.Error(w, http.StatusText(status), status)
			return
		}
		tried[attempt] = b
	}
	b.observe(time.Since(start))
	b.result(resp.StatusCode)

	if resp.StatusCode == http.StatusSwitchingProtocols {
		h.upgrade(w, r, resp, b, rt)
		return
	}
	dst := w.Header()
	for k, vv := range resp.Header {
		dst[k] = vv
	}
	removeHopHeaders(dst)
	if sticky != "" && key.cookie != b.cookieVal {
		dst["Set-Cookie"] = append(dst["Set-Cookie"], sticky+"="+b.cookieVal+"; Path=/; HttpOnly")
	}
	if len(resp.Trailer) > 0 {
		names := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			names = append(names, k)
		}
		dst["Trailer"] = []string{strings.Join(names, ", ")}
	}
	w.WriteHeader(resp.StatusCode)
	ok := copyBody(w, resp.Body, resp.ContentLength == -1)
	resp.Body.Close()
	for k, vv := range resp.Trailer {
		dst[k] = vv
	}
	b.release()
	rt.m.observe(resp.StatusCode, time.Since(start))
	h.p.accessLog(st, r, rt, b, resp.StatusCode, start, rid, client)
	if !ok {
		// The response is truncated: abort the client connection so that
		// the client cannot take it for complete.
		panic(http.ErrAbortHandler)
	}
}

// clientBody records an error reading the client's request body, so that
// a bad body is answered 400 (or 413) and not blamed on the backend.
type clientBody struct {
	rc  io.ReadCloser
	err error
}

func (c *clientBody) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

func (c *clientBody) Close() error { return c.rc.Close() }

// copyBody copies a response body, flushing after each read when the
// body is streamed (no Content-Length: SSE, gRPC, chunked). It reports
// whether the body was read completely.
func copyBody(w http.ResponseWriter, body io.Reader, stream bool) bool {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	fl, _ := w.(http.Flusher)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return true // the client went away; nothing to abort
			}
			if stream && fl != nil {
				fl.Flush()
			}
		}
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
}

// upgrade completes a 101 Switching Protocols (WebSocket) response and
// then copies bytes both ways until either side closes.
func (h *handler) upgrade(w http.ResponseWriter, r *http.Request, resp *http.Response, b *Backend, rt *route) {
	defer b.release()
	back, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		rt.m.code(http.StatusBadGateway)
		http.Error(w, "backend upgrade failed", http.StatusBadGateway)
		return
	}
	defer back.Close()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		rt.m.code(http.StatusBadGateway)
		http.Error(w, "upgrade not supported on this connection", http.StatusBadGateway)
		return
	}
	defer conn.Close()
	rt.m.code(http.StatusSwitchingProtocols)
	resp.Body = nil
	if err := resp.Write(brw); err != nil {
		return
	}
	if err := brw.Flush(); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		io.Copy(conn, back)
		conn.Close()
		close(done)
	}()
	io.Copy(back, brw)
	back.Close()
	<-done
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

func (p *Proxy) accessLog(st *state, r *http.Request, rt *route, b *Backend, status int, start time.Time, rid string, client netip.Addr) {
	if !st.cfg.AccessLog {
		return
	}
	backend := ""
	if b != nil {
		backend = b.addr
	}
	p.log.Info("request", "client", client, "method", r.Method, "host", r.Host, "path", r.URL.Path,
		"proto", r.Proto, "route", rt.name, "backend", backend, "status", status,
		"duration", time.Since(start), "request_id", rid)
}
