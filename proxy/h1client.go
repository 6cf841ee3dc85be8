package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The fast path for the most common request: an idempotent HTTP/1.1
// request without a body to a cleartext backend. http.Transport hands each
// request to two goroutines per connection (its read and write loops); here
// the handler's goroutine writes the request and reads the response on a
// pooled connection itself. When the client is on h1server and the
// response is a plain one (see parseRespHead), its head and body go
// straight from the backend's read buffer to the client's write buffer,
// one write each way. Everything else (bodies, upgrades, TLS, h2c) goes
// through http.Transport.

// connPool is a backend's stack of idle keep-alive connections (most
// recently used on top, so that the oldest age out).
type connPool struct {
	mu     sync.Mutex
	idle   []*bconn
	all    map[*bconn]struct{} // idle and busy, so a drain can cut them
	closed bool
}

// maxIdlePerBackend bounds a backend's idle connections.
const maxIdlePerBackend = 1024

type bconn struct {
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
}

var aLongTimeAgo = time.Unix(1, 0)

func (p *connPool) get(maxIdle time.Duration) *bconn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		bc := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if time.Since(bc.idleAt) < maxIdle {
			return bc
		}
		delete(p.all, bc)
		bc.c.Close()
	}
	return nil
}

// add tracks a new connection; it is refused once the pool is closed.
func (p *connPool) add(bc *bconn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if p.all == nil {
		p.all = map[*bconn]struct{}{}
	}
	p.all[bc] = struct{}{}
	return true
}

// drop closes a connection that will not be reused.
func (p *connPool) drop(bc *bconn) {
	p.mu.Lock()
	delete(p.all, bc)
	p.mu.Unlock()
	bc.c.Close()
}

func (p *connPool) put(bc *bconn) {
	bc.idleAt = time.Now()
	p.mu.Lock()
	if p.closed || len(p.idle) >= maxIdlePerBackend {
		delete(p.all, bc)
		p.mu.Unlock()
		bc.c.Close()
		return
	}
	p.idle = append(p.idle, bc)
	p.mu.Unlock()
}

// closeAll closes every connection, busy ones too (their requests fail),
// and makes the pool refuse new ones: the backend's drain deadline passed,
// or the proxy shut down.
func (p *connPool) closeAll() {
	p.mu.Lock()
	all := p.all
	p.all = nil
	p.idle = nil
	p.closed = true
	p.mu.Unlock()
	for bc := range all {
		bc.c.Close()
	}
}

// noStop stands for context.AfterFunc's stop when the request's context
// can never be canceled (h1server's requests).
func noStop() bool { return true }

var (
	errStale     = errors.New("backend closed a keep-alive connection")
	errTruncated = errors.New("backend response body truncated")
)

// direct is a client response that the fast path may write itself: w
// (the client's h1server response, nothing written yet) and the sticky
// cookie to set, if any.
type direct struct {
	w          *h1response
	cookie     string // sticky cookie name, "" for none
	cookieVal  string
	statusSent int // the status of a response written to w, 0 if none
}

// roundTripH1 sends a body-less request (the client's r, its header
// already rewritten for the backend) to host on a pooled connection (or a
// new one) and returns the response; its Body gives the connection back to
// the pool when read to the end. With d, a plain response is written to
// d.w instead and roundTripH1 returns a nil response and sets d.statusSent
// (errTruncated if the body broke off once sent). A reused connection that
// fails before the response is retried once on a new connection: the
// request is idempotent and has no body.
func (b *Backend) roundTripH1(r *http.Request, host string, t *Timeouts, d *direct) (*http.Response, error) {
	if b.drainCtx.Err() != nil {
		return nil, errors.New("backend drained")
	}
	for attempt := 0; ; attempt++ {
		bc := b.pool.get(t.Idle)
		reused := bc != nil
		if bc == nil {
			dl := net.Dialer{Timeout: t.Connect, KeepAlive: 30 * time.Second}
			c, err := dl.DialContext(r.Context(), "tcp", b.addr)
			if err != nil {
				return nil, err
			}
			rw := rawIO(c)
			bc = &bconn{c: c, br: bufio.NewReaderSize(rw, 16<<10), bw: bufio.NewWriterSize(rw, 8<<10)}
			if !b.pool.add(bc) {
				c.Close()
				return nil, errors.New("backend drained")
			}
		}
		resp, err := bc.exchange(r, host, t, &b.pool, d)
		if err == nil || d != nil && d.statusSent != 0 {
			return resp, err // the connection went back to the pool or was dropped
		}
		b.pool.drop(bc)
		if !reused || attempt > 0 || r.Context().Err() != nil {
			return nil, err
		}
	}
}

// writeRequest writes the head of a body-less request as
// http.Request.Write would (request line, Host, Go's User-Agent when the
// client sent none, Content-Length: 0 for methods other than GET and
// HEAD, the other fields), without its allocations.
func writeRequest(bw *bufio.Writer, r *http.Request, host string) {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	if plainTarget(r.RequestURI) {
		bw.WriteString(r.RequestURI)
	} else {
		bw.WriteString(r.URL.RequestURI())
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	ua := "Go-http-client/1.1"
	if vv, ok := r.Header["User-Agent"]; ok {
		ua = ""
		if len(vv) > 0 {
			ua = vv[0]
		}
	}
	if ua != "" && !strings.ContainsAny(ua, "\r\n") {
		bw.WriteString("User-Agent: ")
		bw.WriteString(ua)
		bw.WriteString("\r\n")
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		bw.WriteString("Content-Length: 0\r\n")
	}
	for k, vv := range r.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		writeField(bw, k, vv)
	}
	bw.WriteString("\r\n")
}

func (bc *bconn) exchange(r *http.Request, host string, t *Timeouts, pool *connPool, d *direct) (*http.Response, error) {
	stop := noStop
	if ctx := r.Context(); ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { bc.c.SetDeadline(aLongTimeAgo) })
	}
	writeRequest(bc.bw, r, host)
	if err := bc.bw.Flush(); err != nil {
		stop()
		return nil, err
	}
	if t.Response > 0 {
		bc.c.SetReadDeadline(time.Now().Add(t.Response))
	}
	if d != nil && r.Method != http.MethodHead {
		head, err := peekHead(bc.br)
		if err != nil {
			stop()
			if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
				err = errStale
			}
			return nil, err
		}
		if rh, ok := parseRespHead(head); ok {
			if t.Response > 0 {
				bc.c.SetReadDeadline(time.Time{})
			}
			err := d.write(bc, head, rh)
			if stop() && err == nil && rh.keep {
				pool.put(bc)
			} else {
				pool.drop(bc)
			}
			return nil, err
		}
	}
	var resp *http.Response
	var err error
	for {
		resp, err = http.ReadResponse(bc.br, r)
		if err != nil {
			stop()
			if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
				err = errStale
			}
			return nil, err
		}
		// Skip 1xx informational responses (100 Continue, 103 Early Hints).
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	if t.Response > 0 {
		bc.c.SetReadDeadline(time.Time{})
	}
	resp.Body = &pooledBody{rc: resp.Body, bc: bc, pool: pool, stop: stop, keep: !resp.Close}
	return resp, nil
}

// pooledBody returns its connection to the pool at EOF, or closes it when
// the body is closed before EOF.
type pooledBody struct {
	rc   io.ReadCloser
	bc   *bconn
	pool *connPool
	stop func() bool
	keep bool
	done bool
}

func (p *pooledBody) Read(b []byte) (int, error) {
	if p.done {
		return 0, io.EOF
	}
	n, err := p.rc.Read(b)
	if err == io.EOF {
		p.finish(true)
	} else if err != nil {
		p.finish(false)
	}
	return n, err
}

func (p *pooledBody) Close() error {
	if !p.done {
		p.finish(false)
	}
	return nil
}

func (p *pooledBody) finish(complete bool) {
	p.done = true
	// If the client went away the deadline may be set: the connection is
	// not reusable then.
	ok := p.stop()
	p.rc.Close()
	if complete && p.keep && ok {
		p.pool.put(p.bc)
		return
	}
	p.pool.drop(p.bc)
}

// respHead is what parseRespHead found in a plain response head.
type respHead struct {
	status  int
	length  int64
	keep    bool // the backend keeps the connection open
	hasDate bool
}

// parseRespHead checks that a response head is a plain one that the fast
// path may copy to the client: HTTP/1.1, a final status other than 204 and
// 304, well-formed fields (see nextField), one Content-Length, no
// Transfer-Encoding, Trailer or Upgrade, a Connection of keep-alive or
// close at most. Anything else goes through http.ReadResponse.
func parseRespHead(head []byte) (rh respHead, ok bool) {
	if len(head) < 14 || string(head[:9]) != "HTTP/1.1 " || head[12] != ' ' && head[12] != '\r' {
		return rh, false
	}
	for _, c := range head[9:12] {
		if c < '0' || c > '9' {
			return rh, false
		}
		rh.status = rh.status*10 + int(c-'0')
	}
	if rh.status < 200 || rh.status == http.StatusNoContent || rh.status == http.StatusNotModified {
		return rh, false
	}
	i := bytes.IndexByte(head, '\n')
	if i < 0 {
		return rh, false
	}
	rest := head[i+1:]
	rh.keep, rh.length = true, -1
	for n := 0; ; n++ {
		f, r, more, bad := nextField(rest)
		if bad || n == 100 {
			return rh, false
		}
		if !more {
			break
		}
		rest = r
		switch {
		case equalFoldASCII(f.name, "content-length"):
			if rh.length >= 0 || len(f.value) == 0 || len(f.value) > 15 {
				return rh, false
			}
			rh.length = 0
			for _, c := range f.value {
				if c < '0' || c > '9' {
					return rh, false
				}
				rh.length = rh.length*10 + int64(c-'0')
			}
		case equalFoldASCII(f.name, "transfer-encoding"), equalFoldASCII(f.name, "trailer"), equalFoldASCII(f.name, "upgrade"):
			return rh, false
		case equalFoldASCII(f.name, "connection"):
			switch {
			case equalFoldASCII(f.value, "close"):
				rh.keep = false
			case equalFoldASCII(f.value, "keep-alive"):
			default:
				return rh, false
			}
		case equalFoldASCII(f.name, "date"):
			rh.hasDate = true
		}
	}
	return rh, rh.length >= 0
}

// isHopField reports whether a response field is hop-by-hop (RFC 9110
// §7.6.1) and not passed on; a plain head has no Transfer-Encoding,
// Trailer or Upgrade, and a Connection names no other field.
func isHopField(name []byte) bool {
	return equalFoldASCII(name, "connection") || equalFoldASCII(name, "keep-alive") ||
		equalFoldASCII(name, "proxy-connection") || equalFoldASCII(name, "proxy-authenticate") ||
		equalFoldASCII(name, "proxy-authorization") || equalFoldASCII(name, "te")
}

// write copies a plain response (its head checked by parseRespHead) from
// the backend's read buffer to the client's write buffer: the status line,
// the end-to-end fields, the sticky cookie, Connection: close when the
// client's connection ends after it, a Date if the backend sent none, and
// the body. h1server flushes it with the end of the request.
func (d *direct) write(bc *bconn, head []byte, rh respHead) error {
	w := d.w
	w.wroteHeader, w.headerSent = true, true
	w.status, w.cl = rh.status, rh.length
	d.statusSent = rh.status
	bw := w.hc.bw
	w.writeStatus(rh.status)
	rest := head[bytes.IndexByte(head, '\n')+1:]
	for {
		f, r, more, _ := nextField(rest)
		if !more {
			break
		}
		rest = r
		if isHopField(f.name) {
			continue
		}
		bw.Write(f.name)
		bw.WriteString(": ")
		bw.Write(f.value)
		bw.WriteString("\r\n")
	}
	if d.cookie != "" {
		bw.WriteString("Set-Cookie: ")
		bw.WriteString(d.cookie)
		bw.WriteByte('=')
		bw.WriteString(d.cookieVal)
		bw.WriteString("; Path=/; HttpOnly\r\n")
	}
	if w.closeAfter || w.req.Close {
		bw.WriteString("Connection: close\r\n")
	}
	if !rh.hasDate {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
	bc.br.Discard(len(head))
	for rem := rh.length; rem > 0; {
		if bc.br.Buffered() == 0 {
			if _, err := bc.br.Peek(1); err != nil {
				return errTruncated
			}
		}
		p, _ := bc.br.Peek(int(min(rem, int64(bc.br.Buffered()))))
		bw.Write(p)
		bc.br.Discard(len(p))
		rem -= int64(len(p))
		w.written += int64(len(p))
	}
	return nil
}
