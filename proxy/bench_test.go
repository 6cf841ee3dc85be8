package proxy_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/gslbd/gslb/proxy"
	"github.com/gslbd/gslb/proxy/proxytest"
)

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
}

// BenchmarkHTTPProxy measures one small GET through the L7 proxy to three
// backends, in parallel (keep-alive on both sides).
func BenchmarkHTTPProxy(b *testing.B) {
	bs := proxytest.NewBackends(b, 3)
	cfg := proxytest.HTTPConfig(proxytest.Group("web", proxy.AlgRoundRobin, bs...))
	cfg.RequestIDHeader = "-"
	p := proxytest.Start(b, cfg)
	url := "http://" + p.Addrs()["http"] + "/"
	c := benchClient()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkTCPProxy measures a request/response round trip over one
// long-lived connection through the L4 proxy.
func BenchmarkTCPProxy(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	cfg := proxy.Config{
		Listeners: []proxy.ListenerConfig{{Name: "tcp", Address: "127.0.0.1:0", Protocol: "tcp", Backends: "t"}},
		Groups:    []proxy.GroupConfig{{Name: "t", Backends: []proxy.BackendConfig{{Address: ln.Addr().String()}}}},
	}
	p := proxytest.Start(b, cfg)
	c, err := net.Dial("tcp", p.Addrs()["tcp"])
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// rawBackend answers every request on a keep-alive connection with a fixed
// 14-byte response, allocating nothing per request, so that a benchmark's
// allocations are the proxy's.
func rawBackend(b *testing.B) string {
	resp := []byte("HTTP/1.1 200 OK\r\nServer: raw\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nhello from b1\n")
	return tcpBackend(b, func(c net.Conn) {
		buf := make([]byte, 8<<10)
		n := 0
		for {
			m, err := c.Read(buf[n:])
			if err != nil {
				return
			}
			n += m
			// Answer every complete header block (requests have no body).
			for {
				i := bytes.Index(buf[:n], []byte("\r\n\r\n"))
				if i < 0 {
					break
				}
				if _, err := c.Write(resp); err != nil {
					return
				}
				n = copy(buf, buf[i+4:n])
			}
			if n == len(buf) {
				return
			}
		}
	})
}

// BenchmarkHTTPProxyPath measures the proxy's own L7 path: raw keep-alive
// clients send a small GET (the headers wrk sends) through the proxy to
// raw backends; neither allocates per request, so allocs/op are the
// proxy's.
func BenchmarkHTTPProxyPath(b *testing.B) {
	g := proxy.GroupConfig{Name: "web", Algorithm: proxy.AlgRoundRobin}
	for range 3 {
		g.Backends = append(g.Backends, proxy.BackendConfig{Address: rawBackend(b)})
	}
	cfg := proxytest.HTTPConfig(g)
	cfg.RequestIDHeader = "-"
	p := proxytest.Start(b, cfg)
	addr := p.Addrs()["http"]
	req := []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n")
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 4<<10)
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			// Read until the 14-byte body that ends the response.
			n := 0
			for {
				m, err := c.Read(buf[n:])
				if err != nil {
					b.Error(err)
					return
				}
				n += m
				if i := bytes.Index(buf[:n], []byte("\r\n\r\n")); i >= 0 && n >= i+4+14 {
					break
				}
			}
		}
	})
}
