package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// h1server serves HTTP/1.x on a cleartext listener (and HTTP/1.1 over TLS
// after the handshake) with one goroutine per connection and nothing else:
// net/http's server adds a background read (a goroutine and a failed read
// syscall) and a cancelable context to every request, which is a large
// share of a proxy's cost per request. The common request (HTTP/1.1 GET or
// HEAD without a body, see parseFast) is parsed from the read buffer into
// the connection's reused request, header map and response; every other
// one by http.ReadRequest (the framing checks of net/http: duplicate
// Content-Length, bad chunking). Both reach the same http.Handler. h2c
// listeners and HTTP/2 use net/http.
//
// RFC 9112 §6.1: a request with both Content-Length and Transfer-Encoding
// is refused with 400 (net/http would drop the Content-Length and keep the
// connection open).
//
// Unlike net/http, a request's context is not canceled when its client
// goes away: the proxy notices when it writes the response.
type h1server struct {
	h              http.Handler
	readHeader     time.Duration
	idle           time.Duration
	maxHeaderBytes int

	mu      sync.Mutex
	conns   map[*h1conn]struct{}
	closing atomic.Bool
	wg      sync.WaitGroup
}

type h1conn struct {
	c      net.Conn
	lr     limitReader
	br     *bufio.Reader
	bw     *bufio.Writer
	remote string
	idle   atomic.Bool

	// Reused by every request of the connection (one at a time): the
	// parsed request, its header map and value slices, the response.
	req    http.Request
	url    url.URL
	hdr    http.Header
	vals   []string
	head   string // the last request head parseFast copied
	w      h1response
	whdr   http.Header
	pend   []byte
	fwd    fwdScratch
	direct direct
	grown  bool // br was replaced by a larger reader for a long head
}

// limitReader reads from the connection while headers are read with a
// byte budget, so that an endless header block gets 431.
type limitReader struct {
	c      io.Reader // the connection (rawIO)
	remain int64
}

var errHeaderTooLarge = errors.New("request header too large")

func (l *limitReader) Read(p []byte) (int, error) {
	if l.remain <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > l.remain {
		p = p[:l.remain]
	}
	n, err := l.c.Read(p)
	l.remain -= int64(n)
	return n, err
}

func (s *h1server) serve(ln net.Listener) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return http.ErrServerClosed
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		hc := s.add(c)
		if hc == nil {
			return http.ErrServerClosed
		}
		go s.serveConn(hc)
	}
}

// add registers a new connection; serveConn must follow. It returns nil
// (and closes c) when the server is shutting down.
func (s *h1server) add(c net.Conn) *h1conn {
	hc := &h1conn{c: c, remote: c.RemoteAddr().String(), hdr: make(http.Header, 16), whdr: make(http.Header, 16), vals: make([]string, 0, 16)}
	rw := rawIO(c)
	hc.lr.c = rw
	hc.br = bufio.NewReaderSize(&hc.lr, 4<<10)
	hc.bw = bufio.NewWriterSize(rw, 4<<10)
	hc.idle.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		c.Close()
		return nil
	}
	s.conns[hc] = struct{}{}
	s.wg.Add(1)
	return hc
}

func (s *h1server) serveConn(hc *h1conn) {
	defer func() {
		if r := recover(); r != nil && r != http.ErrAbortHandler {
			// A handler panic closes the connection, as in net/http.
			_ = r
		}
		hc.c.Close()
		s.mu.Lock()
		delete(s.conns, hc)
		s.mu.Unlock()
		s.wg.Done()
	}()
	for {
		hc.idle.Store(true)
		if s.closing.Load() {
			return
		}
		if s.idle > 0 {
			hc.c.SetReadDeadline(time.Now().Add(s.idle))
		}
		hc.lr.remain = int64(s.maxHeaderBytes) + 4096
		if _, err := hc.br.Peek(1); err != nil {
			return
		}
		hc.idle.Store(false)
		head, err := hc.readHead(s)
		if err != nil {
			s.badRequest(hc, err)
			return
		}
		if head != nil && hasCLAndTE(head) {
			s.simpleError(hc, http.StatusBadRequest)
			return
		}
		req, fast := hc.parseFast(head)
		if fast {
			// No body and no upgrade: nothing more is read from the
			// client for this request, so the idle deadline can stay
			// until the next one sets its own.
			hc.br.Discard(len(head))
		} else {
			req, err = http.ReadRequest(hc.br)
			if err != nil {
				s.badRequest(hc, err)
				return
			}
			if s.readHeader > 0 || s.idle > 0 {
				hc.c.SetReadDeadline(time.Time{})
			}
		}
		hc.lr.remain = 1 << 62
		req.RemoteAddr = hc.remote
		if req.ProtoMajor != 1 {
			s.simpleError(hc, http.StatusHTTPVersionNotSupported)
			return
		}
		if req.ProtoMinor == 1 && req.Host == "" {
			s.simpleError(hc, http.StatusBadRequest)
			return
		}
		clear(hc.whdr)
		w := &hc.w
		*w = h1response{hc: hc, req: req, header: hc.whdr, pending: hc.pend[:0]}
		body := req.Body
		if req.ContentLength != 0 && hasToken(req.Header, "Expect", "100-continue") {
			req.Body = &continueReader{rc: body, w: w}
		}
		s.h.ServeHTTP(w, req)
		if w.hijacked {
			return
		}
		// Drain what the handler left of the body (bounded), so that the
		// next request starts at its first byte.
		if body != http.NoBody && body != nil {
			if w.sentContinue || req.Body == body {
				if n, _ := io.CopyN(io.Discard, body, 256<<10); n == 256<<10 {
					w.closeAfter = true
				}
			} else {
				w.closeAfter = true // the body was never asked for
			}
			body.Close()
		}
		if err := w.finish(); err != nil {
			return
		}
		if cap(w.pending) <= maxPending {
			hc.pend = w.pending[:0]
		}
		if w.closeAfter || req.Close || (req.ProtoMinor == 0 && !hasToken(req.Header, "Connection", "keep-alive")) {
			if cw, ok := hc.c.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			return
		}
	}
}

// readHead waits for a request head in the read buffer (under the
// read-header deadline when it did not come in one piece) and returns it
// unconsumed. A head longer than the buffer moves the connection to a
// reader as large as max_header_bytes allows; nil means it does not fit
// even there (http.ReadRequest then answers 431).
func (hc *h1conn) readHead(s *h1server) ([]byte, error) {
	if buf, _ := hc.br.Peek(hc.br.Buffered()); len(buf) > 0 {
		if n := headEnd(buf); n >= 0 {
			return buf[:n], nil
		}
	}
	if s.readHeader > 0 {
		hc.c.SetReadDeadline(time.Now().Add(s.readHeader))
	}
	head, err := peekHead(hc.br)
	if head == nil && err == nil && !hc.grown {
		hc.grown = true
		hc.br = bufio.NewReaderSize(hc.br, s.maxHeaderBytes+4096)
		head, err = peekHead(hc.br)
	}
	if err != nil && hc.br.Buffered() > 0 {
		err = nil // let http.ReadRequest report what it makes of the bytes
	}
	return head, err
}

// hasCLAndTE reports whether a request head has both Content-Length and
// Transfer-Encoding fields (RFC 9112 §6.1).
func hasCLAndTE(head []byte) bool {
	var cl, te bool
	for len(head) > 0 {
		i := bytes.IndexByte(head, '\n')
		if i < 0 {
			break
		}
		line := head[:i]
		head = head[i+1:]
		c := bytes.IndexByte(line, ':')
		if c < 0 {
			continue
		}
		name := bytes.TrimRight(line[:c], " \t")
		cl = cl || equalFoldASCII(name, "content-length")
		te = te || equalFoldASCII(name, "transfer-encoding")
	}
	return cl && te
}

// parseFast parses the common request from its head: HTTP/1.1, GET or
// HEAD, a plain origin-form target (see plainTarget), one plain Host, at
// most 64 well-formed fields, and none of the fields that bring a body or
// change the connection (Content-Length, Transfer-Encoding, Expect,
// Upgrade, a Connection other than keep-alive or close). The request, its
// URL, header map and value slices are the connection's, reused; the
// strings point into one copy of the head (shared with the previous
// request when the bytes are the same, as they often are on keep-alive
// connections). Anything else returns false and is left to
// http.ReadRequest, which reads the same bytes.
func (hc *h1conn) parseFast(head []byte) (*http.Request, bool) {
	var method string
	switch {
	case bytes.HasPrefix(head, []byte("GET /")):
		method = http.MethodGet
	case bytes.HasPrefix(head, []byte("HEAD /")):
		method = http.MethodHead
	default:
		return nil, false
	}
	line := bytes.IndexByte(head, '\n')
	if line < 0 || !bytes.HasSuffix(head[:line+1], []byte(" HTTP/1.1\r\n")) {
		return nil, false
	}
	if string(head) != hc.head {
		hc.head = string(head)
	}
	s := hc.head
	target := s[len(method)+1 : line-len(" HTTP/1.1\r")]
	if !plainTarget(target) {
		return nil, false
	}
	h := hc.hdr
	clear(h)
	hc.vals = hc.vals[:0]
	host, hosts, closeConn := "", 0, false
	rest := head[line+1:]
	for n := 0; ; n++ {
		f, r, ok, bad := nextField(rest)
		if bad || n == 64 {
			return nil, false
		}
		if !ok {
			break
		}
		// f's bytes are at the same offsets in s.
		off := len(head) - len(rest)
		name := s[off : off+len(f.name)]
		voff := off + (cap(rest) - cap(f.value))
		value := s[voff : voff+len(f.value)]
		rest = r
		switch {
		case equalFoldASCII(f.name, "host"):
			host = value
			hosts++
			continue
		case equalFoldASCII(f.name, "content-length"), equalFoldASCII(f.name, "transfer-encoding"),
			equalFoldASCII(f.name, "expect"), equalFoldASCII(f.name, "upgrade"):
			return nil, false
		case equalFoldASCII(f.name, "connection"):
			switch {
			case equalFoldASCII(f.value, "close"):
				closeConn = true
			case equalFoldASCII(f.value, "keep-alive"):
			default:
				return nil, false
			}
		}
		key := textproto.CanonicalMIMEHeaderKey(name)
		if vv, dup := h[key]; dup {
			h[key] = append(vv, value)
			continue
		}
		hc.vals = append(hc.vals, value)
		h[key] = hc.vals[len(hc.vals)-1 : len(hc.vals) : len(hc.vals)]
	}
	if hosts != 1 || !plainHost(host) {
		return nil, false
	}
	path, query, hasQuery := strings.Cut(target, "?")
	hc.url = url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
	hc.req = http.Request{
		Method:     method,
		URL:        &hc.url,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Body:       http.NoBody,
		Close:      closeConn,
		Host:       host,
		RequestURI: target,
	}
	return &hc.req, true
}

func (s *h1server) badRequest(hc *h1conn, err error) {
	switch {
	case errors.Is(err, io.EOF):
		return
	case errors.Is(err, errHeaderTooLarge):
		s.simpleError(hc, http.StatusRequestHeaderFieldsTooLarge)
	case strings.Contains(err.Error(), "unsupported transfer encoding"):
		s.simpleError(hc, http.StatusNotImplemented)
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return
		}
		s.simpleError(hc, http.StatusBadRequest)
	}
}

func (s *h1server) simpleError(hc *h1conn, code int) {
	text := http.StatusText(code)
	hc.c.SetWriteDeadline(time.Now().Add(time.Second))
	io.WriteString(hc.c, "HTTP/1.1 "+strconv.Itoa(code)+" "+text+"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "+
		strconv.Itoa(len(text)+1)+"\r\n\r\n"+text+"\n")
	// Like net/http: half-close and read what the client is still sending
	// for a moment, so that closing with unread data does not reset the
	// connection before the client has read the error.
	if cw, ok := hc.c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		hc.c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		io.CopyN(io.Discard, hc.c, 256<<10)
	}
}

// shutdown stops accepting (the caller closes the listener), closes idle
// connections, and waits for the others to finish their request until ctx
// ends, then closes them.
func (s *h1server) shutdown(ctx context.Context) error {
	s.closing.Store(true)
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for hc := range s.conns {
			if hc.idle.Load() {
				hc.c.Close()
			}
		}
		s.mu.Unlock()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			s.mu.Lock()
			for hc := range s.conns {
				hc.c.Close()
			}
			s.mu.Unlock()
			<-done
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// continueReader sends "100 Continue" before the first read of a body
// whose client asked for it.
type continueReader struct {
	rc io.ReadCloser
	w  *h1response
}

func (c *continueReader) Read(p []byte) (int, error) {
	if !c.w.sentContinue && !c.w.wroteHeader {
		c.w.sentContinue = true
		c.w.hc.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := c.w.hc.bw.Flush(); err != nil {
			return 0, err
		}
	}
	return c.rc.Read(p)
}

func (c *continueReader) Close() error { return c.rc.Close() }

// h1response is the http.ResponseWriter of h1server. Like net/http it
// buffers up to 2 KiB of body before it sends the header, so a short
// response without Content-Length gets one; longer ones are chunked.
type h1response struct {
	hc     *h1conn
	req    *http.Request
	header http.Header

	status       int
	wroteHeader  bool // WriteHeader called
	headerSent   bool // status line and header on the wire (in bw)
	noBody       bool
	chunked      bool
	cl           int64 // declared Content-Length, -1 if none
	written      int64
	pending      []byte
	trailers     []string
	closeAfter   bool
	hijacked     bool
	sentContinue bool
}

const maxPending = 2 << 10

func (w *h1response) Header() http.Header { return w.header }

func (w *h1response) WriteHeader(code int) {
	if w.wroteHeader || w.hijacked {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// Interim response (103 Early Hints): sent at once.
		w.writeStatus(code)
		writeHeaderBlock(w.hc.bw, w.header)
		w.hc.bw.WriteString("\r\n")
		w.hc.bw.Flush()
		return
	}
	w.wroteHeader = true
	w.status = code
	w.cl = -1
	if v := w.header["Content-Length"]; len(v) == 1 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			w.cl = n
		}
	}
	if w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified {
		w.noBody = true
	}
	for _, v := range w.header["Trailer"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				w.trailers = append(w.trailers, http.CanonicalHeaderKey(name))
			}
		}
	}
}

func (w *h1response) writeStatus(code int) {
	bw := w.hc.bw
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(code))
	bw.WriteString("\r\n")
}

// sendHeader puts the status line and header into the buffer, choosing
// the framing: the declared Content-Length, else the whole body when it is
// known (final), else chunked (or close-delimited for HTTP/1.0).
func (w *h1response) sendHeader(final bool) {
	w.headerSent = true
	h := w.header
	if w.cl < 0 && !w.noBody {
		if final && len(w.trailers) == 0 {
			w.cl = int64(len(w.pending))
			h["Content-Length"] = []string{strconv.Itoa(len(w.pending))}
		} else if w.req.ProtoMinor >= 1 {
			w.chunked = true
			h["Transfer-Encoding"] = []string{"chunked"}
		} else {
			w.closeAfter = true
		}
	}
	if w.status >= 400 && w.req.ContentLength != 0 && !w.sentContinue && w.req.Header.Get("Expect") != "" {
		w.closeAfter = true
	}
	if w.closeAfter || w.req.Close {
		h["Connection"] = []string{"close"}
	} else if w.req.ProtoMinor == 0 {
		h["Connection"] = []string{"keep-alive"}
	}
	if _, ok := h["Date"]; !ok {
		h["Date"] = []string{httpDate()}
	}
	w.writeStatus(w.status)
	writeHeaderBlock(w.hc.bw, h)
	w.hc.bw.WriteString("\r\n")
}

func writeHeaderBlock(bw *bufio.Writer, h http.Header) {
	for k, vv := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) || k == "Trailer" && len(vv) == 0 {
			continue
		}
		writeField(bw, k, vv)
	}
}

// writeField writes a header field line per value, leaving out values
// with a CR or LF (which would end the field early).
func writeField(bw *bufio.Writer, k string, vv []string) {
	for _, v := range vv {
		if strings.ContainsAny(v, "\r\n") {
			continue
		}
		bw.WriteString(k)
		bw.WriteString(": ")
		bw.WriteString(v)
		bw.WriteString("\r\n")
	}
}

func (w *h1response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.noBody {
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.headerSent {
		if len(w.pending)+len(p) <= maxPending {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		w.sendHeader(false)
		if err := w.writeBody(w.pending); err != nil {
			return 0, err
		}
		w.pending = nil
	}
	if err := w.writeBody(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *h1response) writeBody(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	bw := w.hc.bw
	if w.chunked {
		bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		bw.WriteString("\r\n")
		bw.Write(p)
		_, err := bw.WriteString("\r\n")
		return err
	}
	_, err := bw.Write(p)
	return err
}

// Flush sends the header (chunked unless a length was declared) and
// whatever is buffered.
func (w *h1response) Flush() {
	if w.hijacked {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerSent {
		w.sendHeader(false)
		w.writeBody(w.pending)
		w.pending = nil
	}
	w.hc.bw.Flush()
}

// Hijack hands over the connection (WebSocket and other upgrades).
func (w *h1response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.wroteHeader {
		return nil, nil, errors.New("hijack after WriteHeader")
	}
	w.hijacked = true
	w.hc.lr.remain = 1 << 62
	return w.hc.c, bufio.NewReadWriter(w.hc.br, w.hc.bw), nil
}

// finish completes the response and flushes it.
func (w *h1response) finish() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headerSent {
		w.sendHeader(true)
		w.writeBody(w.pending)
		w.pending = nil
	}
	bw := w.hc.bw
	if w.chunked {
		bw.WriteString("0\r\n")
		for _, k := range w.trailers {
			for _, v := range w.header[k] {
				if !strings.ContainsAny(v, "\r\n") {
					bw.WriteString(k + ": " + v + "\r\n")
				}
			}
		}
		for k, vv := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				for _, v := range vv {
					if !strings.ContainsAny(v, "\r\n") {
						bw.WriteString(name + ": " + v + "\r\n")
					}
				}
			}
		}
		bw.WriteString("\r\n")
	}
	if w.cl >= 0 && w.written < w.cl && !w.noBody {
		w.closeAfter = true // short body: the client must not wait for more
	}
	return bw.Flush()
}

// httpDate returns the current time in HTTP format, cached per second.
func httpDate() string {
	now := time.Now().Unix()
	if d := dateCache.Load(); d != nil && d.unix == now {
		return d.s
	}
	d := &cachedDate{unix: now, s: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.s
}

type cachedDate struct {
	unix int64
	s    string
}

var dateCache atomic.Pointer[cachedDate]
