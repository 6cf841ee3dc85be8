package proxy_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gslbd/gslb/proxy"
	"github.com/gslbd/gslb/proxy/proxytest"
	"github.com/prometheus/client_golang/prometheus"
)

const spillSecret = "spill-test-secret-0123456789abcdef"

// spillRegion is one region's proxy in front of its backends.
type spillRegion struct {
	name string
	p    *proxy.Proxy
	url  string
	cfg  proxy.Config
}

func startRegion(t *testing.T, name string, g proxy.GroupConfig, peers ...*spillRegion) *spillRegion {
	t.Helper()
	cfg := proxytest.HTTPConfig(g)
	cfg.Spill = spillConfig(name, peers...)
	p := proxytest.Start(t, cfg)
	return &spillRegion{name: name, p: p, url: "http://" + p.Addrs()["http"], cfg: cfg}
}

func spillConfig(name string, peers ...*spillRegion) *proxy.SpillConfig {
	s := &proxy.SpillConfig{Region: name, Secret: spillSecret, CheckInterval: 50 * time.Millisecond}
	for _, p := range peers {
		s.Peers = append(s.Peers, proxy.SpillPeer{Region: p.name, Address: p.p.Addrs()["http"]})
	}
	return s
}

// headerBackend records the headers of the last request it served.
type headerBackend struct {
	addr string
	mu   sync.Mutex
	last http.Header
	body string
}

func newHeaderBackend(t *testing.T, name string) *headerBackend {
	hb := &headerBackend{}
	hb.addr = httpBackendFunc(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hb.mu.Lock()
		hb.last, hb.body = r.Header.Clone(), string(b)
		hb.mu.Unlock()
		w.Header().Set("X-Backend", name)
		io.WriteString(w, name)
	})
	return hb
}

func (hb *headerBackend) seen() (http.Header, string) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	return hb.last, hb.body
}

func do(t testing.TB, c *http.Client, method, url, body string, hdr ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Backend")
}

// PX-01 (issue 17): every server of a region dies while its proxy lives:
// idempotent requests that were on their way to a dead backend and the
// ones after it are served by the next region's proxy; a request crosses
// one region at most; the spill header is authenticated, never reaches a
// backend, and a forged one is neither trusted nor spilled.
func TestSpillOver(t *testing.T) {
	far := newHeaderBackend(t, "far")
	b := startRegion(t, "us-east", proxy.GroupConfig{Name: "web", Backends: []proxy.BackendConfig{{Address: far.addr}}})
	local := proxytest.NewBackends(t, 2)
	g := proxytest.Group("web", proxy.AlgRoundRobin, local...)
	g.HealthCheck = &proxy.HealthCheckConfig{Type: "http", Path: "/healthz", Interval: 20 * time.Millisecond, Fails: 1, Passes: 1}
	a := startRegion(t, "eu-west", g, b)
	c := client()

	if code, be := do(t, c, "GET", a.url+"/", ""); code != 200 || !strings.HasPrefix(be, "b") {
		t.Fatalf("GET with eu-west's servers up: %d from %q, want 200 from a local backend", code, be)
	}
	local[0].Close()
	local[1].Close()
	// The first requests find backends that refuse connections (retried,
	// then spilled); the following ones find none available once ejected.
	for i := range 40 {
		code, be := do(t, c, "GET", a.url+"/", "")
		if code != 200 || be != "far" {
			t.Fatalf("GET %d after eu-west's servers died: %d from %q, want 200 from us-east's far", i, code, be)
		}
	}
	h, _ := far.seen()
	if got := h.Get("X-Forwarded-For"); got != "127.0.0.1, 127.0.0.1" {
		t.Errorf("spilled request: X-Forwarded-For %q, want the client then eu-west's proxy", got)
	}
	if len(h[proxy.SpillHeader]) != 0 {
		t.Errorf("the spill header reached the backend: %q", h[proxy.SpillHeader])
	}
	// A POST that no backend has seen is spilled too (non_idempotent:
	// spill, the default), body and all, once the checks found every
	// server down. (Before that, a POST sent to a dead server fails with
	// 502 as it does without spill-over: the transport consumed it.)
	proxytest.Eventually(t, "eu-west's servers checked down", func() bool { return !a.p.Healthy() })
	if code, be := do(t, c, "POST", a.url+"/form", "payload"); code != 200 || be != "far" {
		t.Fatalf("POST with no backend in eu-west: %d from %q, want 200 from far", code, be)
	}
	if _, body := far.seen(); body != "payload" {
		t.Errorf("spilled POST body: %q, want payload", body)
	}

	if st := a.p.SpillStatus(); st.Region != "eu-west" || len(st.Peers) != 1 || st.Peers[0].Sent != 41 {
		t.Errorf("eu-west's spill status: %+v, want 41 requests sent to us-east", st)
	}
	if st := b.p.SpillStatus(); st.Received["eu-west"] != 41 {
		t.Errorf("us-east's spill status: %+v, want 41 requests received from eu-west", st)
	}
	t.Run("forged header", func(t *testing.T) {
		// A client's own spill header is not trusted at us-east: its
		// X-Forwarded-For is replaced by the real peer.
		code, _ := do(t, c, "GET", b.url+"/", "", proxy.SpillHeader, "v1 eu-west 1 10.9.9.9 AAAA", "X-Forwarded-For", "10.9.9.9")
		h, _ := far.seen()
		if code != 200 || h.Get("X-Forwarded-For") != "127.0.0.1" || len(h[proxy.SpillHeader]) != 0 {
			t.Errorf("forged spill header at us-east: %d, backend saw X-Forwarded-For %q and spill header %q; want 200, 127.0.0.1 and none",
				code, h.Get("X-Forwarded-For"), h[proxy.SpillHeader])
		}
		// ... and at eu-west, with no server left, it is not spilled (it
		// says it crossed a region already).
		if code, _ := do(t, c, "GET", a.url+"/", "", proxy.SpillHeader, "v1 x 1 10.9.9.9 AAAA"); code != http.StatusServiceUnavailable {
			t.Errorf("request with a spill header at eu-west with no server: %d, want 503 (not spilled again)", code)
		}
	})

	t.Run("refuse non-idempotent", func(t *testing.T) {
		cfg := a.cfg
		s := *cfg.Spill
		s.NonIdempotent = "refuse"
		cfg.Spill = &s
		if err := a.p.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		defer a.p.Reload(a.cfg)
		if code, _ := do(t, c, "POST", a.url+"/form", "payload"); code != http.StatusServiceUnavailable {
			t.Errorf("POST with non_idempotent: refuse: %d, want 503", code)
		}
		if code, be := do(t, c, "GET", a.url+"/", ""); code != 200 || be != "far" {
			t.Errorf("GET with non_idempotent: refuse: %d from %q, want 200 from far", code, be)
		}
	})

	t.Run("one region at most", func(t *testing.T) {
		// us-east's servers die too, and us-east spills to eu-west: a
		// request from eu-west to us-east is not sent back.
		cfg := b.cfg
		cfg.Spill = spillConfig("us-east", a)
		cfg.Groups = []proxy.GroupConfig{{Name: "web", Backends: []proxy.BackendConfig{{Address: "127.0.0.1:1"}}}}
		if err := b.p.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		code, _ := do(t, c, "GET", a.url+"/", "")
		if code != http.StatusBadGateway && code != http.StatusServiceUnavailable {
			t.Errorf("GET with no server in either region: %d, want 502 or 503 from us-east", code)
		}
	})
}

// A peer whose region health fails is skipped: the next peer takes the
// spilled requests, and the first one again once it recovers.
func TestSpillSkipsUnhealthyPeer(t *testing.T) {
	nb, fb := proxytest.NewBackend(t, "near"), proxytest.NewBackend(t, "far")
	nearG := proxytest.Group("web", proxy.AlgRoundRobin, nb)
	nearG.HealthCheck = &proxy.HealthCheckConfig{Type: "http", Path: "/healthz", Interval: 20 * time.Millisecond, Fails: 1, Passes: 1}
	near := startRegion(t, "near", nearG)
	far := startRegion(t, "far", proxytest.Group("web", proxy.AlgRoundRobin, fb))
	a := startRegion(t, "home", proxy.GroupConfig{Name: "web", Backends: []proxy.BackendConfig{{Address: "127.0.0.1:1"}}}, near, far)
	c := client()
	if code, be := do(t, c, "GET", a.url+"/", ""); code != 200 || be != "near" {
		t.Fatalf("GET spilled: %d from %q, want 200 from the first peer's near", code, be)
	}
	nb.SetHealthy(false)
	proxytest.Eventually(t, "the near peer checked down", func() bool { return !peerUp(a.p, "near") })
	if code, be := do(t, c, "GET", a.url+"/", ""); code != 200 || be != "far" {
		t.Fatalf("GET spilled with the near region unhealthy: %d from %q, want 200 from far", code, be)
	}
	nb.SetHealthy(true)
	proxytest.Eventually(t, "the near peer checked up", func() bool { return peerUp(a.p, "near") })
	if code, be := do(t, c, "GET", a.url+"/", ""); code != 200 || be != "near" {
		t.Fatalf("GET spilled after the near region recovered: %d from %q, want 200 from near", code, be)
	}
}

func peerUp(p *proxy.Proxy, region string) bool {
	for _, x := range p.SpillStatus().Peers {
		if x.Region == region {
			return x.Up
		}
	}
	return false
}

func TestSpillConfig(t *testing.T) {
	g := proxy.GroupConfig{Name: "web", Backends: []proxy.BackendConfig{{Address: "127.0.0.1:1"}}}
	for _, tc := range []struct {
		name string
		s    proxy.SpillConfig
		want string
	}{
		{"bad rule", proxy.SpillConfig{NonIdempotent: "maybe"}, `proxy.spill.non_idempotent: "maybe" must be spill or refuse`},
		{"bad address", proxy.SpillConfig{Peers: []proxy.SpillPeer{{Region: "x", Address: "nowhere"}}}, `proxy.spill.peers[0].address: "nowhere" is not host:port`},
		{"bad region", proxy.SpillConfig{Peers: []proxy.SpillPeer{{Region: "a b", Address: "127.0.0.1:1"}}}, `proxy.spill.peers[0].region: "a b" must be a region name`},
		{"tcp of an http listener", proxy.SpillConfig{Peers: []proxy.SpillPeer{{Region: "x", Address: "127.0.0.1:1", TCP: map[string]string{"http": "127.0.0.1:2"}}}}, `proxy.spill.peers[0].tcp: "http" is not a tcp listener`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := proxytest.HTTPConfig(g)
			cfg.Spill = &tc.s
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate: %v, want %s", err, tc.want)
			}
		})
	}
	// Peers without a secret or region: New says which key is missing.
	cfg := proxytest.HTTPConfig(g)
	cfg.Spill = &proxy.SpillConfig{Region: "a", Peers: []proxy.SpillPeer{{Region: "b", Address: "127.0.0.1:1"}}}
	if _, err := proxy.New(cfg, nil); err == nil || !strings.Contains(err.Error(), "proxy.spill.secret: required") {
		t.Errorf("spill without a secret: %v, want proxy.spill.secret: required", err)
	}
}

// spilled returns a proxy's gslb_proxy_spilled_total series as
// "route region reason" -> count.
func spilled(t *testing.T, p *proxy.Proxy) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(p)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "gslb_proxy_spilled_total" {
			for _, m := range mf.GetMetric() {
				l := map[string]string{}
				for _, lp := range m.GetLabel() {
					l[lp.GetName()] = lp.GetValue()
				}
				out[l["route"]+" "+l["region"]+" "+l["reason"]] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// PX-13 (issue 17): a new TCP connection that finds no backend goes to the
// peer's listener for the same service; a connection from a peer is not
// spilled again. The two regions listen on their own loopback addresses.
func TestSpillTCP(t *testing.T) {
	if _, err := net.Listen("tcp", "127.0.0.22:0"); err != nil {
		t.Skip("needs 127.0.0.21 and 127.0.0.22 (all of 127/8 on loopback, as on Linux):", err)
	}
	far := tcpBackend(t, func(c net.Conn) { io.WriteString(c, "far\n") })
	cfg := func(ip, backend string) proxy.Config {
		return proxy.Config{
			Listeners: []proxy.ListenerConfig{{Name: "http", Address: ip + ":0"}, {Name: "db", Address: ip + ":0", Protocol: "tcp", Backends: "db"}},
			Groups:    []proxy.GroupConfig{{Name: "db", Backends: []proxy.BackendConfig{{Address: backend}}, Outlier: &proxy.OutlierConfig{ConsecutiveFailures: -1}}},
		}
	}
	acfg := cfg("127.0.0.21", "127.0.0.1:1") // no server here
	a := proxytest.Start(t, acfg)
	peer := func(name string, p *proxy.Proxy) proxy.SpillPeer {
		return proxy.SpillPeer{Region: name, Address: p.Addrs()["http"], TCP: map[string]string{"db": p.Addrs()["db"]}}
	}
	bcfg := cfg("127.0.0.22", far)
	bcfg.Spill = &proxy.SpillConfig{Region: "b", Secret: spillSecret, Peers: []proxy.SpillPeer{peer("a", a)}}
	b := proxytest.Start(t, bcfg)
	// A running proxy keeps its config's slices: a new config is built for
	// each reload, never an old one changed.
	acfg = cfg("127.0.0.21", "127.0.0.1:1")
	acfg.Spill = &proxy.SpillConfig{Region: "a", Secret: spillSecret, Peers: []proxy.SpillPeer{peer("b", b)}}
	acfg.Listeners[0].Address, acfg.Listeners[1].Address = a.Addrs()["http"], a.Addrs()["db"]
	if err := a.Reload(acfg); err != nil {
		t.Fatal(err)
	}
	read := func() string {
		c, err := net.DialTimeout("tcp", a.Addrs()["db"], 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(c)
		if err != nil {
			// The answer, and then the end of it: the server's close
			// passed on through both proxies.
			t.Fatalf("read through a: %q, then %v; want the connection closed after it", got, err)
		}
		return string(got)
	}
	if got := read(); got != "far\n" {
		t.Fatalf("connection to a with no server: read %q, want far's answer through b", got)
	}
	if got := spilled(t, a); len(got) != 1 || got["db b no_backend"] != 1 {
		t.Errorf("a's gslb_proxy_spilled_total: %v, want db to b, no_backend: 1", got)
	}
	// b's server dies too (b's region health stays good: no check, no
	// ejection): a connection spilled from a to b is not sent back.
	spill := bcfg.Spill
	bcfg = cfg("127.0.0.22", "127.0.0.1:1")
	bcfg.Spill = spill
	bcfg.Listeners[0].Address, bcfg.Listeners[1].Address = b.Addrs()["http"], b.Addrs()["db"]
	if err := b.Reload(bcfg); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "" {
		t.Fatalf("connection with no server in a or b: read %q, want the connection closed", got)
	}
	if got := spilled(t, b); len(got) != 0 {
		t.Errorf("b's gslb_proxy_spilled_total: %v, want none (nothing sent back to a)", got)
	}
}

// BenchmarkSpill measures the added latency of a spilled request on
// loopback: one GET at a time (no parallelism, so ns/op is the latency)
// through us-east's proxy to its backend (direct), and through eu-west's
// proxy, which has no server and spills it to us-east's (spilled).
func BenchmarkSpill(b *testing.B) {
	be := proxytest.NewBackend(b, "far")
	bcfg := proxytest.HTTPConfig(proxytest.Group("web", proxy.AlgRoundRobin, be))
	bcfg.RequestIDHeader = "-"
	bcfg.Spill = &proxy.SpillConfig{Region: "us-east", Secret: spillSecret}
	far := proxytest.Start(b, bcfg)
	acfg := proxytest.HTTPConfig(proxy.GroupConfig{Name: "web", Backends: []proxy.BackendConfig{{Address: "127.0.0.1:1", Drain: true}}})
	acfg.RequestIDHeader = "-"
	acfg.Spill = &proxy.SpillConfig{Region: "eu-west", Secret: spillSecret, Peers: []proxy.SpillPeer{{Region: "us-east", Address: far.Addrs()["http"]}}}
	home := proxytest.Start(b, acfg)
	for _, tc := range []struct {
		name string
		p    *proxy.Proxy
	}{{"direct", far}, {"spilled", home}} {
		b.Run(tc.name, func(b *testing.B) {
			url := "http://" + tc.p.Addrs()["http"] + "/"
			c := benchClient()
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.Header.Get("X-Backend") != "far" {
					b.Fatalf("%s: answered by %q, want far", tc.name, resp.Header.Get("X-Backend"))
				}
			}
		})
	}
}
