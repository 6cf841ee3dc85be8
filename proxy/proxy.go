// Package proxy is the region proxy tier: an embedded L7 HTTP (HTTP/1.1,
// HTTP/2, h2c, WebSocket, gRPC) and L4 TCP load balancer that sits in front
// of one region's servers. Its aggregate health (Healthy, and the region
// health endpoint) is what the GSLB probers check for the region.
//
// One balancer serves both protocols: a Group of Backends picks by the
// group's algorithm from an immutable view that is rebuilt (and swapped
// atomically) on health changes, ejections, drains and slow-start steps.
// The route table, groups and certificates are swapped atomically on
// Reload, so the request path takes no lock.
//
// Cleartext HTTP/1.x (and HTTP/1.1 over TLS) is served by the package's own
// HTTP/1 front and, for body-less idempotent requests to cleartext
// backends, forwarded on pooled connections by the handler's goroutine;
// HTTP/2, h2c, upgrades, bodies and TLS backends use net/http.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// state is one immutable configuration generation.
type state struct {
	cfg       Config
	groups    map[string]*Group
	routes    map[string][]*route // by listener name
	trusted   []netip.Prefix
	certs     map[string][]*tls.Certificate // by listener name
	listeners map[string]*ListenerConfig
	checks    context.CancelFunc
	spill     *spiller // nil without spill peers
}

// Proxy is a running region proxy. Its methods are safe for concurrent use.
type Proxy struct {
	log     *slog.Logger
	state   atomic.Pointer[state]
	metrics *metrics
	spillm  *spillMetrics

	mu         sync.Mutex // serialises Start, Reload, Shutdown and drains
	started    bool
	closed     bool
	listeners  map[string]*listener
	backends   map[string]*Backend // by group name + "\x00" + address
	transports map[string]*http.Transport
	wg         sync.WaitGroup
}

// New validates cfg and builds a proxy; Start opens its listeners. logger
// may be nil (slog.Default).
func New(cfg Config, logger *slog.Logger) (*Proxy, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Proxy{
		log:        logger.With("component", "proxy"),
		metrics:    newMetrics(),
		spillm:     newSpillMetrics(),
		listeners:  map[string]*listener{},
		backends:   map[string]*Backend{},
		transports: map[string]*http.Transport{},
	}
	st, err := p.build(cfg)
	if err != nil {
		return nil, err
	}
	p.state.Store(st)
	p.backends = st.backendSet()
	return p, nil
}

// build turns a validated config into a state, reusing live backends and
// transports. It must be called with p.mu held (or before the proxy is
// shared).
func (p *Proxy) build(cfg Config) (*state, error) {
	st := &state{
		cfg:       cfg,
		groups:    map[string]*Group{},
		routes:    map[string][]*route{},
		certs:     map[string][]*tls.Certificate{},
		listeners: map[string]*ListenerConfig{},
	}
	for _, s := range cfg.TrustedProxies {
		pr, _ := parsePrefix(s) // checked by Validate
		st.trusted = append(st.trusted, pr)
	}
	var err error
	if st.spill, err = newSpiller(cfg.Spill, cfg.RegionHealthPath, cfg.Timeouts, p.spillm, p.log.Info); err != nil {
		return nil, err
	}
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		st.listeners[l.Name] = l
		if l.TLS == nil {
			continue
		}
		for j, cc := range l.TLS.Certificates {
			c, err := tls.LoadX509KeyPair(cc.CertFile, cc.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("proxy.listeners[%d].tls.certificates[%d]: %w", i, j, err)
			}
			st.certs[l.Name] = append(st.certs[l.Name], &c)
		}
	}
	for _, gc := range cfg.Groups {
		bs := make([]*Backend, len(gc.Backends))
		for i, bc := range gc.Backends {
			b := p.backends[gc.Name+"\x00"+bc.Address]
			if b == nil || b.draining.Load() && !bc.Drain {
				// A backend that was draining comes back as a new one, so
				// that its pending drain deadline cuts only old connections.
				b = newBackend(bc.Address)
			}
			if bc.Drain && !b.draining.Swap(true) {
				time.AfterFunc(cfg.DrainTimeout, b.drainCancel)
			}
			bs[i] = b
		}
		g := newGroup(gc, bs, cfg.Timeouts, p.log)
		g.transport = p.transport(gc, cfg.Timeouts)
		st.groups[gc.Name] = g
	}
	for i := range cfg.Routes {
		rc := &cfg.Routes[i]
		rt := newRoute(rc, st.groups[rc.Backends], p.metrics)
		names := rc.Listeners
		if len(names) == 0 {
			for _, l := range cfg.Listeners {
				if l.Protocol != "tcp" {
					names = append(names, l.Name)
				}
			}
		}
		for _, n := range names {
			st.routes[n] = append(st.routes[n], rt)
		}
	}
	return st, nil
}

func (p *Proxy) transport(gc GroupConfig, t Timeouts) *http.Transport {
	key := fmt.Sprint(gc.TLS, gc.TLSServerName, gc.TLSInsecureSkipVerify, gc.H2C, t)
	if tr := p.transports[key]; tr != nil {
		return tr
	}
	d := &net.Dialer{Timeout: t.Connect, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext:           d.DialContext,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       t.Idle,
		ResponseHeaderTimeout: t.Response,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ReadBufferSize:        16 << 10,
		WriteBufferSize:       16 << 10,
	}
	if gc.TLS {
		tr.TLSClientConfig = &tls.Config{ServerName: gc.TLSServerName, InsecureSkipVerify: gc.TLSInsecureSkipVerify}
		tr.ForceAttemptHTTP2 = true
	}
	if gc.H2C {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	p.transports[key] = tr
	return tr
}

// startChecks starts the active health checkers of st.
func (p *Proxy) startChecks(st *state) {
	ctx, cancel := context.WithCancel(context.Background())
	st.checks = cancel
	st.spill.start(ctx, &p.wg)
	for _, g := range st.groups {
		hc := g.cfg.HealthCheck
		if hc == nil {
			continue
		}
		client := &http.Client{
			Transport: &http.Transport{
				DisableKeepAlives: true,
				TLSClientConfig:   &tls.Config{ServerName: g.cfg.TLSServerName, InsecureSkipVerify: g.cfg.TLSInsecureSkipVerify},
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		for _, b := range g.backends {
			c := &checker{g: g, b: b, hc: *hc, client: client}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				c.run(ctx)
			}()
		}
	}
}

// Start opens the listeners and starts serving and health checking. The
// listening addresses are available from Addrs afterwards. ctx bounds
// nothing after Start returns; call Shutdown to stop.
func (p *Proxy) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started {
		return errors.New("proxy: already started")
	}
	st := p.state.Load()
	for i := range st.cfg.Listeners {
		lc := st.cfg.Listeners[i]
		l, err := p.listen(ctx, lc)
		if err != nil {
			for _, l := range p.listeners {
				l.close()
			}
			p.listeners = map[string]*listener{}
			return fmt.Errorf("proxy.listeners[%d]: %w", i, err)
		}
		p.listeners[lc.Name] = l
	}
	for _, l := range p.listeners {
		l.serve()
	}
	p.startChecks(st)
	p.started = true
	p.log.Info("proxy started", "listeners", p.addrsLocked())
	return nil
}

// Addrs returns the listening address of every listener by name.
func (p *Proxy) Addrs() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrsLocked()
}

func (p *Proxy) addrsLocked() map[string]string {
	m := make(map[string]string, len(p.listeners))
	for n, l := range p.listeners {
		m[n] = l.ln.Addr().String()
	}
	return m
}

// ReadyLine is the line `gslb proxy` prints when it is serving, e.g.
// "proxy ready http=127.0.0.1:41234 tcp=127.0.0.1:41235" (listener names
// sorted).
func (p *Proxy) ReadyLine() string {
	addrs := p.Addrs()
	names := make([]string, 0, len(addrs))
	for n := range addrs {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("proxy ready")
	for _, n := range names {
		fmt.Fprintf(&b, " %s=%s", n, addrs[n])
	}
	return b.String()
}

// Reload validates cfg and swaps it in. On any error (validation,
// certificates, a new listener that cannot bind) the running config stays.
// In-flight requests and established TCP connections are not interrupted:
// listeners whose name, address and protocol are unchanged keep their
// sockets; removed listeners and backends drain for DrainTimeout.
func (p *Proxy) Reload(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("proxy: reload after shutdown")
	}
	old := p.state.Load()
	st, err := p.build(cfg)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	var opened []*listener
	if p.started {
		for i := range cfg.Listeners {
			lc := cfg.Listeners[i]
			if l := p.listeners[lc.Name]; l != nil && (l.cfg.Address == lc.Address || l.ln.Addr().String() == lc.Address) && l.cfg.Protocol == lc.Protocol && l.cfg.H2C == lc.H2C {
				keep[lc.Name] = true
				continue
			}
			l, err := p.listen(context.Background(), lc)
			if err != nil {
				for _, l := range opened {
					l.close()
				}
				for _, g := range st.groups {
					g.close()
				}
				return fmt.Errorf("proxy.listeners[%d]: %w", i, err)
			}
			opened = append(opened, l)
		}
	}
	p.state.Store(st)
	// Backends that are gone drain: no new requests, and established TCP
	// connections are cut when the drain deadline passes.
	live := st.backendSet()
	for k, b := range p.backends {
		if live[k] == nil {
			p.drainBackend(b, cfg.DrainTimeout)
		}
	}
	p.backends = live
	for _, g := range old.groups {
		g.close()
	}
	old.spill.close()
	if old.checks != nil {
		old.checks()
	}
	if p.started {
		for n, l := range p.listeners {
			if !keep[n] {
				delete(p.listeners, n)
				go l.shutdown(cfg.DrainTimeout)
			}
		}
		for _, l := range opened {
			p.listeners[l.cfg.Name] = l
			l.serve()
		}
		p.startChecks(st)
	}
	p.log.Info("proxy reloaded", "routes", len(cfg.Routes), "groups", len(cfg.Groups))
	return nil
}

// backendSet returns the state's backends by group name and address.
func (st *state) backendSet() map[string]*Backend {
	live := map[string]*Backend{}
	for _, g := range st.groups {
		for _, b := range g.backends {
			live[g.name+"\x00"+b.addr] = b
		}
	}
	return live
}

func (p *Proxy) drainBackend(b *Backend, timeout time.Duration) {
	b.draining.Store(true)
	if g := b.group.Load(); g != nil {
		g.rebuild()
	}
	time.AfterFunc(timeout, b.drainCancel)
}

// SetDraining marks a backend of a group draining (it takes no new
// requests; established TCP connections are cut after the drain timeout)
// or takes it back into service.
func (p *Proxy) SetDraining(group, addr string, draining bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.state.Load()
	g := st.groups[group]
	if g == nil {
		return fmt.Errorf("drain %s/%s: unknown group %q", group, addr, group)
	}
	for _, b := range g.backends {
		if b.addr == addr {
			if draining {
				p.drainBackend(b, st.cfg.DrainTimeout)
				return nil
			}
			if b.drainCtx.Err() != nil {
				return fmt.Errorf("undrain %s/%s: drain deadline passed; reload to restore it", group, addr)
			}
			b.draining.Store(false)
			g.rebuild()
			return nil
		}
	}
	return fmt.Errorf("drain %s/%s: unknown backend %q", group, addr, addr)
}

// Group returns the current group of that name, or nil.
func (p *Proxy) Group(name string) *Group { return p.state.Load().groups[name] }

// Healthy reports the aggregate health: true when every route and every
// TCP listener has at least one available backend (primary or backup).
func (p *Proxy) Healthy() bool {
	ok, _ := p.state.Load().health()
	return ok
}

// health returns whether every used group is healthy and the names of the
// unhealthy ones.
func (st *state) health() (bool, []string) {
	var bad []string
	seen := map[string]bool{}
	check := func(g *Group) {
		if g == nil || seen[g.name] {
			return
		}
		seen[g.name] = true
		if !g.Healthy() {
			bad = append(bad, g.name)
		}
	}
	for _, rc := range st.cfg.Routes {
		check(st.groups[rc.Backends])
	}
	for _, lc := range st.cfg.Listeners {
		if lc.Protocol == "tcp" {
			check(st.groups[lc.Backends])
		}
	}
	sort.Strings(bad)
	return len(bad) == 0, bad
}

// Shutdown stops accepting connections, waits for in-flight requests and
// TCP connections to finish until ctx ends, then closes what remains.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	st := p.state.Load()
	if st.checks != nil {
		st.checks()
	}
	for _, g := range st.groups {
		g.close()
	}
	ls := p.listeners
	p.listeners = map[string]*listener{}
	p.mu.Unlock()

	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, l := range ls {
		wg.Go(func() {
			if err := l.shutdownCtx(ctx); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		})
	}
	wg.Wait()
	p.wg.Wait()
	p.mu.Lock()
	for _, tr := range p.transports {
		tr.CloseIdleConnections()
	}
	st.spill.close()
	for _, b := range p.backends {
		b.pool.closeAll()
	}
	p.mu.Unlock()
	return errors.Join(errs...)
}
