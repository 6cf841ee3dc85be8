package proxy_test

import (
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
