package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// The fast path for the most common request: an idempotent HTTP/1.1
// request without a body to a cleartext backend. http.Transport hands each
// request to two goroutines per connection (its read and write loops); here
// the handler's goroutine writes the request and reads the response on a
// pooled connection itself. Everything else (bodies, upgrades, TLS, h2c)
// goes through http.Transport.

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

var errStale = errors.New("backend closed a keep-alive connection")

// roundTripH1 sends a body-less request on a pooled connection (or a new
// one) and returns the response; its Body gives the connection back to the
// pool when read to the end. A reused connection that fails is retried once
// on a new connection: the request is idempotent and has no body.
func (b *Backend) roundTripH1(out *http.Request, t *Timeouts) (*http.Response, error) {
	if b.drainCtx.Err() != nil {
		return nil, errors.New("backend drained")
	}
	for attempt := 0; ; attempt++ {
		bc := b.pool.get(t.Idle)
		reused := bc != nil
		if bc == nil {
			d := net.Dialer{Timeout: t.Connect, KeepAlive: 30 * time.Second}
			c, err := d.DialContext(out.Context(), "tcp", b.addr)
			if err != nil {
				return nil, err
			}
			bc = &bconn{c: c, br: bufio.NewReaderSize(c, 16<<10), bw: bufio.NewWriterSize(c, 8<<10)}
			if !b.pool.add(bc) {
				c.Close()
				return nil, errors.New("backend drained")
			}
		}
		resp, err := bc.exchange(out, t, &b.pool)
		if err == nil {
			return resp, nil
		}
		b.pool.drop(bc)
		if !reused || attempt > 0 || out.Context().Err() != nil {
			return nil, err
		}
	}
}

func (bc *bconn) exchange(out *http.Request, t *Timeouts, pool *connPool) (*http.Response, error) {
	stop := noStop
	if ctx := out.Context(); ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { bc.c.SetDeadline(aLongTimeAgo) })
	}
	if err := out.Write(bc.bw); err != nil {
		stop()
		return nil, err
	}
	if err := bc.bw.Flush(); err != nil {
		stop()
		return nil, err
	}
	if t.Response > 0 {
		bc.c.SetReadDeadline(time.Now().Add(t.Response))
	}
	var resp *http.Response
	var err error
	for {
		resp, err = http.ReadResponse(bc.br, out)
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
