package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gslbd/gslb/proxy"
	"github.com/gslbd/gslb/proxy/proxytest"
)

// PX-01: a backend killed mid-test: no idempotent request fails; a POST
// whose body was sent is not retried and gets a 502, not a hang.
func TestFailoverNoFailedGET(t *testing.T) {
	bs := proxytest.NewBackends(t, 3)
	p, url := startHTTP(t, proxytest.Group("web", proxy.AlgRoundRobin, bs...))
	c := client()
	counts := map[string]int{}
	for i := range 300 {
		if i == 100 {
			bs[1].Close()
		}
		code, b := get(t, c, url+"/")
		if code != 200 {
			t.Fatalf("GET %d after b1 died: status %d", i, code)
		}
		counts[b]++
	}
	t.Logf("distribution with b1 killed after 100 requests: %v", counts)
	// b1 was ejected after 5 consecutive connection errors.
	ejected := false
	for _, b := range p.Group("web").Backends() {
		if b.Address() == bs[1].Addr {
			ejected = true
		}
	}
	if !ejected || counts["b1"] > 34 {
		t.Errorf("b1 served %d requests after its death", counts["b1"]-33)
	}

	// All backends dead: a POST is not retried (one backend tried) and
	// fails fast with 502.
	bs[0].Close()
	bs[2].Close()
	resp, err := c.Post(url+"/", "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway && resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("POST with every backend dead: status %d, want 502 or 503", resp.StatusCode)
	}
}

// PX-01: a POST is sent once: a backend that fails it is not retried on another.
func TestPostNotRetried(t *testing.T) {
	var hits atomic.Int64
	dead := httpBackendFunc(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		panic(http.ErrAbortHandler) // drop the connection after reading the body
	})
	good := proxytest.NewBackend(t, "good")
	g := proxy.GroupConfig{Name: "web", Backends: []proxy.BackendConfig{{Address: dead}, {Address: good.Addr}}}
	_, url := startHTTP(t, g)
	c := client()
	resp, err := c.Post(url+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || good.Hits.Load() != 0 {
		t.Fatalf("POST to a failing backend: status %d, good backend hits %d; want 502 and 0", resp.StatusCode, good.Hits.Load())
	}
	// The same failure on a GET is retried on the good backend.
	code, b := get(t, c, url+"/")
	if code != 200 || b != "good" {
		// Round robin may start on the good one; then the next is the dead one.
		code, b = get(t, c, url+"/")
	}
	if code != 200 || b != "good" {
		t.Fatalf("GET retried: status %d from %q, want 200 from good", code, b)
	}
}

func httpBackendFunc(t *testing.T, f http.HandlerFunc) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// PX-03: active HTTP checks mark a backend down after `fails` failures and
// up after `passes` successes; the region health follows.
func TestActiveHealthAndRegionHealth(t *testing.T) {
	bs := proxytest.NewBackends(t, 2)
	g := proxytest.Group("web", proxy.AlgRoundRobin, bs...)
	g.HealthCheck = &proxy.HealthCheckConfig{Type: "http", Path: "/healthz", Interval: 20 * time.Millisecond, Timeout: time.Second, Fails: 2, Passes: 2}
	p, url := startHTTP(t, g)
	c := client()
	region := func() int {
		code, _ := get(t, c, url+"/health/region")
		return code
	}
	if code := region(); code != 200 {
		t.Fatalf("region health with all up = %d", code)
	}
	bs[0].SetHealthy(false)
	proxytest.Eventually(t, "b0 marked down", func() bool {
		_, b := get(t, c, url+"/")
		_, b2 := get(t, c, url+"/")
		return b == "b1" && b2 == "b1"
	})
	for range 10 {
		if _, b := get(t, c, url+"/"); b != "b1" {
			t.Fatalf("request went to %s, which is down", b)
		}
	}
	bs[1].SetHealthy(false)
	proxytest.Eventually(t, "region unhealthy", func() bool { return !p.Healthy() })
	if code := region(); code != http.StatusServiceUnavailable {
		t.Fatalf("region health with no backend = %d, want 503", code)
	}
	if code, _ := get(t, c, url+"/health"); code != 200 {
		t.Fatalf("/health (liveness) = %d, want 200 even with no backend", code)
	}
	if code, _ := get(t, c, url+"/"); code != http.StatusServiceUnavailable {
		t.Fatalf("request with no backend = %d, want 503", code)
	}
	bs[0].SetHealthy(true)
	proxytest.Eventually(t, "region healthy", p.Healthy)
	if code, b := get(t, c, url+"/"); code != 200 || b != "b0" {
		t.Fatalf("after recovery: %d from %s", code, b)
	}
}

// PX-02 over HTTP: a backend answering 5xx is ejected; others keep serving.
func TestPassiveEjectionHTTP(t *testing.T) {
	bad := httpBackendFunc(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "bad")
		w.WriteHeader(500)
	})
	good := proxytest.NewBackend(t, "good")
	g := proxy.GroupConfig{Name: "web", Backends: []proxy.BackendConfig{{Address: bad}, {Address: good.Addr}},
		Outlier: &proxy.OutlierConfig{ConsecutiveFailures: 3, BaseEjection: time.Hour}}
	_, url := startHTTP(t, g)
	c := client()
	fails := 0
	for range 40 {
		if code, _ := get(t, c, url+"/"); code == 500 {
			fails++
		}
	}
	if fails != 3 {
		t.Fatalf("got %d responses from the failing backend, want exactly 3 before ejection", fails)
	}
}

// PX-07: a draining backend takes no new requests; its in-flight request
// completes.
func TestDrainInFlight(t *testing.T) {
	bs := proxytest.NewBackends(t, 2)
	p, url := startHTTP(t, proxytest.Group("web", proxy.AlgRoundRobin, bs...))
	c := client()
	done := make(chan int, 1)
	go func() {
		resp, err := c.Get(url + "/hold")
		if err != nil {
			done <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-bs[0].Held() // round robin: the first request goes to b0
	if err := p.SetDraining("web", bs[0].Addr, true); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, b := get(t, c, url+"/"); b != "b1" {
			t.Fatalf("request %d went to draining %s", i, b)
		}
	}
	bs[0].Release()
	if code := <-done; code != 200 {
		t.Fatalf("in-flight request on the draining backend: status %d, want 200", code)
	}
	if err := p.SetDraining("web", "127.0.0.1:1", true); err == nil || !strings.Contains(err.Error(), `unknown backend "127.0.0.1:1"`) {
		t.Fatalf("SetDraining unknown backend: %v", err)
	}
}

// PX-11: X-Forwarded-* and Forwarded from an untrusted client are replaced;
// from a trusted proxy they are appended to. Hop-by-hop headers are removed.
func TestForwardedHeaders(t *testing.T) {
	bs := proxytest.NewBackends(t, 1)
	spoof := []string{"X-Forwarded-For", "6.6.6.6", "X-Forwarded-Proto", "https", "Forwarded", "for=6.6.6.6",
		"X-Request-Id", "spoofed", "Connection", "X-Hop", "X-Hop", "secret", "X_Under", "smuggled"}
	echo := func(url string) string {
		req, _ := http.NewRequest("GET", url+"/echo", nil)
		for i := 0; i < len(spoof); i += 2 {
			req.Header.Set(spoof[i], spoof[i+1])
		}
		resp, err := client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	_, url := startHTTP(t, proxytest.Group("web", "", bs...))
	got := echo(url)
	host := strings.TrimPrefix(url, "http://")
	for _, want := range []string{"X-Forwarded-For: 127.0.0.1\n", "X-Forwarded-Proto: http\n", "X-Forwarded-Host: " + host + "\n",
		"Forwarded: for=127.0.0.1;host=\"" + host + "\";proto=http\n", "X-Hop: \n", "Connection: \n", "X_Under: \n"} {
		if !strings.Contains(got, want) {
			t.Errorf("untrusted client: backend saw\n%s\nwant a line %q", got, want)
		}
	}
	if strings.Contains(got, "spoofed") || strings.Contains(got, "6.6.6.6") {
		t.Errorf("untrusted client's headers reached the backend:\n%s", got)
	}
	if !strings.Contains(got, "X-Request-Id: ") || strings.Contains(got, "X-Request-Id: \n") {
		t.Errorf("no request ID:\n%s", got)
	}

	_, url = startHTTP(t, proxytest.Group("web", "", bs...), func(c *proxy.Config) { c.TrustedProxies = []string{"127.0.0.0/8"} })
	got = echo(url)
	for _, want := range []string{"X-Forwarded-For: 6.6.6.6, 127.0.0.1\n", "X-Forwarded-Proto: https\n", "X-Request-Id: spoofed\n", "Forwarded: for=6.6.6.6, for=127.0.0.1;"} {
		if !strings.Contains(got, want) {
			t.Errorf("trusted proxy: backend saw\n%s\nwant a line %q", got, want)
		}
	}
}

// PX-09: a header block over max_header_bytes gets 431; a body over
// max_body_bytes gets 413 (declared or chunked).
func TestLimits(t *testing.T) {
	bs := proxytest.NewBackends(t, 1)
	_, url := startHTTP(t, proxytest.Group("web", "", bs...), func(c *proxy.Config) {
		c.MaxHeaderBytes = 8 << 10
		c.MaxBodyBytes = 1000
	})
	c := client()
	if code, _ := get(t, c, url+"/", "X-Big", strings.Repeat("a", 20<<10)); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("20 KiB header: status %d, want 431", code)
	}
	post := func(body io.Reader, n int64) int {
		req, _ := http.NewRequest("POST", url+"/", body)
		req.ContentLength = n
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(strings.NewReader(strings.Repeat("x", 1000)), 1000); code != 200 {
		t.Errorf("1000-byte body: status %d, want 200", code)
	}
	if code := post(strings.NewReader(strings.Repeat("x", 1001)), 1001); code != http.StatusRequestEntityTooLarge {
		t.Errorf("1001-byte body: status %d, want 413", code)
	}
	if code := post(io.MultiReader(strings.NewReader(strings.Repeat("x", 5000))), -1); code != http.StatusRequestEntityTooLarge {
		t.Errorf("5000-byte chunked body: status %d, want 413", code)
	}
}

func TestRateLimit(t *testing.T) {
	for _, alg := range []string{"token_bucket", "sliding_window"} {
		t.Run(alg, func(t *testing.T) {
			bs := proxytest.NewBackends(t, 1)
			_, url := startHTTP(t, proxytest.Group("web", "", bs...), func(c *proxy.Config) {
				c.Routes[0].RateLimit = &proxy.RateLimitConfig{Key: "header:X-Key", Algorithm: alg, Rate: 5, Window: time.Hour, Burst: 5}
			})
			c := client()
			for i := range 5 {
				if code, _ := get(t, c, url+"/", "X-Key", "alice"); code != 200 {
					t.Fatalf("request %d within the limit: %d", i, code)
				}
			}
			req, _ := http.NewRequest("GET", url+"/", nil)
			req.Header.Set("X-Key", "alice")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("6th request: %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
			t.Logf("429 Retry-After: %s", resp.Header.Get("Retry-After"))
			if code, _ := get(t, c, url+"/", "X-Key", "bob"); code != 200 {
				t.Fatalf("another key: %d, want 200", code)
			}
		})
	}
}

// Reload under load: requests keep flowing with zero failures while the
// config is swapped (backends added, removed, reweighted).
func TestReloadUnderLoad(t *testing.T) {
	bs := proxytest.NewBackends(t, 4)
	cfgs := []proxy.Config{
		proxytest.HTTPConfig(proxytest.Group("web", proxy.AlgRoundRobin, bs[0], bs[1])),
		proxytest.HTTPConfig(proxytest.Group("web", proxy.AlgLeastConn, bs[1], bs[2], bs[3])),
		proxytest.HTTPConfig(proxytest.Group("web", proxy.AlgWeightedRoundRobin, bs[3], bs[0])),
	}
	p := proxytest.Start(t, cfgs[0])
	url := "http://" + p.Addrs()["http"]
	var failed, ok atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			c := client()
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url + "/")
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	for i := range 30 {
		cfg := cfgs[i%len(cfgs)]
		cfg.Listeners = []proxy.ListenerConfig{{Name: "http", Address: p.Addrs()["http"]}}
		if err := p.Reload(cfg); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		for ok.Load() < int64(50*(i+1)) && failed.Load() == 0 {
			time.Sleep(time.Millisecond) // let some requests through between reloads
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("reload under load: %d requests ok, %d failed, 30 reloads", ok.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed during reloads", failed.Load())
	}
	// A bad config is refused and the running one keeps serving.
	bad := cfgs[0]
	bad.Routes = []proxy.RouteConfig{{Backends: "nope"}}
	if err := p.Reload(bad); err == nil || !strings.Contains(err.Error(), `proxy.routes[0].backends: unknown group "nope"`) {
		t.Fatalf("bad reload: %v", err)
	}
	if code, _ := get(t, client(), url+"/"); code != 200 {
		t.Fatalf("after refused reload: %d", code)
	}
}

// WebSocket: the upgrade is tunnelled and bytes echo both ways.
func TestWebSocketEcho(t *testing.T) {
	ws := httpBackendFunc(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw) // echo
	})
	g := proxy.GroupConfig{Name: "web", Backends: []proxy.BackendConfig{{Address: ws}}}
	p, _ := startHTTP(t, g)
	conn, err := net.Dial("tcp", p.Addrs()["http"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("upgrade status %d, want 101", resp.StatusCode)
	}
	for _, msg := range []string{"hello", "world"} {
		conn.Write([]byte(msg))
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(br, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo: %q, %v; want %q", buf, err, msg)
		}
	}
}

// A reload keeps a backend's state (here: marked down by its checks) and
// drains a removed backend while its request is in flight.
func TestReloadKeepsBackendState(t *testing.T) {
	bs := proxytest.NewBackends(t, 3)
	g := proxytest.Group("web", proxy.AlgRoundRobin, bs...)
	g.HealthCheck = &proxy.HealthCheckConfig{Type: "http", Path: "/healthz", Interval: time.Hour, Fails: 1, Passes: 1}
	bs[0].SetHealthy(false) // the first check (at start) marks b0 down
	cfg := proxytest.HTTPConfig(g)
	p := proxytest.Start(t, cfg)
	url := "http://" + p.Addrs()["http"]
	c := client()
	proxytest.Eventually(t, "b0 down", func() bool {
		_, b1 := get(t, c, url+"/")
		_, b2 := get(t, c, url+"/")
		return b1 != "b0" && b2 != "b0"
	})
	// Hold a request on b2, then reload without b2.
	done := make(chan int, 1)
	go func() {
		for {
			resp, err := c.Get(url + "/hold")
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			if resp.Header.Get("X-Backend") == "b2" {
				done <- resp.StatusCode
				return
			}
		}
	}()
	bs[1].Release()
	<-bs[2].Held()
	before := p.Group("web").Backends()
	g2 := g
	g2.Backends = g.Backends[:2]
	cfg2 := proxytest.HTTPConfig(g2)
	cfg2.Listeners[0].Address = p.Addrs()["http"]
	if err := p.Reload(cfg2); err != nil {
		t.Fatal(err)
	}
	after := p.Group("web").Backends()
	if after[0] != before[0] || after[1] != before[1] {
		t.Fatal("reload replaced the backends it kept (their health and counters are lost)")
	}
	for i := range 10 {
		if _, b := get(t, c, url+"/"); b != "b1" {
			t.Fatalf("request %d after reload went to %s, want b1 (b0 down, b2 removed)", i, b)
		}
	}
	bs[2].Release()
	if code := <-done; code != 200 {
		t.Fatalf("request in flight on the removed backend: %d, want 200", code)
	}
}

// A backend that closes keep-alive connections silently after each
// response: the pooled connection is stale on the next request, which is
// retried on a new connection instead of failing.
func TestStaleKeepAliveRetried(t *testing.T) {
	be := tcpBackend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Backend: raw\r\n\r\nok")
		_ = req
		// Close without saying so: the proxy pooled this connection.
	})
	g := proxy.GroupConfig{Name: "web", Backends: []proxy.BackendConfig{{Address: be}}}
	_, url := startHTTP(t, g)
	c := client()
	for i := range 20 {
		if code, b := get(t, c, url+"/"); code != 200 || b != "raw" {
			t.Fatalf("request %d: %d from %q, want 200 from raw", i, code, b)
		}
	}
}

// The access log is off by default and writes one line per request when on.
func TestAccessLog(t *testing.T) {
	bs := proxytest.NewBackends(t, 1)
	for _, on := range []bool{false, true} {
		var buf syncBuffer
		cfg := proxytest.HTTPConfig(proxytest.Group("web", "", bs...))
		cfg.AccessLog = on
		p, err := proxy.New(cfg, slog.New(slog.NewTextHandler(&buf, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		url := "http://" + p.Addrs()["http"]
		get(t, client(), url+"/some/path")
		get(t, client(), url+"/status/404")
		p.Shutdown(t.Context())
		lines := strings.Count(buf.String(), "msg=request ")
		if on && lines != 2 || !on && lines != 0 {
			t.Fatalf("access_log %v: %d request lines, want %d:\n%s", on, lines, map[bool]int{true: 2}[on], buf.String())
		}
		if on && !strings.Contains(buf.String(), "path=/status/404") || on && !strings.Contains(buf.String(), "status=404") {
			t.Fatalf("access log lacks path or status:\n%s", buf.String())
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// PX-10: request-smuggling shapes are refused (400) or re-framed so that
// the backend and the proxy agree on the requests: every request the
// backend sees is one the client got a response for, and a malformed body
// is the client's 400, never a backend failure.
func TestSmugglingCorpus(t *testing.T) {
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	corpus := []struct{ name, payload string }{
		{"CL.TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"TE.CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n"},
		{"duplicate CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello" + smuggled},
		{"TE with CR", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \rchunked\r\nContent-Length: 5\r\n\r\nhello"},
		{"bare LF in chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"},
		{"invalid CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"},
		{"space before colon", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello"},
		{"TE xchunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
	}
	for _, tc := range corpus {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var seen []string
			be := httpBackendFunc(t, func(w http.ResponseWriter, r *http.Request) {
				b, err := io.ReadAll(r.Body)
				if err != nil {
					return // a truncated request (the proxy aborted it)
				}
				mu.Lock()
				seen = append(seen, r.Method+" "+r.URL.Path+" "+strconv.Quote(string(b)))
				mu.Unlock()
			})
			p, _ := startHTTP(t, proxy.GroupConfig{Name: "web", Backends: []proxy.BackendConfig{{Address: be}}})
			c, err := net.Dial("tcp", p.Addrs()["http"])
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second)) // safety net only
			// A last request closes the connection. (No half-close: net/http
			// cancels a request whose client half-closes.)
			io.WriteString(c, tc.payload+"GET /end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			br := bufio.NewReader(c)
			var codes []int
			ok := 0
			for {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					break
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes = append(codes, resp.StatusCode)
				if resp.StatusCode == 200 {
					ok++
				}
			}
			mu.Lock()
			defer mu.Unlock()
			t.Logf("%s: client got %v, backend saw %q", tc.name, codes, seen)
			if len(codes) == 0 {
				t.Fatal("no response")
			}
			for _, code := range codes {
				if code != 200 && code != 400 && code != 501 {
					t.Fatalf("status %d, want 400 or 501 (refused) or 200 (re-framed)", code)
				}
			}
			if len(seen) != ok {
				t.Fatalf("backend saw %d requests, client got %d responses from it: desync", len(seen), ok)
			}
			if b := p.Group("web").Backends()[0]; !p.Healthy() || b.Active() != 0 {
				t.Fatal("a malformed request counted against the backend")
			}
		})
	}
}

// The HTTP/1.x front: framing of what the backend sends (length, chunked
// stream, HEAD), HTTP/1.0, Expect: 100-continue, pipelining.
func TestHTTP1Front(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 8192) // 128 KiB
	be := httpBackendFunc(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			io.WriteString(w, big)
		case "/stream":
			for i := range 50 {
				fmt.Fprintf(w, "line %d %s\n", i, big[:1000])
				w.(http.Flusher).Flush()
			}
		default:
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %d", r.Method, r.URL.Path, len(b))
		}
	})
	p, url := startHTTP(t, proxy.GroupConfig{Name: "web", Backends: []proxy.BackendConfig{{Address: be}}})
	c := client()
	for _, path := range []string{"/big", "/stream"} {
		resp, err := c.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := len(big)
		if path == "/stream" {
			want = 50 * (1000 + len("line 0 \n"))
		}
		if err != nil || len(b) < want-50 || len(b) > want+50 {
			t.Fatalf("GET %s: %d bytes, %v, %v; want about %d", path, len(b), err, resp.TransferEncoding, want)
		}
		t.Logf("GET %s: %d bytes, transfer-encoding %v, content-length %d", path, len(b), resp.TransferEncoding, resp.ContentLength)
	}
	raw := func(req string) string { return rawExchange(t, p.Addrs()["http"], req) }
	tests := []struct{ name, req, want string }{
		{"http/1.0", "GET /a HTTP/1.0\r\n\r\n", "GET /a 0"},
		{"HEAD", "HEAD /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "Content-Length: 131072"},
		{"expect 100-continue", "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\nConnection: close\r\n\r\nabc", "POST /p 3"},
		{"pipelined", "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "GET /2 0"},
		{"no host", "GET / HTTP/1.1\r\n\r\n", "400 Bad Request"},
	}
	for _, tc := range tests {
		got := raw(tc.req)
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s: response\n%s\nwant it to contain %q", tc.name, got, tc.want)
		}
		if tc.name == "HEAD" && strings.Contains(got, "0123") {
			t.Errorf("HEAD response has a body")
		}
		if tc.name == "pipelined" && !strings.Contains(got, "GET /1 0") {
			t.Errorf("pipelined: first response missing:\n%s", got)
		}
	}
}

// PX-07: when a draining backend's deadline passes, what is still in
// flight is cut: a held GET fails over to another backend (it had no
// response yet), and a TCP connection is closed.
func TestDrainDeadline(t *testing.T) {
	bs := proxytest.NewBackends(t, 2)
	echo := tcpBackend(t, func(c net.Conn) { io.Copy(c, c) })
	cfg := proxytest.HTTPConfig(proxytest.Group("web", proxy.AlgRoundRobin, bs...))
	cfg.Groups = append(cfg.Groups, proxy.GroupConfig{Name: "tcp", Backends: []proxy.BackendConfig{{Address: echo}}})
	cfg.Listeners = append(cfg.Listeners, proxy.ListenerConfig{Name: "tcp", Address: "127.0.0.1:0", Protocol: "tcp", Backends: "tcp"})
	cfg.DrainTimeout = 50 * time.Millisecond
	p := proxytest.Start(t, cfg)
	url := "http://" + p.Addrs()["http"]

	type result struct {
		code    int
		backend string
	}
	done := make(chan result, 1)
	go func() {
		resp, err := client().Get(url + "/hold")
		if err != nil {
			done <- result{}
			return
		}
		resp.Body.Close()
		done <- result{resp.StatusCode, resp.Header.Get("X-Backend")}
	}()
	<-bs[0].Held() // round robin: b0 first
	tc, err := net.Dial("tcp", p.Addrs()["tcp"])
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.Write([]byte("x"))
	if _, err := io.ReadFull(tc, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	bs[1].Release() // b1 answers /hold at once
	if err := p.SetDraining("web", bs[0].Addr, true); err != nil {
		t.Fatal(err)
	}
	if err := p.SetDraining("tcp", echo, true); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.code != 200 || r.backend != "b1" {
		t.Fatalf("held request after the drain deadline: %d from %q, want 200 from b1 (retried)", r.code, r.backend)
	}
	tc.SetReadDeadline(time.Now().Add(30 * time.Second)) // safety net only
	if n, err := tc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("TCP connection after the drain deadline: read %d, %v; want EOF", n, err)
	}
}

// PX-08: a client that stalls in its header block is cut off by the header
// timeout; other clients are served meanwhile.
func TestSlowHeaders(t *testing.T) {
	bs := proxytest.NewBackends(t, 1)
	p, url := startHTTP(t, proxytest.Group("web", "", bs...), func(c *proxy.Config) {
		c.Timeouts.ReadHeader = 200 * time.Millisecond
	})
	slow, err := net.Dial("tcp", p.Addrs()["http"])
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	io.WriteString(slow, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	if code, _ := get(t, client(), url+"/"); code != 200 {
		t.Fatalf("another client while one stalls: %d", code)
	}
	slow.SetReadDeadline(time.Now().Add(30 * time.Second)) // safety net only
	b, err := io.ReadAll(slow)
	if err != nil {
		t.Fatalf("stalled client: %v (want the proxy to close the connection)", err)
	}
	if len(b) != 0 {
		t.Fatalf("stalled client got %q, want the connection closed without a response", b)
	}
}
