package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// listener is one open socket and what serves it.
type listener struct {
	p    *Proxy
	cfg  ListenerConfig
	ln   net.Listener
	srv  *http.Server  // https and h2c
	h1   *h1server     // http, and https HTTP/1.x
	h2ln *chanListener // https: h2 connections for srv
	tcp  *tcpServer    // tcp
}

func (p *Proxy) listen(ctx context.Context, lc ListenerConfig) (*listener, error) {
	var lcfg net.ListenConfig
	ln, err := lcfg.Listen(ctx, "tcp", lc.Address)
	if err != nil {
		return nil, err
	}
	l := &listener{p: p, cfg: lc, ln: ln}
	if lc.Protocol == "tcp" {
		l.tcp = &tcpServer{p: p, name: lc.Name, ln: ln, conns: map[net.Conn]struct{}{}}
		return l, nil
	}
	st := p.state.Load()
	h := &handler{p: p, listener: lc.Name, tls: lc.Protocol == "https"}
	if lc.Protocol == "http" && !lc.H2C {
		l.h1 = &h1server{h: h, readHeader: st.cfg.Timeouts.ReadHeader, idle: st.cfg.Timeouts.Idle,
			maxHeaderBytes: st.cfg.MaxHeaderBytes, conns: map[*h1conn]struct{}{}}
		return l, nil
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: st.cfg.Timeouts.ReadHeader,
		IdleTimeout:       st.cfg.Timeouts.Idle,
		MaxHeaderBytes:    st.cfg.MaxHeaderBytes,
		ErrorLog:          log.New(slogWriter{p.log}, "", 0),
		// PX-12: at most 100 concurrent streams per HTTP/2 connection, and
		// bounded header and frame sizes (net/http also bounds resets and
		// CONTINUATION floods).
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 100, MaxDecoderHeaderTableSize: 4096, MaxReadFrameSize: 1 << 20},
	}
	if lc.H2C {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	if lc.Protocol == "https" {
		name := lc.Name
		srv.TLSConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"h2", "http/1.1"},
			GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
				certs := p.state.Load().certs[name]
				if len(certs) == 0 {
					return nil, errors.New("no certificate")
				}
				for _, c := range certs {
					if hello.SupportsCertificate(c) == nil {
						return c, nil
					}
				}
				return certs[0], nil
			},
		}
	}
	l.srv = srv
	if lc.Protocol == "https" {
		// HTTP/1.1 over TLS is served by h1server too; connections that
		// negotiate h2 go to net/http through a channel listener.
		l.h1 = &h1server{h: h, readHeader: st.cfg.Timeouts.ReadHeader, idle: st.cfg.Timeouts.Idle,
			maxHeaderBytes: st.cfg.MaxHeaderBytes, conns: map[*h1conn]struct{}{}}
		l.h2ln = &chanListener{ch: make(chan net.Conn), done: make(chan struct{}), addr: ln.Addr()}
	}
	return l, nil
}

// chanListener hands already accepted (and TLS-handshaken) connections to
// an http.Server.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func (c *chanListener) Accept() (net.Conn, error) {
	select {
	case conn := <-c.ch:
		return conn, nil
	case <-c.done:
		return nil, net.ErrClosed
	}
}

func (c *chanListener) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

func (c *chanListener) Addr() net.Addr { return c.addr }

// serveTLS accepts TLS connections: after the handshake, h2 goes to
// net/http and everything else to h1server.
func (l *listener) serveTLS() error {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.h1.closing.Load() || errors.Is(err, net.ErrClosed) {
				return http.ErrServerClosed
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		go func() {
			tc := tls.Server(rawNetConn(c), l.srv.TLSConfig)
			if d := l.h1.readHeader; d > 0 {
				tc.SetDeadline(time.Now().Add(d))
			}
			if err := tc.Handshake(); err != nil {
				c.Close()
				return
			}
			tc.SetDeadline(time.Time{})
			if tc.ConnectionState().NegotiatedProtocol == "h2" {
				select {
				case l.h2ln.ch <- tc:
				case <-l.h2ln.done:
					tc.Close()
				}
				return
			}
			if hc := l.h1.add(tc); hc != nil {
				l.h1.serveConn(hc)
			}
		}()
	}
}

func (l *listener) serve() {
	l.p.wg.Add(1)
	go func() {
		defer l.p.wg.Done()
		var err error
		switch {
		case l.tcp != nil:
			l.tcp.serve()
			return
		case l.cfg.Protocol == "https":
			go l.srv.Serve(l.h2ln)
			err = l.serveTLS()
		case l.h1 != nil:
			err = l.h1.serve(l.ln)
		default:
			err = l.srv.Serve(l.ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.p.log.Error("listener stopped", "listener", l.cfg.Name, "err", err)
		}
	}()
}

// close closes a listener that never served.
func (l *listener) close() { l.ln.Close() }

// shutdown drains the listener for at most d.
func (l *listener) shutdown(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := l.shutdownCtx(ctx); err != nil {
		l.p.log.Warn("listener drain cut short", "listener", l.cfg.Name, "err", err)
	}
}

func (l *listener) shutdownCtx(ctx context.Context) error {
	if l.tcp != nil {
		return l.tcp.shutdown(ctx)
	}
	if l.h1 != nil {
		l.h1.closing.Store(true)
		l.ln.Close()
		err := l.h1.shutdown(ctx)
		if l.srv != nil {
			if e := l.srv.Shutdown(ctx); e != nil {
				l.srv.Close()
				err = errors.Join(err, e)
			}
		}
		return err
	}
	err := l.srv.Shutdown(ctx)
	if err != nil {
		l.srv.Close()
	}
	return err
}

// slogWriter sends net/http's server error log to slog at debug level
// (TLS handshake errors and the like are per-connection noise).
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(b []byte) (int, error) {
	w.log.Debug(string(b))
	return len(b), nil
}

// tcpServer is a tcp listener's accept loop and its live connections.
type tcpServer struct {
	p    *Proxy
	name string
	ln   net.Listener

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func (t *tcpServer) serve() {
	var delay time.Duration
	for {
		c, err := t.ln.Accept()
		if err != nil {
			t.mu.Lock()
			closed := t.closed
			t.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.p.log.Warn("tcp accept", "listener", t.name, "err", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			c.Close()
			return
		}
		t.conns[c] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go func() {
			defer func() {
				t.mu.Lock()
				delete(t.conns, c)
				t.mu.Unlock()
				t.wg.Done()
			}()
			t.p.serveTCP(t.name, c)
		}()
	}
}

// shutdown stops accepting, waits for connections until ctx ends, then
// closes the rest.
func (t *tcpServer) shutdown(ctx context.Context) error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.ln.Close()
	done := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		t.mu.Lock()
		for c := range t.conns {
			c.Close()
		}
		t.mu.Unlock()
		<-done
		return ctx.Err()
	}
}
