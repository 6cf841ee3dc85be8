package proxy_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gslbd/gslb/proxy"
	"github.com/gslbd/gslb/proxy/proxytest"
	"github.com/prometheus/client_golang/prometheus"
)

// tcpBackend accepts connections and runs serve on each.
func tcpBackend(t testing.TB, serve func(net.Conn)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func tcpConfig(pp string, idle time.Duration, addrs ...string) proxy.Config {
	g := proxy.GroupConfig{Name: "tcp"}
	for _, a := range addrs {
		g.Backends = append(g.Backends, proxy.BackendConfig{Address: a})
	}
	return proxy.Config{
		Listeners: []proxy.ListenerConfig{{Name: "tcp", Address: "127.0.0.1:0", Protocol: "tcp", Backends: "tcp", ProxyProtocol: pp}},
		Groups:    []proxy.GroupConfig{g},
		Timeouts:  proxy.Timeouts{Idle: idle},
	}
}

// PX-13: half-close is forwarded: the backend reads the whole request up to
// EOF, then answers on the still-open other direction.
func TestTCPHalfClose(t *testing.T) {
	be := tcpBackend(t, func(c net.Conn) {
		b, _ := io.ReadAll(c) // until the client's FIN
		c.Write([]byte("got " + string(b)))
	})
	p := proxytest.Start(t, tcpConfig("", 0, be))
	c, err := net.Dial("tcp", p.Addrs()["tcp"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "got ping" {
		t.Fatalf("half-close round trip: %q, %v; want %q", got, err, "got ping")
	}
}

// PX-13: small messages and bulk transfers both get through intact, on
// several connections at once: hundreds of request/response exchanges
// (each direction waits for the poller between messages; a lost wake-up
// would hang the exchange until the deadline), then 1 MiB each way (a read
// that fills the proxy's buffer hands the direction over to splice), then
// small exchanges again.
func TestTCPSmallAndBulk(t *testing.T) {
	be := tcpBackend(t, func(c net.Conn) { io.Copy(c, c) })
	p := proxytest.Start(t, tcpConfig("", time.Minute, be))
	bulk := make([]byte, 1<<20)
	for i := range bulk {
		bulk[i] = byte(i * 7 / 5)
	}
	errs := make(chan error, 8)
	for w := range 8 {
		go func() { errs <- tcpExchange(p.Addrs()["tcp"], w, bulk) }()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// tcpExchange runs TestTCPSmallAndBulk's exchanges on one connection.
func tcpExchange(addr string, w int, bulk []byte) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	small := func(round string) error {
		buf := make([]byte, 64)
		for i := range 200 {
			msg := []byte("conn " + itoa(w) + " " + round + " message " + itoa(i))
			if _, err := c.Write(msg); err != nil {
				return err
			}
			if _, err := io.ReadFull(c, buf[:len(msg)]); err != nil {
				return fmt.Errorf("conn %d, %s message %d: %v", w, round, i, err)
			}
			if string(buf[:len(msg)]) != string(msg) {
				return fmt.Errorf("conn %d: echo %q, want %q", w, buf[:len(msg)], msg)
			}
		}
		return nil
	}
	if err := small("first"); err != nil {
		return err
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(bulk)
		werr <- err
	}()
	got := make([]byte, len(bulk))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("conn %d: bulk echo: %v", w, err)
	}
	if err := <-werr; err != nil {
		return err
	}
	if !bytes.Equal(got, bulk) {
		return fmt.Errorf("conn %d: bulk echo differs", w)
	}
	return small("second")
}

// PROXY protocol v1 and v2 reach the backend before the client's bytes.
func TestTCPProxyProtocol(t *testing.T) {
	for _, v := range []string{"v1", "v2"} {
		t.Run(v, func(t *testing.T) {
			hdr := make(chan []byte, 1)
			be := tcpBackend(t, func(c net.Conn) {
				b, _ := io.ReadAll(c)
				hdr <- b
			})
			p := proxytest.Start(t, tcpConfig(v, 0, be))
			c, err := net.Dial("tcp", p.Addrs()["tcp"])
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte("DATA"))
			c.Close()
			got := <-hdr
			local := c.LocalAddr().(*net.TCPAddr)
			switch v {
			case "v1":
				want := "PROXY TCP4 127.0.0.1 127.0.0.1 " + itoa(local.Port) + " " + strings.Split(p.Addrs()["tcp"], ":")[1] + "\r\nDATA"
				if string(got) != want {
					t.Fatalf("backend got %q, want %q", got, want)
				}
			case "v2":
				if len(got) != 28+4 || string(got[:12]) != "\r\n\r\n\x00\r\nQUIT\n" || string(got[28:]) != "DATA" ||
					int(got[24])<<8|int(got[25]) != local.Port {
					t.Fatalf("backend got %x", got)
				}
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// PX-13: an idle connection is closed by the proxy; a backend that is
// down is skipped at connect time.
func TestTCPIdleAndFailover(t *testing.T) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	be := tcpBackend(t, func(c net.Conn) { io.Copy(c, c) })
	// The idle timeout leaves room for a stalled machine between the
	// write and its echo; the test only waits for the close.
	p := proxytest.Start(t, tcpConfig("", 500*time.Millisecond, deadAddr, be))
	for i := range 2 {
		c, err := net.Dial("tcp", p.Addrs()["tcp"])
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		buf := make([]byte, 1)
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatalf("connection %d: echo through the live backend: %v", i, err)
		}
		// Then idle: the proxy closes the connection (EOF), bounded by the
		// test's deadline only as a safety net.
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if n, err := c.Read(buf); err != io.EOF {
			t.Fatalf("idle connection %d: read %d, %v; want EOF from the idle timeout", i, n, err)
		}
		c.Close()
	}
}

// TLS termination picks the certificate by SNI.
func TestTLSSNI(t *testing.T) {
	dir := t.TempDir()
	aCert, aKey, aX := proxytest.Cert(t, dir, "a.test")
	bCert, bKey, bX := proxytest.Cert(t, dir, "b.test")
	bs := proxytest.NewBackends(t, 1)
	cfg := proxytest.HTTPConfig(proxytest.Group("web", "", bs...))
	cfg.Listeners = []proxy.ListenerConfig{{Name: "https", Address: "127.0.0.1:0", Protocol: "https",
		TLS: &proxy.TLSConfig{Certificates: []proxy.CertConfig{{CertFile: aCert, KeyFile: aKey}, {CertFile: bCert, KeyFile: bKey}}}}}
	p := proxytest.Start(t, cfg)
	pool := x509.NewCertPool()
	pool.AddCert(aX)
	pool.AddCert(bX)
	for _, name := range []string{"a.test", "b.test"} {
		for _, h2 := range []bool{true, false} {
			tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: name, RootCAs: pool}, ForceAttemptHTTP2: h2}
			if !h2 {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // HTTP/1.1 only
			}
			for range 3 { // keep-alive: several requests per connection
				resp, err := (&http.Client{Transport: tr}).Get("https://" + p.Addrs()["https"] + "/")
				if err != nil {
					t.Fatalf("SNI %s: %v", name, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				got := resp.TLS.PeerCertificates[0].Subject.CommonName
				t.Logf("SNI %s: certificate %s, %s, body %q", name, got, resp.Proto, body)
				wantMajor := map[bool]int{true: 2, false: 1}[h2]
				if got != name || resp.StatusCode != 200 || resp.ProtoMajor != wantMajor {
					t.Fatalf("SNI %s: certificate %s, status %d, %s; want %s, 200, HTTP/%d", name, got, resp.StatusCode, resp.Proto, name, wantMajor)
				}
				if resp.Header.Get("X-Backend") != "b0" {
					t.Fatalf("SNI %s: not proxied", name)
				}
			}
		}
	}
}

// HTTP/2 end to end with trailers (the shape of gRPC): h2 over TLS from the
// client, h2c to the backend, trailers passed back; and re-encryption to a
// TLS backend.
func TestHTTP2Trailers(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
		io.WriteString(w, r.Proto+" "+r.Header.Get("Te"))
		w.Header().Set("Grpc-Status", "0")
		w.Header().Set("Grpc-Message", "ok")
	})
	h2c := httptest.NewUnstartedServer(h)
	h2c.Config.Protocols = new(http.Protocols)
	h2c.Config.Protocols.SetUnencryptedHTTP2(true)
	h2c.Start()
	defer h2c.Close()
	tlsBE := httptest.NewUnstartedServer(h)
	tlsBE.EnableHTTP2 = true
	tlsBE.StartTLS()
	defer tlsBE.Close()

	dir := t.TempDir()
	cert, key, x := proxytest.Cert(t, dir, "grpc.test")
	cfg := proxy.Config{
		Listeners: []proxy.ListenerConfig{
			{Name: "https", Address: "127.0.0.1:0", Protocol: "https", TLS: &proxy.TLSConfig{Certificates: []proxy.CertConfig{{CertFile: cert, KeyFile: key}}}},
			{Name: "h2c", Address: "127.0.0.1:0", H2C: true},
		},
		Routes: []proxy.RouteConfig{
			{Name: "tls", PathPrefix: "/tls", Backends: "tlsbe"},
			{Name: "grpc", Backends: "grpc"},
		},
		Groups: []proxy.GroupConfig{
			{Name: "grpc", H2C: true, Backends: []proxy.BackendConfig{{Address: h2c.Listener.Addr().String()}}},
			{Name: "tlsbe", TLS: true, TLSInsecureSkipVerify: true, Backends: []proxy.BackendConfig{{Address: tlsBE.Listener.Addr().String()}}},
		},
	}
	p := proxytest.Start(t, cfg)
	pool := x509.NewCertPool()
	pool.AddCert(x)
	h2tls := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: "grpc.test", RootCAs: pool}, ForceAttemptHTTP2: true}}
	h2Plain := &http.Transport{Protocols: new(http.Protocols)}
	h2Plain.Protocols.SetUnencryptedHTTP2(true)
	tests := []struct {
		name string
		c    *http.Client
		url  string
	}{
		{"h2-tls-to-h2c", h2tls, "https://" + p.Addrs()["https"] + "/svc/Method"},
		{"h2c-to-h2c", &http.Client{Transport: h2Plain}, "http://" + p.Addrs()["h2c"] + "/svc/Method"},
		{"h2-tls-to-tls", h2tls, "https://" + p.Addrs()["https"] + "/tls"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", tc.url, strings.NewReader("\x00\x00\x00\x00\x00"))
			req.Header.Set("Te", "trailers")
			req.Header.Set("Content-Type", "application/grpc")
			resp, err := tc.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("%s: client %s, backend saw %q, trailers %v", tc.name, resp.Proto, body, resp.Trailer)
			if resp.ProtoMajor != 2 || !strings.HasPrefix(string(body), "HTTP/2.0 trailers") {
				t.Fatalf("client %s, backend saw %q; want HTTP/2 both sides with TE: trailers", resp.Proto, body)
			}
			if resp.Trailer.Get("Grpc-Status") != "0" || resp.Trailer.Get("Grpc-Message") != "ok" {
				t.Fatalf("trailers = %v, want Grpc-Status 0 and Grpc-Message ok", resp.Trailer)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	bs := proxytest.NewBackends(t, 2)
	p, url := startHTTP(t, proxytest.Group("web", "", bs...))
	c := client()
	for range 4 {
		get(t, c, url+"/")
	}
	get(t, c, url+"/status/503")
	reg := prometheus.NewRegistry()
	reg.MustRegister(p)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				got[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				got[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				got[key] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	want := map[string]float64{
		"gslb_proxy_requests_total,code=2xx,route=all":                                     4,
		"gslb_proxy_requests_total,code=5xx,route=all":                                     1,
		"gslb_proxy_request_duration_seconds,route=all":                                    5,
		"gslb_proxy_backend_responses_total,backend=" + bs[0].Addr + ",code=2xx,group=web": 2,
		"gslb_proxy_backend_up,backend=" + bs[1].Addr + ",group=web":                       1,
		"gslb_proxy_group_healthy,group=web":                                               1,
		"gslb_proxy_healthy":                                                               1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestReadyLine(t *testing.T) {
	bs := proxytest.NewBackends(t, 1)
	cfg := proxytest.HTTPConfig(proxytest.Group("web", "", bs...))
	cfg.Listeners = append(cfg.Listeners, proxy.ListenerConfig{Name: "tcp", Address: "127.0.0.1:0", Protocol: "tcp", Backends: "web"})
	p := proxytest.Start(t, cfg)
	line := p.ReadyLine()
	want := "proxy ready http=" + p.Addrs()["http"] + " tcp=" + p.Addrs()["tcp"]
	if line != want {
		t.Fatalf("ReadyLine = %q, want %q", line, want)
	}
	// The TCP listener proxies HTTP bytes to the same backend.
	c, err := net.Dial("tcp", p.Addrs()["tcp"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.Header.Get("X-Backend") != "b0" {
		t.Fatalf("HTTP over the tcp listener: %v %v", resp, err)
	}
}

// PX-13: many short connections (HTTP and TCP) leave no goroutine or
// connection behind.
func TestNoLeakAfterShortConnections(t *testing.T) {
	echo := tcpBackend(t, func(c net.Conn) { io.Copy(c, c) })
	bs := proxytest.NewBackends(t, 1)
	cfg := proxytest.HTTPConfig(proxytest.Group("web", "", bs...))
	cfg.Groups = append(cfg.Groups, proxy.GroupConfig{Name: "tcp", Backends: []proxy.BackendConfig{{Address: echo}}})
	cfg.Listeners = append(cfg.Listeners, proxy.ListenerConfig{Name: "tcp", Address: "127.0.0.1:0", Protocol: "tcp", Backends: "tcp"})
	p := proxytest.Start(t, cfg)
	base := runtime.NumGoroutine()
	for i := range 1000 {
		c, err := net.Dial("tcp", p.Addrs()["tcp"])
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatalf("tcp connection %d: %v", i, err)
		}
		c.Close()
		hc, err := net.Dial("tcp", p.Addrs()["http"])
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(hc, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if _, err := io.ReadAll(hc); err != nil {
			t.Fatalf("http connection %d: %v", i, err)
		}
		hc.Close()
	}
	proxytest.Eventually(t, "goroutines back to the baseline", func() bool {
		return runtime.NumGoroutine() <= base+5
	})
	// The last connections' goroutines may still be finishing: wait for
	// the count to reach zero (it never does if a connection leaks).
	active := func() int64 {
		var n int64
		for _, g := range []string{"web", "tcp"} {
			for _, b := range p.Group(g).Backends() {
				n += b.Active()
			}
		}
		return n
	}
	proxytest.Eventually(t, "no connection counted active", func() bool { return active() == 0 })
	reg := prometheus.NewRegistry()
	reg.MustRegister(p)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "gslb_proxy_backend_connections_total" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[1].GetValue() != "tcp" {
					continue
				}
				found = true
				if v := m.GetCounter().GetValue(); v != 1000 {
					t.Errorf("gslb_proxy_backend_connections_total{group=tcp} = %v, want 1000", v)
				}
			}
		}
	}
	if !found {
		t.Error("no gslb_proxy_backend_connections_total{group=tcp}")
	}
	t.Logf("2000 short connections: goroutines %d before, %d after", base, runtime.NumGoroutine())
}
